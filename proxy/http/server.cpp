#include "proxy/http/server.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <span>
#include <thread>
#include <type_traits>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/system/error_code.hpp>

#include "proxy/http/admission.hpp"
#include "proxy/http/asio_types.hpp"
#include "core/peer.hpp"
#include "proxy/http/http1.hpp"
#include "proxy/metering/billing.hpp"
#include "proxy/http/routing.hpp"
#include "core/unix_socket.hpp"
#include "proxy/http/upstream.hpp"
#include "proxy/metering/usage.hpp"

namespace tokfence::proxy {

void KeyStore::replace(Map keys) {
  auto fresh = std::make_shared<const Map>(std::move(keys));
  std::lock_guard lock(mutex_);
  keys_ = std::move(fresh);
}

std::shared_ptr<const KeyStore::Map> KeyStore::snapshot() const {
  std::lock_guard lock(mutex_);
  return keys_;
}

std::size_t KeyStore::size() const { return snapshot()->size(); }

namespace {

namespace net = boost::asio;
using error_code = boost::system::error_code;
using tcp = net::ip::tcp;
using unix_proto = net::local::stream_protocol;
using SteadyClock = std::chrono::steady_clock;

using aio::with_ec;

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The deadlines' clock: steady_clock's CLOCK_MONOTONIC at the kernel tick's resolution (a few
// ms), a plain read of the vDSO page instead of a precise clock read per arm(). Deadlines are
// whole seconds.
SteadyClock::time_point coarse_now() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return SteadyClock::time_point(std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

double ms_since(SteadyClock::time_point t) { return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count(); }

// "req_" + 16 hex digits: 44 bits of unix milliseconds, then 20 bits of a counter that starts at
// a random value. Unique within the daemon (up to a million requests in one millisecond), and
// increasing with time, so the request log's primary-key index grows at its end: random ids
// scattered every batch's inserts over the whole index, rewriting hundreds of pages per commit.
std::string new_request_id(std::int64_t now_ms) {
  static std::atomic<std::uint32_t> counter{static_cast<std::uint32_t>(std::random_device{}())};
  static const char* hex = "0123456789abcdef";
  std::uint64_t v = (static_cast<std::uint64_t>(now_ms) << 20) | (counter.fetch_add(1, std::memory_order_relaxed) & 0xfffff);
  std::string id = "req_";
  for (int i = 15; i >= 0; --i) id.push_back(hex[(v >> (i * 4)) & 0xf]);
  return id;
}

using http1::iequals;

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

struct Provider {
  ProviderSpec spec;
  UpstreamUrl url;
  std::string origin;  // url.origin(), the upstream pool's key
};

// The process behind a connection. For loopback TCP it is found on the identify thread; rows of
// that connection are recorded from the same thread, after the look-up (one FIFO queue).
struct CallerSlot {
  std::atomic<bool> resolved{true};
  Caller caller;
  // TCP: the peer's socket is not the daemon user's (or its owner is unknown): every request on
  // the connection is refused (admission.hpp). Set at accept, before the session starts.
  bool foreign_peer = false;
  std::optional<unsigned> peer_uid;
};

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void close_if_idle() = 0;
  virtual void force_close() = 0;
  // Called about once a second by the worker's sweeper: cuts the I/O of a session whose current
  // wait (client or upstream) has outlived its deadline, and starts watching the client of a
  // request that is still in flight.
  virtual void sweep(SteadyClock::time_point now) = 0;
};

// Timeouts: one deadline per session, checked by a once-a-second sweep on each worker, instead
// of a timer armed and cancelled around every read and write. Per-operation timers cost a timer
// queue update (and often a timerfd_settime syscall) several times per request; the sweep costs
// one pass over the worker's sessions per second. Timeouts are whole seconds anyway.
constexpr auto kSweepInterval = std::chrono::seconds(1);

struct Worker {
  net::io_context ioc{1};
  std::unique_ptr<UpstreamPool> pool;
  std::thread thread;
  std::set<SessionBase*> sessions;  // only touched on this worker's thread
  std::atomic<int> session_count{0};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::optional<aio::Timer> sweep_timer;  // created and used on this worker's thread only
};

struct UnixListener {
  ProxySocketInfo info;
  std::unique_ptr<aio::UnixAcceptor> acceptor;
  std::shared_ptr<std::atomic<int>> connections = std::make_shared<std::atomic<int>>(0);  // open on it now
};

}  // namespace

struct ProxyServer::Impl {
  ServerDeps deps;
  std::map<std::string, Provider, std::less<>> providers;
  std::string provider_list;
  std::shared_ptr<net::ssl::context> tls;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<std::size_t> next_worker{0};
  std::atomic<bool> stopping{false};
  net::thread_pool identify_pool{1};
  // One acceptor per worker, each on its own dup() of the listening socket: a connection is
  // accepted by the thread that will serve it, with no hand-off between threads (a wake-up of
  // the other thread per connection, on the latency path). Not SO_REUSEPORT: that would let any
  // process of the same user join the port and take a share of the agents' connections.
  std::vector<std::unique_ptr<aio::TcpAcceptor>> tcp_acceptors;
  mutable std::mutex listeners_mutex;
  std::map<std::string, std::shared_ptr<UnixListener>> unix_listeners;
  ListenerNames tcp_names;  // the Host names of the TCP listener (set by listen_tcp)
  bool started = false;
  // Limits against clients that hold memory and descriptors (docs/PROXY.md, "Limits").
  std::atomic<int> connections{0};  // client connections open, all listeners
  std::atomic<int> rejecting{0};    // connections over a cap being answered 503
  std::atomic<std::uint64_t> inflight_body_bytes{0};
  int connection_cap = 0;  // max_connections, lowered to what RLIMIT_NOFILE leaves (see create())
  std::shared_ptr<std::atomic<int>> tcp_connections = std::make_shared<std::atomic<int>>(0);
  // A place for one more client connection, given back when the returned token is destroyed;
  // null with `why` set when a cap is reached.
  std::shared_ptr<void> take_connection(const std::shared_ptr<std::atomic<int>>& listener, std::string& why);

  Worker& pick_worker() { return *workers[next_worker++ % workers.size()]; }
  Worker& least_loaded(Worker& self);
  Worker& acceptor_worker() { return *workers[0]; }
  aio::Task<void> accept_tcp(Worker& worker, aio::TcpAcceptor& acceptor);
  aio::Task<void> accept_unix(std::shared_ptr<UnixListener> listener);
  void record(RequestRecord rec, const std::shared_ptr<CallerSlot>& slot, std::string name);
};

namespace {

using Impl = ProxyServer::Impl;

enum class Outcome { keep, close, retry };

// How long a response may wait for its connection's caller look-up (see await_caller).
constexpr auto kCallerWait = std::chrono::milliseconds(100);

// Request bodies up to this size leave their buffer to the connection's next request.
constexpr std::size_t kKeptBodyCapacity = 256 * 1024;

// A Content-Length body is read in pieces of this size, the buffer growing with each: memory
// follows the bytes that arrived, not the length a head declared.
constexpr std::size_t kBodyReadWindow = 64 * 1024;

// Descriptors kept free beyond the client connections' (each may hold an upstream connection
// too): the control socket and its clients, the request log, listeners, pooled upstreams, and the
// accepts that answer 503 to connections over a cap.
constexpr int kReservedDescriptors = 128;
// At most this many over-cap connections are being answered at once; past that they are closed
// without an answer (each answer holds a descriptor for kRejectLinger).
constexpr int kMaxRejecting = 64;
constexpr auto kRejectLinger = std::chrono::milliseconds(200);

// What one write sends: the response head, body bytes, chunk framing (at most five pieces). A
// fixed array, because Asio copies a vector buffer sequence into every write operation.
//
// write_now() offers everything to the kernel at once, without waiting: a reply or a request
// normally fits the socket buffer, and then the coroutine neither suspends nor allocates an
// operation (an asynchronous write costs an operation object, a coroutine frame for its
// initiation and a trip through the scheduler, for a send that has already happened). What the
// kernel did not take is left for an asynchronous write. Sockets are put in non-blocking mode
// when opened, so this never blocks a thread.
class Gather {
 public:
  void add(net::const_buffer b) {
    if (b.size() > 0) pieces_[count_++] = b;
  }
  bool empty() const { return first_ == count_; }
  std::span<const net::const_buffer> sequence() const { return {pieces_.data() + first_, count_ - first_}; }

