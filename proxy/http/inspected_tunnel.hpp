#pragma once
// An inspected CONNECT (inspect.hpp, docs/EGRESS.md "Inspected hosts"), Session's part for it: TLS
// with the agent under the local CA's certificate for the host, TLS to the host verified against
// the system's trust and [egress] extra_ca_file, one request checked and rewritten (placeholders
// -> secrets), its response relayed and watched for those secrets.
//
// A part of server.cpp like forward_proxy.hpp (and included right after it, inside server.cpp's
// anonymous namespace): it includes nothing itself.

// The largest answer a host with bound secrets may give: it is read whole and checked for them
// before the agent gets any of it (docs/EGRESS.md, "Inspected hosts").
constexpr std::size_t kWatchedResponseBytes = 8 * 1024 * 1024;
// What all such answers together may hold at once: an agent that asks for large answers and stops
// reading them would otherwise make the daemon hold 8 MiB per connection (503 busy beyond this).
constexpr std::uint64_t kWatchedBytesTotal = 64 * 1024 * 1024;
// Interim (1xx) heads passed over before the final one; a host sending more is refused.
constexpr int kMaxInterimHeads = 8;

// The bytes of a watched answer held for checking, counted against kWatchedBytesTotal (all
// connections) until the answer is done with.
struct HeldBytes {
  explicit HeldBytes(std::atomic<std::uint64_t>& all) : total(all) {}
  std::atomic<std::uint64_t>& total;
  std::uint64_t bytes = 0;
  bool take(std::uint64_t n) {
    if (total.fetch_add(n, std::memory_order_relaxed) + n > kWatchedBytesTotal) {
      total.fetch_sub(n, std::memory_order_relaxed);
      return false;
    }
    bytes += n;
    return true;
  }
  ~HeldBytes() { total.fetch_sub(bytes, std::memory_order_relaxed); }
  HeldBytes(const HeldBytes&) = delete;
  HeldBytes& operator=(const HeldBytes&) = delete;
};

// Feeds `bytes` to a watch in slices: a watch keeps a lower-case copy of what it is given.
bool feed_watch(inspect::SecretWatch& watch, std::string_view bytes) {
  bool hit = false;
  for (std::size_t at = 0; at < bytes.size() && !hit; at += kTunnelBufferBytes)
    hit = watch.feed(bytes.substr(at, kTunnelBufferBytes));
  return hit;
}

// Where a body ends in the pieces that arrive, as its sender framed it: how many bytes of each
// piece belong to it. Content-Length counts down; chunked runs a decoder over the bytes (framing
// left in: the body is relayed as it came); a body that ends when its sender closes takes all.
class BodyFrame {
 public:
  BodyFrame(http1::BodyKind kind, std::uint64_t content_length)
      : kind_(kind),
        left_(kind == http1::BodyKind::length ? content_length : 0),
        done_(kind == http1::BodyKind::none || (kind == http1::BodyKind::length && left_ == 0)) {}

  // The bytes of `piece` that are body; a chunked decoder waiting for more has taken what it could.
  std::size_t take(std::string_view piece) {
    std::size_t take = piece.size();
    if (kind_ == http1::BodyKind::length) {
      take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, piece.size()));
      left_ -= take;
      done_ = left_ == 0;
    } else if (kind_ == http1::BodyKind::chunked) {
      take = 0;
      while (take < piece.size() && !chunked_.done() && !chunked_.failed()) {
        const auto step = chunked_.step(piece.substr(take));
        if (step.consumed == 0) break;
        take += step.consumed;
      }
      done_ = chunked_.done();
    }
    return take;
  }
  bool done() const { return done_; }
  bool failed() const { return chunked_.failed(); }
  std::string error() const { return chunked_.error(); }

 private:
  http1::BodyKind kind_;
  std::uint64_t left_;
  http1::ChunkedDecoder chunked_;
  bool done_;
};

// One inspected connection: the agent's TLS, the host's, and the steps between them. Each step
// either lets the next run (nullopt) or ends the connection with what its row records, after
// answering the agent inside its TLS when a refusal is due.
template <class Stream>
class Session<Stream>::Inspection {
 public:
  // An inspected CONNECT, whole. The 200 to the CONNECT has been sent; `first` holds bytes the
  // agent sent after its CONNECT (the start of its handshake).
  static aio::Task<EgressEnd> run_inspected(Session& session, aio::TcpSocket& up, std::string first, EgressRecord& rec,
                                            const egress::Destination& to, const egress::DomainRules* domain,
                                            std::shared_ptr<const inspect::SecretBook> secrets,
                                            std::shared_ptr<const egress::Policy> policy) {
    rec.kind = "inspect";
    auto context = session.s_.deps.inspect_tls(to.host);
    if (!context) {
      rec.error = "egress: " + to.text() + ": no certificate for inspection: " + context.error().message;
      co_return EgressEnd{};
    }
    Inspection inspection(session, up, **context, rec, to);
    co_return co_await inspection.run(std::move(first), domain, *secrets, policy->secrets);
  }

