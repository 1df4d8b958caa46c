#include <sqlite3.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "launcher/watch/watch.hpp"

using namespace tokfence;
using namespace tokfence::watch;

namespace {

struct TempHome {
  std::filesystem::path dir;
  TempHome() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tokfence-watch-XXXXXX").string();
    dir = mkdtemp(tmpl.data());
  }
  ~TempHome() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

// The request log's documented schema, filled with rows.
void make_requests(const std::filesystem::path& db, const std::vector<std::tuple<std::string, std::int64_t, int, std::int64_t, std::int64_t, std::optional<std::int64_t>>>& rows) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h,
                       "CREATE TABLE IF NOT EXISTS requests(id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, provider TEXT, model TEXT,"
                       " method TEXT, path TEXT, status INTEGER, streaming INTEGER, input_tokens INTEGER, output_tokens INTEGER,"
                       " cache_read_tokens INTEGER, cache_write_tokens INTEGER, cost_pico INTEGER, latency_ms REAL, ttfb_ms REAL,"
                       " caller_pid INTEGER, caller_name TEXT, error TEXT)",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  int n = 0;
  for (const auto& [provider, ts, status, in, out, cost] : rows) {
    std::string sql = "INSERT INTO requests(id, ts_ms, provider, status, input_tokens, output_tokens, cache_read_tokens,"
                      " cache_write_tokens, cost_pico, latency_ms) VALUES ('r" + std::to_string(n++) + "'," + std::to_string(ts) +
                      ",'" + provider + "'," + std::to_string(status) + "," + std::to_string(in) + "," + std::to_string(out) +
                      ",0,0," + (cost ? std::to_string(*cost) : std::string("NULL")) + ",100)";
    REQUIRE(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  sqlite3_close(h);
}

const char* kOpenAiUsageDoc = R"({
  "object": "page",
  "data": [{"object": "bucket", "start_time": 1730419200, "end_time": 1730505600,
            "results": [{"object": "organization.usage.completions.result", "input_tokens": 1000,
                         "output_tokens": 500, "input_cached_tokens": 800, "num_model_requests": 5,
                         "project_id": null, "user_id": null, "api_key_id": null, "model": null, "batch": null}]}],
  "has_more": true,
  "next_page": "AAAAAGdGxdEiJdKOAAAAAGcqsYA="
})";

const char* kAnthropicUsageDoc = R"({
  "data": [{"starting_at": "2025-08-01T00:00:00Z", "ending_at": "2025-08-02T00:00:00Z",
            "results": [{"uncached_input_tokens": 1500,
                         "cache_creation": {"ephemeral_1h_input_tokens": 1000, "ephemeral_5m_input_tokens": 500},
                         "cache_read_input_tokens": 200, "output_tokens": 500,
                         "server_tool_use": {"web_search_requests": 10}, "api_key_id": "apikey_01",
                         "workspace_id": "wrkspc_01", "model": "claude-sonnet-4-20250514",
                         "service_tier": "standard", "context_window": "0-200k"}]}],
  "has_more": true,
  "next_page": "page_MjAyNS0wNS0xNFQwMDowMDowMFo="
})";

Window everything() { return Window{0, 4'000'000'000'000}; }

}  // namespace

TEST_CASE("watch::parse_duration_seconds reads s, m, h, d and refuses the rest") {
  CHECK(*parse_duration_seconds("90") == 90);
  CHECK(*parse_duration_seconds("30s") == 30);
  CHECK(*parse_duration_seconds("15m") == 900);
  CHECK(*parse_duration_seconds("24h") == 86400);
  CHECK(*parse_duration_seconds("7d") == 7 * 86400);
  for (const char* bad : {"", "h", "-5m", "1.5h", "10 m", "3w", "99999999999d"}) {
    auto r = parse_duration_seconds(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("expected a number with s, m, h or d") != std::string::npos);
  }
  CHECK(format_duration(86400) == "1d");
  CHECK(format_duration(600) == "10m");
  CHECK(format_duration(61) == "61s");
}