  // true when all was written; false with `ec` clear when the rest must be written
  // asynchronously (sequence()), false with `ec` set on an error.
  template <class Socket>
  bool write_now(Socket& socket, error_code& ec) {
    std::size_t n = socket.write_some(sequence(), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) ec = {};
    consume(n);
    return !ec && empty();
  }

 private:
  void consume(std::size_t n) {
    while (n > 0 && first_ < count_) {
      net::const_buffer& b = pieces_[first_];
      if (n < b.size()) {
        b += n;
        return;
      }
      n -= b.size();
      ++first_;
    }
  }
  std::array<net::const_buffer, 5> pieces_;
  std::size_t first_ = 0;
  std::size_t count_ = 0;
};

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Impl& server, Worker& worker, Stream stream, std::string label, std::shared_ptr<CallerSlot> caller)
      : s_(server), w_(worker), stream_(std::move(stream)), label_(std::move(label)), caller_(std::move(caller)) {}
  ~Session() override { wipe_upstream_head(); }

  static aio::Task<void> start(std::shared_ptr<Session> self) { co_await self->run(); }

  void close_if_idle() override {
    if (idle_) {
      error_code ec;
      stream_.cancel(ec);
    }
  }
  void force_close() override {
    error_code ec;
    stream_.shutdown(net::socket_base::shutdown_both, ec);
    stream_.close(ec);
    if (upstream_) upstream_->close();
  }
  void sweep(SteadyClock::time_point now) override {
    if (in_exchange_ && !watching_ && watched_exchange_ != exchange_) watch_client();
    if (now < deadline_) return;
    deadline_ = SteadyClock::time_point::max();
    timed_out_ = true;
    error_code ec;
    stream_.cancel(ec);
    if (upstream_) upstream_->tcp().cancel(ec);
  }

 private:
  const Config& config() const { return s_.deps.config; }
  std::chrono::seconds idle_timeout() const { return std::chrono::seconds(config().daemon.idle_timeout_seconds); }

  // Every wait on the client or the upstream is bracketed by arm() and disarm(): the sweeper
  // cancels the waits of a session past its deadline, and disarm() turns that cancellation into
  // net::error::timed_out for the code that reads `ec`.
  void arm(std::chrono::seconds timeout) {
    deadline_ = coarse_now() + timeout;
    timed_out_ = false;
  }
  void disarm(error_code& ec) {
    deadline_ = SteadyClock::time_point::max();
    if (timed_out_) {
      timed_out_ = false;
      if (ec == net::error::operation_aborted || !ec) ec = net::error::timed_out;
    }
  }

  // The upstream request's head holds the key: overwritten as soon as the exchange is over, so
  // the buffer (kept for the next request) holds no copy between requests.
  void wipe_upstream_head() {
    wipe_memory(up_head_.data(), up_head_.size());
    up_head_.clear();
  }

  std::chrono::seconds within_idle(int seconds) const {
    return std::min(idle_timeout(), std::chrono::seconds(seconds));
  }
  // arm() for a wait that must also end by `limit` (a total deadline, such as a body's).
  void arm_until(SteadyClock::time_point limit) {
    deadline_ = std::min(limit, coarse_now() + idle_timeout());
    timed_out_ = false;
  }

  // Counts `n` more request-body bytes against max_inflight_body_bytes (all connections); false,
  // with nothing counted, when that would pass it.
  bool hold_body_bytes(std::uint64_t n) {
    const std::uint64_t cap = config().daemon.max_inflight_body_bytes;
    if (s_.inflight_body_bytes.fetch_add(n, std::memory_order_relaxed) + n > cap) {
      s_.inflight_body_bytes.fetch_sub(n, std::memory_order_relaxed);
      return false;
    }
    body_held_ += n;
    return true;
  }
  void release_body_bytes() {
    s_.inflight_body_bytes.fetch_sub(body_held_, std::memory_order_relaxed);
    body_held_ = 0;
  }

  // Waits (at most kCallerWait) until the caller look-up of this connection is done. Called
  // before the first write of a response while it is not: a one-shot client (a curl, a CLI
  // call) reads its answer and exits, and a look-up that had not found its process by then
  // never will, leaving its row without a caller. Normally done within a millisecond of the
  // accept, so only a connection's first request can wait, and only that long.
  aio::Task<void> await_caller() {
    aio::Timer timer(w_.ioc);
    const auto give_up = SteadyClock::now() + kCallerWait;
    while (!caller_->resolved.load() && SteadyClock::now() < give_up) {
      timer.expires_after(std::chrono::microseconds(250));
      error_code ec;
      co_await timer.async_wait(with_ec(ec));
      if (ec) break;  // the daemon is stopping
    }
  }

  aio::Task<void> run() {
    auto self = this->shared_from_this();
    w_.sessions.insert(this);
    try {
      co_await serve();
    } catch (...) {
      // Nothing on the data path should throw; if something does, only this connection ends.
    }
    wipe_upstream_head();
    release_body_bytes();
    error_code ec;
    stream_.shutdown(net::socket_base::shutdown_send, ec);
    stream_.close(ec);
    w_.sessions.erase(this);
    --w_.session_count;
    connection_slot_.reset();
  }

 public:
  // This connection's place under the connection caps (Impl::take_connection).
  void hold(std::shared_ptr<void> connection_slot) { connection_slot_ = std::move(connection_slot); }

 private:
  enum class HeadRead { ok, closed, too_large, malformed, overloaded };