 private:
  enum class Relayed { whole, read_failed, write_failed, malformed };

  Inspection(Session& session, aio::TcpSocket& up, net::ssl::context& agent_tls, EgressRecord& rec,
             const egress::Destination& to)
      : session_(session),
        up_(up),
        rec_(rec),
        to_(to),
        where_(to.text()),
        tunnel_(session.w_.ioc),
        agent_(session.stream_, agent_tls) {
    session_.tunnel_ = &tunnel_;
    session_.idle_ = false;
  }
  ~Inspection() { session_.tunnel_ = nullptr; }
  Inspection(const Inspection&) = delete;
  Inspection& operator=(const Inspection&) = delete;

  aio::Task<EgressEnd> run(std::string first, const egress::DomainRules* domain, const inspect::SecretBook& secrets,
                           const std::vector<std::string>& granted) {
    if (!co_await handshake_agent(std::move(first))) co_return EgressEnd{};
    // The request head. Holds placeholders only: the secrets go into the rewritten copy.
    std::string in;
    http1::RequestHead request;
    if (auto end = co_await read_request_head(in, request)) co_return std::move(*end);
    auto rewritten = inspect::rewrite_request(request, to_, domain, secrets, granted);
    if (auto* refusal = std::get_if<inspect::Refusal>(&rewritten))
      co_return co_await refuse(refusal->status, refusal->rule, refusal->message);
    auto& out = std::get<inspect::Rewritten>(rewritten);
    if (auto end = co_await connect_host()) co_return std::move(*end);
    if (auto end = co_await send_head(request, out.head)) co_return std::move(*end);
    // The request body, delimited as the agent framed it; bytes past it are not read.
    BodyFrame body(request.body, request.content_length);
    error_code ec;
    switch (co_await relay_framed(agent_, *host_, body, std::string_view(in).substr(request.size), rec_.bytes_up, ec)) {
      case Relayed::whole: break;
      case Relayed::read_failed:
        rec_.error = "egress: " + where_ + ": the agent stopped in the middle of its request body";
        co_return EgressEnd{};
      case Relayed::malformed: co_return co_await refuse(400, "bad-request", "egress: " + body.error());
      case Relayed::write_failed: co_return EgressEnd{};
    }
    if (auto end = co_await relay_response(request.method, out.watch_for)) co_return std::move(*end);
    co_return co_await finish();
  }

  // One read from `from` into buffer_, within `timeout`: the bytes, or none with `ec` set. What
  // arrives keeps the tunnel from counting as idle.
  template <class From>
  aio::Task<std::string_view> read_some(From& from, std::chrono::seconds timeout, error_code& ec) {
    session_.arm(timeout);
    const std::size_t n = co_await from.async_read_some(net::buffer(buffer_.get(), kTunnelBufferBytes), with_ec(ec));
    session_.disarm(ec);
    if (ec) co_return std::string_view();
    tunnel_.last_activity = coarse_now();
    co_return std::string_view(buffer_.get(), n);
  }

  // Writes `buffers` whole to `to` within `timeout`.
  template <class To, class Buffers>
  aio::Task<error_code> write(To& to, Buffers buffers, std::chrono::seconds timeout) {
    error_code ec;
    session_.arm(timeout);
    co_await net::async_write(to, buffers, with_ec(ec));
    session_.disarm(ec);
    co_return ec;
  }

