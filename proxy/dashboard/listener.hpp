#pragma once
// The daemon's dashboard listener on loopback ([dashboard] enabled/port): GET /metrics for a local
// Prometheus (docs/METRICS.md) and the web dashboard (docs/DASHBOARD.md). It is not the proxy: no
// key is ever used here.
//
// Who may ask: only a loopback TCP peer whose socket belongs to the daemon's own uid (the proxy's
// own check, core/peer tcp_peer_owner: one NETLINK_SOCK_DIAG round trip) — other users get 403
// before a byte is read. The Host header must name the loopback address or localhost (with the
// listener's port), so a web page that rebinds its own name to 127.0.0.1 is not served (421).
// /metrics needs nothing more; everything else is the web dashboard's (proxy/dashboard/web.hpp:
// session cookie, same-origin and CSRF checks).
//
// One thread serves every connection: it reads each as its bytes arrive (poll) and answers a
// request once it is whole, so a connection that sends nothing (a page's `preconnect`) holds up no
// other. Every connection is bounded: 8 KiB of request head and kMaxBody of body, 2 s to send
// them, 2 s to take the answer, then closed (no keep-alive); at most 64 wait at once. The one exception, the live event stream (/api/events), is handed to
// DashboardEvents, which serves at most 8 of them on threads of their own, so a watching browser
// never holds up /metrics.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "proxy/dashboard/events.hpp"

namespace tokfence::proxy {

struct DashboardOptions {
  int port = 0;                       // 0 = any free port
  std::function<std::string()> metrics;  // the /metrics body (called on the listener's thread)
  std::function<void(const std::string&)> log;  // refusals and actions worth a line in the daemon's log
  // The web dashboard: runs one control op in-process (the daemon's ControlRouter::dispatch) and
  // returns its reply. Unset: only /metrics is served.
  std::function<nlohmann::json(const nlohmann::json&)> control;
  std::filesystem::path db_path;            // the request log's database (read side)
  std::shared_ptr<DashboardEvents> events;  // request rows as they are recorded; null = no live view
};

class DashboardListener {
 public:
  // Binds 127.0.0.1:`port` and [::1]:`port` (core/loopback_listen.hpp: the IPv6 twin, same checks
  // on both) and starts serving. Errors name the address (and a twin's holder).
  static Result<std::unique_ptr<DashboardListener>> start(DashboardOptions options);
  ~DashboardListener();  // stop()s
  int port() const;
  std::vector<std::string> addresses() const;  // "127.0.0.1:P" and, with the twin, "[::1]:P"
  // A one-time login URL for the web dashboard ({url, port, expires_in}); for the control op
  // `dashboard_login` (thread-safe).
  Result<nlohmann::json> login_url();
  // Stops accepting, ends the event streams and joins the threads (an answer in progress ends
  // within its 2 s bounds).
  void stop();

  struct Impl;

 private:
  explicit DashboardListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokfence::proxy
