#pragma once
// The daemon's status listener on loopback ([dashboard] enabled/port, docs/METRICS.md): today it
// serves GET /metrics. It is not the proxy: no key is ever used here, and it never reads a body.
//
// Who may ask: only a loopback TCP peer whose socket belongs to the daemon's own uid (the proxy's
// own check, core/peer tcp_peer_owner: one NETLINK_SOCK_DIAG round trip); other users get 403.
// The Host header must name the loopback address or localhost (with the listener's port), so a
// web page that rebinds its own name to 127.0.0.1 cannot read it either (421).
//
// One thread accepts and answers one connection at a time: a scraper asks once in a while. Every
// connection is bounded: 8 KiB of request head, 2 s to send it, 2 s to take the answer, then
// closed (no keep-alive).
#include <functional>
#include <memory>
#include <string>

#include "core/error.hpp"

namespace tokfence::proxy {

struct DashboardOptions {
  int port = 0;                       // 0 = any free port
  std::function<std::string()> metrics;  // the /metrics body (called on the listener's thread)
  std::function<void(const std::string&)> log;  // refusals worth a line in the daemon's log
};

class DashboardListener {
 public:
  // Binds 127.0.0.1:`port` and starts serving. Errors name the address.
  static Result<std::unique_ptr<DashboardListener>> start(DashboardOptions options);
  ~DashboardListener();  // stop()s
  int port() const;
  // Stops accepting and joins the thread (an answer in progress ends within its 2 s bounds).
  void stop();

  struct Impl;

 private:
  explicit DashboardListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokfence::proxy
