#pragma once
// The web dashboard's request handling (docs/DASHBOARD.md): a function from a parsed request to a
// response, with no socket in sight (the listener reads and writes; unit tests call handle()).
//
// Order of checks for everything but /metrics, /login and the static assets: the session cookie,
// which must name a live session (401: never issued, expired after DashboardAuth::kSessionLife,
// or logged out), then for /api/* a Sec-Fetch-Site of same-origin or none given (403); for actions (POST)
// also Origin equal to the dashboard's own origin (absent = refused), Content-Type
// application/json, a body of at most kMaxBody bytes and the X-Tokfence-CSRF header equal to the
// session's CSRF token (403/415). POST /api/logout (same checks) ends the session. Actions run as control ops through `control` (the daemon's
// ControlRouter, the same code `tokfence kill` and friends reach over the control socket).
//
// Every response carries the strict Content-Security-Policy and friends (security_headers()).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/dashboard/auth.hpp"

namespace tokfence::proxy {

inline constexpr std::size_t kMaxBody = 4096;

struct HttpRequest {
  std::string method, path, query;  // path without the query; query without the '?'
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, values trimmed
  std::string body;
  // The first header of that (lowercase) name, or nullptr.
  const std::string* header(std::string_view name) const;
  int count(std::string_view name) const;
  // The value of query parameter `name` ("" when absent); no percent-decoding (no value we take
  // needs it).
  std::string param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones: Location, Set-Cookie
  bool event_stream = false;  // the listener hands the connection to DashboardEvents
  // An event stream's session and its expiry: the stream ends with the session.
  std::string stream_session;
  std::chrono::steady_clock::time_point stream_ends{};
  std::string ended_session;  // a logout, or a login that pushed the oldest out: the listener ends that session's event streams
};

// The response head and body as bytes (no body for HEAD, or for an event stream whose body
// follows). Adds Content-Length (except for event streams), Connection: close and the security
// headers.
std::string serialize(const HttpResponse& response, bool head_only);

class DashboardWeb {
 public:
  struct Sources {
    int port = 0;
    // Runs one control op in-process and returns its reply ({"ok":true,...} or {"ok":false,"error"}).
    std::function<nlohmann::json(const nlohmann::json&)> control;
    std::filesystem::path db_path;  // the request log, for the read side
    std::function<void(const std::string&)> log;  // one line per action in the daemon's log
  };
  DashboardWeb(Sources sources, DashboardAuth& auth) : src_(std::move(sources)), auth_(auth) {}

  HttpResponse handle(const HttpRequest& request) const;
  // The one-time login URL for the control op `dashboard_login`.
  Result<nlohmann::json> login_url() const;

 private:
  HttpResponse login(const HttpRequest& request) const;
  // `session`: the live session the request's cookie names (DashboardAuth::session).
  HttpResponse api_get(const HttpRequest& request, const std::string& session) const;
  HttpResponse action(const HttpRequest& request, const std::string& session) const;
  std::optional<HttpResponse> refuse_action(const HttpRequest& request, const std::string& session) const;
  HttpResponse agents() const;
  HttpResponse vault() const;
  HttpResponse requests(const HttpRequest& request) const;
  nlohmann::json call(const nlohmann::json& op) const;

  Sources src_;
  DashboardAuth& auth_;
};

}  // namespace tokfence::proxy
