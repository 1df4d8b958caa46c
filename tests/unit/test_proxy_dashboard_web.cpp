#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "proxy/dashboard/auth.hpp"
#include "proxy/dashboard/web.hpp"

using namespace tokfence;
using namespace tokfence::proxy;
using json = nlohmann::json;

namespace {

constexpr int kPort = 9472;

struct Fixture {
  DashboardAuth auth = std::move(*DashboardAuth::create());
  std::vector<json> calls;
  DashboardWeb web{{kPort, [this](const json& op) {
                      calls.push_back(op);
                      return json{{"ok", true}};
                    },
                    {}, {}},
                   auth};
  std::string session = *auth.redeem(*auth.issue_nonce());

  std::string cookie() const { return "tokfence_dashboard=" + session; }
  HttpRequest post(const std::string& action, std::string body = "{}") const {
    HttpRequest r;
    r.method = "POST";
    r.path = "/api/" + action;
    r.body = std::move(body);
    r.headers = {{"cookie", cookie()},
                 {"host", "127.0.0.1:9472"},  // the listener admitted it (listener.cpp checks Host)
                 {"origin", "http://127.0.0.1:9472"},
                 {"sec-fetch-site", "same-origin"},
                 {"content-type", "application/json"},
                 {"x-tokfence-csrf", auth.csrf_token(session)}};
    return r;
  }
};

void set_header(HttpRequest& r, const std::string& name, const std::string& value) {
  std::erase_if(r.headers, [&](const auto& h) { return h.first == name; });
  if (!value.empty()) r.headers.emplace_back(name, value);
}

}  // namespace

TEST_CASE("proxy::DashboardAuth nonces work once, expire, and only a few are outstanding") {
  auto auth = std::move(*DashboardAuth::create());
  const auto t0 = DashboardAuth::Clock::now();
  auto nonce = *auth.issue_nonce(t0);
  CHECK(nonce.size() == 43);
  CHECK_FALSE(auth.redeem(nonce + "x", t0));
  auto session = auth.redeem(nonce, t0);
  REQUIRE(session);
  CHECK(session->size() == 43);
  CHECK(*session != nonce);
  CHECK_FALSE(auth.redeem(nonce, t0));
  auto late = *auth.issue_nonce(t0);
  CHECK_FALSE(auth.redeem(late, t0 + DashboardAuth::kNonceLife));
  std::vector<std::string> n;
  for (int i = 0; i < 5; ++i) n.push_back(*auth.issue_nonce(t0));
  CHECK_FALSE(auth.redeem(n[0], t0));
  for (int i = 1; i < 5; ++i) CHECK(auth.redeem(n[i], t0));
  CHECK_FALSE(auth.redeem("", t0));
}

TEST_CASE("proxy::DashboardAuth checks the cookie among others and the CSRF token") {
  auto auth = std::move(*DashboardAuth::create());
  auto other = std::move(*DashboardAuth::create());
  const auto t0 = DashboardAuth::Clock::now();
  const std::string s = *auth.redeem(*auth.issue_nonce(t0), t0);
  const std::string o = *other.redeem(*other.issue_nonce(t0), t0);
  CHECK(s != o);
  CHECK(auth.session("a=1; tokfence_dashboard=" + s, t0) == s);
  CHECK(auth.session("tokfence_dashboard=planted; tokfence_dashboard=" + s, t0) == s);
  CHECK_FALSE(auth.session("tokfence_dashboard=" + o, t0));
  CHECK_FALSE(auth.session("xtokfence_dashboard=" + s, t0));
  CHECK_FALSE(auth.session("tokfence_dashboard=", t0));
  CHECK_FALSE(auth.session("", t0));
  CHECK(auth.csrf_token(s) != s);
  CHECK(auth.csrf_ok(s, auth.csrf_token(s)));
  CHECK_FALSE(auth.csrf_ok(s, s));
  CHECK_FALSE(auth.csrf_ok(s, ""));
  CHECK_FALSE(auth.csrf_ok("", auth.csrf_token("")));
  // One session's token is no good with another's cookie.
  const std::string s2 = *auth.redeem(*auth.issue_nonce(t0), t0);
  CHECK_FALSE(auth.csrf_ok(s2, auth.csrf_token(s)));
  CHECK(auth.csrf_token(s) != other.csrf_token(s));
}

TEST_CASE("proxy::DashboardAuth sessions expire, end at logout, and only a few live at once") {
  auto auth = std::move(*DashboardAuth::create());
  const auto t0 = DashboardAuth::Clock::now();
  auto cookie = [](const std::string& v) { return "tokfence_dashboard=" + v; };
  const std::string s = *auth.redeem(*auth.issue_nonce(t0), t0);
  CHECK(auth.session(cookie(s), t0 + DashboardAuth::kSessionLife - std::chrono::seconds(1)) == s);
  CHECK_FALSE(auth.session(cookie(s), t0 + DashboardAuth::kSessionLife));
  CHECK_FALSE(auth.session(cookie(s), t0 + DashboardAuth::kSessionLife + std::chrono::hours(1)));

  const std::string gone = *auth.redeem(*auth.issue_nonce(t0), t0);
  const std::string kept = *auth.redeem(*auth.issue_nonce(t0), t0);
  CHECK(auth.end_session(gone));
  CHECK_FALSE(auth.session(cookie(gone), t0));
  CHECK_FALSE(auth.end_session(gone));
  CHECK(auth.session(cookie(kept), t0) == kept);  // other sessions live on

  std::vector<std::string> many, evicted;
  for (std::size_t i = 0; i < DashboardAuth::kMaxSessions; ++i) {
    std::string pushed_out;
    many.push_back(*auth.redeem(*auth.issue_nonce(t0), t0, &pushed_out));
    if (!pushed_out.empty()) evicted.push_back(pushed_out);
  }
  CHECK_FALSE(auth.session(cookie(kept), t0));  // pushed out by the newer logins
  // ... and named, so that the listener ends its live event streams too.
  CHECK(std::find(evicted.begin(), evicted.end(), kept) != evicted.end());
  for (const auto& m : many) CHECK(auth.session(cookie(m), t0) == m);
}