  aio::Task<void> serve() {
    error_code ec;
    const std::size_t header_limit = config().daemon.max_header_bytes;
    for (;;) {
      if (s_.stopping) break;
      idle_ = true;
      // A new connection has header_timeout_seconds for its whole first head (an idle socket is
      // closed that soon); a kept-alive one may wait keepalive_timeout_seconds for the first byte
      // of its next request, then has header_timeout_seconds for the rest of that head.
      const bool awaiting_next_request = kept_alive_ && in_.empty();
      arm(within_idle(awaiting_next_request ? config().daemon.keepalive_timeout_seconds
                                            : config().daemon.header_timeout_seconds));
      head_scanner_.reset();
      // Reads until a whole request head is in in_ (parsed into head_), or knows why not. Inline,
      // not a coroutine of its own: a frame allocation per request. The scanner looks at each new
      // byte once and says when a parse can tell more than "incomplete".
      HeadRead got = HeadRead::closed;
      for (;;) {
        if (!in_.empty() && head_scanner_.scan(in_.data())) {
          auto parsed = http1::parse_request_head(in_.data(), head_);
          if (parsed == http1::Parse::complete) {
            got = head_.size > header_limit ? HeadRead::too_large : HeadRead::ok;
            break;
          }
          if (parsed == http1::Parse::error) {
            got = HeadRead::malformed;
            break;
          }
        }
        if (in_.size() >= header_limit) {
          got = HeadRead::too_large;
          break;
        }
        auto room = in_.prepare(4096);
        std::size_t n = co_await stream_.async_read_some(net::buffer(room.data(), room.size()), with_ec(ec));
        if (ec) break;
        if (in_.empty() && n > 0 && awaiting_next_request) arm(within_idle(config().daemon.header_timeout_seconds));
        in_.commit(n);
      }
      disarm(ec);
      idle_ = false;
      if (got == HeadRead::closed) break;
      if (got == HeadRead::too_large) {
        co_await refuse(431, "tokfence_header_too_large",
                        "request: header larger than max_header_bytes (" +
                            std::to_string(config().daemon.max_header_bytes) + ")",
                        nullptr);
        break;
      }
      if (got == HeadRead::malformed) {
        co_await refuse(400, "tokfence_bad_request", "request: malformed HTTP: " + head_.error, nullptr);
        break;
      }
      // Who may use the keys (admission.hpp): right after the head, before the body is read and
      // before anything else (the health check included); the connection is closed.
      if (auto denied = admit(head_)) {
        co_await refuse(denied->status, denied->type, std::move(denied->message), &head_);
        break;
      }
      auto started = SteadyClock::now();
      const std::uint64_t max_body = config().daemon.max_body_bytes;
      if (head_.body == http1::BodyKind::length && head_.content_length > max_body) {
        // The declared length alone is over the limit: refused before reading the body.
        co_await refuse(413, "tokfence_body_too_large", body_limit_message(), &head_);
        break;
      }
      if (head_.expect_continue && head_.version_minor >= 1 &&
          in_.size() - head_.size < (head_.body == http1::BodyKind::length ? head_.content_length : 1)) {
        static const std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        arm(idle_timeout());
        co_await net::async_write(stream_, net::buffer(cont), with_ec(ec));
        disarm(ec);
        if (ec) break;
      }
      // The body goes to body_; head_'s views stay valid because in_ is not read into again
      // until this request is done. Bytes past the body (a pipelined request) stay in in_, or
      // are put back there from spill_.
      body_.clear();
      std::size_t taken = head_.size;
      // The whole body must arrive within body_timeout_seconds, however it trickles in.
      const auto body_deadline = coarse_now() + std::chrono::seconds(config().daemon.body_timeout_seconds);
      if (head_.body == http1::BodyKind::length) {
        auto here = std::min<std::uint64_t>(head_.content_length, in_.size() - head_.size);
        if (!hold_body_bytes(here)) {
          co_await refuse(503, "tokfence_overloaded", inflight_limit_message(), &head_);
          break;
        }
        body_.assign(in_.data().substr(head_.size, here));
        taken += here;
        // The buffer grows as bytes arrive, never to the declared length up front: a head alone
        // (Content-Length: 64 MiB, then silence) must not cost the daemon 64 MiB.
        bool overloaded = false;
        while (body_.size() < head_.content_length) {
          const std::size_t window = static_cast<std::size_t>(std::min<std::uint64_t>(head_.content_length - body_.size(), kBodyReadWindow));
          if (!hold_body_bytes(window)) {
            overloaded = true;
            break;
          }
          const std::size_t old = body_.size();
          body_.resize(old + window);
          arm_until(body_deadline);
          co_await net::async_read(stream_, net::buffer(body_.data() + old, window), with_ec(ec));
          disarm(ec);
          if (ec) break;  // the client went away mid-body, or stalled past a deadline
        }
        if (ec) break;
        if (overloaded) {
          co_await refuse(503, "tokfence_overloaded", inflight_limit_message(), &head_);
          break;
        }
      } else if (head_.body == http1::BodyKind::chunked) {
        auto outcome = co_await read_chunked_body(taken, body_deadline);
        if (outcome == HeadRead::overloaded) {
          co_await refuse(503, "tokfence_overloaded", inflight_limit_message(), &head_);
          break;
        }
        if (outcome == HeadRead::too_large) {
          co_await refuse(413, "tokfence_body_too_large", body_limit_message(), &head_);
          break;
        }
        if (outcome == HeadRead::malformed) {
          co_await refuse(400, "tokfence_bad_request", "request: malformed HTTP body: " + chunk_error_, &head_);
          break;
        }
        if (outcome == HeadRead::closed) break;
      }
      bool keep = co_await handle(started);
      release_body_bytes();
      kept_alive_ = true;
      // The body buffer is kept for the next request, unless this one was an upload: an idle
      // connection should not hold on to megabytes.
      if (body_.capacity() > kKeptBodyCapacity) std::string().swap(body_);
      in_.consume(taken);
      if (!spill_.empty()) {
        // Bytes read past a chunked body: the start of the next request.
        auto room = in_.prepare(spill_.size());
        std::memcpy(room.data(), spill_.data(), spill_.size());
        in_.commit(spill_.size());
        spill_.clear();
      }
      if (!keep) break;
    }
  }

  // A chunked request body, decoded into body_. The part already in in_ is decoded in place
  // (`taken` grows by what it used); the rest is read into spill_, and whatever follows the body
  // there is left in spill_ for the next request.
  aio::Task<HeadRead> read_chunked_body(std::size_t& taken, SteadyClock::time_point deadline) {
    http1::ChunkedDecoder decoder;
    const std::uint64_t max_body = config().daemon.max_body_bytes;
    HeadRead refused = HeadRead::too_large;  // why decode() returned npos
    auto decode = [&](std::string_view raw) -> std::size_t {
      std::size_t used = 0;
      while (used < raw.size() && !decoder.done() && !decoder.failed()) {
        auto step = decoder.step(raw.substr(used));
        if (step.consumed == 0) break;
        used += step.consumed;
        if (body_.size() + step.data.size() > max_body) return std::string_view::npos;
        if (!hold_body_bytes(step.data.size())) {
          refused = HeadRead::overloaded;
          return std::string_view::npos;
        }
        body_.append(step.data);
      }
      return used;
    };
    std::size_t used = decode(in_.data().substr(taken));
    if (used == std::string_view::npos) co_return refused;
    taken += used;
    error_code ec;
    while (!decoder.done()) {
      if (decoder.failed()) {
        chunk_error_ = decoder.error();
        co_return HeadRead::malformed;
      }
      spill_.resize(16 * 1024);
      // One deadline for the whole body: a byte every few seconds must not hold the connection
      // (and its descriptor) forever.
      arm_until(deadline);
      std::size_t n = co_await stream_.async_read_some(net::buffer(spill_), with_ec(ec));
      disarm(ec);
      if (ec) {
        spill_.clear();
        co_return HeadRead::closed;
      }
      spill_.resize(n);
      used = decode(spill_);
      if (used == std::string_view::npos) {
        spill_.clear();
        co_return refused;
      }
      spill_.erase(0, used);
    }
    co_return HeadRead::ok;
  }

  // A request refused before it could be routed (too large, malformed): the client gets the error
  // (and the connection closes), and the request log a row with whatever the header told, so that
  // such refusals are as visible as any other.
  aio::Task<void> refuse(int status, std::string_view type, std::string message, const http1::RequestHead* head) {
    RequestRecord rec;
    rec.ts_ms = unix_ms();
    rec.id = new_request_id(rec.ts_ms);
    int minor = 1;
    if (head) {
      minor = head->version_minor;
      rec.method = std::string(head->method);
      std::string_view target = head->target;
      rec.path = std::string(target.substr(0, target.find('?')));
      if (auto route = split_target(target); route && s_.providers.count(route->provider))
        rec.provider = std::string(route->provider);
      take_caller_override(*head);
    }
    co_await send_error(status, type, message, false, minor, &rec, nullptr);
    s_.record(std::move(rec), caller_, label_.empty() ? caller_override_ : label_);
  }

  // The connection's peer, then the request's Host, Origin and preflight (admission.hpp).
  std::optional<Denial> admit(const http1::RequestHead& head) const {
    if (caller_->foreign_peer) return foreign_peer_denial(caller_->peer_uid, ::geteuid());
    const ListenerNames& names = std::is_same_v<Stream, aio::TcpSocket> ? s_.tcp_names : unix_listener_names();
    return admit_request(head, names, config().daemon.allowed_origins);
  }

  static std::string allowed_methods_text(const ProviderSpec& spec) {
    std::string out;
    for (const auto& m : spec.methods.empty() ? default_methods() : spec.methods) out += (out.empty() ? "" : ", ") + m;
    return out;
  }

  // X-Tokfence-Caller names the caller on the main sockets; on a labeled socket the label wins.
  void take_caller_override(const http1::RequestHead& head) {
    if (!label_.empty()) return;
    if (auto h = head.find("x-tokfence-caller")) caller_override_ = std::string(h->value);
  }

  std::string inflight_limit_message() const {
    return "request: the proxy holds max_inflight_body_bytes (" +
           std::to_string(config().daemon.max_inflight_body_bytes) +
           ") of request bodies already: retry shortly, or raise [daemon] max_inflight_body_bytes";
  }

