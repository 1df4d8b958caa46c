#pragma once
// The control channel between the CLI and a running daemon (docs/CONTROL-PROTOCOL.md).
//
// Transport: the Unix socket Home::control_socket() (mode 0600). One JSON object per line each way:
//   request  {"op": "<name>", ...args}
//   response {"ok": true, ...result} | {"ok": false, "error": "<message>"}
// The daemon accepts a connection only from a peer with its own uid whose network and mount
// namespaces are the daemon's (read from /proc/<peer pid>/ns/): a sandboxed agent that somehow
// reaches the socket still cannot use it. Proxy sockets never serve control requests.
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/home.hpp"

namespace tokfence::proxy {

using json = nlohmann::json;

// Server side: op name -> handler. Handlers run on a control thread, never on the proxy's I/O
// threads; they return the result object ("ok" is added) or an Error.
class ControlRouter {
 public:
  using Handler = std::function<Result<json>(const json& request)>;
  void add(const std::string& op, Handler handler);
  // Never throws: unknown ops and malformed requests become {"ok":false,...}.
  json dispatch(const json& request) const;
  // Called with the op's name after each op that succeeded (e.g. to refresh the widget snapshot
  // after a control change). Set once, before the router serves.
  void set_observer(std::function<void(const std::string& op)> observer) { observer_ = std::move(observer); }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Handler> handlers_;
  std::function<void(const std::string&)> observer_;
};

// Client side. Sends one request to the daemon of `home`. Errors: no daemon running (message says
// `tokfence start`), refused, or the daemon's {"ok":false} error text.
Result<json> control_call(const Home& home, const json& request, int timeout_ms = 10000);

// What a running daemon wrote to Home::runtime_file().
struct DaemonInfo {
  int pid = 0;
  std::string host;
  int port = 0;                      // the actual port, also when configured as 0
  std::string proxy_socket;          // main proxy Unix socket
  std::string vault_backend;
  std::string base_url() const { return "http://" + host + ":" + std::to_string(port); }
};

// The running daemon of `home`, confirmed by a `ping` over the control socket; nullopt if none.
std::optional<DaemonInfo> running_daemon(const Home& home);

// Returns the running daemon, or starts `tokfence start -d` (the current executable) and waits
// until it answers. Errors carry the daemon log's last lines.
Result<DaemonInfo> ensure_daemon(const Home& home);

}  // namespace tokfence::proxy