  // Replies to the agent inside its TLS; returns the EgressEnd the row records.
  aio::Task<EgressEnd> refuse(int status, std::string rule, std::string message) {
    const std::string reply = egress_refusal(status, rule, message);
    co_await write(agent_, net::buffer(reply), std::chrono::seconds(5));
    co_return EgressEnd{status, std::move(rule), std::move(message)};
  }
  // A refusal of tokfence's own (not a failure of the destination): a denied row.
  aio::Task<EgressEnd> deny(std::string rule, std::string message) {
    EgressEnd end = co_await refuse(502, std::move(rule), std::move(message));
    end.denied = true;
    co_return end;
  }
  // The answer held `answer` (now wiped) with a secret in it.
  aio::Task<EgressEnd> reflected(std::string& answer) {
    wipe_memory(answer.data(), answer.size());
    wipe_memory(buffer_.get(), kTunnelBufferBytes);
    co_return co_await deny("secret-reflected",
                            "egress: the response from " + where_ +
                                " contained a secret bound to it: refused, so the agent never reads it");
  }
  aio::Task<EgressEnd> busy() {
    co_return co_await refuse(503, "busy",
                              "egress: tokfence holds " + std::to_string(kWatchedBytesTotal >> 20) +
                                  " MiB of answers from hosts with bound secrets for checking already: try again");
  }

  aio::Task<bool> handshake_agent(std::string first) {
    error_code ec;
    session_.arm(session_.within_idle(session_.config().daemon.header_timeout_seconds));
    co_await agent_.async_handshake(net::ssl::stream_base::server, net::buffer(first), with_ec(ec));
    session_.disarm(ec);
    if (!ec) co_return true;
    rec_.error = "egress: " + where_ + ": the agent's TLS handshake failed (" + ec.message() +
                 "); its client must trust tokfence's local CA (docs/EGRESS.md)";
    co_return false;
  }

  // The agent's request head, parsed into `request` (views into `in`, which may hold body bytes
  // after it).
  aio::Task<std::optional<EgressEnd>> read_request_head(std::string& in, http1::RequestHead& request) {
    const std::size_t head_limit = session_.config().daemon.max_header_bytes;
    for (;;) {
      const auto parsed = http1::parse_request_head(in, request);
      if (parsed == http1::Parse::complete) co_return std::nullopt;
      if (parsed == http1::Parse::error) co_return co_await refuse(400, "bad-request", "egress: " + request.error);
      if (in.size() > head_limit)
        co_return co_await refuse(431, "header-too-large", "egress: request header larger than max_header_bytes");
      error_code ec;
      const std::string_view got =
          co_await read_some(agent_, session_.within_idle(session_.config().daemon.header_timeout_seconds), ec);
      if (ec) {
        if (!in.empty()) rec_.error = "egress: " + where_ + ": the agent stopped before its request head ended";
        co_return EgressEnd{};
      }
      in.append(got);
    }
  }

  // The destination, verified as the agent's own client would have verified it.
  aio::Task<std::optional<EgressEnd>> connect_host() {
    host_.emplace(up_, *session_.s_.egress_tls);
    if (!to_.ip && !SSL_set_tlsext_host_name(host_->native_handle(), to_.host.c_str()))
      co_return co_await refuse(502, "upstream-tls", "egress: " + where_ + ": cannot set the TLS server name");
    host_->set_verify_mode(net::ssl::verify_peer);
    host_->set_verify_callback(net::ssl::host_name_verification(to_.host));
    error_code ec;
    session_.arm(std::chrono::seconds(session_.config().daemon.connect_timeout_seconds));
    co_await host_->async_handshake(net::ssl::stream_base::client, with_ec(ec));
    session_.disarm(ec);
    if (ec)
      co_return co_await refuse(502, "upstream-tls",
                                "egress: " + where_ + ": TLS with the destination failed (" + ec.message() +
                                    "); its certificate must verify for " + to_.host +
                                    " against the system's trust or [egress] extra_ca_file");
    co_return std::nullopt;
  }

  // The agent's 100 Continue when it asked for one, then the rewritten head to the host; the
  // head (it holds the secrets) is freed, and so wiped, right after.
  aio::Task<std::optional<EgressEnd>> send_head(const http1::RequestHead& request, inspect::WipingString& head) {
    if (request.expect_continue) {
      static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      if (co_await write(agent_, net::buffer(go_on), session_.idle_timeout())) co_return EgressEnd{};
    }
    const error_code ec = co_await write(*host_, net::buffer(head), session_.idle_timeout());
    rec_.bytes_up += head.size();
    head.clear();
    head.shrink_to_fit();  // the secret's copy is wiped as it is freed
    if (ec) co_return EgressEnd{};
    co_return std::nullopt;
  }