  std::string body_limit_message() const {
    return "request: body larger than max_body_bytes (" + std::to_string(config().daemon.max_body_bytes) +
           "): raise [daemon] max_body_bytes in config.toml";
  }

  // "HTTP/1.x NNN Reason\r\n" for the client's version.
  static void append_status_line(std::string& out, int client_minor, int status, std::string_view reason) {
    out.append(client_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
    char code[4] = {static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
                    static_cast<char>('0' + status % 10), ' '};
    out.append(code, 4);
    out.append(reason.empty() ? http1::reason_phrase(status) : reason);
    out.append("\r\n");
  }

  // Connection handling for the client: close said when closing; keep-alive said to HTTP/1.0.
  static void append_connection(std::string& out, int client_minor, bool keep) {
    if (!keep)
      out.append("Connection: close\r\n");
    else if (client_minor == 0)
      out.append("Connection: keep-alive\r\n");
  }

  // A complete small reply of the proxy's own: JSON body, Content-Length, one write.
  aio::Task<void> send_reply(int status, int client_minor, bool keep, std::string_view request_id,
                             std::string_view body, std::optional<int> retry_after = std::nullopt) {
    out_.clear();
    append_status_line(out_, client_minor, status, {});
    out_.append("Content-Type: application/json\r\n");
    if (!request_id.empty()) out_.append("X-Tokfence-Request-Id: ").append(request_id).append("\r\n");
    if (retry_after) out_.append("Retry-After: ").append(std::to_string(*retry_after)).append("\r\n");
    out_.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    append_connection(out_, client_minor, keep && !s_.stopping);
    out_.append("\r\n");
    if (!caller_->resolved.load()) co_await await_caller();
    Gather pieces;
    pieces.add(net::buffer(out_));
    pieces.add(net::buffer(body.data(), body.size()));
    error_code ec;
    if (!pieces.write_now(stream_, ec) && !ec) {
      arm(std::chrono::seconds(30));
      co_await net::async_write(stream_, pieces.sequence(), with_ec(ec));
      disarm(ec);
    }
    reply_failed_ = static_cast<bool>(ec);
  }

  aio::Task<void> send_error(int status, std::string_view type, std::string_view message, bool keep,
                             int client_minor, RequestRecord* rec, const nlohmann::json& extra,
                             std::optional<int> retry_after = std::nullopt) {
    if (rec) {
      rec->status = status;
      if (rec->error.empty()) rec->error = std::string(message);
    }
    std::string_view request_id = rec ? std::string_view(rec->id) : std::string_view();
    std::string body = error_body(type, message, extra);
    co_await send_reply(status, client_minor, keep, request_id, body, retry_after);
  }

  // One request from its header to the log row. Returns whether the client connection stays open.
  aio::Task<bool> handle(SteadyClock::time_point started) {
    const http1::RequestHead& req = head_;
    bool keep = req.keep_alive && !s_.stopping;
    std::string_view target = req.target;
    RequestRecord rec;
    rec.ts_ms = unix_ms();
    rec.id = new_request_id(rec.ts_ms);
    rec.method = std::string(req.method);
    rec.path = std::string(target.substr(0, target.find('?')));
    take_caller_override(req);

    if (rec.path == "/__tokfence/health") {
      co_await send_reply(200, req.version_minor, keep, rec.id, R"({"status":"ok"})" "\n");
      co_return keep && !reply_failed_;
    }

    auto finish = [&](bool still_keep) {
      rec.latency_ms = ms_since(started);
      s_.record(std::move(rec), caller_, label_.empty() ? caller_override_ : label_);
      caller_override_.clear();
      return still_keep;
    };

    auto route = split_target(target);
    if (!route || route->provider.starts_with("__")) {
      co_await send_error(404, "tokfence_not_found",
                          "route: requests go to /<provider>/<path>: known providers: " + s_.provider_list, keep,
                          req.version_minor, &rec, nullptr);
      co_return finish(keep);
    }
    rec.provider = std::string(route->provider);
    const std::string& provider_name = rec.provider;  // for messages (route's fields are views)
    auto provider_it = s_.providers.find(route->provider);
    if (provider_it == s_.providers.end()) {
      co_await send_error(404, "tokfence_unknown_provider",
                          "provider: unknown: '" + provider_name + "': known providers: " + s_.provider_list +
                              " (add one with 'tokfence provider set " + provider_name + " <upstream-url>')",
                          keep, req.version_minor, &rec, nullptr);
      co_return finish(keep);
    }
    const Provider& provider = provider_it->second;
    if (!method_allowed(req.method, provider.spec)) {
      co_await send_error(405, "tokfence_method_not_allowed",
                          "request: method " + std::string(req.method) + " is not forwarded to '" + provider_name +
                              "' (allowed: " + allowed_methods_text(provider.spec) +
                              "; set providers." + provider_name + ".methods)",
                          keep, req.version_minor, &rec, nullptr);
      co_return finish(keep);
    }
    if (auto problem = forward_path_problem(route->rest); !problem.empty()) {
      co_await send_error(400, "tokfence_bad_path",
                          "request: path refused: it has " + std::string(problem) +
                              ", which could leave the provider's base path upstream",
                          keep, req.version_minor, &rec, nullptr);
      co_return finish(keep);
    }
    auto keys = s_.deps.keys->snapshot();
    auto key_it = keys->find(route->provider);
    if (key_it == keys->end() || key_it->second.empty()) {
      co_await send_error(401, "tokfence_no_key",
                          "vault: no key for provider '" + provider_name + "': run 'tokfence vault add " +
                              provider_name + " -'",
                          keep, req.version_minor, &rec, nullptr);
      co_return finish(keep);
    }

    ApiKind kind = classify(provider.spec.style, route->rest);
    RequestInfo info = inspect_request(kind, route->rest, body_, config().proxy.inject_stream_usage);
    rec.model = info.model;
    rec.streaming = info.streaming;

    // Metering (proxy/metering.hpp): one pricing snapshot from admission to settlement.
    auto pricing = s_.deps.pricing->snapshot();
    const auto& metering = config().metering(provider_name);
    AdmitRequest admit{provider_name, info.model, std::nullopt, 0};
    admit.method = rec.method;
    admit.path = std::string(route->rest.substr(0, route->rest.find('?')));
    admit.endpoint = endpoint_cost(kind, req.method, route->rest, metering.budget_allowed_paths);
    const Usage estimate = estimate_usage(info, metering.default_max_output_tokens);
    admit.estimated_tokens = estimate.total();
    std::optional<ModelPrice> request_price = price_for(*pricing, route->provider, info.model);
    if (admit.endpoint == EndpointCost::free) admit.estimated_cost = 0;
    else if (request_price) admit.estimated_cost = cost_of(*request_price, estimate);
    if (admit.endpoint == EndpointCost::tokens && s_.deps.controls->budget_applies(provider_name))
      admit.body_unreadable = !is_json_object(body_);
    auto decision = s_.deps.controls->admit(admit);
    if (auto* refusal = std::get_if<Refusal>(&decision)) {
      co_await send_error(refusal->status, refusal->type, refusal->message, keep, req.version_minor, &rec,
                          refusal->extra, refusal->retry_after_seconds);
      co_return finish(keep);
    }
    // Settled below; if this coroutine is left any other way, at the estimate.
    ReservationGuard reservation(*s_.deps.controls, std::get<Reservation>(decision), admit.estimated_cost);

    bool had_body = req.body != http1::BodyKind::none || !body_.empty();
    build_upstream_head(req, *route,
                        had_body ? std::optional<std::uint64_t>(body_.size()) : std::nullopt, provider.spec,
                        provider.url, key_it->second, up_head_);
    keys.reset();

    keep = co_await forward(provider, req.method == "HEAD", req.version_minor, keep, kind, rec, started);

    // The response's model (a dated snapshot) first, then the request's; see settle_cost() for
    // what a request costs when its usage is missing or cut.
    std::optional<ModelPrice> price;
    if (!response_model_.empty()) price = pricing->find(route->provider, response_model_);
    if (!price) price = request_price;
    const ExchangeEnd end = !request_sent_ ? ExchangeEnd::not_sent
                            : response_complete_ ? ExchangeEnd::complete
                                                 : ExchangeEnd::cut;
    const Settlement settled = settle_cost(price, admit.endpoint, rec.usage, estimate, end, upstream_status_);
    if (rec.model.empty()) rec.model = response_model_;
    response_model_.clear();
    rec.cost = settled.cost;
    rec.cost_source = std::string(to_string(settled.source));
    reservation.settle(settled.cost, settled.source == CostSource::estimate ? estimate.total() : rec.usage.total());
    co_return finish(keep);
  }

  // The exchange with the upstream, retried once on a fresh connection when a pooled one turns out
  // to be closed before any response byte.
  aio::Task<bool> forward(const Provider& provider, bool head, int client_minor, bool keep, ApiKind kind,
                          RequestRecord& rec, SteadyClock::time_point started) {
    ++exchange_;
    got_response_ = false;
    client_gone_ = false;
    in_exchange_ = true;
    Outcome outcome = Outcome::close;
    for (int attempt = 0; attempt < 2; ++attempt) {
      request_sent_ = response_complete_ = false;
      upstream_status_ = 0;
      ConnectOutcome connected{w_.pool->take_idle(provider.origin), {}};
      if (!connected.connection) connected = co_await w_.pool->connect(provider.url);
      if (client_gone_) {
        rec.error = "client disconnected before the upstream answered";
        if (connected.connection) w_.pool->release(std::move(connected.connection));
        outcome = Outcome::close;
        break;
      }
      if (!connected.connection) {
        co_await send_error(connected.failure.status, connected.failure.type, connected.failure.message, keep,
                            client_minor, &rec, nullptr);
        outcome = keep ? Outcome::keep : Outcome::close;
        break;
      }
      std::unique_ptr<UpstreamConnection> conn = std::move(connected.connection);
      upstream_ = conn.get();
      bool reusable = false;
      if (conn->is_tls())
        outcome = co_await exchange(conn->tls(), *conn, head, client_minor, keep, kind, rec, started, reusable);
      else
        outcome = co_await exchange(conn->plain(), *conn, head, client_minor, keep, kind, rec, started, reusable);
      upstream_ = nullptr;
      if (reusable && !client_gone_)
        w_.pool->release(std::move(conn));
      else
        conn->close();
      if (outcome != Outcome::retry) break;
      if (attempt == 1) {
        co_await send_error(502, "tokfence_upstream_error",
                            "upstream: " + provider.url.origin() + " closed the connection before responding", keep,
                            client_minor, &rec, nullptr);
        outcome = keep ? Outcome::keep : Outcome::close;
      }
    }
    wipe_upstream_head();
    in_exchange_ = false;
    if (watching_) {
      error_code ec;
      stream_.cancel(ec);  // ends the watcher
    }
    co_return outcome == Outcome::keep && !client_gone_;
  }

  // Fires when the client sends something or goes away while its request is in flight. A peek of
  // 0 bytes is a disconnect: the upstream connection is closed, which cancels the upstream
  // request. Started by the sweeper for requests in flight for a second or more, not for every
  // request: a wait on the socket costs an epoll_ctl each time, and a quick reply needs no watch
  // (a client gone mid-stream is also found by the next write failing).
  void watch_client() {
    watching_ = true;
    stream_.async_wait(net::socket_base::wait_read,
                       [self = this->shared_from_this(), exchange = exchange_](error_code ec) {
                         self->watching_ = false;
                         if (ec || !self->in_exchange_ || self->exchange_ != exchange) return;
                         self->watched_exchange_ = exchange;  // whatever it found, once is enough
                         char byte;
                         ssize_t n = ::recv(self->stream_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
                         if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return;  // pipelined
                         self->client_gone_ = true;
                         if (self->upstream_) self->upstream_->close();
                       });
  }

  // Writes the head of the client's response (from the upstream's) to out_; returns whether the
  // proxy chunk-encodes the body itself (a body delimited by the upstream closing, to an HTTP/1.1
  // client) and updates `keep` (an HTTP/1.0 client of a body without length: close to end it).
  bool build_client_head(const http1::ResponseHead& res, int client_minor, bool& keep, std::string_view request_id) {
    out_.clear();
    append_status_line(out_, client_minor, res.status, res.reason);
    append_client_response_headers(res, out_);
    out_.append("X-Tokfence-Request-Id: ").append(request_id).append("\r\n");
    bool encode = false;
    if (res.body == http1::BodyKind::chunked || res.body == http1::BodyKind::until_close) {
      if (client_minor >= 1) {
        out_.append("Transfer-Encoding: chunked\r\n");
        encode = res.body == http1::BodyKind::until_close;
      } else {
        keep = false;
      }
    }
    keep = keep && !s_.stopping;
    append_connection(out_, client_minor, keep);
    out_.append("\r\n");
    return encode;
  }

  template <class Up>
  aio::Task<Outcome> exchange(Up& up, UpstreamConnection& conn, bool head, int client_minor, bool keep,
                              ApiKind kind, RequestRecord& rec, SteadyClock::time_point started,
                              bool& reusable) {
    error_code ec;
    auto idle = idle_timeout();
    {
      // Head and body in one gather write; at once on a plain connection when the kernel takes
      // it all (TLS records are written by the TLS stream, asynchronously).
      Gather request;
      request.add(net::buffer(up_head_.data(), up_head_.size()));
      request.add(net::buffer(body_));
      bool written = false;
      if constexpr (std::is_same_v<Up, aio::TcpSocket>) written = request.write_now(up, ec);
      if (!written && !ec) {
        arm(idle);
        co_await net::async_write(up, request.sequence(), with_ec(ec));
        disarm(ec);
      }
    }
    request_sent_ = !ec;  // from here on the upstream may bill the request (metering)
    if (ec) {
      if (client_gone_) {
        rec.error = "client disconnected before the upstream answered";
        co_return Outcome::close;
      }
      bool timeout = ec == net::error::timed_out;
      if (conn.reused && !timeout) co_return Outcome::retry;
      co_await send_error(timeout ? 504 : 502, timeout ? "tokfence_upstream_timeout" : "tokfence_upstream_error",
                          "upstream: cannot send the request to " + conn.origin() + ": " + ec.message(), keep,
                          client_minor, &rec, nullptr);
      co_return keep ? Outcome::keep : Outcome::close;
    }

    // The response head; interim 1xx responses (100 Continue, 103 Early Hints) are skipped.
    http1::ReadBuffer& buf = conn.buffer;
    http1::ResponseHead& res = res_head_;
    const std::size_t head_limit = std::max<std::size_t>(config().daemon.max_header_bytes, 64 * 1024);
    bool got_some = false;
    for (;;) {
      auto parsed = buf.empty() ? http1::Parse::incomplete
                                : http1::parse_response_head(buf.data(), head ? "HEAD" : "GET", res);
      if (parsed == http1::Parse::complete) {
        if (res.status / 100 == 1 && res.status != 101) {
          buf.consume(res.size);
          continue;
        }
        break;
      }
      if (parsed == http1::Parse::error || buf.size() >= head_limit) {
        // Built before the co_await: GCC 12 destroys a temporary from a conditional expression
        // inside a co_await twice.
        std::string why = parsed == http1::Parse::error ? res.error : std::string("header too large");
        co_await send_error(502, "tokfence_upstream_error",
                            "upstream: " + conn.origin() + " sent a malformed response: " + why, keep, client_minor,
                            &rec, nullptr);
        co_return keep ? Outcome::keep : Outcome::close;
      }
      auto room = buf.prepare(4096);
      arm(idle);
      std::size_t n = co_await up.async_read_some(net::buffer(room.data(), room.size()), with_ec(ec));
      disarm(ec);
      if (ec) {
        if (client_gone_) {
          rec.error = "client disconnected before the upstream answered";
          co_return Outcome::close;
        }
        if (ec == net::error::timed_out) {
          co_await send_error(504, "tokfence_upstream_timeout",
                              "upstream: no response from " + conn.origin() + " within " +
                                  std::to_string(config().daemon.idle_timeout_seconds) + " s (idle_timeout_seconds)",
                              keep, client_minor, &rec, nullptr);
          co_return keep ? Outcome::keep : Outcome::close;
        }
        if (conn.reused && !got_some && buf.empty()) co_return Outcome::retry;
        co_await send_error(502, "tokfence_upstream_error",
                            "upstream: " + conn.origin() + " closed the connection before a complete response: " +
                                ec.message(),
                            keep, client_minor, &rec, nullptr);
        co_return keep ? Outcome::keep : Outcome::close;
      }
      got_some = true;
      buf.commit(n);
    }
    rec.ttfb_ms = ms_since(started);
    got_response_ = true;
    rec.status = res.status;
    upstream_status_ = res.status;

    const http1::BodyKind body_kind = res.body;
    bool event_stream = false;
    if (auto ct = res.find("content-type")) event_stream = istarts_with(ct->value, "text/event-stream");
    if (event_stream) rec.streaming = true;
    auto extractor = make_usage_extractor(kind, event_stream);
    const bool encode = build_client_head(res, client_minor, keep, rec.id);
    // Passed through as is to an HTTP/1.1 client (framing and all); decoded for an HTTP/1.0 one.
    const bool relay_chunks = body_kind == http1::BodyKind::chunked && client_minor >= 1;
    const bool upstream_keep = res.keep_alive;
    std::uint64_t remaining = res.content_length;
    buf.consume(res.size);  // res's views are not used past here

    // The client gets the head together with the first piece of body when that piece is already
    // here (read with the head: the usual case for JSON replies), so a small reply costs one
    // write. When only the head has come, it goes out at once: a stream's client sees the status
    // and headers before the first event, however long the model thinks. Body bytes go from the
    // upstream connection's buffer to the client without a copy.
    http1::ChunkedDecoder decoder;
    bool header_sent = false;
    bool body_done = body_kind == http1::BodyKind::none || (body_kind == http1::BodyKind::length && remaining == 0);
    bool clean = true;
    for (;;) {
      Gather pieces;
      if (!header_sent) pieces.add(net::buffer(out_));
      std::string_view avail = buf.data();
      std::size_t used = 0;
      switch (body_kind) {
        case http1::BodyKind::none:
          break;
        case http1::BodyKind::length: {
          used = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, avail.size()));
          remaining -= used;
          body_done = remaining == 0;
          if (used > 0) {
            extractor->feed(avail.substr(0, used));
            pieces.add(net::buffer(avail.data(), used));
          }
          break;
        }
        case http1::BodyKind::chunked: {
          dechunked_.clear();
          while (used < avail.size() && !decoder.done() && !decoder.failed()) {
            auto step = decoder.step(avail.substr(used));
            if (step.consumed == 0) break;
            used += step.consumed;
            if (!step.data.empty()) {
              extractor->feed(step.data);
              if (!relay_chunks) dechunked_.append(step.data);  // for an HTTP/1.0 client (rare)
            }
          }
          if (relay_chunks && used > 0) pieces.add(net::buffer(avail.data(), used));
          if (!dechunked_.empty()) pieces.add(net::buffer(dechunked_));
          body_done = decoder.done();
          break;
        }
        case http1::BodyKind::until_close: {
          used = avail.size();
          if (used > 0) {
            extractor->feed(avail);
            if (encode) {
              chunk_head_ = http1::chunk_header(used);
              pieces.add(net::buffer(chunk_head_));
              pieces.add(net::buffer(avail.data(), used));
              pieces.add(net::buffer("\r\n", 2));
            } else {
              pieces.add(net::buffer(avail.data(), used));
            }
          }
          break;
        }
      }
      if (body_done && encode) pieces.add(net::buffer(http1::last_chunk.data(), http1::last_chunk.size()));
      if (!header_sent && !caller_->resolved.load()) co_await await_caller();
      if (!pieces.empty()) {
        error_code wec;
        if (!pieces.write_now(stream_, wec) && !wec) {
          arm(idle);
          co_await net::async_write(stream_, pieces.sequence(), with_ec(wec));
          disarm(wec);
        }
        if (wec) {
          if (!header_sent) rec.status = 0;
          client_gone_ = true;
          rec.error = "client disconnected mid-response";
          clean = false;
          break;
        }
        header_sent = true;
      }
      buf.consume(used);
      if (decoder.failed()) {
        rec.error = "upstream sent a malformed chunked body: " + decoder.error() + "; stream cut";
        clean = false;
        break;
      }
      if (body_done) break;

      auto room = buf.prepare(4096);
      arm(idle);
      std::size_t n = co_await up.async_read_some(net::buffer(room.data(), room.size()), with_ec(ec));
      disarm(ec);
      buf.commit(n);
      if (ec) {
        if (body_kind == http1::BodyKind::until_close &&
            (ec == net::error::eof || ec == net::ssl::error::stream_truncated) && !client_gone_) {
          body_done = true;  // the upstream's close ends this body: send the end (last chunk)
          continue;
        }
        clean = false;
        if (client_gone_)
          rec.error = "client disconnected mid-response";
        else if (ec == net::error::timed_out)
          rec.error = "upstream: no data for " + std::to_string(config().daemon.idle_timeout_seconds) +
                      " s (idle_timeout_seconds); stream cut";
        else
          rec.error = "upstream reset mid-stream: " + ec.message();
        break;
      }
    }
    rec.usage = extractor->finish();
    response_model_ = extractor->response_model();
    response_complete_ = clean && body_done;
    rec.latency_ms = ms_since(started);
    reusable = clean && body_done && upstream_keep && body_kind != http1::BodyKind::until_close && buf.empty() &&
               res.status != 101;
    co_return clean && keep ? Outcome::keep : Outcome::close;
  }

