#include "proxy/dashboard/web.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include "core/http_status.hpp"
#include "core/page_origin.hpp"
#include "core/time.hpp"
#include "proxy/dashboard/assets.hpp"
#include "proxy/dashboard/data.hpp"
#include "proxy/metering/request_log.hpp"

namespace tokfence::proxy {

using json = nlohmann::json;

namespace {

// No inline script or style anywhere (the pages load /assets/app.js and /assets/style.css), so the
// policy can forbid both; connect-src 'self' keeps the script's fetches and EventSource at home.
constexpr const char* kSecurityHeaders =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n"
    "X-Frame-Options: DENY\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cache-Control: no-store\r\n"
    // Other origins may not embed our responses as images/scripts (no-cors reads).
    "Cross-Origin-Resource-Policy: same-origin\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n";

constexpr const char* kPages[] = {"/", "/requests", "/agents", "/vault", "/controls"};
constexpr std::string_view kActions[] = {"kill",   "unkill",       "revoke",    "restore",
                                         "budget", "budget_clear", "ratelimit", "ratelimit_clear"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

HttpResponse json_response(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.type = "application/json";
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return r;
}

HttpResponse json_error(int status, const std::string& message) {
  return json_response(status, json{{"ok", false}, {"error", message}});
}

// A small page in the dashboard's style: the text is ours (no request data in it).
HttpResponse page_message(int status, const std::string& title, const std::string& text) {
  HttpResponse r;
  r.status = status;
  r.type = "text/html; charset=utf-8";
  r.body = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tokfence: " + title +
           "</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\n<body><main class=\"message\"><h1>" +
           title + "</h1><p>" + text + "</p></main></body></html>\n";
  return r;
}

HttpResponse asset_response(const DashboardAsset& a) {
  HttpResponse r;
  r.type = a.type;
  r.body = std::string(a.text());
  return r;
}

// The reply of a control op as an API answer: 200 when it succeeded, else 409 with its error.
HttpResponse reply_response(json reply) {
  const bool ok = reply.value("ok", false);
  return json_response(ok ? 200 : 409, reply);
}

// A positive integer query value no larger than `max`, else `fallback`.
int bounded_int(const std::string& text, int fallback, int max) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (text.empty() || text.size() > 6 || !std::all_of(text.begin(), text.end(), digit)) return fallback;
  const int n = std::stoi(text);
  return n < 1 ? fallback : std::min(n, max);
}

// The string field `name` of `body`, or nullopt.
std::optional<std::string> string_field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// The control op of an action, built only from the fields that op takes (the body never names the
// op): nullopt when a field is missing or of the wrong type.
std::optional<json> action_op(const std::string& action, const json& body) {
  auto with = [&](json op, std::initializer_list<const char*> fields) -> std::optional<json> {
    for (const char* f : fields) {
      auto v = string_field(body, f);
      if (!v) return std::nullopt;
      op[f] = *v;
    }
    return op;
  };
  if (action == "kill" || action == "unkill") return json{{"op", action}};
  if (action == "revoke" || action == "restore") return with({{"op", action}}, {"provider"});
  if (action == "budget") return with({{"op", "budget_set"}}, {"scope", "amount", "period"});
  if (action == "budget_clear") return with({{"op", "budget_clear"}}, {"scope"});
  if (action == "ratelimit_clear") return with({{"op", "ratelimit_clear"}}, {"provider"});
  if (action == "ratelimit") {
    auto provider = string_field(body, "provider");
    auto rpm = body.find("rpm");
    if (!provider || rpm == body.end() || !rpm->is_number_integer()) return std::nullopt;
    return json{{"op", "ratelimit_set"}, {"provider", *provider}, {"rpm", *rpm}};
  }
  return std::nullopt;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

int HttpRequest::count(std::string_view name) const {
  return static_cast<int>(std::count_if(headers.begin(), headers.end(), [&](const auto& h) { return h.first == name; }));
}

std::string HttpRequest::param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    const std::size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
  }
  return {};
}

std::string serialize(const HttpResponse& r, bool head_only) {
  const std::string_view phrase = reason_phrase(r.status);
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(phrase.empty() ? "Status" : phrase) +
                    "\r\nContent-Type: " + r.type + "\r\n";
  if (!r.event_stream) out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += kSecurityHeaders;
  out += "Connection: close\r\n\r\n";
  if (!head_only && !r.event_stream) out += r.body;
  return out;
}

json DashboardWeb::call(const json& op) const {
  if (!src_.control) return {{"ok", false}, {"error", "dashboard: no control router"}};
  return src_.control(op);
}

Result<json> DashboardWeb::login_url() const {
  auto nonce = auth_.issue_nonce();
  if (!nonce) return std::unexpected(nonce.error());
  return json{{"url", "http://127.0.0.1:" + std::to_string(src_.port) + "/login?once=" + *nonce},
              {"port", src_.port},
              {"expires_in", std::chrono::duration_cast<std::chrono::seconds>(DashboardAuth::kNonceLife).count()}};
}

HttpResponse DashboardWeb::handle(const HttpRequest& req) const {
  const bool read = req.method == "GET" || req.method == "HEAD";
  // The checks below read one value of each: a second one (which a browser never sends) could
  // make another reader of the same request see something else.
  for (std::string_view name : {"cookie", "origin", "sec-fetch-site", "content-type", "x-tokfence-csrf"})
    if (req.count(name) > 1) return json_error(400, "dashboard: a header given twice: " + std::string(name));
  if (req.path == "/login") return login(req);
  if (req.path.starts_with("/assets/")) {
    // The script and style sheet hold no data: served without the cookie (the refusal pages use
    // the style sheet too).
    const DashboardAsset* a = find_dashboard_asset(req.path.substr(8));
    if (!a || std::string_view(a->name) == "index.html") return page_message(404, "Not found", "No such file.");
    if (!read) return json_error(405, "use GET");
    return asset_response(*a);
  }
  const std::string* cookie = req.header("cookie");
  const std::optional<std::string> session = cookie ? auth_.session(*cookie) : std::nullopt;
  if (!session) {
    if (req.path.starts_with("/api/"))
      return json_error(401, "dashboard: not logged in: open the URL 'tokfence dashboard --print-url' prints");
    return page_message(401, "Log in first",
                        "Run <code>tokfence dashboard --open</code> (or open the one-time URL that "
                        "<code>tokfence dashboard --print-url</code> prints).");
  }
  if (req.path.starts_with("/api/")) {
    if (req.method == "POST") return action(req, *session);
    if (!read) return json_error(405, "use GET, or POST for actions");
    // Data is for the dashboard's own script: another site (or another port of 127.0.0.1) that
    // makes the browser ask gets nothing, even though the browser sends the cookie along.
    if (const std::string* site = req.header("sec-fetch-site"); site && *site != "same-origin")
      return json_error(403, "dashboard: refused: the API answers the dashboard's own pages only");
    return api_get(req, *session);
  }
  if (std::find(std::begin(kPages), std::end(kPages), req.path) != std::end(kPages)) {
    if (!read) return json_error(405, "use GET");
    return asset_response(*find_dashboard_asset("index.html"));
  }
  return page_message(404, "Not found", "No such page.");
}

HttpResponse DashboardWeb::login(const HttpRequest& req) const {
  // GET only: HEAD (a link preview) must not spend the nonce, and there is no body to take.
  if (req.method != "GET") return json_error(405, "use GET");
  std::string evicted;
  const std::optional<std::string> session = auth_.redeem(req.param("once"), DashboardAuth::Clock::now(), &evicted);
  if (!session)
    return page_message(403, "Login link not valid",
                        "This login link was already used or has expired: each link works once, within "
                        "120 seconds. Run <code>tokfence dashboard --open</code> for a new one.");
  HttpResponse r;
  r.status = 303;
  // Max-Age tells the browser what the daemon enforces anyway (DashboardAuth::kSessionLife).
  r.headers = {{"Location", "/"},
               {"Set-Cookie", std::string(DashboardAuth::kCookieName) + "=" + *session +
                                  "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" +
                                  std::to_string(std::chrono::seconds(DashboardAuth::kSessionLife).count())}};
  r.body = "logged in\n";
  r.ended_session = evicted;  // the oldest login, pushed out: its live streams end with it
  return r;
}

HttpResponse DashboardWeb::api_get(const HttpRequest& req, const std::string& session) const {
  const std::string& p = req.path;
  if (p == "/api/session") return json_response(200, {{"csrf", auth_.csrf_token(session)}, {"port", src_.port}});
  if (p == "/api/overview") return reply_response(call({{"op", "widget_snapshot"}}));
  if (p == "/api/spend") {
    auto q = parse_spend_query(req.param("range").empty() ? "24h" : req.param("range"),
                               req.param("by").empty() ? "provider" : req.param("by"));
    if (!q) return json_error(400, "spend: range must be 24h, 7d or 30d and by provider, model or caller");
    (void)call({{"op", "flush_log"}});
    auto spend = spend_over_time(src_.db_path, *q, now_ms());
    if (!spend) return json_error(500, "spend: " + spend.error().message);
    return json_response(200, *spend);
  }
  if (p == "/api/requests") return requests(req);
  if (p == "/api/agents") return agents();
  if (p == "/api/vault") return vault();
  if (p == "/api/events") {
    HttpResponse r;
    r.type = "text/event-stream; charset=utf-8";
    r.event_stream = true;
    r.stream_session = session;
    r.stream_ends = auth_.expiry(session).value_or(DashboardAuth::Clock::now());
    return r;
  }
  return json_error(404, "dashboard: no such endpoint (docs/DASHBOARD.md lists them)");
}

HttpResponse DashboardWeb::requests(const HttpRequest& req) const {
  (void)call({{"op", "flush_log"}});
  RequestQuery q;
  q.limit = bounded_int(req.param("limit"), 100, 500);
  auto rows = query_requests(src_.db_path, q);
  if (!rows) return json_error(500, "requests: " + rows.error().message);
  json list = json::array();
  for (auto it = rows->rbegin(); it != rows->rend(); ++it) list.push_back(request_json(it->record));
  return json_response(200, {{"requests", list}});
}

HttpResponse DashboardWeb::agents() const {
  (void)call({{"op", "flush_log"}});
  json sockets = call({{"op", "list_proxy_sockets"}});
  json egress = call({{"op", "egress"}, {"action", "list"}});
  std::map<std::string, json> by_caller;
  auto agent = [&](const std::string& caller) -> json& {
    auto [it, fresh] = by_caller.try_emplace(caller);
    if (fresh) it->second = {{"caller", caller}, {"sockets", json::array()}, {"today", nullptr}};
    return it->second;
  };
  for (const auto& s : sockets.value("sockets", json::array())) {
    json entry = s;
    for (const auto& l : egress.value("listeners", json::array()))
      if (l.value("path", "") == s.value("path", "")) entry["egress"] = l;
    agent(s.value("caller", "")).at("sockets").push_back(entry);
  }
  auto totals = totals_by(src_.db_path, start_of_local_day(now_ms()), GroupBy::caller);
  if (!totals) return json_error(500, "agents: " + totals.error().message);
  for (const auto& g : *totals) {
    const Totals& t = g.totals;
    agent(g.key)["today"] = {{"requests", t.requests},
                             {"input_tokens", t.input_tokens},
                             {"output_tokens", t.output_tokens},
                             {"cost_micro_usd", (t.cost + 500000) / 1000000},
                             {"unknown_cost_requests", t.unknown_cost_requests}};
  }
  json list = json::array();
  for (auto& [caller, a] : by_caller) list.push_back(std::move(a));
  // ImmuneFence's sessions and their risk state, as `tokfence status` reports them (when it does).
  json status = call({{"op", "status"}});
  json sessions = json::array();
  if (status.contains("immunefence") && status["immunefence"].is_object())
    sessions = status["immunefence"].value("sessions", json::array());
  return json_response(200, {{"agents", list}, {"sessions", sessions}});
}

HttpResponse DashboardWeb::vault() const {
  json snap = call({{"op", "widget_snapshot"}});
  if (!snap.value("ok", false)) return reply_response(snap);
  json status = call({{"op", "status"}});
  // Names, upstreams, revocations and fingerprints only: the daemon never hands a key to anything
  // but the proxy.
  return json_response(200, {{"vault_backend", status.value("vault_backend", "")},
                             {"vault_known", snap.value("vault_known", true)},
                             {"vault_providers", snap.value("vault_providers", json::array())},
                             {"providers", snap.value("providers", json::array())},
                             {"provider_upstreams", snap.value("provider_upstreams", json::object())},
                             {"revoked_providers", snap.value("revoked_providers", json::array())},
                             // Fingerprint ("..." and the last few characters, as `tokfence vault
                             // list` shows it) and dates of each key the daemon holds.
                             {"keys", status.value("vault_keys", json::array())}});
}

std::optional<HttpResponse> DashboardWeb::refuse_action(const HttpRequest& req, const std::string& session) const {
  // A page elsewhere (another site, or another port of 127.0.0.1, which counts as the same site
  // for SameSite cookies) can make the browser POST here with the cookie; it cannot forge Origin
  // or Sec-Fetch-Site, nor read the CSRF token, nor send a custom header without a CORS
  // preflight we never grant.
  // The listener checked Host (127.0.0.1 or localhost, with our port or none); the Origin must
  // name the same one (core/page_origin.hpp: localhost may be another user's listener on ::1).
  const std::string* origin = req.header("origin");
  const std::string* host = req.header("host");
  std::string named = host ? *host : std::string();
  if (named.find(':') == std::string::npos) named += ":" + std::to_string(src_.port);
  if (!origin || !is_own_loopback_origin(*origin, named))
    return json_error(403, "dashboard: refused: actions need the dashboard's own Origin");
  if (const std::string* site = req.header("sec-fetch-site"); site && *site != "same-origin")
    return json_error(403, "dashboard: refused: actions come from the dashboard's own pages only");
  const std::string* type = req.header("content-type");
  if (!type || lower(type->substr(0, type->find(';'))) != "application/json")
    return json_error(415, "dashboard: refused: actions take Content-Type application/json");
  const std::string* csrf = req.header("x-tokfence-csrf");
  if (!csrf || !auth_.csrf_ok(session, *csrf)) return json_error(403, "dashboard: refused: missing or wrong X-Tokfence-CSRF");
  return std::nullopt;
}

HttpResponse DashboardWeb::action(const HttpRequest& req, const std::string& session) const {
  if (auto refused = refuse_action(req, session)) return *refused;
  const std::string name = req.path.substr(5);  // after "/api/"
  if (name == "logout") {
    auth_.end_session(session);
    if (src_.log) src_.log("dashboard: logged out (from the web dashboard)");
    HttpResponse r = json_response(200, {{"ok", true}});
    r.headers = {{"Set-Cookie", std::string(DashboardAuth::kCookieName) + "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"}};
    r.ended_session = session;
    return r;
  }
  json body = json::parse(req.body.empty() ? std::string("{}") : req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return json_error(400, "dashboard: the body must be a JSON object");
  if (std::find(std::begin(kActions), std::end(kActions), name) == std::end(kActions))
    return json_error(404, "dashboard: no such action (docs/DASHBOARD.md lists them)");
  auto op = action_op(name, body);
  if (!op) return json_error(400, "dashboard: " + name + ": a field is missing or of the wrong type");
  json reply = call(*op);
  if (src_.log)
    src_.log("dashboard: " + (*op)["op"].get<std::string>() + (reply.value("ok", false) ? "" : " (refused)") +
             " (from the web dashboard)");
  return reply_response(std::move(reply));
}

}  // namespace tokfence::proxy