  // Relays a body from `from` to `to` as `frame` delimits it, starting with `pending` (its bytes
  // that came with the head), counting what was written in `count`; bytes past it are not read.
  template <class From, class To>
  aio::Task<Relayed> relay_framed(From& from, To& to, BodyFrame& frame, std::string_view pending, std::uint64_t& count,
                                  error_code& ec) {
    while (!frame.done()) {
      if (pending.empty()) {
        pending = co_await read_some(from, session_.idle_timeout(), ec);
        if (ec) co_return Relayed::read_failed;
      }
      const std::size_t take = frame.take(pending);
      if (frame.failed()) co_return Relayed::malformed;
      ec = co_await write(to, net::buffer(pending.data(), take), session_.idle_timeout());
      if (ec) co_return Relayed::write_failed;
      count += take;
      pending.remove_prefix(take);
      if (!frame.done()) pending = {};  // a decoder waiting for more has consumed what it could
    }
    co_return Relayed::whole;
  }

  // The response: its head rewritten (Connection: close), then its body as the host framed it,
  // held and checked whole when secrets are bound to the host (relay_watched), else streamed.
  aio::Task<std::optional<EgressEnd>> relay_response(std::string_view method,
                                                     const std::vector<std::string_view>& watch_for) {
    inspect::SecretWatch watch(watch_for);
    std::string answer;  // the head, then the body as it arrives
    http1::ResponseHead response;
    if (auto end = co_await read_response_head(method, answer, response)) co_return end;
    // Built now: `response` views into `answer`, which grows below.
    const std::string head_out = inspect::rewrite_response_head(response);
    if (!watch.empty()) co_return co_await relay_watched(answer, response, head_out, watch, watch_for);
    // No secret can be in it: streamed as the host framed it.
    if (co_await write(agent_, net::buffer(head_out), session_.idle_timeout())) co_return EgressEnd{};
    tunnel_.down += head_out.size();
    BodyFrame body(response.body, response.content_length);
    error_code ec;
    switch (co_await relay_framed(*host_, agent_, body, std::string_view(answer).substr(response.size), tunnel_.down,
                                  ec)) {
      case Relayed::whole: break;
      case Relayed::read_failed:
        if (response.body != http1::BodyKind::until_close)
          rec_.error = "egress: " + where_ + " ended its response early: " + ec.message();
        break;
      case Relayed::malformed:
        rec_.error = "egress: " + where_ + ": malformed chunked response: " + body.error();
        break;
      case Relayed::write_failed: break;
    }
    co_return std::nullopt;
  }

  // The final response head (interim 1xx answers, such as 103, are read past and not passed on),
  // parsed into `response` (views into `answer`).
  aio::Task<std::optional<EgressEnd>> read_response_head(std::string_view method, std::string& answer,
                                                         http1::ResponseHead& response) {
    for (int interim = 0;;) {
      const auto parsed = http1::parse_response_head(answer, method, response);
      if (parsed == http1::Parse::complete && response.status >= 100 && response.status < 200) {
        if (++interim > kMaxInterimHeads)
          co_return co_await refuse(502, "bad-response", "egress: " + where_ + " sent more than " +
                                                             std::to_string(kMaxInterimHeads) + " interim (1xx) answers");
        answer.erase(0, response.size);
        continue;
      }
      if (parsed == http1::Parse::complete) co_return std::nullopt;
      if (parsed == http1::Parse::error || answer.size() > 64 * 1024)
        co_return co_await refuse(502, "bad-response", "egress: " + where_ + " sent a malformed response head");
      error_code ec;
      const std::string_view got = co_await read_some(*host_, session_.idle_timeout(), ec);
      if (ec) co_return co_await refuse(502, "no-response", "egress: " + where_ + " closed without a response");
      answer.append(got);
    }
  }