  Impl& s_;
  Worker& w_;
  Stream stream_;
  http1::ReadBuffer in_;      // the client's bytes: heads are parsed in place
  http1::HeadScanner head_scanner_;  // how far in_ was looked at for the current head
  http1::RequestHead head_;   // the current request (views into in_)
  std::string body_;          // the current request's body
  std::string spill_;         // bytes read past a chunked request body
  std::string chunk_error_;
  WipingString up_head_;      // the upstream request's head (holds the key; wiped after use)
  http1::ResponseHead res_head_;
  std::string out_;           // the head of what goes to the client
  std::string chunk_head_;
  std::string dechunked_;
  std::string label_;
  std::shared_ptr<CallerSlot> caller_;
  std::string caller_override_;
  std::string response_model_;
  bool idle_ = true;
  bool kept_alive_ = false;           // a request was served: later heads wait keepalive_timeout_seconds
  std::uint64_t body_held_ = 0;       // bytes counted against max_inflight_body_bytes
  std::shared_ptr<void> connection_slot_;
  bool in_exchange_ = false;
  bool got_response_ = false;
  bool request_sent_ = false;       // the upstream got the whole request (metering: it may bill)
  bool response_complete_ = false;  // the response arrived and was relayed whole
  int upstream_status_ = 0;
  bool client_gone_ = false;
  bool reply_failed_ = false;
  std::uint64_t exchange_ = 0;
  UpstreamConnection* upstream_ = nullptr;
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  bool timed_out_ = false;
  bool watching_ = false;             // a watch_client() wait is pending
  std::uint64_t watched_exchange_ = 0;  // the exchange whose watch already fired
};