TEST_CASE("watch::parse_openai_usage sums the documented response and keeps next_page") {
  auto page = parse_openai_usage(nlohmann::json::parse(kOpenAiUsageDoc), everything());
  REQUIRE(page);
  CHECK(*page->amounts.tokens == 1500);  // input_tokens already includes the 800 cached
  CHECK(*page->amounts.requests == 5);
  REQUIRE(page->next_page);
  CHECK(*page->next_page == "AAAAAGdGxdEiJdKOAAAAAGcqsYA=");
  // A bucket that is not wholly inside the window is not counted.
  auto outside = parse_openai_usage(nlohmann::json::parse(kOpenAiUsageDoc), Window{1730419200'000 + 1, 1730505600'000});
  REQUIRE(outside);
  CHECK_FALSE(outside->amounts.tokens);
}

TEST_CASE("watch::parse_anthropic_usage counts uncached, cache and output tokens") {
  auto page = parse_anthropic_usage(nlohmann::json::parse(kAnthropicUsageDoc), everything());
  REQUIRE(page);
  CHECK(*page->amounts.tokens == 1500 + 1000 + 500 + 200 + 500);
  CHECK_FALSE(page->amounts.requests);  // the report has no request counts
  CHECK(*page->next_page == "page_MjAyNS0wNS0xNFQwMDowMDowMFo=");
}

TEST_CASE("watch cost parsers read OpenAI dollars and Anthropic cents exactly") {
  auto openai = parse_openai_costs(nlohmann::json::parse(R"({"object":"page","data":[{"object":"bucket","start_time":1730419200,
    "end_time":1730505600,"results":[{"object":"organization.costs.result","amount":{"value":0.06,"currency":"usd"},
    "line_item":null,"project_id":null}]}],"has_more":false,"next_page":null})"),
                                   everything());
  REQUIRE(openai);
  CHECK(*openai->amounts.cost == 60'000'000'000);
  CHECK_FALSE(openai->next_page);
  auto anthropic = parse_anthropic_costs(nlohmann::json::parse(R"({"data":[{"starting_at":"2025-08-01T00:00:00Z",
    "ending_at":"2025-08-02T00:00:00Z","results":[{"currency":"USD","amount":"123.78912","workspace_id":null,
    "description":null}]}],"has_more":false,"next_page":null})"),
                                         everything());
  REQUIRE(anthropic);
  CHECK(*anthropic->amounts.cost == 1'237'891'200'000);  // 123.78912 cents = $1.2378912
  CHECK(*parse_decimal_scaled("0.5", 12) == 500'000'000'000);
  CHECK_FALSE(parse_decimal_scaled("1e5", 12));
  CHECK_FALSE(parse_decimal_scaled("", 12));
}

TEST_CASE("watch parsers reject malformed responses with a reason") {
  auto j = [](const char* text) { return nlohmann::json::parse(text); };
  CHECK(parse_openai_usage(j(R"({"object":"page"})"), everything()).error().message.find("'data'") != std::string::npos);
  CHECK_FALSE(parse_openai_usage(j(R"({"data":[{"object":"bucket","start_time":1,"end_time":2,"results":[{"input_tokens":"x","output_tokens":1,"num_model_requests":1}]}]})"),
                                 everything()));
  CHECK(parse_openai_usage(j(R"({"data":[],"has_more":true})"), everything()).error().message.find("next_page") !=
        std::string::npos);
  CHECK_FALSE(parse_anthropic_usage(j(R"({"data":[{"starting_at":"yesterday","ending_at":"2025-08-02T00:00:00Z","results":[]}]})"),
                                    everything()));
  CHECK_FALSE(parse_anthropic_costs(j(R"({"data":[{"starting_at":"2025-08-01T00:00:00Z","ending_at":"2025-08-02T00:00:00Z","results":[{"amount":"12,5"}]}]})"),
                                    everything()));
  CHECK_FALSE(parse_simple(j(R"({"hello":1})")));
  CHECK_FALSE(parse_simple(j(R"([1,2])")));
}

