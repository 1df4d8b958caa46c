#include "proxy/http/upstream.hpp"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/stream_traits.hpp>

namespace tokfence::proxy {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

// Idle upstream connections older than this are not reused: servers commonly close at 60 s or
// sooner, and a request on a connection the server is closing fails.
constexpr auto max_idle_age = std::chrono::seconds(30);
// Per I/O thread. A busy agent fleet keeps hundreds of requests in flight; a pool smaller than
// that closes and reopens upstream connections under load (a TLS handshake each, for real
// providers).
constexpr std::size_t max_idle_per_origin = 256;
// How long resolved upstream addresses are reused (providers' DNS records live for minutes).
constexpr auto resolve_cache_ttl = std::chrono::seconds(60);

// Connections idle for less than this are reused without a look at the socket: a server that
// keeps connections alive does not close one within a second of its last reply, and if it did,
// the request fails before any response byte and is retried on a fresh connection (server.cpp).
// Saves a syscall per request under load.
constexpr auto fresh_idle_age = std::chrono::seconds(1);

// An idle connection must have nothing to read: EOF, an error, or stray bytes all mean it is not
// safe to send a request on it.
bool still_clean(UpstreamConnection& c, std::chrono::steady_clock::time_point now) {
  if (c.buffer.size() != 0) return false;
  if (now - c.idle_since < fresh_idle_age) return true;
  char byte;
  ssize_t n = ::recv(c.tcp().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

// The read buffer starts with room for a typical reply's header and body: a fresh flat_buffer
// reads 512 bytes at a time, which splits even small replies into several reads and writes.
// (Allocated untouched: only the pages a connection reads into become resident.)
constexpr std::size_t kReadBufferBytes = 16 * 1024;

UpstreamConnection::UpstreamConnection(std::string origin, std::unique_ptr<Plain> plain)
    : buffer(kReadBufferBytes), origin_(std::move(origin)), plain_(std::move(plain)) {}
UpstreamConnection::UpstreamConnection(std::string origin, std::unique_ptr<Tls> tls)
    : buffer(kReadBufferBytes), origin_(std::move(origin)), tls_(std::move(tls)) {}

aio::TcpSocket& UpstreamConnection::tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

void UpstreamConnection::close() {
  beast::error_code ec;
  tcp().shutdown(tcp::socket::shutdown_both, ec);
  tcp().close(ec);
}

std::shared_ptr<net::ssl::context> make_client_tls_context() {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  ctx->set_default_verify_paths(ec);
  ctx->set_verify_mode(net::ssl::verify_peer);
  return ctx;
}

UpstreamPool::UpstreamPool(net::io_context& ioc, std::shared_ptr<net::ssl::context> tls, std::chrono::seconds connect_timeout)
    : ioc_(ioc), tls_(std::move(tls)), connect_timeout_(connect_timeout) {}

std::unique_ptr<UpstreamConnection> UpstreamPool::take_idle(const std::string& origin) {
  auto it = idle_.find(origin);
  if (it == idle_.end()) return nullptr;
  auto now = std::chrono::steady_clock::now();
  while (!it->second.empty()) {
    auto conn = std::move(it->second.back());
    it->second.pop_back();
    if (now - conn->idle_since < max_idle_age && still_clean(*conn, now)) {
      conn->reused = true;
      return conn;
    }
    conn->close();
  }
  return nullptr;
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> connection) {
  auto& list = idle_[connection->origin()];
  if (list.size() >= max_idle_per_origin || connection->buffer.size() != 0) {
    connection->close();
    return;
  }
  connection->idle_since = std::chrono::steady_clock::now();
  list.push_back(std::move(connection));
}

void UpstreamPool::clear() {
  for (auto& [origin, list] : idle_)
    for (auto& c : list) c->close();
  idle_.clear();
}

std::size_t UpstreamPool::idle_count() const {
  std::size_t n = 0;
  for (const auto& [origin, list] : idle_) n += list.size();
  return n;
}

namespace {

// Cancels an operation when the connect deadline passes. The operation's coroutine marks the
// guard finished as soon as the operation completes, so a timer that fired at the same moment
// (its handler already queued) no longer touches what the coroutine may have destroyed since.
struct DeadlineGuard {
  bool fired = false;
  bool finished = false;
};

template <class Cancel>
void arm_deadline(aio::Timer& timer, std::chrono::steady_clock::time_point deadline,
                  const std::shared_ptr<DeadlineGuard>& guard, Cancel cancel) {
  guard->fired = guard->finished = false;
  timer.expires_at(deadline);
  timer.async_wait([guard, cancel](beast::error_code e) {
    if (e || guard->finished) return;
    guard->fired = true;
    cancel();
  });
}

}  // namespace

aio::Task<ConnectOutcome> UpstreamPool::connect(const UpstreamUrl& url) {
  ConnectOutcome out;
  beast::error_code ec;
  auto deadline = std::chrono::steady_clock::now() + connect_timeout_;
  std::string timeout_text = std::to_string(connect_timeout_.count()) + " s";
  aio::Timer timer(ioc_);
  auto guard = std::make_shared<DeadlineGuard>();

  std::vector<tcp::endpoint> endpoints;
  const std::string cache_key = url.host + ":" + url.port;
  const auto now = std::chrono::steady_clock::now();
  if (auto address = net::ip::make_address(url.host, ec); !ec) {
    endpoints.emplace_back(address, static_cast<unsigned short>(std::stoi(url.port)));
  } else if (auto hit = resolved_.find(cache_key); hit != resolved_.end() && hit->second.expires > now) {
    endpoints = hit->second.endpoints;
  } else {
    ec = {};
    // Resolution has no timeout of its own: the timer cancels it.
    auto resolver = std::make_shared<aio::Resolver>(ioc_);
    arm_deadline(timer, deadline, guard, [resolver] { resolver->cancel(); });
    auto results = co_await resolver->async_resolve(url.host, url.port, aio::with_ec(ec));
    guard->finished = true;
    timer.cancel();
    if (ec) {
      if (guard->fired)
        out.failure = {504, "tokfence_upstream_timeout", "upstream: cannot resolve " + url.host + " within " + timeout_text};
      else
        out.failure = {502, "tokfence_upstream_unreachable", "upstream: cannot resolve host: " + url.host + ": " + ec.message()};
      co_return out;
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    resolved_[cache_key] = Resolved{endpoints, now + resolve_cache_ttl};
  }

  auto socket = std::make_shared<aio::TcpSocket>(ioc_);
  arm_deadline(timer, deadline, guard, [socket] {
    beast::error_code ignored;
    socket->cancel(ignored);
  });
  co_await net::async_connect(*socket, endpoints, aio::with_ec(ec));
  guard->finished = true;
  timer.cancel();
  if (ec && guard->fired) ec = net::error::timed_out;
  if (ec && ec != net::error::timed_out) resolved_.erase(cache_key);  // the addresses may have moved
  if (ec) {
    if (ec == net::error::timed_out)
      out.failure = {504, "tokfence_upstream_timeout", "upstream: no connection to " + url.origin() + " within " + timeout_text + " (connect_timeout_seconds)"};
    else
      out.failure = {502, "tokfence_upstream_unreachable", "upstream: cannot connect to " + url.origin() + ": " + ec.message()};
    co_return out;
  }
  socket->set_option(tcp::no_delay(true), ec);
  socket->non_blocking(true, ec);  // server.cpp writes a request at once when the kernel takes it

  if (!url.tls) {
    out.connection = std::make_unique<UpstreamConnection>(url.origin(), std::make_unique<aio::TcpSocket>(std::move(*socket)));
    co_return out;
  }
  auto tls = std::make_unique<UpstreamConnection::Tls>(std::move(*socket), *tls_);
  if (!SSL_set_tlsext_host_name(tls->native_handle(), url.host.c_str())) {
    out.failure = {502, "tokfence_upstream_tls", "upstream: cannot set TLS server name: " + url.host};
    co_return out;
  }
  tls->set_verify_callback(net::ssl::host_name_verification(url.host));
  // A raw pointer: the guard keeps the handler from using it once the handshake is over, and
  // the stream lives in this frame until then.
  arm_deadline(timer, deadline, guard, [stream = tls.get()] {
    beast::error_code ignored;
    beast::get_lowest_layer(*stream).cancel(ignored);
  });
  co_await tls->async_handshake(net::ssl::stream_base::client, aio::with_ec(ec));
  guard->finished = true;
  timer.cancel();
  if (ec) {
    if (guard->fired)
      out.failure = {504, "tokfence_upstream_timeout", "upstream: TLS handshake with " + url.origin() + " did not finish within " + timeout_text};
    else
      out.failure = {502, "tokfence_upstream_tls", "upstream: TLS handshake with " + url.origin() + " failed: " + ec.message()};
    co_return out;
  }
  out.connection = std::make_unique<UpstreamConnection>(url.origin(), std::move(tls));
  co_return out;
}

}  // namespace tokfence::proxy