// Once a second: every session of this worker past its deadline has its waits cancelled.
void start_sweeper(Worker& worker) {
  worker.sweep_timer->expires_after(kSweepInterval);
  worker.sweep_timer->async_wait([&worker](error_code ec) {
    if (ec) return;  // cancelled at shutdown
    auto now = SteadyClock::now();
    // sweep() only cancels and starts waits; no session leaves the set during the loop.
    for (SessionBase* session : worker.sessions) session->sweep(now);
    start_sweeper(worker);
  });
}

}  // namespace

void Impl::record(RequestRecord rec, const std::shared_ptr<CallerSlot>& slot, std::string name) {
  if (slot->resolved.load()) {
    rec.caller_pid = slot->caller.pid;
    rec.caller_name = name.empty() ? slot->caller.name : std::move(name);
    deps.log->record(std::move(rec));
    return;
  }
  // Queued behind the connection's look-up on the identify thread.
  net::post(identify_pool, [this, rec = std::move(rec), slot, name = std::move(name)]() mutable {
    rec.caller_pid = slot->caller.pid;
    rec.caller_name = name.empty() ? slot->caller.name : std::move(name);
    deps.log->record(std::move(rec));
  });
}

// The worker with the fewest connections, `self` on a tie. Connections are spread by load, not by
// which thread woke first: a burst of connects (a client opening its pool) is otherwise accepted
// whole by one thread, which then serves all of them while the other cores idle. A tie keeps the
// connection on the accepting thread, so a lone client pays no hand-off.
Worker& Impl::least_loaded(Worker& self) {
  Worker* best = &self;
  int fewest = self.session_count.load(std::memory_order_relaxed);
  for (auto& w : workers) {
    int n = w->session_count.load(std::memory_order_relaxed);
    if (n < fewest) {
      best = w.get();
      fewest = n;
    }
  }
  return *best;
}

