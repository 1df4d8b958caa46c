#include "proxy/http/server.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <cstring>
#include <exception>
#include <iostream>
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
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>

#include "proxy/egress/address.hpp"
#include "proxy/egress/client_hello.hpp"
#include "proxy/egress/policy.hpp"
#include "proxy/http/admission.hpp"
#include "proxy/http/asio_types.hpp"
#include "proxy/http/caller_lookup.hpp"
#include "core/file.hpp"
#include "core/loopback_listen.hpp"
#include "core/http_status.hpp"
#include "core/splice.hpp"
#include "core/peer.hpp"
#include "core/text_format.hpp"
#include "core/time.hpp"
#include "proxy/http/http1.hpp"
#include "proxy/http/inspect.hpp"
#include "proxy/http/relay.hpp"
#include "proxy/metering/billing.hpp"
#include "proxy/http/routing.hpp"
#include "core/unix_socket.hpp"
#include "proxy/http/upstream.hpp"
#include "proxy/immune/encoded.hpp"
#include "proxy/immune/sessions.hpp"
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

// TCP connections of other local users, refused at accept (Impl::accept_tcp), counted for the
// daemon's log: one line a minute at most, saying how many were refused since the previous line
// and from which uids. A line (or a request-log row) per connection would let another user fill
// the user's disk and bury the rows that matter.
class ForeignRefusals {
 public:
  // Counts one refusal (`uid` nullopt: the owner could not be found); the line to log when due.
  std::optional<std::string> note(std::optional<unsigned> uid, SteadyClock::time_point now) {
    std::lock_guard lock(mutex_);
    ++total_;
    const std::int64_t key = uid ? static_cast<std::int64_t>(*uid) : -1;
    if (auto it = by_uid_.find(key); it != by_uid_.end()) ++it->second;
    else if (by_uid_.size() < kNamedUids) by_uid_.emplace(key, 1);
    if (logged_ && now - last_line_ < std::chrono::minutes(1)) return std::nullopt;
    std::string line = "proxy: refused " + std::to_string(total_) + " TCP connection(s) of other local users (";
    for (auto it = by_uid_.begin(); it != by_uid_.end(); ++it) {
      line += it == by_uid_.begin() ? "" : ", ";
      line += it->first < 0 ? std::string("unknown owner") : "uid " + std::to_string(it->first);
      line += ": " + std::to_string(it->second);
    }
    line += ") at accept, unread and without request-log rows: the proxy serves only uid " +
            std::to_string(::geteuid()) + "'s processes (at most one such line a minute)";
    logged_ = true;
    last_line_ = now;
    total_ = 0;
    by_uid_.clear();
    return line;
  }

 private:
  static constexpr std::size_t kNamedUids = 8;  // uids named in one line; the total counts every one
  std::mutex mutex_;
  bool logged_ = false;
  SteadyClock::time_point last_line_{};
  std::uint64_t total_ = 0;
  std::map<std::int64_t, std::uint64_t> by_uid_;
};

struct UnixListener {
  ProxySocketInfo info;
  std::unique_ptr<aio::UnixAcceptor> acceptor;
  std::shared_ptr<std::atomic<int>> connections = std::make_shared<std::atomic<int>>(0);  // open on it now
  std::shared_ptr<egress::LivePolicy> policy;  // labeled listeners only: the forward proxy's policy
};

}  // namespace

struct ProxyServer::Impl {
  ServerDeps deps;
  std::map<std::string, Provider, std::less<>> providers;
  std::string provider_list;
  std::shared_ptr<net::ssl::context> tls;
  // For the upstreams of inspected egress: the system's trust plus [egress] extra_ca_file.
  std::shared_ptr<net::ssl::context> egress_tls;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<std::size_t> next_worker{0};
  std::atomic<bool> stopping{false};
  // The loopback TCP connections' callers, looked up in batches on one thread (caller_lookup.hpp).
  CallerLookup callers{[this](RequestRecord rec) { deps.log->record(std::move(rec)); }};
  // One acceptor per worker, each on its own dup() of the listening socket: a connection is
  // accepted by the thread that will serve it, with no hand-off between threads (a wake-up of
  // the other thread per connection, on the latency path). Not SO_REUSEPORT: that would let any
  // process of the same user join the port and take a share of the agents' connections.
  // With the IPv6 twin ([::1]:<port>, see listen_tcp) there are two listening sockets, each with
  // an acceptor per worker.
  struct TcpAcceptorSlot {
    std::size_t worker;
    std::unique_ptr<aio::TcpAcceptor> acceptor;
  };
  std::vector<TcpAcceptorSlot> tcp_acceptors;
  bool tcp_twin = false;  // [::1]:<port> is listened on too
  mutable std::mutex listeners_mutex;
  std::map<std::string, std::shared_ptr<UnixListener>> unix_listeners;
  ListenerNames tcp_names;  // the Host names of the TCP listener (set by listen_tcp)
  std::vector<std::uint16_t> own_ports;  // the daemon's other TCP listeners' (add_own_port, before start)
  egress::Settings egress_settings;  // [egress] of config.toml, checked
  // getaddrinfo for the forward proxy runs here, never on an I/O thread (it blocks).
  std::unique_ptr<net::thread_pool> resolvers = std::make_unique<net::thread_pool>(2);
  bool started = false;
  // Limits against clients that hold memory and descriptors (docs/PROXY.md, "Limits").
  std::atomic<int> connections{0};  // client connections open, all listeners
  std::atomic<int> rejecting{0};    // connections over a cap being answered 503
  std::atomic<int> refusing_foreign{0};  // other users' TCP connections being answered 403
  ForeignRefusals foreign_refusals;
  std::atomic<std::uint64_t> inflight_body_bytes{0};
  // For /metrics (ProxyServer::activity): touched with relaxed increments only.
  std::atomic<int> active_streams{0};
  std::atomic<std::uint64_t> egress_allowed{0}, egress_denied{0};
  // Bytes of inspected answers held for checking, all connections (kWatchedBytesTotal).
  std::atomic<std::uint64_t> watched_bytes{0};
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

// A step of a request's exchange with the upstream either lets the next one run, or ends the
// exchange with `outcome` (the client has had its error answer by then, when one was due).
struct Step {
  bool next = false;
  Outcome outcome = Outcome::close;
};

// What an exchange with the upstream returns: whether the client connection stays open, whether
// the upstream connection may go back to the pool, and what metering needs (settle_cost).
struct ExchangeResult {
  Outcome outcome = Outcome::close;
  bool reusable = false;
  ExchangeEnd end = ExchangeEnd::not_sent;  // sent (the upstream may bill it), and relayed whole
  int upstream_status = 0;                  // 0: no response head came
  std::string response_model;               // the model the response names (a dated snapshot), or ""
};

// Headers some of the proxy's own replies carry besides the usual ones.
struct ReplyHeaders {
  std::optional<int> retry_after;  // Retry-After, in seconds (429, 503)
  std::string_view allow;          // Allow (405): the methods the provider forwards
  std::string_view egress_rule;    // X-Tokfence-Egress: the rule that refused a forward-proxy request
};

// What a request is expected to cost, worked out before it is admitted (billing.hpp).
struct CostEstimate {
  AdmitRequest admit;               // with the estimated tokens and cost
  Usage usage;                      // the estimated tokens
  std::optional<ModelPrice> price;  // the request's model's price, when known
  std::int64_t min_tool_calls = 0;  // RequestInfo::min_tool_calls: paid calls billed whatever the answer says
  bool names_other_models = false;  // a fallback list (RequestInfo::other_models): another may answer
};

// Prices a request from what its exchange returned, puts the cost in its row and settles its
// reservation. The response's model (a dated snapshot) is priced first, then the request's;
// settle_cost() says what a request costs when its usage is missing or cut.
// Returns whether another model than the one asked for answered (rec.model then names it).
bool settle_request(ReservationGuard& reservation, const ExchangeResult& result, const CostEstimate& estimate,
                    const PricingTable& pricing, std::string_view provider, RequestRecord& rec) {
  std::optional<ModelPrice> price;
  if (!result.response_model.empty()) price = pricing.find(provider, result.response_model);
  // Another model answered (a gateway's fallback list, a router: review 15a O1): the row names the
  // model that was used and billed. Names the price table takes for one model are one model
  // (an alias and its snapshot: claude-sonnet-4-0 answered by claude-sonnet-4-20250514, review
  // 15e E2). When the table does not know the model that answered and the request named others it
  // may be answered by, it is charged the dearer of the model asked for and [pricing] fallback (or
  // the dearest price known), never the cheaper.
  const bool another = answered_by_another_model(rec.model, result.response_model) &&
                       !(price && estimate.price && *price == *estimate.price);
  if (rec.usage.found) rec.usage.tool_calls = std::max(rec.usage.tool_calls, estimate.min_tool_calls);
  if (!price && another && estimate.names_other_models) {
    price = pricing.fallback() ? pricing.fallback() : pricing.dearest();
    if (price && estimate.price && estimate.price->output > price->output) price = estimate.price;
  }
  if (!price) price = estimate.price;
  const Settlement settled =
      settle_cost(price, estimate.admit.endpoint, rec.usage, estimate.usage, result.end, result.upstream_status);
  if (another) {
    if (rec.error.empty()) rec.error = "answered by model '" + result.response_model + "', not '" + rec.model + "' as asked";
    rec.model = result.response_model;
  }
  if (rec.model.empty()) rec.model = result.response_model;
  rec.cost = settled.cost;
  rec.cost_source = std::string(to_string(settled.source));
  reservation.settle(settled.cost, settled.source == CostSource::estimate ? estimate.usage.total() : rec.usage.total());
  return another;
}

// An exception's message, for the daemon's log and the request's row.
std::string exception_text(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// A line for the daemon's log (ServerDeps::warn, else stderr, where the daemon's log goes).
void log_warning(const ServerDeps& deps, const std::string& text) {
  std::string line = printable(text);
  truncate_for_log(line, 1024);
  if (deps.warn) return deps.warn(line);
  std::cerr << utc_rfc3339(unix_ms()) + " tokfence: " + line + "\n" << std::flush;
}

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Impl& server, Worker& worker, Stream stream, std::string label, std::shared_ptr<CallerSlot> caller,
          std::shared_ptr<egress::LivePolicy> policy = nullptr, std::string bound_session = {})
      : s_(server),
        w_(worker),
        stream_(std::move(stream)),
        label_(std::move(label)),
        caller_(std::move(caller)),
        policy_(std::move(policy)),
        bound_session_(std::move(bound_session)) {}
  ~Session() override { wipe_upstream_head(); }

