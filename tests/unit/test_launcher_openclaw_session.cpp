#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "core/decoys.hpp"
#include "launcher/openclaw/session.hpp"

using namespace tokfence;
using nlohmann::json;

namespace {
const std::string kToken = "tfc1.eyJzaWQiOiJhYmMifQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmU";

json good_reply() {
  return {{"ok", true},
          {"session",
           {{"session_id", "s-1"}, {"name", "codex"}, {"token", kToken}, {"expires_at_ms", 1800000000000},
            {"decoys", decoys_json(make_decoys())}}}};
}
}  // namespace

TEST_CASE("launcher::session_from_reply takes a complete session") {
  auto s = launcher::session_from_reply(good_reply());
  REQUIRE(s);
  CHECK(s->token == kToken);
  CHECK(s->session_id == "s-1");
  CHECK(s->name == "codex");
  CHECK(s->expires_at_ms == 1800000000000);
  CHECK(s->decoys.files.size() >= 3);
  CHECK_FALSE(s->decoys.env.empty());
}

TEST_CASE("launcher::session_from_reply fails closed and never quotes the token") {
  auto check = [](const json& reply, const std::string& want) {
    auto s = launcher::session_from_reply(reply);
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find(want) != std::string::npos);
    CHECK(s.error().message.find("tfc1.") == std::string::npos);
    CHECK(s.error().message.find("c2lnbmF0") == std::string::npos);
  };
  json r = good_reply();
  r.erase("session");
  check(r, "reply has none");
  r = good_reply();
  r["session"].erase("token");
  check(r, "token: missing");
  r = good_reply();
  r["session"]["token"] = "tokfence-managed";
  check(r, "not a tfc1 capability token");
  r = good_reply();
  r["session"]["token"] = kToken + "\"}";
  check(r, "not a tfc1 capability token");
  r = good_reply();
  r["session"].erase("decoys");
  check(r, "decoys: missing");
  r = good_reply();
  r["session"]["decoys"]["files"][0]["path"] = "../../.bashrc";
  check(r, "decoys: files[0].path");
  r = good_reply();
  r["session"]["session_id"] = "";
  check(r, "session_id");
  r = good_reply();
  r["session"].erase("expires_at_ms");
  check(r, "expires_at_ms");
}

TEST_CASE("launcher::session_request asks for a session with decoys, scoped to its providers") {
  tokfence::ProviderSpec openai, anthropic;
  openai.name = "openai";
  openai.client_base_suffix = "/v1";
  anthropic.name = "anthropic";
  anthropic.style = tokfence::ApiStyle::anthropic;
  auto r = launcher::session_request("openclaw:x", "launch", {openai, anthropic});
  CHECK(r["name"] == "openclaw:x");
  CHECK(r["kind"] == "launch");
  CHECK(r["decoys"] == true);
  CHECK(r["limits"]["providers"] == json::array({"openai", "anthropic"}));
  const auto& endpoints = r["limits"]["endpoints"];
  for (const char* e : {"POST /v1/responses", "POST /v1/chat/completions", "GET /v1/models", "POST /v1/messages", "HEAD *"})
    CHECK(std::find(endpoints.begin(), endpoints.end(), e) != endpoints.end());
  // Each entry once, though both providers list HEAD * and GET /v1/models.
  std::set<std::string> seen;
  for (const auto& e : endpoints) CHECK(seen.insert(e.get<std::string>()).second);
  for (const char* e : {"GET /v1/files", "POST /v1/fine_tuning/jobs", "GET /v1/chat/completions"})
    CHECK(std::find(endpoints.begin(), endpoints.end(), e) == endpoints.end());
}
