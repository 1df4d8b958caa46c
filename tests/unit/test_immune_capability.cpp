// proxy/immune/capability and the session registry's state machine: the token format (claims,
// expiry, nonce, tampering, another key) and how sensors move a session's risk state.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/file.hpp"
#include "core/providers.hpp"
#include "core/time.hpp"
#include "proxy/immune/capability.hpp"
#include "proxy/immune/sessions.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
using namespace tokfence::immune;
namespace fs = std::filesystem;

namespace {

Claims claims_for(std::int64_t now) {
  Claims c;
  c.client_id = "codex";
  c.session_id = "ses_0123456789abcdef";
  c.issued_at_ms = now;
  c.expires_at_ms = now + 60'000;
  return c;
}

using test::TempDir;

}  // namespace

TEST_CASE("capability: a signed token verifies and carries its claims") {
  auto key = SigningKey::generate();
  REQUIRE(key);
  const std::int64_t now = 1'800'000'000'000;
  const std::string token = key->sign(claims_for(now));
  REQUIRE(token.starts_with("tfc1."));
  auto claims = key->verify(token, now + 1);
  REQUIRE(claims);
  CHECK(claims->client_id == "codex");
  CHECK(claims->session_id == "ses_0123456789abcdef");
  CHECK(claims->scope == "proxy");
  CHECK(claims->risk == RiskState::green);
  CHECK(claims->expires_at_ms == now + 60'000);
  CHECK(claims->nonce.size() == 32);
}

TEST_CASE("capability: two tokens for the same claims differ (nonce)") {
  auto key = SigningKey::generate();
  REQUIRE(key);
  std::set<std::string> tokens;
  for (int i = 0; i < 50; ++i) tokens.insert(key->sign(claims_for(1000)));
  CHECK(tokens.size() == 50);
}

TEST_CASE("capability: expired, tampered, truncated and foreign tokens are refused") {
  auto key = SigningKey::generate();
  auto other = SigningKey::generate();
  REQUIRE(key);
  REQUIRE(other);
  const std::int64_t now = 1'800'000'000'000;
  const std::string token = key->sign(claims_for(now));
  CHECK(key->verify(token, now + 60'000).error() == TokenProblem::expired);
  CHECK(other->verify(token, now).error() == TokenProblem::bad_signature);
  // Every single-character change in the signed part or the signature is caught.
  const std::string alphabet = "AQgw09-_";
  for (std::size_t i = 5; i < token.size(); i += 7) {
    std::string bad = token;
    bad[i] = bad[i] == alphabet[i % alphabet.size()] ? 'Z' : alphabet[i % alphabet.size()];
    if (bad[i] == '.' || token[i] == '.') continue;
    CHECK_FALSE(key->verify(bad, now));
  }
  CHECK(key->verify(token.substr(0, token.size() - 2), now).error() != TokenProblem::expired);
  CHECK_FALSE(key->verify("tfc1.", now));
  CHECK_FALSE(key->verify("tfc1..", now));
  CHECK_FALSE(key->verify("tfc1.e30.", now));
  CHECK_FALSE(key->verify("sk-not-a-token", now));
  CHECK_FALSE(key->verify(std::string("tfc1.") + std::string(5000, 'A') + ".AAAA", now));
  // A payload re-encoded with a longer expiry keeps the old signature: refused.
  const auto dot = token.rfind('.');
  std::string forged = token.substr(0, 5) + "eyJ2IjoxfQ" + token.substr(dot);
  CHECK_FALSE(key->verify(forged, now));
}

TEST_CASE("capability: the signing key file is created 0600 and refused when others can read it") {
  TempDir dir;
  const fs::path file = dir.path / "immunefence.key";
  auto made = SigningKey::load_or_create(file);
  REQUIRE(made);
  CHECK((fs::status(file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  const std::string token = made->sign(claims_for(1000));
  auto again = SigningKey::load_or_create(file);
  REQUIRE(again);
  CHECK(again->verify(token, 1001));  // the same key after a restart
  fs::permissions(file, fs::perms::group_read, fs::perm_options::add);
  auto refused = SigningKey::load_or_create(file);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("0600") != std::string::npos);
  fs::remove(file);
  std::ofstream(file) << "not a key";
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  auto garbage = SigningKey::load_or_create(file);
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().message.find("Ed25519") != std::string::npos);
  fs::remove(file);
  fs::create_symlink(dir.path / "elsewhere", file);
  CHECK_FALSE(SigningKey::load_or_create(file));  // a symlink is not followed
}

TEST_CASE("sessions: glob matching") {
  CHECK(glob_match("gpt-4o*", "gpt-4o-mini"));
  CHECK(glob_match("*", ""));
  CHECK(glob_match("/v1/*", "/v1/chat/completions"));
  CHECK_FALSE(glob_match("gpt-4o", "gpt-4o-mini"));
  CHECK(glob_match("claude-*-sonnet*", "claude-3-5-sonnet-latest"));
  CHECK_FALSE(glob_match("a*b", "acd"));
  CHECK(glob_match(std::string(50, '*') + "x", std::string(10000, 'a') + "x"));
}

TEST_CASE("sessions: tokens, scope and the risk state machine") {
  TempDir dir;
  auto key = SigningKey::generate();
  REQUIRE(key);
  std::vector<std::string> notes;
  Settings settings;
  settings.scope_violations_to_orange = 3;
  settings.egress_denials_per_minute = 4;
  auto reg = Registry::open(dir.path / "tokfence.db", std::move(*key), settings,
                            [&](const std::string& line, bool) { notes.push_back(line); });
  REQUIRE(reg);
  Registry& r = **reg;
  const std::int64_t now = now_ms();
  SessionRequest req;
  req.name = "ci";
  req.limits.providers = {"openai"};
  req.limits.models = {"gpt-4o*"};
  auto issued = r.create(req, now);
  REQUIRE(issued);
  auto dup = r.create(req, now);
  REQUIRE_FALSE(dup);  // a manual name is unique among live sessions

  SECTION("the token authorizes; the DB holds its hash only") {
    auto v = r.authorize(issued->token, "", true, now);
    REQUIRE(std::holds_alternative<std::shared_ptr<TokenEntry>>(v));
    CHECK(std::get<std::shared_ptr<TokenEntry>>(v)->session->name == "ci");
    std::ifstream db(dir.path / "tokfence.db", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(db)), {});
    CHECK(bytes.find(issued->token) == std::string::npos);
    CHECK(bytes.find(issued->token.substr(5, 40)) == std::string::npos);
  }
  SECTION("no token: refused when required or on a bound socket, admitted otherwise") {
    CHECK(std::holds_alternative<Refusal>(r.authorize("", "", true, now)));
    CHECK(std::holds_alternative<Refusal>(r.authorize("", "ses_x", false, now)));
    auto open = r.authorize("", "", false, now);
    REQUIRE(std::holds_alternative<std::shared_ptr<TokenEntry>>(open));
    CHECK(std::get<std::shared_ptr<TokenEntry>>(open) == nullptr);
  }
  SECTION("a token on another session's socket is refused") {
    auto v = r.authorize(issued->token, "ses_another", true, now);
    REQUIRE(std::holds_alternative<Refusal>(v));
    CHECK(std::get<Refusal>(v).type == "tokfence_capability");
  }
  SECTION("revoked: refused at once, also for an entry a connection holds") {
    auto v = r.authorize(issued->token, "", true, now);
    auto entry = std::get<std::shared_ptr<TokenEntry>>(v);
    REQUIRE(r.revoke("ci", "test", now));
    CHECK(Registry::recheck(*entry, now));
    CHECK(std::holds_alternative<Refusal>(r.authorize(issued->token, "", true, now)));
  }
  SECTION("scope: YELLOW at the first violation, ORANGE at the third; allowed requests pass") {
    auto s = issued->session;
    CHECK_FALSE(r.check_scope(*s, "openai", "gpt-4o-mini", "POST", "/v1/chat/completions", "req_1", now));
    CHECK(s->state() == RiskState::green);
    CHECK(r.check_scope(*s, "anthropic", "", "POST", "/v1/messages", "req_2", now));
    CHECK(s->state() == RiskState::yellow);
    CHECK(r.check_scope(*s, "openai", "o3-pro", "POST", "/v1/responses", "req_3", now));
    CHECK(s->state() == RiskState::yellow);
    CHECK(r.check_scope(*s, "openai", "o3-pro", "POST", "/v1/responses", "req_4", now));
    CHECK(s->state() == RiskState::orange);
    auto shown = r.describe(*s, true, now);
    CHECK(shown["transitions"].size() == 2);
    CHECK(shown["transitions"][0]["request_id"] == "req_2");
  }
  SECTION("honeytoken: RED, then every request is refused until reset") {
    auto s = issued->session;
    r.observe(*s, Sensor::honeytoken, "req_9", "request carried a decoy", now);
    CHECK(s->state() == RiskState::red);
    auto v = r.authorize(issued->token, "", true, now);
    REQUIRE(std::holds_alternative<Refusal>(v));
    CHECK(std::get<Refusal>(v).type == "tokfence_risk_red");
    r.observe(*s, Sensor::scope, "req_10", "later", now);  // never down by a sensor
    CHECK(s->state() == RiskState::red);
    auto fresh = r.reset("ci", now);
    REQUIRE(fresh);
    CHECK(s->state() == RiskState::green);
    CHECK(std::holds_alternative<Refusal>(r.authorize(issued->token, "", true, now)));  // old token gone
    CHECK(std::holds_alternative<std::shared_ptr<TokenEntry>>(r.authorize(fresh->token, "", true, now)));
    CHECK(notes.size() >= 2);
  }
  SECTION("endpoints with a method: an agent's scope (core::agent_endpoints)") {
    SessionRequest agent;
    agent.name = "agent";
    auto spec = tokfence::ProviderSpec{};
    spec.name = "openai";
    spec.client_base_suffix = "/v1";
    agent.limits.providers = {"openai"};
    agent.limits.endpoints = tokfence::agent_endpoints(spec);
    auto a = r.create(agent, now);
    REQUIRE(a);
    Session& s = *a->session;
    for (auto [method, path] : {std::pair{"POST", "/v1/responses"}, {"POST", "/v1/chat/completions"}, {"GET", "/v1/models"},
                                {"GET", "/v1/models/gpt-4o"}, {"POST", "/v1/embeddings"}, {"HEAD", "/"}, {"HEAD", ""}}) {
      INFO(method << " " << path);
      CHECK_FALSE(r.check_scope(s, "openai", "", method, path, "req_ok", now));
    }
    CHECK(s.state() == RiskState::green);
    // The account's data: listing stored completions (GET on the same path), files, fine-tuning.
    for (auto [method, path] : {std::pair{"GET", "/v1/chat/completions"}, {"GET", "/v1/files"}, {"POST", "/v1/fine_tuning/jobs"},
                                {"DELETE", "/v1/files/file-1"}, {"GET", "/v1/responses/resp_1"}}) {
      INFO(method << " " << path);
      auto refused = r.check_scope(s, "openai", "", method, path, "req_no", now);
      REQUIRE(refused);
      CHECK(refused->type == "tokfence_scope");
    }
    CHECK(r.check_scope(s, "anthropic", "", "POST", "/v1/messages", "req_other", now));
    // Anthropic's and Gemini's shapes.
    spec.style = tokfence::ApiStyle::anthropic;
    spec.client_base_suffix = "";
    auto anthropic = tokfence::agent_endpoints(spec);
    CHECK(std::find(anthropic.begin(), anthropic.end(), "POST /v1/messages") != anthropic.end());
    spec.style = tokfence::ApiStyle::gemini;
    auto gemini = tokfence::agent_endpoints(spec);
    CHECK(std::find(gemini.begin(), gemini.end(), "POST /v1*/models/*:streamGenerateContent") != gemini.end());
  }
  SECTION("a model limit with no readable model: refused unless read-only") {
    auto s = issued->session;
    CHECK(r.check_scope(*s, "openai", "", "POST", "/v1/chat/completions", "req_5", now));
    CHECK_FALSE(r.check_scope(*issued->session, "openai", "", "GET", "/v1/models", "req_6", now));
  }
  SECTION("an expired session is ended when looked up") {
    SessionRequest brief;
    brief.name = "brief";
    brief.ttl_ms = 1;
    auto b = r.create(brief, now - 10);
    REQUIRE(b);
    CHECK_FALSE(r.find("brief"));
    CHECK(r.create(brief, now));  // the name is free again
  }
  SECTION("egress denials: YELLOW at the threshold within a minute") {
    auto s = issued->session;
    for (int i = 0; i < 3; ++i) r.observe(*s, Sensor::egress_denials, "", "denied", now);
    CHECK(s->state() == RiskState::green);
    r.observe(*s, Sensor::egress_denials, "", "denied", now);
    CHECK(s->state() == RiskState::yellow);
  }
  SECTION("YELLOW halves the session's rate") {
    SessionRequest limited;
    limited.name = "limited";
    limited.limits.rpm = 4;
    auto l = r.create(limited, now);
    REQUIRE(l);
    auto s = l->session;
    r.observe(*s, Sensor::scope, "", "x", now);
    REQUIRE(s->state() == RiskState::yellow);
    CHECK(s->take_rate(now, settings));
    CHECK(s->take_rate(now, settings));
    CHECK_FALSE(s->take_rate(now, settings));
  }
  SECTION("a restart keeps sessions, tokens and states") {
    r.observe(*issued->session, Sensor::scope, "", "x", now);
    reg->reset();
    auto key2 = SigningKey::generate();
    REQUIRE(key2);
    // Another key: the stored token's signature no longer verifies, so it is refused.
    auto reopened = Registry::open(dir.path / "tokfence.db", std::move(*key2), settings, [](const std::string&, bool) {});
    REQUIRE(reopened);
    auto s = (*reopened)->find("ci");
    REQUIRE(s);
    CHECK(s->state() == RiskState::yellow);
    CHECK(std::holds_alternative<Refusal>((*reopened)->authorize(issued->token, "", true, now)));
  }
}

// A registry with default settings and no notifications, in `dir`.
std::unique_ptr<Registry> open_quiet_registry(const TempDir& dir) {
  auto key = SigningKey::generate();
  REQUIRE(key);
  auto reg = Registry::open(dir.path / "tokfence.db", std::move(*key), Settings{}, [](const std::string&, bool) {});
  REQUIRE(reg);
  return std::move(*reg);
}

TEST_CASE("sessions: decoys are scanned while their session lives") {
  TempDir dir;
  auto reg = open_quiet_registry(dir);
  SessionRequest req;
  req.kind = "run";
  req.client_id = "codex";
  req.listener = "/tmp/x.sock";
  req.decoys = true;
  auto issued = reg->create(req, now_ms());
  REQUIRE(issued);
  auto decoys = reg->decoys_of(*issued->session);
  REQUIRE(decoys.is_object());
  const std::string value = decoys["values"][0];
  const std::string body = R"({"messages":[{"role":"user","content":"here: )" + value + R"("}]})";
  auto hit = reg->scanner()->scanner.find(body);
  REQUIRE(hit);
  CHECK(hit->kind == NeedleKind::decoy);
  CHECK(reg->describe_hit(*hit).find("codex") != std::string::npos);
  // A bound session's token works on its own socket only, and no new one is issued for it.
  CHECK(std::holds_alternative<std::shared_ptr<TokenEntry>>(reg->authorize(issued->token, issued->session->id, true, now_ms())));
  CHECK(std::holds_alternative<Refusal>(reg->authorize(issued->token, "", true, now_ms())));
  CHECK_FALSE(reg->issue(issued->session->name, now_ms()));
  reg->end_bound("/tmp/x.sock", now_ms());
  CHECK_FALSE(reg->scanner()->scanner.find(body));
}

TEST_CASE("sessions: a launch's or run's session is named after its socket's label") {
  TempDir dir;
  auto reg = open_quiet_registry(dir);
  SessionRequest req;
  req.kind = "run";
  req.client_id = "my agent/v2";
  req.listener = "/tmp/y.sock";
  auto first = reg->create(req, now_ms());
  auto second = reg->create(req, now_ms());
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->session->name == "my-agent-v2");
  CHECK(second->session->name == "my-agent-v2-2");
  CHECK(first->session->client_id == "my agent/v2");
}

TEST_CASE("sessions: an expired session is not listed as live, and is ended when listed") {
  TempDir dir;
  auto reg = open_quiet_registry(dir);
  SessionRequest old_one, fresh;
  old_one.name = "yesterday";
  old_one.ttl_ms = 60 * 60 * 1000;
  fresh.name = "today";
  // Created ten hours ago with a one-hour TTL: past its expiry, and nothing has looked it up since.
  REQUIRE(reg->create(old_one, now_ms() - 10 * 60 * 60 * 1000));
  REQUIRE(reg->create(fresh, now_ms()));
  auto live = reg->live();
  REQUIRE(live.size() == 1);
  CHECK(live[0]->name == "today");
  auto history = reg->history(10);
  REQUIRE(history);
  bool ended = false;
  for (const auto& row : *history)
    if (row.value("name", "") == "yesterday") ended = row.value("end_reason", "") == "expired";
  CHECK(ended);
}