std::shared_ptr<void> Impl::take_connection(const std::shared_ptr<std::atomic<int>>& listener, std::string& why) {
  const int per_listener = deps.config.daemon.max_connections_per_listener;
  const int all = connections.fetch_add(1) + 1;
  const int here = listener->fetch_add(1) + 1;
  if (all > connection_cap || here > per_listener) {
    --connections;
    --*listener;
    why = all > connection_cap
              ? "daemon: too many client connections (" + std::to_string(connection_cap) +
                    ", [daemon] max_connections or what the descriptor limit allows): retry shortly"
              : "daemon: too many client connections on this listener ([daemon] max_connections_per_listener " +
                    std::to_string(per_listener) + "): retry shortly";
    return nullptr;
  }
  // The token's deleter gives the place back (when the session ends, on its worker's thread). It
  // points at the server only so that it is not null; nothing reads through it.
  return std::shared_ptr<void>(static_cast<void*>(this), [this, listener](void*) {
    --connections;
    --*listener;
  });
}

namespace {

// A connection over a cap gets a 503 it can read, then is closed. The answer goes out at once (a
// fresh connection's socket buffer takes it), the write side is shut, and what the client sent is
// read and dropped for a moment before the close: closing with unread bytes would reset the
// connection, and the client could lose the answer. At most kMaxRejecting at a time hold their
// descriptor that long; the rest are closed at once.
template <class Socket>
aio::Task<void> linger_and_close(Impl& server, Socket socket) {
  aio::Timer linger(socket.get_executor(), kRejectLinger);
  error_code ec;
  co_await linger.async_wait(with_ec(ec));
  char sink[4096];
  for (int i = 0; i < 16; ++i)
    if (socket.read_some(net::buffer(sink), ec) == 0 || ec) break;
  socket.close(ec);
  --server.rejecting;
}

template <class Socket>
void answer_overloaded(Impl& server, Worker& worker, Socket socket, std::string message) {
  error_code ec;
  if (server.rejecting.fetch_add(1) >= kMaxRejecting) {
    --server.rejecting;
    socket.close(ec);
    return;
  }
  const std::string body = error_body("tokfence_overloaded", message);
  std::string reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                      "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  char sink[4096];
  socket.read_some(net::buffer(sink), ec);  // a request already here, dropped unread
  net::write(socket, net::buffer(reply), ec);
  socket.shutdown(net::socket_base::shutdown_send, ec);
  net::co_spawn(worker.ioc, linger_and_close(server, std::move(socket)), net::detached);
}

}  // namespace

aio::Task<void> Impl::accept_tcp(Worker& acceptor_thread, aio::TcpAcceptor& acceptor) {
  for (;;) {
    error_code ec;
    // The socket is registered with the serving worker's io_context (Asio allows that from any
    // thread); the session starts there.
    Worker& worker = least_loaded(acceptor_thread);
    aio::TcpSocket socket = co_await acceptor.async_accept(worker.ioc, with_ec(ec));
    if (ec == net::error::operation_aborted || stopping) co_return;
    if (ec) {
      // EMFILE and friends: back off instead of spinning.
      aio::Timer t(acceptor_thread.ioc, std::chrono::milliseconds(100));
      co_await t.async_wait(with_ec(ec));
      continue;
    }
    set_cloexec(socket.native_handle());
    socket.set_option(tcp::no_delay(true), ec);
    socket.non_blocking(true, ec);  // for Gather::write_now
    std::string over_cap;
    auto connection_slot = take_connection(tcp_connections, over_cap);
    if (!connection_slot) {
      answer_overloaded(*this, worker, std::move(socket), std::move(over_cap));
      continue;
    }
    auto slot = std::make_shared<CallerSlot>();
    // The TCP listener has no file mode: the owner of the peer's socket (one sock_diag round
    // trip) must be the daemon's user, or every request of the connection is refused.
    auto owner = tcp_peer_owner(socket.native_handle());
    if (!owner || owner->uid != ::geteuid()) {
      slot->foreign_peer = true;
      if (owner) slot->peer_uid = owner->uid;
    } else if (deps.config.logging.identify_tcp_callers) {
      slot->resolved = false;
      net::post(identify_pool, [slot, inode = owner->inode] {
        if (auto c = find_socket_holder(inode)) slot->caller = *c;
        slot->resolved = true;
      });
    }
    ++worker.session_count;
    auto session = std::make_shared<Session<aio::TcpSocket>>(*this, worker, std::move(socket), "",
                                                                std::move(slot));
    session->hold(std::move(connection_slot));
    net::co_spawn(worker.ioc, Session<aio::TcpSocket>::start(std::move(session)), net::detached);
  }
}

aio::Task<void> Impl::accept_unix(std::shared_ptr<UnixListener> listener) {
  for (;;) {
    error_code ec;
    Worker& worker = pick_worker();
    aio::UnixSocket socket = co_await listener->acceptor->async_accept(worker.ioc, with_ec(ec));
    if (ec == net::error::operation_aborted || stopping || !listener->acceptor->is_open()) co_return;
    if (ec) {
      aio::Timer t(acceptor_worker().ioc, std::chrono::milliseconds(100));
      co_await t.async_wait(with_ec(ec));
      continue;
    }
    set_cloexec(socket.native_handle());
    socket.non_blocking(true, ec);  // for Gather::write_now
    std::string over_cap;
    auto connection_slot = take_connection(listener->connections, over_cap);
    if (!connection_slot) {
      answer_overloaded(*this, worker, std::move(socket), std::move(over_cap));
      continue;
    }
    auto slot = std::make_shared<CallerSlot>();
    if (auto cred = peer_credentials(socket.native_handle())) slot->caller = Caller{cred->pid, process_name(cred->pid)};
    ++worker.session_count;
    auto session = std::make_shared<Session<aio::UnixSocket>>(*this, worker, std::move(socket),
                                                         listener->info.caller, std::move(slot));
    session->hold(std::move(connection_slot));
    net::co_spawn(worker.ioc, Session<aio::UnixSocket>::start(std::move(session)), net::detached);
  }
}