  static aio::Task<void> start(std::shared_ptr<Session> self) { co_await self->run(); }

  void close_if_idle() override {
    if (idle_) {
      error_code ec;
      stream_.cancel(ec);
    }
    // A tunnel may stay open for hours (a chat channel's long poll or websocket): not waited for.
    if (tunnel_) cut_tunnel("the daemon is stopping");
  }
  void force_close() override {
    error_code ec;
    stream_.shutdown(net::socket_base::shutdown_both, ec);
    stream_.close(ec);
    if (in_flight_.upstream) in_flight_.upstream->close();
    if (egress_up_) egress_up_->close(ec);
  }
  void sweep(SteadyClock::time_point now) override {
    if (egress_up_) [[unlikely]] {
      // A forward-proxy connection: the kill switch cuts it; a tunnel quiet both ways for
      // idle_timeout_seconds ends.
      if (s_.deps.controls->killed()) cut_tunnel("cut by the kill switch");
      else if (egress_session_ && (egress_session_->ended() || egress_session_->state() >= immune::RiskState::orange))
        cut_tunnel("cut: session '" + egress_session_->name + "' ended or turned " +
                   std::string(immune::to_string(egress_session_->state())));
      else if (tunnel_ && now - tunnel_->last_activity > idle_timeout()) cut_tunnel("idle for idle_timeout_seconds");
    }
    if (in_flight_.active && !in_flight_.watching && in_flight_.watched != in_flight_.exchange) watch_client();
    // ImmuneFence: a revoked, ended or RED session's stream in flight is cut within a second.
    if (entry_ && in_flight_.active && !session_cut_ && in_flight_.upstream && immune::Registry::recheck(*entry_, unix_ms())) {
      session_cut_ = true;
      error_code ec;
      in_flight_.upstream->tcp().cancel(ec);
    }
    if (now < deadline_) return;
    deadline_ = SteadyClock::time_point::max();
    timed_out_ = true;
    error_code ec;
    stream_.cancel(ec);
    if (in_flight_.upstream) in_flight_.upstream->tcp().cancel(ec);
    if (egress_up_) egress_up_->cancel(ec);
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

  // A response that takes a while (a stream between two events) no longer needs what only its
  // request needed, and a thousand open streams would each hold it: a response has begun, so the
  // request is never sent again (no retry). The upstream head (it holds the key) is wiped now
  // rather than when the stream ends, the body is freed and no longer counted against
  // max_inflight_body_bytes, and the client's read buffer goes back to the thread's spares unless
  // bytes of a next (pipelined) request follow this one in it. head_'s views pointed into that
  // buffer: they are cleared, and nothing reads them until the next head is parsed.
  void release_request() {
    wipe_upstream_head();
    std::string().swap(body_);
    release_body_bytes();
    if (spill_.empty()) std::string().swap(spill_);
    if (in_.size() == request_bytes_) {
      in_.consume(request_bytes_);
      in_.release();
      request_bytes_ = 0;
      head_.headers.clear();
      head_.method = head_.target = {};
    }
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
    // Polled, 250 us at first, backing off to 2 ms: thousands of connections of a burst may wait
    // at once, and each poll is a timer and a resumption.
    auto poll = std::chrono::microseconds(250);
    while (!caller_->resolved.load() && SteadyClock::now() < give_up) {
      timer.expires_after(poll);
      error_code ec;
      co_await timer.async_wait(with_ec(ec));
      if (ec) break;  // the daemon is stopping
      poll = std::min<std::chrono::microseconds>(poll * 2, std::chrono::milliseconds(2));
    }
    // Still running: the caller stays "unknown (look-up timed out)", and the connection's rows
    // are written without waiting for it.
    s_.callers.give_up(caller_);
  }

  aio::Task<void> run() {
    auto self = this->shared_from_this();
    w_.sessions.insert(this);
    try {
      co_await serve();
    } catch (...) {
      // Nothing on the data path should throw; if something does, only this connection ends. A
      // request being served has been logged and recorded by handle(); this is the rest (reading
      // a head or a body, answering a refusal).
      log_warning(s_.deps, "connection ended by an unexpected exception: " + exception_text(std::current_exception()));
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
      // not a coroutine of its own: a frame allocation per request.
      HeadRead got = HeadRead::closed;
      for (;;) {
        if (auto known = scan_head()) {
          got = *known;
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
      if (got != HeadRead::ok) {
        Denial refused = read_refusal(got, false);
        co_await refuse(refused.status, refused.type, std::move(refused.message), nullptr);
        break;
      }
      // A forward-proxy request (CONNECT, or an absolute-form target): one test on the request
      // line, which a model request (origin form, "/...") never passes. An absolute-form request
      // to the proxy's own name is a model request (OpenClaw's proxy mode sends those); anything
      // else is egress, under the listener's policy, and ends the connection. The peer's uid was
      // checked at accept (another user's connection never gets here); in a forward-proxy request
      // Host names the destination, so admit()'s Host and Origin checks below are for model requests.
      if (head_.target.front() != '/') [[unlikely]] {
        if (!absolute_form_to_self()) {
          co_await forward_proxy();
          break;
        }
      }
      // Who may use the keys (admission.hpp): right after the head, before the body is read and
      // before anything else (the health check included); the connection is closed.
      if (auto denied = admit(head_)) {
        co_await refuse(denied->status, denied->type, std::move(denied->message), &head_);
        break;
      }
      std::size_t taken = head_.size;  // the bytes of in_ this request used
      bool keep = co_await handle(taken);
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

  // Whether in_ holds a whole request head (then parsed into head_) or one that cannot be
  // served; nullopt while more bytes are needed. The scanner looks at each new byte once and says
  // when a parse can tell more than "incomplete".
  std::optional<HeadRead> scan_head() {
    const std::size_t header_limit = config().daemon.max_header_bytes;
    if (!in_.empty() && head_scanner_.scan(in_.data())) {
      auto parsed = http1::parse_request_head(in_.data(), head_);
      if (parsed == http1::Parse::complete) return head_.size > header_limit ? HeadRead::too_large : HeadRead::ok;
      if (parsed == http1::Parse::error) return HeadRead::malformed;
    }
    if (in_.size() >= header_limit) return HeadRead::too_large;
    return std::nullopt;
  }

  // The answer to a request whose head (`in_body` false) or body could not be read whole: `got`
  // is too_large, malformed or overloaded.
  Denial read_refusal(HeadRead got, bool in_body) const {
    if (got == HeadRead::too_large && !in_body)
      return {431, "tokfence_header_too_large",
              "request: header larger than max_header_bytes (" + std::to_string(config().daemon.max_header_bytes) + ")"};
    if (got == HeadRead::too_large) return {413, "tokfence_body_too_large", body_limit_message()};
    if (got == HeadRead::malformed && !in_body)
      return {400, "tokfence_bad_request", "request: malformed HTTP: " + head_.error};
    if (got == HeadRead::malformed) return {400, "tokfence_bad_request", "request: malformed HTTP body: " + chunk_error_};
    return {503, "tokfence_overloaded", inflight_limit_message()};
  }

  // One request, from the end of its head to its log row: the body, then its steps (route_request,
  // admit_and_forward, Exchange). Returns whether the client connection stays open; `taken` grows
  // by the bytes of in_ the request used. Nothing on the data path should throw; if something
  // does, the request ends as an internal error (answer_failure) and still gets its row, and a
  // budget reservation it held has been settled by its guard on the way out.
  aio::Task<bool> handle(std::size_t& taken) {
    const auto started = SteadyClock::now();
    HeadRead got = HeadRead::ok;
    if (head_.body == http1::BodyKind::length && head_.content_length > config().daemon.max_body_bytes)
      got = HeadRead::too_large;  // the declared length alone is over the limit: refused unread
    if (got == HeadRead::ok && head_.expect_continue && head_.version_minor >= 1 &&
        in_.size() - head_.size < (head_.body == http1::BodyKind::length ? head_.content_length : 1)) {
      static const std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      error_code ec;
      arm(idle_timeout());
      co_await net::async_write(stream_, net::buffer(cont), with_ec(ec));
      disarm(ec);
      if (ec) co_return false;
    }
    // The body goes to body_; head_'s views stay valid because in_ is not read into again until
    // this request is done. Bytes past the body (a pipelined request) stay in in_, or are put back
    // there from spill_. The whole body must arrive within body_timeout_seconds, however it
    // trickles in.
    body_.clear();
    const auto body_deadline = coarse_now() + std::chrono::seconds(config().daemon.body_timeout_seconds);
    if (got == HeadRead::ok && head_.body == http1::BodyKind::length) {
      got = take_buffered_body(taken);
      if (got == HeadRead::ok && body_.size() < head_.content_length) got = co_await read_body_rest(body_deadline);
    } else if (got == HeadRead::ok && head_.body == http1::BodyKind::chunked) {
      got = co_await read_chunked_body(taken, body_deadline);
    }
    if (got == HeadRead::closed) co_return false;  // the client went away mid-body, or stalled
    if (got != HeadRead::ok) {
      Denial refused = read_refusal(got, true);
      co_await refuse(refused.status, refused.type, std::move(refused.message), &head_);
      co_return false;
    }

    // Metered, scoped and forwarded as the upstream will read it (routing.hpp).
    if (auto normal = path_escapes_normalized(head_.target)) {
      normalized_target_ = std::move(*normal);
      head_.target = normalized_target_;
    }
    RequestRecord rec;
    rec.ts_ms = unix_ms();
    rec.id = new_request_id(rec.ts_ms);
    rec.method = std::string(head_.method);
    rec.path = std::string(head_.target.substr(0, head_.target.find('?')));
    take_caller_override(head_);
    response_begun_ = false;
    bool keep = head_.keep_alive && !s_.stopping;
    if (rec.path == "/__tokfence/health") {
      const bool sent = co_await send_reply(200, head_.version_minor, keep, rec.id, R"({"status":"ok"})" "\n");
      co_return keep && sent;
    }
    if (auto refused = check_capability(rec)) {
      co_await send_error(refused->status, refused->type, refused->message, keep, head_.version_minor, &rec, nullptr);
      rec.latency_ms = ms_since(started);
      s_.record(std::move(rec), caller_, label_.empty() ? caller_override_ : label_);
      caller_override_.clear();
      co_return keep;
    }
    request_bytes_ = taken;  // final: the body has been read
    std::exception_ptr failure;
    try {
      auto routed = route_request(rec);
      if (auto* to = std::get_if<Routed>(&routed)) {
        keep = co_await admit_and_forward(rec, started, keep, *to);
      } else {
        const Denial& refused = std::get<Denial>(routed);
        const ReplyHeaders allow{std::nullopt, refused.allow, {}};
        co_await send_error(refused.status, refused.type, refused.message, keep, head_.version_minor, &rec, nullptr,
                            allow);
      }
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      try {
        keep = co_await answer_failure(failure, rec);
      } catch (...) {
        keep = false;  // the row below is written all the same
      }
    }
    rec.latency_ms = ms_since(started);
    s_.record(std::move(rec), caller_, label_.empty() ? caller_override_ : label_);
    caller_override_.clear();
    co_return keep;
  }

  // The part of a Content-Length body that came with the head (taken from in_: `taken` grows by
  // it), counted against max_inflight_body_bytes.
  HeadRead take_buffered_body(std::size_t& taken) {
    auto here = std::min<std::uint64_t>(head_.content_length, in_.size() - head_.size);
    if (!hold_body_bytes(here)) return HeadRead::overloaded;
    body_.assign(in_.data().substr(head_.size, here));
    taken += here;
    return HeadRead::ok;
  }

  // The rest of a Content-Length body. The buffer grows as bytes arrive, never to the declared
  // length up front: a head alone (Content-Length: 64 MiB, then silence) must not cost the daemon
  // 64 MiB.
  aio::Task<HeadRead> read_body_rest(SteadyClock::time_point deadline) {
    error_code ec;
    while (body_.size() < head_.content_length) {
      const std::size_t window =
          static_cast<std::size_t>(std::min<std::uint64_t>(head_.content_length - body_.size(), kBodyReadWindow));
      if (!hold_body_bytes(window)) co_return HeadRead::overloaded;
      const std::size_t old = body_.size();
      body_.resize(old + window);
      arm_until(deadline);
      co_await net::async_read(stream_, net::buffer(body_.data() + old, window), with_ec(ec));
      disarm(ec);
      if (ec) co_return HeadRead::closed;  // the client went away mid-body, or stalled past a deadline
    }
    co_return HeadRead::ok;
  }

  // An exception escaped the request's steps. The daemon's log gets it with the request id, the
  // row an error, and the client a 500 if no response to it had begun (else the cut response ends
  // it). The connection is closed: what state the exchange left it in is unknown.
  aio::Task<bool> answer_failure(const std::exception_ptr& failure, RequestRecord& rec) {
    const std::string what = exception_text(failure);
    log_warning(s_.deps, "request " + rec.id + ": unexpected exception: " + what);
    rec.error = "proxy: internal error: " + what;
    if (!response_begun_)
      co_await send_error(500, "tokfence_internal_error",
                          "proxy: internal error (request " + rec.id + "): see the daemon's log", false,
                          head_.version_minor, &rec, nullptr);
    co_return false;
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
      // No X-Tokfence-Caller: a refused request does not name its row's caller (a page or a
      // malformed client would put a name of its choosing in the user's caller statistics).
    }
    co_await send_error(status, type, message, false, minor, &rec, nullptr);
    s_.record(std::move(rec), caller_, label_.empty() ? caller_override_ : label_);
  }

  // The request's Host, Origin and preflight (admission.hpp); the peer's uid was checked at accept.
  std::optional<Denial> admit(const http1::RequestHead& head) const {
    const ListenerNames& names = std::is_same_v<Stream, aio::TcpSocket> ? s_.tcp_names : unix_listener_names();
    return admit_request(head, names, config().daemon.allowed_origins);
  }

  // ---- ImmuneFence (docs/IMMUNEFENCE.md) ------------------------------------------------------

  // The capability token the request carries: the first of X-Tokfence-Capability, Authorization
  // (Bearer), x-api-key, x-goog-api-key and api-key whose value is one (every real client sends
  // its API key in one of them). Another, different token beside it is a refusal: which of two
  // credentials counts must not depend on the order a header parser reads them.
  std::variant<std::string_view, Denial> capability_in_request() const {
    static constexpr std::string_view kFields[] = {"x-tokfence-capability", "authorization", "x-api-key",
                                                   "x-goog-api-key", "api-key"};
    std::string_view found;
    for (const auto& h : head_.headers) {
      if (!(header_roles(h.name) & header_role::credential)) continue;  // one lookup for most fields
      bool named = false;
      for (auto f : kFields) named = named || header_names_equal(h.name, f);
      if (!named) continue;
      std::string_view v = h.value;
      if (v.size() > 7 && iequals(v.substr(0, 7), "bearer ")) v.remove_prefix(7);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (!immune::looks_like_token(v)) continue;
      if (!found.empty() && v != found)
        return Denial{403, "tokfence_capability", "capability: two different tokens in one request: send one"};
      found = v;
    }
    return found;
  }

  // Verifies the capability before anything about the request is routed: nullopt = admitted
  // (entry_ names the session, null when none was needed), else the refusal.
  std::optional<Denial> check_capability(RequestRecord& rec) {
    entry_.reset();
    session_cut_ = false;
    scan_.reset();
    immune::Registry* registry = s_.deps.immune.get();
    if (!registry) return std::nullopt;
    auto token = capability_in_request();
    if (auto* denied = std::get_if<Denial>(&token)) return std::move(*denied);
    const std::string_view presented = std::get<std::string_view>(token);
    const std::int64_t now = unix_ms();
    if (!presented.empty() && last_entry_ && presented == last_token_) {
      if (auto refused = immune::Registry::recheck(*last_entry_, now)) {
        rec.session = last_entry_->session->name;
        return Denial{refused->status, refused->type, std::move(refused->message)};
      }
      entry_ = last_entry_;
    } else {
      auto verdict = registry->authorize(presented, bound_session_, registry->settings().require_token, now);
      if (auto* refused = std::get_if<immune::Refusal>(&verdict))
        return Denial{refused->status, refused->type, std::move(refused->message)};
      entry_ = std::move(std::get<std::shared_ptr<immune::TokenEntry>>(verdict));
      last_token_.assign(presented);
      last_entry_ = entry_;
    }
    if (entry_) rec.session = entry_->session->name;
    return std::nullopt;
  }

  // The session's own rules for a routed request (scope, ORANGE's read-only routes, its rate; its
  // budget is session_hold's) and the outbound-secret sensors on what the request would send; nullopt = go on.
  std::optional<Denial> immune_checks(RequestRecord& rec, std::string_view rest, const RequestInfo& info) {
    immune::Registry* registry = s_.deps.immune.get();
    if (!registry) return std::nullopt;
    const auto& settings = registry->settings();
    const std::int64_t now = unix_ms();
    immune::Session* session = entry_ ? entry_->session.get() : nullptr;
    if (session) {
      const std::string_view path = rest.substr(0, rest.find('?'));
      if (auto refused = registry->check_scope(*session, rec.provider, rec.model, head_.method, path, rec.id, now))
        return Denial{refused->status, refused->type, std::move(refused->message)};
      // A gateway answers with the first of these that works: each must be in scope as well
      // (an unreadable list counts as a model the proxy cannot read).
      for (const auto& other : info.other_models)
        if (auto refused = registry->check_scope(*session, rec.provider, other, head_.method, path, rec.id, now))
          return Denial{refused->status, refused->type, std::move(refused->message)};
      if (info.other_models_unreadable)
        if (auto refused = registry->check_scope(*session, rec.provider, "", head_.method, path, rec.id, now))
          return Denial{refused->status, refused->type, std::move(refused->message)};
      if (session->state() == immune::RiskState::orange && head_.method != "GET" && head_.method != "HEAD")
        return Denial{403, "tokfence_risk_orange",
                      "immunefence: session '" + session->name + "' is ORANGE: only read-like requests (GET) pass until "
                      "'tokfence session reset " + session->name + "'"};
      if (!session->take_rate(now, settings))
        return Denial{429, "tokfence_session_rate_limited",
                      "immunefence: session '" + session->name + "' is over its requests per minute" +
                          std::string(session->state() >= immune::RiskState::yellow ? " (halved: it is YELLOW)" : "")};
    }
    auto scan = registry->scanner();
    if (!scan->empty()) {
      // A compressed body would be scanned (and metered) as noise: refused while there is
      // anything to look for. Every field counts: behind "identity" a second field "gzip" is
      // forwarded too, and the upstream reads the list "identity, gzip" and inflates.
      if (const ContentCoding ce = content_coding(head_); ce.encoded || ce.fields > 1)
        return Denial{415, "tokfence_encoded_body",
                      "request: Content-Encoding bodies are refused: tokfence reads request bodies (metering, "
                      "ImmuneFence's secret scan); send it uncompressed"};
      auto hit = scan_request(scan->scanner);
      if (!hit && settings.sensor_honeytoken && session) {
        // A decoy variable (an environment dump in a tool's output, say): suspicious, not proof;
        // the request goes on (the value is worthless), the session turns YELLOW.
        if (auto env_hit = scan_request(scan->env_scanner))
          registry->observe(*session, immune::Sensor::decoy_env, rec.id, "request carried " + registry->describe_hit(*env_hit), now);
      }
      if (hit) {
        const bool decoy = hit->kind == immune::NeedleKind::decoy;
        if (decoy ? settings.sensor_honeytoken : settings.sensor_secret_outbound) {
          const std::string what = registry->describe_hit(*hit);
          if (session)
            registry->observe(*session, decoy ? immune::Sensor::honeytoken : immune::Sensor::secret_outbound, rec.id,
                              "request carried " + what, now);
          return Denial{403, decoy ? "tokfence_honeytoken" : "tokfence_secret_outbound",
                        "immunefence: request refused: it carries " + what +
                            (session ? "; session '" + session->name + "' is RED" : std::string())};
        }
      }
      // The response is scanned as it streams, never held back: a vault key an upstream echoes is
      // cut whatever the sensors say (it must not reach the agent); a decoy the model repeats is
      // the honeytoken sensor's (immune_after).
      scan_ = std::move(scan);
      response_scan_ = immune::StreamScan();
      response_text_scan_ = immune::StreamScan();
      response_unescaped_scan_ = immune::StreamScan();
      response_env_scan_ = immune::StreamScan();
      response_hit_.reset();
      response_env_hit_.reset();
    }
    return std::nullopt;
  }

  // What the request would send upstream, scanned for decoys and vault keys: the target, the
  // headers and the body. A client's own credentials (a credential header, a key= query parameter)
  // are stripped and never forwarded, so a vault key there is no leak (a user whose SDK still holds
  // the real key is served as before); a decoy there still is a sign it was read.
  std::optional<immune::Hit> scan_request(const immune::SecretScanner& scanner) const {
    auto counts = [](const std::optional<immune::Hit>& hit, bool stripped) {
      return hit && !(stripped && hit->kind == immune::NeedleKind::vault_key);
    };
    if (auto hit = scanner.find(head_.target)) {
      const std::string_view target = head_.target;
      const auto q = target.find('?');
      if (q == std::string_view::npos || hit->kind == immune::NeedleKind::decoy) return hit;
      if (auto path_hit = scanner.find(target.substr(0, q))) return path_hit;
      if (auto query_hit = scanner.find(strip_query_credentials(target.substr(q + 1)))) return query_hit;
    }
    if (head_.target.find('%') != std::string_view::npos)
      if (auto hit = scanner.find(percent_decoded(head_.target)); counts(hit, true)) return hit;
    // Encoded forms (encoded.hpp) are looked for where they would be forwarded: not in credential
    // fields (stripped here; they hold the session token, itself a long base64 run, on every
    // request) and not in the path (routing's, which the model never reads), only in the query.
    for (const auto& h : head_.headers) {
      const bool stripped = is_credential_header(h.name);
      if (auto hit = scanner.find(h.name)) return hit;
      if (auto hit = scanner.find(h.value); counts(hit, stripped)) return hit;
      if (stripped) continue;
      if (auto hit = immune::find_encoded(scanner, h.value)) return hit;
    }
    if (const auto q = head_.target.find('?'); q != std::string_view::npos)
      if (auto hit = immune::find_encoded(scanner, strip_query_credentials(head_.target.substr(q + 1)))) return hit;
    if (auto hit = scanner.find(body_)) return hit;
    // A JSON string may spell any character as \uXXXX (the provider decodes it, so the model
    // reads the secret): a body with escapes is scanned once more, unescaped. Base64 and hex
    // (encoded.hpp) are read in whichever of the two holds the plain text.
    if (body_.find("\\u") != std::string::npos || body_.find("\\/") != std::string::npos) {
      const std::string unescaped = json_unescaped(body_);
      if (auto hit = scanner.find(unescaped)) return hit;
      return immune::find_encoded(scanner, unescaped);
    }
    return immune::find_encoded(scanner, body_);
  }

  // After the exchange: a decoy seen in the response.
  void immune_after(RequestRecord& rec) {
    immune::Registry* registry = s_.deps.immune.get();
    if (!registry || !entry_) return;
    immune::Session& session = *entry_->session;
    if (response_hit_ && response_hit_->kind == immune::NeedleKind::vault_key)
      log_warning(s_.deps, "request " + rec.id + ": the upstream's response carried " + registry->describe_hit(*response_hit_) +
                               ": cut before it reached the client");
    else if (!registry->settings().sensor_honeytoken) {
      // sensors without "honeytoken": a decoy in the answer is not looked for
    } else if (response_hit_)
      registry->observe(session, immune::Sensor::honeytoken, rec.id,
                        "response carried " + registry->describe_hit(*response_hit_), unix_ms());
    else if (response_env_hit_)
      registry->observe(session, immune::Sensor::decoy_env, rec.id,
                        "response carried " + registry->describe_hit(*response_env_hit_), unix_ms());
    scan_.reset();
    response_hit_.reset();
    response_env_hit_.reset();
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

  // "HTTP/1.x NNN Reason\r\n" for the client's version, with the status's standard reason phrase.
  static void append_status_line(std::string& out, int client_minor, int status) {
    out.append(client_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
    char code[4] = {static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
                    static_cast<char>('0' + status % 10), ' '};
    out.append(code, 4);
    out.append(tokfence::reason_phrase(status));
    out.append("\r\n");
  }

  // Connection handling for the client: close said when closing; keep-alive said to HTTP/1.0.
  static void append_connection(std::string& out, int client_minor, bool keep) {
    if (!keep)
      out.append("Connection: close\r\n");
    else if (client_minor == 0)
      out.append("Connection: keep-alive\r\n");
  }

  // A complete small reply of the proxy's own: JSON body, Content-Length, one write. Returns
  // whether it was written.
  aio::Task<bool> send_reply(int status, int client_minor, bool keep, std::string_view request_id,
                             std::string_view body, ReplyHeaders headers = {}) {
    out_.clear();
    append_status_line(out_, client_minor, status);
    out_.append("Content-Type: application/json\r\n");
    if (!request_id.empty()) out_.append("X-Tokfence-Request-Id: ").append(request_id).append("\r\n");
    if (headers.retry_after) out_.append("Retry-After: ").append(std::to_string(*headers.retry_after)).append("\r\n");
    if (!headers.allow.empty()) out_.append("Allow: ").append(headers.allow).append("\r\n");
    if (!headers.egress_rule.empty()) out_.append("X-Tokfence-Egress: ").append(headers.egress_rule).append("\r\n");
    out_.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    append_connection(out_, client_minor, keep && !s_.stopping);
    out_.append("\r\n");
    if (!caller_->resolved.load()) co_await await_caller();
    Gather pieces;
    pieces.add(net::buffer(out_));
    pieces.add(net::buffer(body.data(), body.size()));
    response_begun_ = true;
    error_code ec;
    if (!pieces.write_now(stream_, ec) && !ec) ec = co_await write_rest(pieces, std::chrono::seconds(30));
    co_return !ec;
  }

  // What write_now() left of `pieces`, written asynchronously within `timeout`.
  aio::Task<error_code> write_rest(Gather& pieces, std::chrono::seconds timeout) {
    error_code ec;
    arm(timeout);
    co_await net::async_write(stream_, pieces.sequence(), with_ec(ec));
    disarm(ec);
    co_return ec;
  }

  aio::Task<void> send_error(int status, std::string_view type, std::string_view message, bool keep,
                             int client_minor, RequestRecord* rec, const nlohmann::json& extra,
                             ReplyHeaders headers = {}) {
    if (rec) {
      rec->status = status;
      if (rec->error.empty()) rec->error = std::string(message);
    }
    std::string_view request_id = rec ? std::string_view(rec->id) : std::string_view();
    std::string body = error_body(type, message, extra);
    co_await send_reply(status, client_minor, keep, request_id, body, headers);
  }

  // Where a routed request goes: its target, its provider, and the keys snapshot holding its key.
  struct Routed {
    RouteTarget route;
    const Provider* provider = nullptr;
    std::shared_ptr<const KeyStore::Map> keys;
  };

  // Routes the request and checks it against its provider (method, path, key): the refusal to
  // answer, or where the request goes. Not a coroutine: a frame allocation per request.
  std::variant<Denial, Routed> route_request(RequestRecord& rec) const {
    auto route = split_target(head_.target);
    if (!route || route->provider.starts_with("__"))
      return Denial{404, "tokfence_not_found",
                    "route: requests go to /<provider>/<path>: known providers: " + s_.provider_list};
    rec.provider = std::string(route->provider);
    const std::string& provider_name = rec.provider;  // for messages (route's fields are views)
    auto provider_it = s_.providers.find(route->provider);
    if (provider_it == s_.providers.end())
      return Denial{404, "tokfence_unknown_provider",
                    "provider: unknown: '" + provider_name + "': known providers: " + s_.provider_list +
                        " (add one with 'tokfence provider set " + provider_name + " <upstream-url>')"};
    const Provider& provider = provider_it->second;
    if (auto denied = method_denial(head_.method, provider_name, provider.spec)) return std::move(*denied);
    if (auto problem = forward_path_problem(route->rest); !problem.empty())
      return Denial{400, "tokfence_bad_path",
                    "request: path refused: it has " + std::string(problem) +
                        ", which could leave the provider's base path upstream"};
    auto keys = s_.deps.keys->snapshot();
    auto key_it = keys->find(route->provider);
    if (key_it == keys->end() || key_it->second.empty())
      return Denial{401, "tokfence_no_key",
                    "vault: no key for provider '" + provider_name + "': run 'tokfence vault add " + provider_name +
                        " -'"};
    return Routed{*route, &provider, std::move(keys)};
  }


  // A JSON body tokfence cannot read as the upstream may (routing.hpp: json_body_problem): refused
  // before it is inspected, so neither the secret scan nor the metering (model, include_usage
  // forced on a stream) is skipped by a byte-order mark or UTF-16. The endpoints metered by kind
  // take JSON whatever Content-Type says (some gateways parse any body); the others when it says
  // JSON or nothing (multipart uploads may hold any byte). A compressed body is no JSON text: its
  // Content-Encoding decides (immune_checks).
  std::optional<Denial> json_body_denial(ApiKind kind) const {
    if (body_.empty() || (kind == ApiKind::other && !declares_json_body(head_))) return std::nullopt;
    if (content_coding(head_).encoded) return std::nullopt;
    std::string problem(json_body_problem(body_));
    if (problem.empty()) problem = json_charset_problem(head_);
    if (problem.empty()) return std::nullopt;
    return Denial{400, "tokfence_bad_request",
                  "request: JSON body refused: " + problem +
                      "; tokfence reads request bodies as UTF-8 (metering, ImmuneFence's secret scan)"};
  }

  // Admits the request against the controls (kill, revoke, rate limits, budgets: controls.hpp)
  // and forwards it. Its reservation is settled with what the exchange says the request cost, or,
  // if this is left any other way (an exception, the coroutine destroyed at shutdown), at the
  // estimate by its guard.
  aio::Task<bool> admit_and_forward(RequestRecord& rec, SteadyClock::time_point started, bool keep, Routed& to) {
    const http1::RequestHead& req = head_;
    const RouteTarget& route = to.route;
    const Provider& provider = *to.provider;
    auto keys = std::move(to.keys);
    const ApiKind kind = classify(provider.spec.style, route.rest);
    if (auto refused = json_body_denial(kind)) {
      co_await send_error(refused->status, refused->type, refused->message, keep, req.version_minor, &rec, nullptr);
      co_return keep;
    }
    // Every metered request to a Google-style provider (its OpenAI-compatible endpoint too: the
    // same front end applies its system parameters there, review 15e E12).
    if (provider.spec.style == ApiStyle::gemini && kind != ApiKind::other) {
      if (auto hiding = google_usage_hiding(req, route.query); !hiding.empty()) {
        co_await send_error(400, "tokfence_usage_hidden",
                            "request: refused: " + hiding + "; every request is metered by the usage in its answer",
                            keep, req.version_minor, &rec, nullptr);
        co_return keep;
      }
    }
    RequestInfo info = inspect_request(kind, route.rest, body_, config().proxy.inject_stream_usage);
    // Google routes by the path's model, whatever the body names (usage.hpp: path_model).
    if (auto named = path_model(provider.spec.style, route.rest); !named.empty()) info.model = std::move(named);
    rec.model = info.model;
    rec.streaming = info.streaming;
    if (auto refused = immune_checks(rec, route.rest, info)) {
      co_await send_error(refused->status, refused->type, refused->message, keep, req.version_minor, &rec, nullptr);
      co_return keep;
    }
    auto pricing = s_.deps.pricing->snapshot();  // one table from admission to settlement
    const CostEstimate estimate = estimate_cost(rec, route, kind, info, *pricing);
    std::optional<immune::BudgetHold> session_hold =
        immune::BudgetHold::take(entry_ ? entry_->session : nullptr, estimate.admit.estimated_cost.value_or(0), unix_ms());
    if (!session_hold) {
      co_await send_error(402, "tokfence_session_budget",
                          "immunefence: session '" + entry_->session->name +
                              "' has no room in its daily budget for this request (spent, or held by requests in flight)",
                          keep, req.version_minor, &rec, nullptr);
      co_return keep;
    }
    auto admitted = admit_guarded(*s_.deps.controls, estimate.admit);
    if (auto* refusal = std::get_if<Refusal>(&admitted)) {
      session_hold->release();
      const ReplyHeaders retry{refusal->retry_after_seconds, {}, {}};
      co_await send_error(refusal->status, refusal->type, refusal->message, keep, req.version_minor, &rec,
                          refusal->extra, retry);
      co_return keep;
    }
    ReservationGuard& reservation = std::get<ReservationGuard>(admitted);
    if (estimate.admit.estimated_cost) {
      // What the guard charges if the request ends unexpectedly; replaced when it is settled.
      rec.cost = estimate.admit.estimated_cost;
      rec.cost_source = std::string(to_string(CostSource::estimate));
    }
    const bool had_body = req.body != http1::BodyKind::none || !body_.empty();
    build_upstream_head(req, route, had_body ? std::optional<std::uint64_t>(body_.size()) : std::nullopt,
                        provider.spec, provider.url, keys->find(route.provider)->second, up_head_);
    keys.reset();
    ExchangeResult result;
    {
      // A streamed request counts as an active stream while its exchange runs (the destructor
      // also runs when the coroutine is destroyed at shutdown).
      struct StreamGauge {
        std::atomic<int>* count;
        explicit StreamGauge(std::atomic<int>* c) : count(c) {
          if (count) count->fetch_add(1, std::memory_order_relaxed);
        }
        ~StreamGauge() {
          if (count) count->fetch_sub(1, std::memory_order_relaxed);
        }
        StreamGauge(const StreamGauge&) = delete;
        StreamGauge& operator=(const StreamGauge&) = delete;
      } stream_gauge(rec.streaming ? &s_.active_streams : nullptr);
      Exchange exchange(*this, provider, kind, rec, started, keep);
      result = co_await exchange.run();
    }
    const bool another = settle_request(reservation, result, estimate, *pricing, rec.provider, rec);  // route's views may be gone
    session_hold->settle(rec.cost.value_or(0));
    // A model outside the session's scope answered: the scope sensor sees it, as if it was asked.
    if (another && entry_ && s_.deps.immune) {
      std::string_view rest = rec.path;  // "/<provider>/...": the scope's endpoints match what follows
      rest.remove_prefix(std::min(rest.size(), 1 + rec.provider.size()));
      s_.deps.immune->check_scope(*entry_->session, rec.provider, rec.model, rec.method, rest, rec.id, unix_ms());
    }
    immune_after(rec);
    co_return result.outcome == Outcome::keep;
  }

  // The request as admission sees it, with its estimated tokens and cost (billing.hpp).
  CostEstimate estimate_cost(const RequestRecord& rec, const RouteTarget& route, ApiKind kind,
                             const RequestInfo& info, const PricingTable& pricing) const {
    const auto& metering = config().metering(rec.provider);
    CostEstimate e;
    e.admit.provider = rec.provider;
    e.admit.model = info.model;
    e.admit.method = rec.method;
    e.admit.path = std::string(route.rest.substr(0, route.rest.find('?')));
    e.admit.endpoint = endpoint_cost(kind, head_.method, route.rest, metering.budget_allowed_paths);
    e.admit.usage_comes_later = info.background;
    e.usage = estimate_usage(info, metering.default_max_output_tokens);
    e.min_tool_calls = info.min_tool_calls;
    e.names_other_models = !info.other_models.empty() || info.other_models_unreadable;
    e.admit.estimated_tokens = e.usage.total();
    e.price = price_for(pricing, route.provider, info.model);
    if (e.admit.endpoint == EndpointCost::free)
      e.admit.estimated_cost = 0;
    else if (e.price)
      e.admit.estimated_cost = cost_of(*e.price, e.usage);
    e.admit.session_budget = entry_ && entry_->session->limits.budget_daily_pico > 0;
    if (e.admit.endpoint == EndpointCost::tokens && (e.admit.session_budget || s_.deps.controls->budget_applies(rec.provider)))
      e.admit.body_unreadable = !is_json_object(body_);
    return e;
  }

  class Exchange;  // one request's exchange with the upstream (below)

  // ---- The forward proxy (docs/EGRESS.md): forward_proxy.hpp, inspected_tunnel.hpp ------------

  class EgressExchange;  // one forward-proxy request: checked, resolved, connected
  struct Tunnel;         // the two directions of a forward-proxy connection, counted
  class Inspection;      // an inspected CONNECT's steps
  bool absolute_form_to_self();
  aio::Task<void> forward_proxy();
  void cut_tunnel(std::string why);
  template <class From, class To>
  static aio::Task<error_code> pump(From& from, To& to, std::uint64_t& count, Tunnel& tunnel);
  template <class From, class To>
  static aio::Task<error_code> splice_until_end(From& from, To& to, SplicePipe& pipe, std::uint64_t& count,
                                                Tunnel& tunnel);
  aio::Task<void> run_tunnel(aio::TcpSocket& up, std::string first, EgressRecord& rec,
                             egress::ClientFlightWatch* watch = nullptr);
  aio::Task<error_code> watch_client_flight(aio::TcpSocket& up, Tunnel& tunnel, egress::ClientFlightWatch& watch);
  static std::string refuse_watched(EgressRecord& rec, const egress::ClientFlightWatch& watch);

  // The request in flight as the sweeper and the client watch see it (watch_client). Set up and
  // torn down by the Exchange; touched on this session's thread only.
  struct InFlight {
    std::uint64_t exchange = 0;              // counts exchanges: a watch belongs to one
    bool active = false;                     // an exchange is running
    bool client_gone = false;                // found gone by the watch, or by a failed write
    bool watching = false;                   // a watch_client() wait is pending
    std::uint64_t watched = 0;               // the exchange whose watch already fired
    UpstreamConnection* upstream = nullptr;  // the exchange's connection, closed when the client goes
  };

  // Fires when the client sends something or goes away while its request is in flight. A peek of
  // 0 bytes is a disconnect: the upstream connection is closed, which cancels the upstream
  // request. Started by the sweeper for requests in flight for a second or more, not for every
  // request: a wait on the socket costs an epoll_ctl each time, and a quick reply needs no watch
  // (a client gone mid-stream is also found by the next write failing).
  void watch_client() {
    in_flight_.watching = true;
    stream_.async_wait(net::socket_base::wait_read,
                       [self = this->shared_from_this(), exchange = in_flight_.exchange](error_code ec) {
                         InFlight& f = self->in_flight_;
                         f.watching = false;
                         if (ec || !f.active || f.exchange != exchange) return;
                         f.watched = exchange;  // whatever it found, once is enough
                         char byte;
                         ssize_t n = ::recv(self->stream_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
                         if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return;  // pipelined
                         f.client_gone = true;
                         if (f.upstream) f.upstream->close();
                       });
  }

  // Writes the head of the client's response (from the upstream's) to out_; returns whether the
  // proxy chunk-encodes the body itself (a body delimited by the upstream closing, to an HTTP/1.1
  // client) and updates `keep` (an HTTP/1.0 client of a body without length: close to end it).
  bool build_client_head(const http1::ResponseHead& res, int client_minor, bool& keep, std::string_view request_id) {
    out_.clear();
    // The upstream's reason phrase is not relayed: it means nothing (RFC 9110 section 15), and a
    // hostile upstream could write the key there, which the response scan does not read.
    append_status_line(out_, client_minor, res.status);
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

  Impl& s_;
  Worker& w_;
  Stream stream_;
  http1::ReadBuffer in_;      // the client's bytes: heads are parsed in place
  http1::HeadScanner head_scanner_;  // how far in_ was looked at for the current head
  http1::RequestHead head_;   // the current request (views into in_)
  std::size_t request_bytes_ = 0;  // bytes of in_ the current request used (set once its body is read)
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
  std::shared_ptr<egress::LivePolicy> policy_;  // null: no forward proxy here (the main listeners)
  // ImmuneFence (docs/IMMUNEFENCE.md): the session this socket belongs to ("" = a main listener),
  // and the token the connection's last request was admitted with, so that a keep-alive
  // connection pays for the signature and the hash once, then two atomic loads a request.
  std::string bound_session_;
  std::string last_token_;
  std::shared_ptr<immune::TokenEntry> last_entry_;
  std::shared_ptr<immune::TokenEntry> entry_;          // the current request's session (null: none)
  std::string normalized_target_;  // head_.target when path_escapes_normalized changed it
  std::shared_ptr<const immune::ScanSet> scan_;        // the current request's response scan
  immune::StreamScan response_scan_;
  immune::StreamScan response_text_scan_;       // over the generated text (Exchange::generated_)
  immune::StreamScan response_unescaped_scan_;  // over pieces with JSON escapes, unescaped
  std::optional<immune::Hit> response_hit_;
  immune::StreamScan response_env_scan_;
  std::optional<immune::Hit> response_env_hit_;
  bool session_cut_ = false;  // sweep() cut the exchange: its session was revoked or turned RED
  std::shared_ptr<immune::Session> egress_session_;  // a forward-proxy connection's session (sweep cuts it)
  aio::TcpSocket* egress_up_ = nullptr;         // a forward-proxy connection's destination socket
  Tunnel* tunnel_ = nullptr;                    // while a forward-proxy connection relays
  std::string caller_override_;
  bool idle_ = true;
  bool kept_alive_ = false;           // a request was served: later heads wait keepalive_timeout_seconds
  bool response_begun_ = false;       // bytes of the current request's response went to the client
  std::uint64_t body_held_ = 0;       // bytes counted against max_inflight_body_bytes
  std::shared_ptr<void> connection_slot_;
  InFlight in_flight_;
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  bool timed_out_ = false;
};

// The forward proxy's part of Session (egress: CONNECT and absolute-form requests), in files of
// its own; they are parts of this file, read here, inside this anonymous namespace.
#include "proxy/http/forward_proxy.hpp"
#include "proxy/http/inspected_tunnel.hpp"

// One request's exchange with the upstream: a connection from the pool (or a new one), then
// send_request, read_response_head and relay_body, retried once on a fresh connection when a
// pooled one turns out to be closed before any response byte. It lives for one request on the
// session's thread, answers the client's errors itself, and returns what happened; while it runs,
// the sweeper may watch the client (Session::InFlight).
template <class Stream>
class Session<Stream>::Exchange {
 public:
  Exchange(Session& session, const Provider& provider, ApiKind kind, RequestRecord& rec,
           SteadyClock::time_point started, bool keep)
      : session_(session),
        provider_(provider),
        kind_(kind),
        rec_(rec),
        started_(started),
        keep_(keep),
        client_minor_(session.head_.version_minor),
        head_request_(session.head_.method == "HEAD") {
    InFlight& f = session_.in_flight_;
    ++f.exchange;
    f.client_gone = false;
    f.active = true;
  }
  // Whichever way the exchange ends: the upstream request's head (it holds the key) is wiped, and
  // a pending client watch is ended.
  ~Exchange() {
    session_.wipe_upstream_head();
    InFlight& f = session_.in_flight_;
    f.active = false;
    f.upstream = nullptr;
    if (f.watching) {
      error_code ec;
      session_.stream_.cancel(ec);
    }
  }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Up to two tries, each on a pooled connection to the upstream when there is one, else a new
  // one; the second only when the first's pooled connection turned out to be closed before any
  // response byte. One coroutine for both: a frame allocation per request.
  aio::Task<ExchangeResult> run() {
    UpstreamPool& pool = *session_.w_.pool;
    InFlight& f = session_.in_flight_;
    ExchangeResult result;
    for (int attempt = 0; attempt < 2; ++attempt) {
      result = ExchangeResult{};
      ConnectOutcome connected{pool.take_idle(provider_.origin), {}};
      if (!connected.connection) connected = co_await pool.connect(provider_.url);
      if (f.client_gone) {
        rec_.error = "client disconnected before the upstream answered";
        if (connected.connection) pool.release(std::move(connected.connection));
        break;
      }
      if (!connected.connection) {
        const ConnectFailure& failed = connected.failure;
        result.outcome = co_await fail(failed.status, failed.type, failed.message);
        break;
      }
      std::unique_ptr<UpstreamConnection> conn = std::move(connected.connection);
      f.upstream = conn.get();
      if (conn->is_tls())
        result = co_await over(conn->tls(), *conn);
      else
        result = co_await over(conn->plain(), *conn);
      f.upstream = nullptr;
      if (result.reusable && !f.client_gone)
        pool.release(std::move(conn));
      else
        conn->close();
      if (result.outcome != Outcome::retry) break;
      if (attempt == 1)
        result.outcome = co_await fail(502, "tokfence_upstream_error",
                                       "upstream: " + provider_.url.origin() + " closed the connection before responding");
    }
    if (f.client_gone) result.outcome = Outcome::close;
    co_return result;
  }

 private:
  // The exchange over one connection.
  template <class Up>
  aio::Task<ExchangeResult> over(Up& up, UpstreamConnection& conn) {
    ExchangeResult result;
    Step step = co_await send_request(up, conn);
    if (!step.next) {
      result.outcome = step.outcome;
      co_return result;
    }
    result.end = ExchangeEnd::cut;  // sent: from here on the upstream may bill the request
    step = co_await read_response_head(up, conn);
    if (!step.next) {
      result.outcome = step.outcome;
      co_return result;
    }
    const http1::ResponseHead& res = session_.res_head_;
    rec_.ttfb_ms = ms_since(started_);
    rec_.status = result.upstream_status = res.status;
    if (session_.scan_) {
      if (std::string why = unscannable_response(res); !why.empty()) {
        result.outcome = co_await fail(502, "tokfence_upstream_error", std::move(why));
        co_return result;
      }
    }
    bool event_stream = false;
    if (auto ct = res.find("content-type")) event_stream = istarts_with(ct->value, "text/event-stream");
    if (event_stream) rec_.streaming = true;
    std::unique_ptr<UsageExtractor> usage = make_usage_extractor(kind_, event_stream);
    if (session_.scan_) {
      usage->collect_generated_text(&generated_);
      usage = std::make_unique<ScannedBody>(std::move(usage), *this);
    }
    bool keep = keep_;
    const bool encode = session_.build_client_head(res, client_minor_, keep, rec_.id);
    BodyFraming framing(res, client_minor_, encode, session_.dechunked_, session_.chunk_head_);
    const bool upstream_keep = res.keep_alive;
    conn.buffer.consume(res.size);  // res's views are not used past here
    const bool complete = co_await relay_body(up, conn.buffer, framing, *usage);
    rec_.usage = usage->finish();
    result.response_model = usage->response_model();
    if (complete) result.end = ExchangeEnd::complete;
    rec_.latency_ms = ms_since(started_);
    result.reusable = complete && upstream_keep && framing.kind() != http1::BodyKind::until_close &&
                      conn.buffer.empty() && result.upstream_status != 101;
    result.outcome = complete && keep ? Outcome::keep : Outcome::close;
    co_return result;
  }

  // The request's head and body in one gather write: at once on a plain connection when the
  // kernel takes it all (TLS records are written by the TLS stream, asynchronously).
  template <class Up>
  aio::Task<Step> send_request(Up& up, UpstreamConnection& conn) {
    Gather request;
    request.add(net::buffer(session_.up_head_.data(), session_.up_head_.size()));
    request.add(net::buffer(session_.body_));
    error_code ec;
    bool written = false;
    if constexpr (std::is_same_v<Up, aio::TcpSocket>) written = request.write_now(up, ec);
    if (!written && !ec) {
      session_.arm(session_.idle_timeout());
      co_await net::async_write(up, request.sequence(), with_ec(ec));
      session_.disarm(ec);
    }
    if (!ec) co_return Step{true};
    if (session_.in_flight_.client_gone) {
      rec_.error = "client disconnected before the upstream answered";
      co_return Step{};
    }
    const bool timeout = ec == net::error::timed_out;
    if (conn.reused && !timeout) co_return Step{false, Outcome::retry};
    const Outcome failed =
        co_await fail(timeout ? 504 : 502, timeout ? "tokfence_upstream_timeout" : "tokfence_upstream_error",
                      "upstream: cannot send the request to " + conn.origin() + ": " + ec.message());
    co_return Step{false, failed};
  }

  // The response head, parsed into the session's res_head_; interim 1xx responses (100 Continue,
  // 103 Early Hints) are skipped.
  template <class Up>
  aio::Task<Step> read_response_head(Up& up, UpstreamConnection& conn) {
    http1::ReadBuffer& buf = conn.buffer;
    http1::ResponseHead& res = session_.res_head_;
    const std::size_t head_limit = std::max<std::size_t>(session_.config().daemon.max_header_bytes, 64 * 1024);
    bool got_some = false;
    for (;;) {
      auto parsed = buf.empty() ? http1::Parse::incomplete
                                : http1::parse_response_head(buf.data(), head_request_ ? "HEAD" : "GET", res);
      if (parsed == http1::Parse::complete) {
        if (res.status / 100 == 1 && res.status != 101) {
          buf.consume(res.size);
          continue;
        }
        co_return Step{true};
      }
      if (parsed == http1::Parse::error || buf.size() >= head_limit) {
        // Built before the co_await: GCC 12 destroys a temporary from a conditional expression
        // inside a co_await twice.
        std::string why = parsed == http1::Parse::error ? res.error : std::string("header too large");
        const Outcome failed =
            co_await fail(502, "tokfence_upstream_error", "upstream: " + conn.origin() + " sent a malformed response: " + why);
        co_return Step{false, failed};
      }
      error_code ec;
      auto room = buf.prepare(4096);
      session_.arm(session_.idle_timeout());
      std::size_t n = co_await up.async_read_some(net::buffer(room.data(), room.size()), with_ec(ec));
      session_.disarm(ec);
      if (ec) co_return co_await head_not_read(conn, ec, got_some);
      got_some = true;
      buf.commit(n);
    }
  }

  // No response head came (`ec`): the client's error, or a retry when a pooled connection turns
  // out to be closed before any response byte.
  aio::Task<Step> head_not_read(UpstreamConnection& conn, error_code ec, bool got_some) {
    if (session_.in_flight_.client_gone) {
      rec_.error = "client disconnected before the upstream answered";
      co_return Step{};
    }
    if (ec != net::error::timed_out && conn.reused && !got_some && conn.buffer.empty())
      co_return Step{false, Outcome::retry};
    Outcome failed;
    if (ec == net::error::timed_out)
      failed = co_await fail(504, "tokfence_upstream_timeout",
                             "upstream: no response from " + conn.origin() + " within " +
                                 std::to_string(session_.config().daemon.idle_timeout_seconds) +
                                 " s (idle_timeout_seconds)");
    else
      failed = co_await fail(502, "tokfence_upstream_error",
                             "upstream: " + conn.origin() + " closed the connection before a complete response: " +
                                 ec.message());
    co_return Step{false, failed};
  }

  // The response body, relayed as it arrives (BodyFraming); returns whether it went to the client
  // whole. The client gets the head (the session's out_) together with the first piece of body
  // when that piece is already here (read with the head: the usual case for JSON replies), so a
  // small reply costs one write. When only the head has come, it goes out at once: a stream's
  // client sees the status and headers before the first event, however long the model thinks.
  // Body bytes go from the upstream connection's buffer to the client without a copy.
  template <class Up>
  aio::Task<bool> relay_body(Up& up, http1::ReadBuffer& buf, BodyFraming& framing, UsageExtractor& usage) {
    Session& s = session_;
    bool header_sent = false;
    bool request_released = false;
    for (;;) {
      // The sweep's cancel reaches only a wait on the upstream that is pending at that moment; a
      // stream busy writing to a slow-reading client (or reading bytes already there) would miss
      // it. The flag it also sets is looked at before every piece, so nothing more goes out.
      if (s.session_cut_) [[unlikely]] {
        rec_.error = cut_reason(net::error::operation_aborted);
        co_return false;
      }
      Gather pieces;
      if (!header_sent) pieces.add(net::buffer(s.out_));
      const std::size_t used = framing.take(buf.data(), usage, pieces);
      if (s.response_hit_ && s.response_hit_->kind == immune::NeedleKind::vault_key) {
        // An upstream that echoes the real key (an error message quoting it, a hostile custom
        // provider): the key is not handed to the agent; the response is cut before it.
        if (!header_sent)  // nothing of it went out yet: the client gets a clear answer, not a reset
          co_await s.send_error(502, "tokfence_upstream_error", "the upstream's response carried a credential: not relayed",
                                false, client_minor_, &rec_, nullptr);
        rec_.error = "immunefence: the response carried a vault key: cut before it reached the client";
        co_return false;
      }
      if (!header_sent && !s.caller_->resolved.load()) co_await s.await_caller();
      if (!pieces.empty()) {
        s.response_begun_ = true;
        error_code wec;
        if (!pieces.write_now(s.stream_, wec) && !wec) wec = co_await s.write_rest(pieces, s.idle_timeout());
        if (wec) {
          if (!header_sent) rec_.status = 0;
          s.in_flight_.client_gone = true;
          rec_.error = "client disconnected mid-response";
          co_return false;
        }
        header_sent = true;
      }
      buf.consume(used);
      if (framing.decoder().failed()) {
        rec_.error = "upstream sent a malformed chunked body: " + framing.decoder().error() + "; stream cut";
        co_return false;
      }
      if (framing.done()) co_return true;
      if (!request_released) {
        s.release_request();
        request_released = true;
      }
      error_code ec;
      std::size_t n = 0;
      auto room = buf.prepare(4096);
      if constexpr (std::is_same_v<Up, aio::TcpSocket>) {
        // Read at once when bytes are there. Else `buf` (empty) gives its storage back while the
        // wait lasts (between two events of a stream, usually) and the bytes are read once the
        // socket is readable: a wait costs one epoll_ctl more than a read operation would, and
        // the stream holds no read buffer for most of its life. (A TLS stream cannot do this: its
        // engine may hold decrypted bytes the socket no longer shows.)
        n = up.read_some(net::buffer(room.data(), room.size()), ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
          ec = {};
          buf.release();
          s.arm(s.idle_timeout());
          co_await up.async_wait(net::socket_base::wait_read, with_ec(ec));
          s.disarm(ec);
          if (!ec) {
            room = buf.prepare(4096);
            n = up.read_some(net::buffer(room.data(), room.size()), ec);
            if (ec == net::error::would_block || ec == net::error::try_again) ec = {};  // nothing after all
          }
        }
      } else {
        s.arm(s.idle_timeout());
        n = co_await up.async_read_some(net::buffer(room.data(), room.size()), with_ec(ec));
        s.disarm(ec);
      }
      buf.commit(n);
      if (!ec) continue;
      if (framing.kind() == http1::BodyKind::until_close &&
          (ec == net::error::eof || ec == net::ssl::error::stream_truncated) && !s.in_flight_.client_gone) {
        framing.end_at_close();  // the upstream's close ends this body: send the end (last chunk)
        continue;
      }
      rec_.error = cut_reason(ec);
      co_return false;
    }
  }

  // The response body as the usage reader gets it, also fed to the response scan: de-chunked, so a
  // key an upstream splits with chunk boundaries is whole again (as the client's HTTP library
  // sees it), and with the text the model generated joined across stream events
  // (collect_generated_text). relay_body cuts the response before the piece that completes a key.
  class ScannedBody final : public UsageExtractor {
   public:
    ScannedBody(std::unique_ptr<UsageExtractor> inner, Exchange& exchange) : inner_(std::move(inner)), exchange_(exchange) {}
    void feed(std::string_view bytes) override {
      inner_->feed(bytes);  // first: it appends this piece's generated text to exchange_.generated_
      exchange_.scan_body(bytes);
    }
    Usage finish() override { return inner_->finish(); }
    std::string response_model() const override { return inner_->response_model(); }
    void collect_generated_text(std::string* sink) override { inner_->collect_generated_text(sink); }

   private:
    std::unique_ptr<UsageExtractor> inner_;
    Exchange& exchange_;
  };

  void scan_body(std::string_view bytes) {
    Session& s = session_;
    if (!s.response_hit_) s.response_hit_ = s.response_scan_.feed(s.scan_->scanner, bytes);
    if (!s.response_env_hit_) s.response_env_hit_ = s.response_env_scan_.feed(s.scan_->env_scanner, bytes);
    if (!s.response_hit_ && !generated_.empty()) s.response_hit_ = s.response_text_scan_.feed(s.scan_->scanner, generated_);
    generated_.clear();
    // JSON may spell any character as \uXXXX, which the client's parser turns back into the key:
    // a piece with escapes is scanned once more, unescaped (an escape split between two pieces
    // is read as it is).
    if (!s.response_hit_ && bytes.find('\\') != std::string_view::npos)
      s.response_hit_ = s.response_unescaped_scan_.feed(s.scan_->scanner, json_unescaped(bytes));
  }

  // Why a response that is scanned for vault keys is not relayed at all (the client's message; the
  // row's error is set), or "": nothing of it went to the client yet, so it gets a clear 502.
  std::string unscannable_response(const http1::ResponseHead& res) {
    if (head_carries_vault_key(res)) {
      rec_.error = "immunefence: the response head carried a vault key: not relayed";
      return "the upstream's response carried a credential in its head: not relayed";
    }
    // tokfence asked for identity (Accept-Encoding); a compressed body would pass the scan as
    // noise and be inflated by the client's library, a key in it with it.
    if (res.body != http1::BodyKind::none && content_coding(res).encoded) {
      rec_.error = "immunefence: the response came with a Content-Encoding (identity was asked for): not relayed";
      return "the upstream answered with an encoded body (Content-Encoding), which cannot be scanned for "
             "credentials: not relayed";
    }
    return {};
  }

  // A vault key in a response field's name or value (an upstream reflecting request headers back,
  // or a hostile one writing the key as a field name). The status line's reason phrase is never
  // relayed (build_client_head), nor are chunk extensions and trailers (BodyFraming).
  bool head_carries_vault_key(const http1::ResponseHead& res) const {
    const immune::SecretScanner& scanner = session_.scan_->scanner;
    auto key = [&](std::string_view text) {
      auto hit = scanner.find(text);
      return hit && hit->kind == immune::NeedleKind::vault_key;
    };
    for (const auto& h : res.headers)
      if (key(h.name) || key(h.value)) return true;
    return false;
  }

  // The row's error for a response body cut by `ec`.
  std::string cut_reason(const error_code& ec) const {
    if (session_.in_flight_.client_gone) return "client disconnected mid-response";
    if (session_.session_cut_)
      return "cut: session '" + session_.entry_->session->name + "' was revoked, ended or turned RED";
    if (ec == net::error::timed_out)
      return "upstream: no data for " + std::to_string(session_.config().daemon.idle_timeout_seconds) +
             " s (idle_timeout_seconds); stream cut";
    return "upstream reset mid-stream: " + ec.message();
  }

  // Answers the client with the proxy's error; the exchange ends there.
  aio::Task<Outcome> fail(int status, std::string_view type, std::string message) {
    co_await session_.send_error(status, type, message, keep_, client_minor_, &rec_, nullptr);
    co_return keep_ ? Outcome::keep : Outcome::close;
  }

  Session& session_;
  const Provider& provider_;
  const ApiKind kind_;
  RequestRecord& rec_;
  const SteadyClock::time_point started_;
  const bool keep_;          // the client connection may stay open (before the response's head says)
  const int client_minor_;
  const bool head_request_;  // a HEAD: the response has no body whatever its head says
  std::string generated_;    // the model's text completed in the current piece (sessions with a scan)
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

// A row never waits on the look-up thread's queue: it is written at once when the caller is known
// or its look-up is overdue, else by the look-up when it ends (at most kCallerWait after accept).
void Impl::record(RequestRecord rec, const std::shared_ptr<CallerSlot>& slot, std::string name) {
  callers.record(std::move(rec), slot, std::move(name));
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

// A connection refused at accept (over a cap: 503; another user's: 403) gets an answer it can
// read, then is closed. The answer goes out at once (a fresh connection's socket buffer takes
// it), the write side is shut, and what the client sent is read and dropped for a moment before
// the close: closing with unread bytes would reset the connection, and the client could lose the
// answer. At most kMaxRejecting at a time (per `budget`) hold their descriptor that long; the rest
// are closed at once.
template <class Socket>
aio::Task<void> linger_and_close(std::atomic<int>& budget, Socket socket) {
  aio::Timer linger(socket.get_executor(), kRejectLinger);
  error_code ec;
  co_await linger.async_wait(with_ec(ec));
  char sink[4096];
  for (int i = 0; i < 16; ++i)
    if (socket.read_some(net::buffer(sink), ec) == 0 || ec) break;
  socket.close(ec);
  --budget;
}

template <class Socket>
void answer_and_close(std::atomic<int>& budget, Worker& worker, Socket socket, const Denial& answer) {
  error_code ec;
  if (budget.fetch_add(1) >= kMaxRejecting) {
    --budget;
    socket.close(ec);
    return;
  }
  const std::string body = error_body(answer.type, answer.message);
  std::string reply = "HTTP/1.1 " + std::to_string(answer.status) + " " + std::string(reason_phrase(answer.status)) +
                      "\r\nContent-Type: application/json\r\n" + (answer.status == 503 ? "Retry-After: 1\r\n" : "") +
                      "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  char sink[4096];
  socket.read_some(net::buffer(sink), ec);  // a request already here, dropped unread
  net::write(socket, net::buffer(reply), ec);
  socket.shutdown(net::socket_base::shutdown_send, ec);
  net::co_spawn(worker.ioc, linger_and_close(budget, std::move(socket)), net::detached);
}

template <class Socket>
void answer_overloaded(Impl& server, Worker& worker, Socket socket, std::string message) {
  answer_and_close(server.rejecting, worker, std::move(socket), Denial{503, "tokfence_overloaded", std::move(message)});
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
    // The TCP listener has no file mode: the owner of the peer's socket (one sock_diag round
    // trip) must be the daemon's user. Decided here, before the connection takes a place under
    // the caps and before a byte of it is read: another user's connections get a 403 and are
    // closed, no request-log row, counted for the daemon's log (ForeignRefusals). Forward-proxy
    // requests (CONNECT, absolute form) are so refused as well as model requests.
    auto owner = tcp_peer_owner(socket.native_handle());
    if (!owner || owner->uid != ::geteuid()) {
      const std::optional<unsigned> uid = owner ? std::optional<unsigned>(owner->uid) : std::nullopt;
      if (auto line = foreign_refusals.note(uid, SteadyClock::now())) log_warning(deps, *line);
      answer_and_close(refusing_foreign, worker, std::move(socket), foreign_peer_denial(uid, ::geteuid()));
      continue;
    }
    std::string over_cap;
    auto connection_slot = take_connection(tcp_connections, over_cap);
    if (!connection_slot) {
      answer_overloaded(*this, worker, std::move(socket), std::move(over_cap));
      continue;
    }
    auto slot = std::make_shared<CallerSlot>();
    if (deps.config.logging.identify_tcp_callers) {
      // Batched with the other connections accepted meanwhile: one read of each client's
      // descriptor table per batch, not one per connection.
      callers.start(slot, owner->inode);
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
                                                         listener->info.caller, std::move(slot), listener->policy,
                                                         listener->info.session_id);
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
  auto egress_settings = egress::compile_settings(impl->deps.config.egress);
  if (!egress_settings) return std::unexpected(egress_settings.error());
  impl->egress_settings = std::move(*egress_settings);
  // Every client connection may hold an upstream one too: the cap leaves room for both, and for
  // kReservedDescriptors more, within the descriptor limit (raised to its maximum at start).
  impl->connection_cap = impl->deps.config.daemon.max_connections;
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    const auto fitting = (static_cast<std::int64_t>(files.rlim_cur) - kReservedDescriptors) / 2;
    impl->connection_cap = static_cast<int>(std::clamp<std::int64_t>(fitting, 1, impl->connection_cap));
  }
  impl->tls = make_client_tls_context();
  impl->egress_tls = make_client_tls_context();
  if (const auto& extra = impl->egress_settings.extra_ca_file; !extra.empty()) {
    error_code ec;
    impl->egress_tls->load_verify_file(extra, ec);
    if (ec)
      return fail("config: [egress] extra_ca_file \"" + extra + "\": cannot load PEM certificates from it: " + ec.message());
  }
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

namespace {

// The listening sockets of [daemon] host:port, taken over by the caller. 127.0.0.1 (the default)
// comes with its IPv6 twin [::1]:<port> (core/loopback_listen.hpp): clients that say localhost try
// ::1 first, and another local user listening there would get their prompts and session tokens
// (review 14a F2). Another address is bound alone, as configured.
Result<std::pair<std::vector<int>, int>> bind_tcp_listeners(const std::string& host, int port) {
  error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) return fail("daemon: host is not an IP address: " + host + " (set [daemon] host, e.g. 127.0.0.1)");
  if (address == net::ip::address_v4::loopback()) {
    LoopbackPair pair = listen_loopback_pair(static_cast<std::uint16_t>(port), 1024);
    if (!pair.error.empty())
      return fail("daemon: " + pair.error +
                  (pair.twin_busy ? "; stop it or set [daemon] port"
                   : pair.error_number == EADDRINUSE ? " (another process uses the port: set [daemon] port)"
                                                     : ""));
    std::vector<int> fds{pair.v4};
    if (pair.v6 >= 0) fds.push_back(pair.v6);
    return std::pair{std::move(fds), static_cast<int>(pair.port)};
  }
  net::io_context scratch;
  tcp::acceptor acceptor(scratch);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(1024, ec);
  if (ec)
    return fail("daemon: cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message() +
                (ec == net::error::address_in_use ? " (another process uses the port: set [daemon] port)" : ""));
  const int actual = acceptor.local_endpoint().port();
  const int fd = acceptor.release(ec);
  if (ec) return fail("daemon: cannot take over the listening socket: " + ec.message());
  set_cloexec(fd);
  return std::pair{std::vector<int>{fd}, actual};
}

// Hands listening socket `fd` to an acceptor on every worker: the socket itself to worker 0 (which
// owns it from then on, or closes it on failure), a dup() to each other one.
Result<void> share_tcp_listener(Impl& impl, int listening_fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ::getsockname(listening_fd, reinterpret_cast<sockaddr*>(&local), &len);
  const tcp protocol = local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
  for (std::size_t i = 0; i < impl.workers.size(); ++i) {
    const int fd = i == 0 ? listening_fd : ::fcntl(listening_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return fail("daemon: cannot share the listening socket between threads: " + std::string(std::strerror(errno)));
    auto acceptor = std::make_unique<aio::TcpAcceptor>(impl.workers[i]->ioc);
    error_code ec;
    acceptor->assign(protocol, fd, ec);
    if (ec) {
      ::close(fd);
      return fail("daemon: cannot share the listening socket between threads: " + ec.message());
    }
    impl.tcp_acceptors.push_back({i, std::move(acceptor)});
  }
  return {};
}

}  // namespace

Result<int> ProxyServer::listen_tcp(const std::string& host, int port) {
  auto bound = bind_tcp_listeners(host, port);
  if (!bound) return std::unexpected(bound.error());
  auto& [fds, actual] = *bound;
  impl_->tcp_names = tcp_listener_names(host, static_cast<std::uint16_t>(actual));
  impl_->tcp_twin = fds.size() > 1;
  // Every listening socket is served by every worker: worker 0 accepts on the socket itself, the
  // others on a dup() each (see tcp_acceptors).
  for (std::size_t k = 0; k < fds.size(); ++k) {
    if (auto shared = share_tcp_listener(*impl_, fds[k]); !shared) {
      for (std::size_t rest = k + 1; rest < fds.size(); ++rest) ::close(fds[rest]);  // not taken over yet
      return std::unexpected(shared.error());
    }
  }
  for (auto& [worker, acceptor] : impl_->tcp_acceptors)
    net::co_spawn(impl_->workers[worker]->ioc, impl_->accept_tcp(*impl_->workers[worker], *acceptor), net::detached);
  return actual;
}

std::vector<std::string> ProxyServer::tcp_addresses() const {
  const auto& names = impl_->tcp_names;
  std::vector<std::string> out;
  if (impl_->tcp_acceptors.empty()) return out;
  out.push_back((names.host.empty() ? std::string("127.0.0.1") : names.host) + ":" + std::to_string(names.port));
  if (impl_->tcp_twin) out.push_back("[::1]:" + std::to_string(names.port));
  return out;
}

Result<void> ProxyServer::listen_unix(const ProxySocketInfo& socket) {
  std::lock_guard lock(impl_->listeners_mutex);
  if (impl_->stopping) return fail("daemon: shutting down");
  if (impl_->unix_listeners.count(socket.path)) return fail("socket: already open: " + socket.path);
  auto fd = bind_unix_listener(socket.path, static_cast<mode_t>(socket.mode));
  if (!fd) return std::unexpected(fd.error());
  auto listener = std::make_shared<UnixListener>();
  listener->info = socket;
  if (!socket.caller.empty()) listener->policy = std::make_shared<egress::LivePolicy>(socket.egress);
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
  for (const auto& [path, l] : impl_->unix_listeners) {
    out.push_back(l->info);
    if (l->policy) out.back().egress = *l->policy->snapshot();
  }
  return out;
}

std::shared_ptr<egress::LivePolicy> ProxyServer::egress_policy(const std::string& path) const {
  std::lock_guard lock(impl_->listeners_mutex);
  auto it = impl_->unix_listeners.find(path);
  return it == impl_->unix_listeners.end() ? nullptr : it->second->policy;
}

const egress::Settings& ProxyServer::egress_settings() const { return impl_->egress_settings; }

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

void ProxyServer::hand_over_finished_rows() { impl_->callers.drain(); }

void ProxyServer::add_own_port(int port) {
  if (port > 0 && port <= 65535) impl_->own_ports.push_back(static_cast<std::uint16_t>(port));
}

ProxyServer::Activity ProxyServer::activity() const {
  constexpr auto relaxed = std::memory_order_relaxed;
  return {impl_->connections.load(relaxed), impl_->active_streams.load(relaxed), impl_->egress_allowed.load(relaxed),
          impl_->egress_denied.load(relaxed)};
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
  for (auto& [worker, tcp_acceptor] : s.tcp_acceptors) {
    net::post(s.workers[worker]->ioc, [acceptor = tcp_acceptor.get()] {
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
  // Look-ups still queued end as timed out, their rows written (before the log is flushed).
  s.callers.stop();
  // Name look-ups still running are waited for (getaddrinfo cannot be cancelled; its own
  // timeouts bound it); their sessions are gone.
  s.resolvers->join();
}

}  // namespace tokfence::proxy