  // A host with bound secrets: its whole answer is read (up to kWatchedResponseBytes) and
  // checked, framing removed and as sent, before a byte of it goes to the agent. `response`'s
  // views into `answer` are not read: only its framing and size.
  aio::Task<std::optional<EgressEnd>> relay_watched(std::string& answer, const http1::ResponseHead& response,
                                                    const std::string& head_out, inspect::SecretWatch& watch,
                                                    const std::vector<std::string_view>& watch_for) {
    if (auto refused = inspect::refuse_unwatchable(response)) co_return co_await deny(refused->rule, refused->message);
    inspect::SecretWatch as_sent(watch_for);
    HeldBytes held(session_.s_.watched_bytes);
    const std::size_t head_size = response.size;
    const http1::BodyKind kind = response.body;
    if (!held.take(answer.size())) co_return co_await busy();
    if (feed_watch(as_sent, std::string_view(answer).substr(0, head_size))) co_return co_await reflected(answer);
    if (kind == http1::BodyKind::length && response.content_length > kWatchedResponseBytes)
      co_return co_await deny("response-too-large",
                              "egress: " + where_ + " answered with more than " +
                                  std::to_string(kWatchedResponseBytes >> 20) +
                                  " MiB; answers from hosts with bound secrets are checked whole, up to that size");
    const std::size_t body_end = kind == http1::BodyKind::length
                                     ? head_size + static_cast<std::size_t>(response.content_length)
                                     : std::numeric_limits<std::size_t>::max();
    if (kind == http1::BodyKind::length) {
      if (answer.size() > body_end) answer.resize(body_end);  // bytes past the body are not passed on
      if (!held.take(body_end - answer.size())) co_return co_await busy();
      answer.reserve(body_end);  // once: growing by doubling would hold up to twice the answer
    }
    bool found = false;
    if (auto end = co_await read_watched_body(answer, kind, head_size, body_end, held, watch, found)) co_return end;
    const std::string_view body = std::string_view(answer).substr(head_size);
    if (kind != http1::BodyKind::chunked) found = feed_watch(watch, body) || found;
    if (found || feed_watch(as_sent, body)) co_return co_await reflected(answer);
    const std::array pieces{net::buffer(head_out), net::buffer(body.data(), body.size())};
    if (!co_await write(agent_, pieces, session_.idle_timeout())) tunnel_.down += head_out.size() + body.size();
    co_return std::nullopt;
  }

  // The rest of a watched answer, appended to `answer` up to `body_end`; a chunked body is
  // decoded into `watch` as it comes (`found` when it saw a secret) and cut after its last chunk.
  aio::Task<std::optional<EgressEnd>> read_watched_body(std::string& answer, http1::BodyKind kind, std::size_t head_size,
                                                        std::size_t body_end, HeldBytes& held,
                                                        inspect::SecretWatch& watch, bool& found) {
    http1::ChunkedDecoder decoder;
    std::size_t decoded_to = head_size;  // how far `answer` has been through the decoder
    bool done = kind == http1::BodyKind::none || answer.size() >= body_end;
    for (;;) {
      if (kind == http1::BodyKind::chunked) {
        while (decoded_to < answer.size() && !decoder.done() && !decoder.failed()) {
          const auto step = decoder.step(std::string_view(answer).substr(decoded_to));
          if (step.consumed == 0) break;
          found = feed_watch(watch, step.data) || found;
          decoded_to += step.consumed;
        }
        if (decoder.failed())
          co_return co_await refuse(502, "bad-response", "egress: " + where_ + ": malformed chunked body: " + decoder.error());
        done = decoder.done();
        if (done) answer.resize(decoded_to);  // bytes after the last chunk are not passed on
      }
      if (done || found) co_return std::nullopt;
      if (answer.size() - head_size > kWatchedResponseBytes + 64 * 1024)
        co_return co_await deny("response-too-large",
                                "egress: " + where_ + " answered with more than " +
                                    std::to_string(kWatchedResponseBytes >> 20) + " MiB (checked whole, up to that)");
      error_code ec;
      const std::string_view got = co_await read_some(*host_, session_.idle_timeout(), ec);
      if (ec) {
        if (kind == http1::BodyKind::until_close) co_return std::nullopt;
        co_return co_await refuse(502, "no-response", "egress: " + where_ + " ended its response early");
      }
      const std::size_t take = std::min(got.size(), body_end - answer.size());
      if (kind != http1::BodyKind::length && !held.take(take)) co_return co_await busy();
      answer.append(got.data(), take);
      done = answer.size() >= body_end;
    }
  }

  // The row's last figures, and the agent's TLS closed.
  aio::Task<EgressEnd> finish() {
    rec_.bytes_down = tunnel_.down;
    if (!tunnel_.cut.empty()) rec_.error = tunnel_.cut;
    error_code ignored;
    session_.arm(std::chrono::seconds(2));
    co_await agent_.async_shutdown(with_ec(ignored));
    session_.disarm(ignored);
    co_return EgressEnd{};
  }

  Session& session_;
  aio::TcpSocket& up_;
  EgressRecord& rec_;
  const egress::Destination& to_;
  const std::string where_;  // to_.text(), for messages
  Tunnel tunnel_;            // the session's tunnel_ while this runs (the sweeper's idle check)
  net::ssl::stream<Stream&> agent_;
  std::optional<net::ssl::stream<aio::TcpSocket&>> host_;  // set by connect_host()
  std::unique_ptr<char[]> buffer_{new char[kTunnelBufferBytes]};
};