TEST_CASE("proxy::DashboardWeb refuses without the cookie and logs in once") {
  Fixture f;
  HttpRequest get;
  get.method = "GET";
  get.path = "/api/overview";
  CHECK(f.web.handle(get).status == 401);
  get.path = "/controls";
  CHECK(f.web.handle(get).status == 401);
  auto url = *f.web.login_url();
  const std::string full = url["url"].get<std::string>();
  CHECK(full.starts_with("http://127.0.0.1:9472/login?once="));
  HttpRequest login;
  login.method = "GET";
  login.path = "/login";
  login.query = full.substr(full.find('?') + 1);
  auto r = f.web.handle(login);
  REQUIRE(r.status == 303);
  const std::string set = r.headers.at(1).second;
  CHECK(set.starts_with("tokfence_dashboard="));
  CHECK(set.ends_with("; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"));
  CHECK(f.web.handle(login).status == 403);
  // The new session's cookie opens the dashboard.
  get.headers = {{"cookie", set.substr(0, set.find(';'))}};
  CHECK(f.web.handle(get).status == 200);
  CHECK(f.calls.empty());
}

TEST_CASE("proxy::DashboardWeb logout needs the CSRF token and ends the session") {
  Fixture f;
  HttpRequest get;
  get.method = "GET";
  get.path = "/api/session";
  get.headers = {{"cookie", f.cookie()}, {"sec-fetch-site", "same-origin"}};
  auto s = f.web.handle(get);
  REQUIRE(s.status == 200);
  CHECK(json::parse(s.body)["csrf"] == f.auth.csrf_token(f.session));

  auto no_token = f.post("logout");
  set_header(no_token, "x-tokfence-csrf", "");
  CHECK(f.web.handle(no_token).status == 403);
  CHECK(f.web.handle(get).status == 200);  // still logged in

  auto out = f.web.handle(f.post("logout"));
  CHECK(out.status == 200);
  REQUIRE(out.headers.size() == 1);
  CHECK(out.headers[0].second == "tokfence_dashboard=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
  CHECK(f.web.handle(get).status == 401);
  CHECK(f.web.handle(f.post("kill")).status == 401);
  get.path = "/vault";
  CHECK(f.web.handle(get).status == 401);
  CHECK(f.calls.empty());
}

TEST_CASE("proxy::DashboardWeb runs an action only when every check passes") {
  Fixture f;
  CHECK(f.web.handle(f.post("kill")).status == 200);
  REQUIRE(f.calls.size() == 1);
  CHECK(f.calls[0] == json{{"op", "kill"}});
  struct Case {
    const char* header;
    const char* value;
    int status;
  };
  // Review 14a F1: an Origin of the other loopback name than the request's Host.
  for (const Case& c : {Case{"origin", "", 403}, Case{"origin", "http://127.0.0.1:9473", 403},
                        Case{"origin", "http://localhost:9472", 403},
                        Case{"origin", "null", 403}, Case{"sec-fetch-site", "same-site", 403},
                        Case{"sec-fetch-site", "cross-site", 403}, Case{"content-type", "text/plain", 415},
                        Case{"x-tokfence-csrf", "", 403}, Case{"x-tokfence-csrf", "wrong", 403},
                        Case{"cookie", "tokfence_dashboard=wrong", 401}}) {
    auto req = f.post("kill");
    set_header(req, c.header, c.value);
    INFO(c.header << ": " << c.value);
    CHECK(f.web.handle(req).status == c.status);
  }
  auto twice = f.post("kill");
  twice.headers.emplace_back("origin", "http://evil.example");
  CHECK(f.web.handle(twice).status == 400);
  CHECK(f.calls.size() == 1);
  // The body never names the op.
  CHECK(f.web.handle(f.post("unkill", R"({"op":"kill"})")).status == 200);
  CHECK(f.calls.back() == json{{"op", "unkill"}});
  CHECK(f.web.handle(f.post("shutdown")).status == 404);
  CHECK(f.web.handle(f.post("revoke", R"({"provider":1})")).status == 400);
  CHECK(f.web.handle(f.post("revoke", R"({"provider":"openai","op":"x"})")).status == 200);
  CHECK(f.calls.back() == json{{"op", "revoke"}, {"provider", "openai"}});
}

TEST_CASE("proxy::dashboard responses carry the strict headers") {
  HttpResponse r;
  r.body = "x";
  const std::string out = serialize(r, false);
  CHECK(out.find("Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' "
                 "data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n") !=
        std::string::npos);
  for (const char* h : {"X-Frame-Options: DENY", "X-Content-Type-Options: nosniff", "Referrer-Policy: no-referrer",
                        "Cache-Control: no-store", "Content-Length: 1"})
    CHECK(out.find(h) != std::string::npos);
}