TEST_CASE("watch::parse_simple reads the flat and the paginated shape") {
  auto flat = parse_simple(nlohmann::json::parse(R"({"requests":3,"input_tokens":100,"output_tokens":20,"cost_usd":0.25})"));
  REQUIRE(flat);
  CHECK(*flat->amounts.requests == 3);
  CHECK(*flat->amounts.tokens == 120);
  CHECK(*flat->amounts.cost == 250'000'000'000);
  auto paged = parse_simple(nlohmann::json::parse(
      R"({"data":[{"requests":1,"input_tokens":10,"output_tokens":1},{"requests":2,"total_tokens":5}],"has_more":true,"next_page":"p2"})"));
  REQUIRE(paged);
  CHECK(*paged->amounts.requests == 3);
  CHECK(*paged->amounts.tokens == 16);
  CHECK_FALSE(paged->amounts.cost);
  CHECK(*paged->next_page == "p2");
}

TEST_CASE("watch::parse_endpoint_override keeps keys off plain http and away from credentials") {
  auto ok = parse_endpoint_override("mistral=https://usage.example.com/v1/usage?project=x");
  REQUIRE(ok);
  CHECK(ok->first == "mistral");
  CHECK(ok->second.format == Format::simple);
  auto loop = parse_endpoint_override("openai=http://127.0.0.1:8080/");
  REQUIRE(loop);
  CHECK(loop->second.format == Format::openai);
  CHECK(loop->second.url == "http://127.0.0.1:8080");
  auto forced = parse_endpoint_override("groq=openai:https://org-usage.example.com");
  REQUIRE(forced);
  CHECK(forced->second.format == Format::openai);
  CHECK(parse_endpoint_override("mistral=http://usage.example.com/x").error().message.find("loopback") != std::string::npos);
  CHECK(parse_endpoint_override("mistral=https://user:pw@usage.example.com/x").error().message.find("credentials") !=
        std::string::npos);
  CHECK_FALSE(parse_endpoint_override("mistral=ftp://usage.example.com/x"));
  CHECK_FALSE(parse_endpoint_override("https://usage.example.com/x"));
  CHECK_FALSE(parse_endpoint_override("Bad Name=https://usage.example.com/x"));
  CHECK(redact_url("https://h.example:8443/v1/usage?key=secret&x=1") == "https://h.example:8443/v1/usage");
}

TEST_CASE("watch windows end --settle before now on a bucket edge, costs cover whole days") {
  std::int64_t now = 1'754'000'123'456;  // not on a minute
  Window u = usage_window_at(now, 86400, 600);
  CHECK(u.end_ms % 60000 == 0);
  CHECK(u.end_ms <= now - 600'000);
  CHECK(u.end_ms > now - 660'000);
  CHECK(u.end_ms - u.start_ms == 86'400'000);
  Window week = usage_window_at(now, 7 * 86400, 600);
  CHECK(week.end_ms % 3'600'000 == 0);
  Window c = cost_window_at(now, 86400, 600);
  CHECK(c.start_ms % 86'400'000 == 0);
  CHECK(c.end_ms % 86'400'000 == 0);
  CHECK(c.start_ms <= u.start_ms);
  CHECK(c.end_ms > now);
}

TEST_CASE("watch::compare raises a finding per metric only above its threshold") {
  Thresholds t;
  t.usd = 1'000'000'000'000;
  t.tokens = 100;
  t.requests = 2;
  Amounts local{10, 1000, 5'000'000'000'000};
  CHECK(compare(Amounts{10, 1000, 5'000'000'000'000}, local, t, false).empty());
  CHECK(compare(Amounts{12, 1100, 6'000'000'000'000}, local, t, false).empty());  // exactly at the thresholds
  auto f = compare(Amounts{13, 1101, 6'000'000'000'001}, local, t, false);
  REQUIRE(f.size() == 3);
  CHECK(f[0].metric == "usd");
  CHECK(f[1].metric == "tokens");
  CHECK(f[2].metric == "requests");
  CHECK(compare(Amounts{std::nullopt, 5000, std::nullopt}, local, t, false).size() == 1);
  CHECK(compare(Amounts{10, 1000, 9'000'000'000'000}, local, t, true).empty());  // unknown local prices
}

TEST_CASE("watch::local_usage sums the request log over exactly the window") {
  TempHome home;
  auto db = home.dir / "tokfence.db";
  auto missing = local_usage(db, "openai", Window{0, 10'000});
  REQUIRE(missing);
  CHECK(*missing->amounts.tokens == 0);
  make_requests(db, {{"openai", 1000, 200, 10, 5, 100},
                     {"openai", 1999, 200, 1, 1, std::nullopt},
                     {"openai", 2000, 200, 1000, 1000, 1},   // at the end: outside
                     {"openai", 1500, 403, 0, 0, std::nullopt},  // refused by tokfence: not a request
                     {"anthropic", 1500, 200, 7, 7, 7}});
  auto u = local_usage(db, "openai", Window{1000, 2000});
  REQUIRE(u);
  CHECK(*u->amounts.requests == 2);
  CHECK(*u->amounts.tokens == 17);
  CHECK(*u->amounts.cost == 100);
  CHECK(u->unknown_cost_requests == 1);
  auto last = last_local_activity_ms(db, "openai");
  REQUIRE(last);
  CHECK(**last == 2100);  // ts + latency of the latest request that reached the provider
  CHECK_FALSE(*last_local_activity_ms(db, "mistral"));
}

TEST_CASE("watch alerts round-trip through watch_alerts, newest first") {
  TempHome home;
  auto db = home.dir / "tokfence.db";
  CHECK(recent_alerts(db, 0, 10)->empty());
  Alert a;
  a.ts_ms = 1000;
  a.provider = "openai";
  a.kind = "gap";
  a.metric = "tokens";
  a.remote = 500;
  a.local = 100;
  a.threshold = 10;
  a.message = "first";
  Alert b = a;
  b.ts_ms = 2000;
  b.metric = "usd";
  b.remote = 2'000'000'000'000;
  b.revoked = true;
  b.message = "second";
  REQUIRE(store_alerts(db, {a, b}));
  auto got = recent_alerts(db, 0, 10);
  REQUIRE(got);
  REQUIRE(got->size() == 2);
  CHECK((*got)[0].message == "second");
  CHECK((*got)[0].revoked);
  CHECK((*got)[0].to_json()["remote"].get<double>() == Approx(2.0));
  CHECK((*got)[1].remote == 500);
  CHECK(recent_alerts(db, 1500, 10)->size() == 1);
  CHECK(std::filesystem::status(db).permissions() == (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  auto summary = alerts_summary(db, 24 * 365 * 100);
  REQUIRE(summary);
  CHECK((*summary)["count"] == 2);
}

namespace {

// A provider usage API in memory: answers the OpenAI shapes with `tokens` in one minute bucket.
struct FakeApi {
  std::int64_t bucket_s = 0;
  std::int64_t tokens = 0, requests = 0;
  double cost = 0;
  int status = 200;
  std::vector<std::string> urls;
  std::vector<std::string> auth_headers;  // what would have been sent, to check which key
  HttpGet get() {
    return [this](const std::string& url, const std::vector<std::pair<std::string, SecretString>>& headers) -> FetchResult<json> {
      urls.push_back(url);
      for (auto& [n, v] : headers) auth_headers.push_back(n + ": " + std::string(v.reveal()));
      if (status == 401) return std::unexpected(FetchError{FetchError::Kind::auth, 401, redact_url(url) + ": http 401"});
      bool costs = url.find("/costs") != std::string::npos;
      std::int64_t b = costs ? bucket_s - bucket_s % 86400 : bucket_s;
      std::int64_t w = costs ? 86400 : 60;
      json result = costs ? json{{"object", "organization.costs.result"}, {"amount", {{"value", cost}, {"currency", "usd"}}}}
                          : json{{"object", "organization.usage.completions.result"}, {"input_tokens", tokens},
                                 {"output_tokens", 0}, {"num_model_requests", requests}};
      return json{{"object", "page"},
                  {"data", {{{"object", "bucket"}, {"start_time", b}, {"end_time", b + w}, {"results", {result}}}}},
                  {"has_more", false},
                  {"next_page", nullptr}};
    };
  }
};

}  // namespace

TEST_CASE("watch::check_provider alerts on a gap, revokes, stores, and stays quiet when both sides agree") {
  TempHome home;
  Config config;
  auto db = home.dir / "tokfence.db";
  std::int64_t now = 1'754'000'000'000;
  std::int64_t used_at = now - 3'600'000;
  make_requests(db, {{"openai", used_at, 200, 600, 400, 2'000'000'000}});
  FakeApi api;
  api.bucket_s = used_at / 1000 - (used_at / 1000) % 60;
  api.tokens = 1000;
  api.requests = 1;
  api.cost = 0.002;
  std::vector<std::string> revoked, notified;
  Environment env;
  env.config = &config;
  env.db = db;
  env.key = [](const std::string& name) -> Result<std::optional<SecretString>> {
    if (name == "openai-admin") return std::optional<SecretString>(SecretString("admin-key-for-test"));
    if (name == "openai") return std::optional<SecretString>(SecretString("proxy-key-for-test"));
    return std::optional<SecretString>{};
  };
  env.http_get = api.get();
  env.revoke = [&](const std::string& p) -> Result<std::string> {
    revoked.push_back(p);
    return std::string("in a test");
  };
  env.notify = [&](const std::string&, const std::string& body) { notified.push_back(body); };
  env.now_ms = [now] { return now; };
  Options opt;
  opt.auto_revoke = true;

  ProviderCheck same = check_provider("openai", opt, env);
  CHECK(same.status == "ok");
  CHECK(same.key_used == "openai-admin");
  CHECK(api.auth_headers.at(0) == "Authorization: Bearer admin-key-for-test");
  CHECK(*same.remote.tokens == 1000);
  CHECK(*same.local.tokens == 1000);
  CHECK(revoked.empty());

  api.tokens = 1000 + 50'000;
  ProviderCheck gap = check_provider("openai", opt, env);
  CHECK(gap.status == "alert");
  REQUIRE(gap.findings.size() == 1);
  CHECK(gap.findings[0].metric == "tokens");
  CHECK(gap.revoked);
  CHECK(revoked == std::vector<std::string>{"openai"});
  CHECK(notified.size() == 1);
  auto stored = recent_alerts(db, 0, 10);
  REQUIRE(stored->size() == 1);
  CHECK((*stored)[0].revoked);
  CHECK((*stored)[0].remote == 51'000);
  CHECK((*stored)[0].message.find("admin-key-for-test") == std::string::npos);

  // The same gap on the next interval is not raised again; a bigger one is.
  ProviderCheck again = check_provider("openai", opt, env);
  CHECK(again.status == "alert");
  CHECK(again.alerts.empty());
  api.tokens += 20'000;
  CHECK(check_provider("openai", opt, env).alerts.size() == 1);
}

TEST_CASE("watch::check_provider says which admin key to add when the usage api refuses the key") {
  TempHome home;
  Config config;
  FakeApi api;
  api.status = 401;
  Environment env;
  env.config = &config;
  env.db = home.dir / "tokfence.db";
  env.key = [](const std::string& name) -> Result<std::optional<SecretString>> {
    if (name == "anthropic") return std::optional<SecretString>(SecretString("plain-key-for-test"));
    return std::optional<SecretString>{};
  };
  env.http_get = api.get();
  env.now_ms = [] { return std::int64_t{1'754'000'000'000}; };
  Options opt;
  ProviderCheck c = check_provider("anthropic", opt, env);
  CHECK(c.status == "error");
  CHECK(c.error.find("tokfence vault add anthropic-admin -") != std::string::npos);
  CHECK(c.error.find("plain-key-for-test") == std::string::npos);

  ProviderCheck none = check_provider("mistral", opt, env);
  CHECK(none.status == "skipped");
  CHECK(none.error.find("--usage-endpoint mistral=URL") != std::string::npos);
}

TEST_CASE("watch::fetch_remote follows next_page and refuses a page token that loops") {
  Config config;
  auto spec = *config.provider("openai");
  int calls = 0;
  std::vector<std::string> urls;
  HttpGet looping = [&](const std::string& url, const std::vector<std::pair<std::string, SecretString>>&) -> FetchResult<json> {
    ++calls;
    urls.push_back(url);
    return json{{"object", "page"}, {"data", json::array()}, {"has_more", true}, {"next_page", calls == 1 ? "a/b+c=" : "again"}};
  };
  Window w{60'000, 120'000};
  auto r = fetch_remote(Endpoint{Format::openai, "http://127.0.0.1:1"}, spec, SecretString("k"), w, w, Costs::no, looping);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == FetchError::Kind::malformed);
  CHECK(r.error().message.find("next_page repeats") != std::string::npos);
  CHECK(calls == 3);
  CHECK(urls[1].find("page=a%2Fb%2Bc%3D") != std::string::npos);  // the token goes back escaped
  CHECK(urls[0].find("start_time=60&end_time=120&bucket_width=1m") != std::string::npos);
}