Result<std::unique_ptr<ProxyServer>> ProxyServer::create(ServerDeps deps) {
  auto impl = std::make_unique<Impl>();
  impl->deps = std::move(deps);
  for (const auto& spec : impl->deps.config.providers()) {
    auto url = parse_upstream_url(spec.upstream);
    if (!url) return fail("provider '" + spec.name + "': " + url.error().message);
    // Also checked when config.toml is read; here for every other way a spec gets in.
    if (auto problem = insecure_upstream_problem(spec); !problem.empty())
      return fail("provider '" + spec.name + "': " + problem);
    impl->providers.emplace(spec.name, Provider{spec, *url, url->origin()});
  }
  impl->provider_list = provider_names(impl->deps.config.providers());
  // Every client connection may hold an upstream one too: the cap leaves room for both, and for
  // kReservedDescriptors more, within the descriptor limit (raised to its maximum at start).
  impl->connection_cap = impl->deps.config.daemon.max_connections;
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    const auto fitting = (static_cast<std::int64_t>(files.rlim_cur) - kReservedDescriptors) / 2;
    impl->connection_cap = static_cast<int>(std::clamp<std::int64_t>(fitting, 1, impl->connection_cap));
  }
  impl->tls = make_client_tls_context();
  // 0 (the default): one thread per core the daemon may run on, like nginx's worker_processes auto;
  // capped at 16, past which a local proxy gains nothing but idle threads.
  int threads = impl->deps.config.daemon.io_threads;
  if (threads <= 0) {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    int usable = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus)
                                                                   : static_cast<int>(std::thread::hardware_concurrency());
    threads = std::clamp(usable, 1, 16);
  }
  threads = std::clamp(threads, 1, 64);
  for (int i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->pool = std::make_unique<UpstreamPool>(w->ioc, impl->tls,
                                             std::chrono::seconds(impl->deps.config.daemon.connect_timeout_seconds));
    w->guard.emplace(w->ioc.get_executor());
    impl->workers.push_back(std::move(w));
  }
  return std::unique_ptr<ProxyServer>(new ProxyServer(std::move(impl)));
}

ProxyServer::ProxyServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ProxyServer::~ProxyServer() {
  if (impl_ && impl_->started) shutdown(std::chrono::seconds(0));
}

Result<int> ProxyServer::listen_tcp(const std::string& host, int port) {
  error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) return fail("daemon: host is not an IP address: " + host + " (set [daemon] host, e.g. 127.0.0.1)");
  auto acceptor = std::make_unique<aio::TcpAcceptor>(impl_->acceptor_worker().ioc);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(1024, ec);
  if (ec)
    return fail("daemon: cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message() +
                (ec == net::error::address_in_use ? " (another process uses the port: set [daemon] port)" : ""));
  set_cloexec(acceptor->native_handle());
  int actual = acceptor->local_endpoint().port();
  impl_->tcp_names = tcp_listener_names(host, static_cast<std::uint16_t>(actual));
  const int listening_fd = acceptor->native_handle();
  impl_->tcp_acceptors.push_back(std::move(acceptor));
  for (std::size_t i = 1; i < impl_->workers.size(); ++i) {
    int fd = ::fcntl(listening_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return fail("daemon: cannot share the listening socket between threads: " + std::string(std::strerror(errno)));
    auto shared = std::make_unique<aio::TcpAcceptor>(impl_->workers[i]->ioc);
    shared->assign(endpoint.protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      return fail("daemon: cannot share the listening socket between threads: " + ec.message());
    }
    impl_->tcp_acceptors.push_back(std::move(shared));
  }
  for (std::size_t i = 0; i < impl_->workers.size(); ++i)
    net::co_spawn(impl_->workers[i]->ioc, impl_->accept_tcp(*impl_->workers[i], *impl_->tcp_acceptors[i]), net::detached);
  return actual;
}

Result<void> ProxyServer::listen_unix(const ProxySocketInfo& socket) {
  std::lock_guard lock(impl_->listeners_mutex);
  if (impl_->stopping) return fail("daemon: shutting down");
  if (impl_->unix_listeners.count(socket.path)) return fail("socket: already open: " + socket.path);
  auto fd = bind_unix_listener(socket.path, static_cast<mode_t>(socket.mode));
  if (!fd) return std::unexpected(fd.error());
  auto listener = std::make_shared<UnixListener>();
  listener->info = socket;
  listener->acceptor = std::make_unique<aio::UnixAcceptor>(impl_->acceptor_worker().ioc);
  error_code ec;
  listener->acceptor->assign(unix_proto(), *fd, ec);
  if (ec) {
    ::close(*fd);
    remove_socket_file(socket.path);
    return fail("socket: cannot use listener: " + socket.path + ": " + ec.message());
  }
  impl_->unix_listeners[socket.path] = listener;
  net::co_spawn(impl_->acceptor_worker().ioc, impl_->accept_unix(listener), net::detached);
  return {};
}

Result<void> ProxyServer::close_unix(const std::string& path) {
  std::shared_ptr<UnixListener> listener;
  {
    std::lock_guard lock(impl_->listeners_mutex);
    auto it = impl_->unix_listeners.find(path);
    if (it == impl_->unix_listeners.end()) return fail("socket: no proxy socket open at: " + path);
    listener = it->second;
    impl_->unix_listeners.erase(it);
  }
  remove_socket_file(path);
  net::post(impl_->acceptor_worker().ioc, [listener] {
    error_code ec;
    listener->acceptor->close(ec);
  });
  return {};
}

std::vector<ProxySocketInfo> ProxyServer::unix_sockets() const {
  std::lock_guard lock(impl_->listeners_mutex);
  std::vector<ProxySocketInfo> out;
  for (const auto& [path, l] : impl_->unix_listeners) out.push_back(l->info);
  return out;
}

void ProxyServer::start() {
  if (impl_->started) return;
  impl_->started = true;
  for (auto& w : impl_->workers) {
    Worker* worker = w.get();
    worker->sweep_timer.emplace(worker->ioc);
    start_sweeper(*worker);
    worker->thread = std::thread([worker] {
      for (;;) {
        try {
          worker->ioc.run();
          break;
        } catch (...) {
          // A handler must never take the daemon down; keep serving.
        }
      }
    });
  }
}

void ProxyServer::shutdown(std::chrono::seconds grace) {
  auto& s = *impl_;
  if (!s.started) return;
  s.started = false;
  s.stopping = true;
  std::vector<std::shared_ptr<UnixListener>> listeners;
  {
    std::lock_guard lock(s.listeners_mutex);
    for (auto& [path, l] : s.unix_listeners) listeners.push_back(l);
    s.unix_listeners.clear();
  }
  for (auto& l : listeners) remove_socket_file(l->info.path);
  net::post(s.acceptor_worker().ioc, [listeners] {
    error_code ec;
    for (auto& l : listeners) l->acceptor->close(ec);
  });
  for (std::size_t i = 0; i < s.tcp_acceptors.size(); ++i) {
    net::post(s.workers[i]->ioc, [acceptor = s.tcp_acceptors[i].get()] {
      error_code ec;
      acceptor->close(ec);
    });
  }
  auto live = [&s] {
    int n = 0;
    for (auto& w : s.workers) n += w->session_count.load();
    return n;
  };
  auto for_each_session = [&s](auto fn) {
    for (auto& w : s.workers) {
      Worker* worker = w.get();
      net::post(worker->ioc, [worker, fn] {
        for (auto* session : std::vector<SessionBase*>(worker->sessions.begin(), worker->sessions.end())) fn(session);
      });
    }
  };
  for_each_session([](SessionBase* session) { session->close_if_idle(); });
  auto deadline = SteadyClock::now() + grace;
  while (live() > 0 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    // Connections that finished a request since are idle now.
    for_each_session([](SessionBase* session) { session->close_if_idle(); });
  }
  if (live() > 0) {
    for_each_session([](SessionBase* session) { session->force_close(); });
    auto cut_deadline = SteadyClock::now() + std::chrono::seconds(5);
    while (live() > 0 && SteadyClock::now() < cut_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : s.workers) {
    Worker* worker = w.get();
    net::post(worker->ioc, [worker] {
      worker->pool->clear();
      worker->sweep_timer->cancel();
    });
    worker->guard.reset();
  }
  for (auto& w : s.workers) {
    // Sessions are gone; what remains are cancelled timers and closed sockets draining.
    auto stop_at = SteadyClock::now() + std::chrono::seconds(2);
    while (!w->ioc.stopped() && SteadyClock::now() < stop_at) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    w->ioc.stop();
    if (w->thread.joinable()) w->thread.join();
  }
  s.identify_pool.join();
}

}  // namespace tokfence::proxy
