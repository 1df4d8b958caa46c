#pragma once
// The proxy's HTTP side: listeners (loopback TCP, the main Unix socket, labeled per-launch Unix
// sockets), one session per client connection, and the exchange with the upstream (docs/PROXY.md).
//
// Threads: `io_threads` I/O threads, each running its own io_context. A connection lives on one
// thread from accept to close, with that thread's upstream pool, so the data path takes no locks
// except the ones inside RequestLog::record and Controls::admit/settle. Nothing here throws on the
// data path: every failure becomes an HTTP error for the client and a log row. An exception that
// escapes all the same (a bug, memory running out) ends only its request: it is logged with the
// request id (ServerDeps::warn), the client gets a 500 if nothing was sent yet, the request its
// row, and a budget reservation is settled at its estimate (ReservationGuard).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/secret.hpp"
#include "proxy/controls/controls.hpp"
#include "proxy/egress/policy.hpp"
#include "proxy/http/inspect.hpp"
#include "proxy/immune/sessions.hpp"
#include "proxy/metering/pricing.hpp"
#include "proxy/metering/request_log.hpp"

namespace boost::asio::ssl {
class context;
}

namespace tokfence::proxy {

// The keys in memory, swapped as a whole on reload; readers keep the snapshot they took.
class KeyStore {
 public:
  using Map = std::map<std::string, SecretString, std::less<>>;
  void replace(Map keys);
  std::shared_ptr<const Map> snapshot() const;
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Map> keys_ = std::make_shared<const Map>();
};

struct ServerDeps {
  Config config;
  std::shared_ptr<KeyStore> keys;
  std::shared_ptr<RequestLog> log;
  std::shared_ptr<Controls> controls;
  std::shared_ptr<LivePricing> pricing;  // replaced by the pricing_reload control op
  // ImmuneFence's sessions and sensors; null = off (unit tests of the data path alone).
  std::shared_ptr<immune::Registry> immune;
  // Lines for the daemon's log (an unexpected exception on the data path, with its request id);
  // empty = stderr, with a UTC time stamp.
  std::function<void(const std::string&)> warn = {};
  // Inspected egress (inspect.hpp): the secrets bound to hosts, and the server-side TLS context
  // presenting the local CA's certificate for a host. Either absent: no CONNECT is inspected, and
  // a host that would need it is refused ("inspect-unavailable") rather than tunnelled with a
  // secret the agent cannot use.
  std::shared_ptr<inspect::LiveSecrets> secrets;
  std::function<Result<std::shared_ptr<boost::asio::ssl::context>>(const std::string& host)> inspect_tls;
};

struct ProxySocketInfo {
  std::string path;
  std::string caller;  // "" = the main socket (caller from peer credentials / header)
  int mode = 0660;
  bool persist = false;
  // A labeled listener is also a forward proxy (CONNECT, absolute-form) under this policy, which
  // starts as given here and changes through egress_policy() (docs/EGRESS.md). The main socket
  // and the TCP listener refuse every CONNECT ("no-egress-on-main-listener").
  egress::Policy egress;
  // ImmuneFence: the session this socket belongs to; every request on it must carry that
  // session's token ("" = none: the main listeners' rule, [immunefence] require_token).
  std::string session_id;
};

class ProxyServer {
 public:
  // Validates every provider's upstream URL; errors name the provider.
  static Result<std::unique_ptr<ProxyServer>> create(ServerDeps deps);
  ~ProxyServer();

  // Binds [daemon] host:port; returns the actual port (the configured one may be 0). Host
  // 127.0.0.1 also binds [::1] at the same port (core/loopback_listen.hpp), and fails when another
  // program holds that twin.
  Result<int> listen_tcp(const std::string& host, int port);
  // The addresses listen_tcp bound ("127.0.0.1:9471", "[::1]:9471"), for status.
  std::vector<std::string> tcp_addresses() const;
  // A Unix listener. `caller` labels every request on it ("" = main socket).
  Result<void> listen_unix(const ProxySocketInfo& socket);
  // Closes a Unix listener and removes its file; connections already open finish normally.
  Result<void> close_unix(const std::string& path);
  std::vector<ProxySocketInfo> unix_sockets() const;
  // The live egress policy of the labeled listener at `path`; null when no such listener is open.
  // A change applies from the listener's next connection on.
  std::shared_ptr<egress::LivePolicy> egress_policy(const std::string& path) const;
  // Another loopback TCP port the daemon listens on (the dashboard's); before start(). The forward
  // proxy refuses it whatever the policy ("own-port"), as it does the proxy's own port: through
  // a tunnel the daemon opens, a fenced agent would pass that listener's same-uid check.
  void add_own_port(int port);
  // [egress] of config.toml, checked by create() (a bad rule fails the start).
  const egress::Settings& egress_settings() const;

  // Starts the I/O threads.
  void start();
  // Stops accepting and removes socket files, closes idle connections, lets requests in flight
  // finish for up to `grace`, then cuts the rest. Returns when every session has ended and the
  // I/O threads are joined; every row has been handed to the request log by then.
  void shutdown(std::chrono::seconds grace);
  // Hands the request log every row of a request that has ended, including rows still waiting
  // for their connection's caller look-up (at most ~kCallerWait). `flush_log` calls this first.
  void hand_over_finished_rows();

  // The data plane's own counters, for /metrics: relaxed atomic loads, no lock, so a scrape never
  // waits on (or slows) a request.
  struct Activity {
    int connections = 0;  // client connections open now, all listeners
    int streams = 0;      // streamed responses (requests asking stream: true) being relayed now
    std::uint64_t egress_allowed = 0;  // forward-proxy decisions since start, as the egress log rows say
    std::uint64_t egress_denied = 0;
  };
  Activity activity() const;

  struct Impl;

 private:
  explicit ProxyServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokfence::proxy
