#pragma once
// Connections to provider upstreams: plain TCP for http:// upstreams, TLS (verified against the
// system trust store, with SNI and host name verification) for https://. Each I/O thread owns one
// UpstreamPool, so a pooled connection is only ever touched by the thread that made it and no
// locks are needed.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "proxy/http/asio_types.hpp"
#include "proxy/http/http1.hpp"
#include "proxy/http/routing.hpp"

namespace tokfence::proxy {

class UpstreamConnection {
 public:
  using Plain = aio::TcpSocket;
  // Beast's wrapper rather than asio::ssl::stream: it puts a gather write (head + body) into one
  // TLS record instead of one per buffer.
  using Tls = boost::beast::ssl_stream<aio::TcpSocket>;

  UpstreamConnection(std::string origin, std::unique_ptr<Plain> plain);
  UpstreamConnection(std::string origin, std::unique_ptr<Tls> tls);

  const std::string& origin() const { return origin_; }
  bool is_tls() const { return static_cast<bool>(tls_); }
  Plain& plain() { return *plain_; }
  Tls& tls() { return *tls_; }
  // The TCP socket under either, for timeouts and closing.
  aio::TcpSocket& tcp();
  void close();

  http1::ReadBuffer buffer;  // bytes read past the last response (must be empty to reuse)
  bool reused = false;               // taken from the pool rather than freshly connected
  std::chrono::steady_clock::time_point idle_since;

 private:
  std::string origin_;
  std::unique_ptr<Plain> plain_;
  std::unique_ptr<Tls> tls_;
};

// Why a connection could not be made, ready for the client's error response.
struct ConnectFailure {
  int status = 502;   // 502 unreachable / TLS, 504 timeout
  std::string type;   // tokfence_upstream_unreachable | tokfence_upstream_timeout | tokfence_upstream_tls
  std::string message;
};

struct ConnectOutcome {
  std::unique_ptr<UpstreamConnection> connection;  // null on failure
  ConnectFailure failure;
};

// The TLS client context shared by all threads: system trust store, TLS 1.2+, peer verification.
std::shared_ptr<boost::asio::ssl::context> make_client_tls_context();

class UpstreamPool {
 public:
  UpstreamPool(boost::asio::io_context& ioc, std::shared_ptr<boost::asio::ssl::context> tls,
               std::chrono::seconds connect_timeout);
  // An idle pooled connection to `url`'s origin that is still open; null when none is usable.
  // Not a coroutine: the pooled case (nearly every request) needs no frame of its own.
  // `origin` is the url's origin() (kept by the caller: building it is an allocation per request).
  std::unique_ptr<UpstreamConnection> take_idle(const std::string& origin);
  // A new connection (resolved, connected, TLS handshake done), or why there is none.
  aio::Task<ConnectOutcome> connect(const UpstreamUrl& url);
  // Returns a connection after a complete exchange that left it reusable.
  void release(std::unique_ptr<UpstreamConnection> connection);
  // Closes every idle connection (shutdown).
  void clear();
  std::size_t idle_count() const;

 private:
  boost::asio::io_context& ioc_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::chrono::seconds connect_timeout_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
  // Resolved addresses per "host:port", kept for a minute. Asio resolves on a thread of its own
  // (getaddrinfo blocks), a hand-off both ways for every new connection, and a DNS query each
  // time for a real provider. IP literals are never resolved at all.
  struct Resolved {
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;
    std::chrono::steady_clock::time_point expires;
  };
  std::unordered_map<std::string, Resolved> resolved_;
};

}  // namespace tokfence::proxy
