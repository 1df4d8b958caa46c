#pragma once
// The forward proxy (docs/EGRESS.md), Session's part for egress: a CONNECT or absolute-form http
// request on a labeled listener is checked against the listener's policy (EgressExchange), its
// destination resolved and connected to, and the connection relayed as a tunnel (Tunnel, pump,
// run_tunnel) or, for an inspected host, terminated and checked (Inspection, inspected_tunnel.hpp).
//
// A part of server.cpp, not a header of its own: server.cpp includes it once, inside its anonymous
// namespace, right after class Session (which declares what is defined here), and it uses what
// server.cpp includes. So it includes nothing itself.

// A tunnel's copy buffer, per direction (64 KiB moved 100 MB faster than 16 KiB: bench/README.md).
constexpr std::size_t kTunnelBufferBytes = 64 * 1024;

// What a forward-proxy connection ends as: its log row, finished and recorded by forward_proxy().
struct EgressEnd {
  int status = 0;          // the refusal's status (0: allowed)
  std::string rule;        // which rule decided
  std::string message;     // the refusal's message
  bool denied = false;     // a 502 that is a refusal all the same (a reflected secret)
};

// A refusal written inside a tunnel, where no Session reply machinery applies: a whole
// response that closes the connection.
std::string egress_refusal(int status, std::string_view rule, const std::string& message) {
  const std::string body = error_body("tokfence_egress", message);
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) +
                    "\r\nContent-Type: application/json\r\nX-Tokfence-Egress: ";
  out.append(rule).append("\r\nContent-Length: ").append(std::to_string(body.size()));
  out.append("\r\nConnection: close\r\n\r\n").append(body);
  return out;
}

// "http://" + own name (127.0.0.1, localhost, [::1]; any port on a Unix listener, the exact
// port on TCP): rewrites head_'s target to its origin form and says so.
template <class Stream>
bool Session<Stream>::absolute_form_to_self() {
  std::string_view target = head_.target;
  constexpr std::string_view scheme = "http://";
  if (head_.method == "CONNECT" || target.size() < scheme.size() || !iequals(target.substr(0, scheme.size()), scheme))
    return false;
  target.remove_prefix(scheme.size());
  const auto end = target.find_first_of("/?#");
  const std::string_view authority = target.substr(0, end);
  const ListenerNames& names = std::is_same_v<Stream, aio::TcpSocket> ? s_.tcp_names : unix_listener_names();
  if (!is_own_host(authority, names)) return false;
  head_.target = end == std::string_view::npos || target[end] != '/' ? std::string_view("/") : target.substr(end);
  return true;
}

// One forward-proxy request: checked, refused (403 + X-Tokfence-Egress + row) or connected and
// relayed; the connection ends afterwards.
template <class Stream>
aio::Task<void> Session<Stream>::forward_proxy() {
  const auto started = SteadyClock::now();
  EgressRecord rec;
  rec.ts_ms = unix_ms();
  rec.caller = label_.empty() ? std::string("(main listener)") : label_;
  rec.caller_pid = caller_->caller.pid;
  const bool connect = head_.method == "CONNECT";
  rec.kind = connect ? "connect" : "http";
  response_begun_ = false;  // a model request may have come first on this connection
  // ImmuneFence: an ORANGE or RED session has no egress; refusals count toward YELLOW.
  immune::Registry* registry = s_.deps.immune.get();
  auto session = registry && !bound_session_.empty() ? registry->find(bound_session_) : nullptr;
  egress_session_ = session;
  EgressEnd end;
  if (registry && !bound_session_.empty() && !session)
    end = EgressEnd{403, "session-ended", "egress: this socket's session has ended: no egress"};
  else if (session && session->state() >= immune::RiskState::orange)
    end = EgressEnd{403, "risk-" + std::string(session->state() == immune::RiskState::red ? "red" : "orange"),
                    "egress: session '" + session->name + "' is " + std::string(immune::to_string(session->state())) +
                        ": no egress until 'tokfence session reset " + session->name + "'"};
  else
    end = co_await EgressExchange(*this, rec, connect).run();  // the exchange lives until this statement ends
  if (session && end.status == 403 && registry->settings().sensor_egress)
    registry->observe(*session, immune::Sensor::egress_denials, "", "egress refused: " + rec.host + " (" + end.rule + ")",
                      unix_ms());
  if (end.status != 0) {
    // 502: allowed, but the destination could not be reached (the row keeps the allowing rule).
    const bool allowed = end.status == 502 && !end.denied;
    rec.decision = allowed ? "allowed" : "denied";
    if (!allowed || rec.rule.empty()) rec.rule = end.rule;
    if (rec.error.empty()) rec.error = end.message;
    const ReplyHeaders headers{std::nullopt, {}, end.rule};
    std::string body = error_body("tokfence_egress", end.message);
    if (!response_begun_) co_await send_reply(end.status, head_.version_minor, false, {}, body, headers);
  }
  rec.duration_ms = ms_since(started);
  (rec.decision == "allowed" ? s_.egress_allowed : s_.egress_denied).fetch_add(1, std::memory_order_relaxed);
  s_.deps.log->record_egress(std::move(rec));
}

// One forward-proxy request's way to its destination, in steps: the target parsed, the
// destination checked against the listener's policy, its addresses found and checked, one of
// them connected to, then the tunnel (or, for an inspected host, Inspection::run_inspected). Each step
// either lets the next run (nullopt) or ends the request with what its row records.
template <class Stream>
class Session<Stream>::EgressExchange {
 public:
  EgressExchange(Session& session, EgressRecord& rec, bool connect) : session_(session), rec_(rec), connect_(connect) {}

  aio::Task<EgressEnd> run() {
    if (auto end = parse_target()) co_return std::move(*end);
    if (auto end = check_destination()) co_return std::move(*end);
    if (auto end = co_await find_addresses()) co_return std::move(*end);
    aio::TcpSocket up(session_.w_.ioc);
    session_.egress_up_ = &up;
    struct Clear {
      aio::TcpSocket*& p;
      ~Clear() { p = nullptr; }
    } clear{session_.egress_up_};
    if (auto end = co_await connect(up)) co_return std::move(*end);
    // The bytes the client sent after the head: the start of the tunnel (or of a request body).
    std::string first(session_.in_.data().substr(session_.head_.size));
    if (connect_) {
      if (auto end = co_await start_connect(up, first)) co_return std::move(*end);
    } else {
      first.insert(0, origin_form_head());
    }
    co_await session_.run_tunnel(up, std::move(first), rec_, watch_ ? &*watch_ : nullptr);
    co_return EgressEnd{};
  }

 private:
  // The destination the request names: CONNECT's authority, or an http:// URL's (and its path).
  std::optional<EgressEnd> parse_target() {
    std::string_view target = session_.head_.target;
    if (!connect_) {
      constexpr std::string_view scheme = "http://";
      if (target.size() < scheme.size() || !iequals(target.substr(0, scheme.size()), scheme)) {
        rec_.host = std::string(target.substr(0, std::min<std::size_t>(target.size(), 200)));
        return EgressEnd{403, "not-http",
                         "egress: only CONNECT and http:// requests are proxied; for https, clients send "
                         "CONNECT (set HTTPS_PROXY)"};
      }
      target.remove_prefix(scheme.size());
      const auto slash = target.find_first_of("/?#");
      if (slash != std::string_view::npos) {
        path_ = target[slash] == '/' ? target.substr(slash) : std::string_view("/");
        target = target.substr(0, slash);
      }
    }
    auto to = egress::parse_authority(target, connect_ ? egress::kDefaultPort : 80);
    if (!to) {
      rec_.host = std::string(target.substr(0, std::min<std::size_t>(target.size(), 200)));
      return EgressEnd{400, "bad-destination", to.error().message};
    }
    authority_ = target;
    to_ = std::move(*to);
    rec_.host = to_.host;
    rec_.port = to_.port;
    where_ = to_.text();
    return std::nullopt;
  }

  // Whether the destination may be reached from this listener at all, and whether it is inspected.
  std::optional<EgressEnd> check_destination() {
    Impl& s = session_.s_;
    if (!connect_)
      if (auto refused = inspect::refuse_placeholder_in_plain_http(session_.head_))
        return EgressEnd{refused->status, refused->rule, refused->message};
    if (!session_.policy_)
      return EgressEnd{403, "no-egress-on-main-listener",
                       "egress: " + where_ + ": the main proxy listeners serve model requests only; agents reach "
                       "other hosts through 'tokfence run' or 'tokfence launch' with --allow or --egress-preset"};
    if (s.deps.controls->killed())
      return EgressEnd{403, "kill-switch", "egress: " + where_ + ": the kill switch is on: 'tokfence unkill' ends it"};
    // The daemon's own listeners, named directly: refused whatever the policy says. A tunnel to
    // the proxy would be a second way to the model proxy; one to the dashboard would pass its
    // "only the daemon's user" check, the daemon itself being the peer. Reached through a name,
    // they are caught below.
    if (to_.host == "localhost" ? is_own_port(to_.port) : to_.ip && is_own_endpoint(*egress::parse_ip(to_.host), to_.port))
      return EgressEnd{403, "own-port",
                       "egress: " + where_ + " is a port of tokfence's own (the proxy's or the dashboard's): model "
                       "requests go to the proxy directly, not through CONNECT"};
    policy_ = session_.policy_->snapshot();
    const egress::Decision decision = egress::decide(*policy_, s.egress_settings, to_);
    rec_.rule = decision.rule;
    if (!decision.allowed)
      return EgressEnd{403, decision.rule,
                       "egress: " + where_ + " is not allowed for '" + session_.label_ + "' (" + decision.rule +
                           "): allow it with 'tokfence egress allow " + where_ +
                           "' (or --allow / --egress-preset when starting the agent)"};
    // Inspected hosts (inspect.hpp): TLS terminated here, because a secret is bound to the host
    // or [egress.domains] has rules for its requests.
    domain_ = egress::find_domain(s.egress_settings, to_.host);
    secrets_ = s.deps.secrets ? s.deps.secrets->snapshot() : std::make_shared<const inspect::SecretBook>();
    inspected_ = !to_.ip && inspect::should_inspect(domain_, *secrets_, to_.host);
    if (inspected_ && !connect_)
      return EgressEnd{403, "inspected-over-http",
                       "egress: " + where_ + " is an inspected host (a bound secret or [egress.domains] rules): "
                       "it is reached over https only"};
    if (inspected_ && !s.deps.inspect_tls)
      return EgressEnd{403, "inspect-unavailable",
                       "egress: " + where_ + " needs TLS inspection, which this daemon has no certificate "
                       "authority for"};
    return std::nullopt;
  }

  // Where to connect: [egress.resolve] and IP literals as given (the user named them), else
  // the name's addresses, each of which must be public.
  aio::Task<std::optional<EgressEnd>> find_addresses() {
    const egress::Settings& settings = session_.s_.egress_settings;
    port_ = to_.port;
    if (auto mapped = settings.resolve.find(to_.host); mapped != settings.resolve.end()) {
      addresses_.push_back(*egress::parse_ip(mapped->second.address));
      port_ = mapped->second.port.value_or(port_);
    } else if (to_.ip) {
      addresses_.push_back(*egress::parse_ip(to_.host));
    } else {
      auto resolved = co_await resolve(to_.host);
      if (!resolved) {
        rec_.decision = "allowed";
        rec_.error = resolved.error().message;
        co_return EgressEnd{502, "resolve-failed", "egress: " + where_ + ": " + resolved.error().message};
      }
      for (const auto& a : *resolved) {
        if (auto why = egress::special_address(a); !why.empty()) {
          rec_.address = a.to_string();
          co_return EgressEnd{403, "private-address",
                              "egress: " + where_ + " resolves to " + a.to_string() + " (" + std::string(why) +
                                  "), which is refused unless named by address: allow the IP literal, or map the "
                                  "name in [egress.resolve]"};
        }
      }
      addresses_ = std::move(*resolved);
    }
    for (const auto& a : addresses_)
      if (is_own_endpoint(a, port_)) {
        rec_.address = a.to_string();
        co_return EgressEnd{403, "own-port", "egress: " + where_ + ": " + a.to_string() + ":" + std::to_string(port_) +
                                                 " is a port of tokfence's own (the proxy's or the dashboard's)"};
      }
    co_return std::nullopt;
  }

  // Connects to exactly the checked addresses, in order.
  aio::Task<std::optional<EgressEnd>> connect(aio::TcpSocket& up) {
    Impl& s = session_.s_;
    error_code ec = net::error::host_not_found;
    for (const auto& a : addresses_) {
      error_code close_ec;
      up.close(close_ec);
      session_.arm(std::chrono::seconds(session_.config().daemon.connect_timeout_seconds));
      co_await up.async_connect(tcp::endpoint(a, port_), with_ec(ec));
      session_.disarm(ec);
      rec_.address = tcp::endpoint(a, port_).address().is_v6() ? "[" + a.to_string() + "]:" + std::to_string(port_)
                                                               : a.to_string() + ":" + std::to_string(port_);
      if (!ec) break;
      if (s.deps.controls->killed()) break;
    }
    if (s.deps.controls->killed())
      co_return EgressEnd{403, "kill-switch", "egress: " + where_ + ": the kill switch is on: 'tokfence unkill' ends it"};
    rec_.decision = "allowed";
    if (ec) {
      rec_.error = "connect failed: " + ec.message();
      co_return EgressEnd{502, "connect-failed",
                          "egress: " + where_ + ": cannot connect to " + rec_.address + ": " + ec.message()};
    }
    up.set_option(tcp::no_delay(true), ec);
    co_return std::nullopt;
  }

  // A CONNECT's 200, then its inspection (which is the whole connection), or the check that a
  // tunnel to port 443 starts with TLS. nullopt: the tunnel goes on, `first` its first bytes.
  aio::Task<std::optional<EgressEnd>> start_connect(aio::TcpSocket& up, std::string& first) {
    static constexpr std::string_view established = "HTTP/1.1 200 Connection Established\r\n\r\n";
    error_code ec;
    session_.response_begun_ = true;
    session_.arm(session_.idle_timeout());
    co_await net::async_write(session_.stream_, net::buffer(established), with_ec(ec));
    session_.disarm(ec);
    if (ec) {
      rec_.error = "client went away before the tunnel started";
      co_return EgressEnd{};
    }
    if (inspected_)
      co_return co_await Inspection::run_inspected(session_, up, std::move(first), rec_, to_, domain_,
                                                   std::move(secrets_), std::move(policy_));
    if (to_.port != 443) co_return std::nullopt;
    // Port 443 carries TLS, and only TLS: the first byte must be a handshake record (0x16).
    if (first.empty()) {
      first.resize(16 * 1024);
      session_.arm(session_.within_idle(session_.config().daemon.header_timeout_seconds));
      std::size_t n = co_await session_.stream_.async_read_some(net::buffer(first), with_ec(ec));
      session_.disarm(ec);
      first.resize(ec ? 0 : n);
      if (ec) {
        rec_.error = "no bytes from the client in the tunnel";
        co_return EgressEnd{};
      }
    }
    if (static_cast<unsigned char>(first[0]) == 0x16) co_return co_await check_server_name(first);
    // Refused in the tunnel: a plain-text client reads the 403 (its bytes were not TLS).
    rec_.decision = "denied";
    rec_.rule = "not-tls";
    rec_.error = "egress: " + where_ + ": the tunnel's first bytes are not a TLS handshake";
    const std::string reply = egress_refusal(403, "not-tls", rec_.error + " (port 443 carries TLS only)");
    session_.arm(std::chrono::seconds(5));
    co_await net::async_write(session_.stream_, net::buffer(reply), with_ec(ec));
    session_.disarm(ec);
    co_return EgressEnd{};
  }

  // The TLS server name (SNI) in the tunnel's ClientHello must be the name the CONNECT was allowed
  // for (egress/client_hello.hpp: a shared front end picks the site by it). A tunnel to an IP
  // literal carries no name (the address was allowed, not a site on it); an Encrypted ClientHello
  // hides the name and is refused. Reads the rest of the ClientHello into `first` if it came in
  // pieces. nullopt: the tunnel goes on.
  aio::Task<std::optional<EgressEnd>> check_server_name(std::string& first) {
    egress::ClientHello hello = egress::read_client_hello(first);
    while (hello.status == egress::ClientHello::need_more) {
      const std::size_t had = first.size();
      first.resize(had + 4096);
      error_code ec;
      session_.arm(session_.within_idle(session_.config().daemon.header_timeout_seconds));
      const std::size_t n = co_await session_.stream_.async_read_some(net::buffer(first.data() + had, 4096), with_ec(ec));
      session_.disarm(ec);
      first.resize(ec ? had : had + n);
      if (ec) {
        rec_.error = "the client's TLS ClientHello did not arrive whole";
        co_return EgressEnd{};
      }
      hello = egress::read_client_hello(first);
    }
    std::string rule, why;
    if (hello.status == egress::ClientHello::malformed) {
      rule = "not-tls", why = "the tunnel's first bytes are not a TLS ClientHello (" + hello.why + ")";
    } else if (hello.encrypted) {
      rule = "sni-hidden", why = "the ClientHello is encrypted (ECH): the site it names cannot be checked";
    } else if (to_.ip && !hello.server_name.empty()) {
      rule = "sni-mismatch", why = "the tunnel to an address asks for the site '" + hello.server_name + "'";
    } else if (!to_.ip && hello.server_name != to_.host) {
      rule = "sni-mismatch", why = hello.server_name.empty()
                                       ? std::string("the ClientHello names no site (SNI); the tunnel was allowed for ") + to_.host
                                       : "the ClientHello asks for '" + hello.server_name + "', the tunnel was allowed for " + to_.host;
    } else {
      watch_.emplace(hello.server_name);  // and the rest of the client's handshake (run_tunnel)
      co_return std::nullopt;
    }
    rec_.decision = "denied";
    rec_.rule = rule;
    rec_.error = "egress: " + where_ + ": " + why;
    // A fatal TLS alert (unrecognized_name, 112): the client's TLS library reports a refused
    // handshake instead of garbage.
    static constexpr unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70};
    error_code ec;
    session_.arm(std::chrono::seconds(5));
    co_await net::async_write(session_.stream_, net::buffer(alert), with_ec(ec));
    session_.disarm(ec);
    co_return EgressEnd{};
  }

  // An http:// request in origin form, to the destination itself: the proxy's own headers
  // stripped, Host from the URL, Connection: close (one request per connection).
  std::string origin_form_head() const {
    const http1::RequestHead& head = session_.head_;
    std::string out;
    out.append(head.method).append(" ").append(path_).append(head.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    out.append("Host: ").append(authority_).append("\r\n");
    for (const auto& h : head.headers) {
      if (iequals(h.name, "host") || iequals(h.name, "proxy-authorization") || iequals(h.name, "proxy-connection") ||
          iequals(h.name, "connection") || iequals(h.name, "keep-alive") || iequals(h.name, "x-tokfence-caller"))
        continue;
      out.append(h.name).append(": ").append(h.value).append("\r\n");
    }
    out.append("Connection: close\r\n\r\n");
    return out;
  }

  // Whether `port` is one the daemon listens on over TCP: the proxy's, or another of its
  // listeners' (the dashboard's: ProxyServer::add_own_port).
  bool is_own_port(std::uint16_t port) const {
    const Impl& s = session_.s_;
    if (port == 0) return false;
    return port == s.tcp_names.port || std::find(s.own_ports.begin(), s.own_ports.end(), port) != s.own_ports.end();
  }

  // Whether `a`:`port` is one of the daemon's own TCP listeners (loopback, unspecified or the
  // proxy's host, on one of its ports).
  bool is_own_endpoint(const boost::asio::ip::address& a, std::uint16_t port) const {
    const ListenerNames& own_names = session_.s_.tcp_names;
    if (!is_own_port(port)) return false;
    const auto why = egress::special_address(a);
    if (why == "loopback" || why == "unspecified") return true;
    std::string host = own_names.host;
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    auto own = egress::parse_ip(host);
    return own && *own == a;
  }

  // getaddrinfo on the resolver threads, waited for at most connect_timeout_seconds.
  aio::Task<Result<std::vector<boost::asio::ip::address>>> resolve(const std::string& host) {
    struct Shared {
      std::mutex mutex;
      std::optional<Result<std::vector<boost::asio::ip::address>>> result;
    };
    const int timeout = session_.config().daemon.connect_timeout_seconds;
    net::io_context& ioc = session_.w_.ioc;
    auto shared = std::make_shared<Shared>();
    auto timer = std::make_shared<aio::Timer>(ioc);
    timer->expires_after(std::chrono::seconds(timeout));
    net::post(*session_.s_.resolvers, [shared, timer, host, executor = ioc.get_executor()] {
      auto r = egress::resolve_blocking(host);
      {
        std::lock_guard lock(shared->mutex);
        shared->result = std::move(r);
      }
      net::post(executor, [timer] { timer->cancel(); });
    });
    error_code ec;
    co_await timer->async_wait(with_ec(ec));
    std::lock_guard lock(shared->mutex);
    if (!shared->result)
      co_return fail("cannot resolve '" + host + "' within " + std::to_string(timeout) + " s (connect_timeout_seconds)");
    co_return std::move(*shared->result);
  }

  Session& session_;
  EgressRecord& rec_;
  const bool connect_;
  std::optional<egress::ClientFlightWatch> watch_;  // a TLS tunnel whose server name was checked
  std::string_view authority_;   // the target's authority (views into the session's head_)
  std::string_view path_ = "/";  // an http:// request's path and query
  egress::Destination to_;
  std::string where_;            // to_.text(), for messages
  const egress::DomainRules* domain_ = nullptr;
  std::shared_ptr<const inspect::SecretBook> secrets_;
  std::shared_ptr<const egress::Policy> policy_;  // the listener's, as this connection found it
  bool inspected_ = false;
  std::vector<boost::asio::ip::address> addresses_;
  std::uint16_t port_ = 0;
};

// ---- Tunnels ------------------------------------------------------------------------------------

// The two directions of a forward-proxy connection, counted.
template <class Stream>
struct Session<Stream>::Tunnel {
  explicit Tunnel(net::io_context& ioc) : waiter(ioc) {}
  std::uint64_t up = 0, down = 0;
  SteadyClock::time_point last_activity = coarse_now();
  std::string cut;          // why it was cut; "" = it ended by itself
  bool down_done = false;   // the destination -> client direction has ended
  aio::Timer waiter;        // cancelled when down_done is set
};

template <class Stream>
void Session<Stream>::cut_tunnel(std::string why) {
  if (!tunnel_ || !tunnel_->cut.empty()) return;
  tunnel_->cut = std::move(why);
  error_code ec;
  stream_.shutdown(net::socket_base::shutdown_both, ec);
  stream_.cancel(ec);
  if (egress_up_) {
    egress_up_->shutdown(net::socket_base::shutdown_both, ec);
    egress_up_->cancel(ec);
  }
}

// Copies `from` to `to` until either ends, counting bytes in `count`; then half-closes `to`.
// The bytes go through a pipe with splice(2) (core/splice.hpp: no copy through this process).
// Where no pipe can be made (descriptors exhausted), read and write.
template <class Stream>
template <class From, class To>
aio::Task<error_code> Session<Stream>::pump(From& from, To& to, std::uint64_t& count, Tunnel& tunnel) {
  error_code ec;
  if (SplicePipe pipe; pipe.ok()) {
    ec = co_await splice_until_end(from, to, pipe, count, tunnel);
  } else {
    std::unique_ptr<char[]> buffer(new char[kTunnelBufferBytes]);
    for (;;) {
      std::size_t n = co_await from.async_read_some(net::buffer(buffer.get(), kTunnelBufferBytes), with_ec(ec));
      if (ec) break;
      tunnel.last_activity = coarse_now();
      co_await net::async_write(to, net::buffer(buffer.get(), n), with_ec(ec));
      if (ec) break;
      count += n;
    }
  }
  error_code ignored;
  to.shutdown(net::socket_base::shutdown_send, ignored);
  co_return ec == net::error::eof ? error_code() : ec;
}

// pump's splice loop: waits where splice_some says (asio's reactor: the kill switch's cancel ends
// the wait) and yields to the thread's other sessions after every 16 chunks. Ends with eof when
// `from` has ended, or the error.
template <class Stream>
template <class From, class To>
aio::Task<error_code> Session<Stream>::splice_until_end(From& from, To& to, SplicePipe& pipe, std::uint64_t& count,
                                                       Tunnel& tunnel) {
  error_code ec;
  from.native_non_blocking(true, ec);
  if (!ec) to.native_non_blocking(true, ec);
  if (ec) co_return ec;
  for (;;) {
    const SpliceStep step = splice_some(from.native_handle(), to.native_handle(), pipe, kTunnelBufferBytes, 16);
    if (step.moved > 0) {
      count += step.moved;
      tunnel.last_activity = coarse_now();
    }
    switch (step.next) {
      case SpliceStep::again:
        co_await net::post(from.get_executor(), with_ec(ec));
        break;
      case SpliceStep::wait_readable:
        co_await from.async_wait(net::socket_base::wait_read, with_ec(ec));
        break;
      case SpliceStep::wait_writable:
        co_await to.async_wait(net::socket_base::wait_write, with_ec(ec));
        break;
      case SpliceStep::from_ended:
        co_return net::error::eof;
      case SpliceStep::to_failed:
      case SpliceStep::from_failed:
        co_return error_code(step.error, boost::system::system_category());
    }
    if (ec) co_return ec;
  }
}

// The client's side of a TLS tunnel until its handshake is over (egress/client_hello.hpp:
// ClientFlightWatch), read and written here rather than spliced, each chunk looked at before it
// goes on: a few records per tunnel. Ends with access_denied when the watch refuses (the chunk
// that completed the refused ClientHello is not sent), else when the watch is done (the caller
// splices the rest) or with the error that ended the client's side.
template <class Stream>
aio::Task<error_code> Session<Stream>::watch_client_flight(aio::TcpSocket& up, Tunnel& tunnel,
                                                          egress::ClientFlightWatch& watch) {
  std::unique_ptr<char[]> buffer(new char[kTunnelBufferBytes]);
  error_code ec;
  for (;;) {
    const std::size_t n = co_await stream_.async_read_some(net::buffer(buffer.get(), kTunnelBufferBytes), with_ec(ec));
    if (ec) co_return ec;
    tunnel.last_activity = coarse_now();
    const auto verdict = watch.feed(std::string_view(buffer.get(), n));
    if (verdict == egress::ClientFlightWatch::Verdict::refused) {
      error_code ignored;
      up.shutdown(net::socket_base::shutdown_both, ignored);
      stream_.shutdown(net::socket_base::shutdown_both, ignored);
      co_return net::error::access_denied;
    }
    co_await net::async_write(up, net::buffer(buffer.get(), n), with_ec(ec));
    if (ec) co_return ec;
    tunnel.up += n;
    if (verdict == egress::ClientFlightWatch::Verdict::done) co_return error_code();
  }
}

// A tunnel the watch refused: its row says so as the first ClientHello's refusals do; returns
// the row's error.
template <class Stream>
std::string Session<Stream>::refuse_watched(EgressRecord& rec, const egress::ClientFlightWatch& watch) {
  rec.decision = "denied";
  rec.rule = "sni-mismatch";
  return "egress: " + rec.host + ":" + std::to_string(rec.port) + ": " + watch.why();
}

// Relays until both directions have ended (or the tunnel is cut: kill switch, idle, shutdown).
// `first` goes to the destination before anything else.
template <class Stream>
aio::Task<void> Session<Stream>::run_tunnel(aio::TcpSocket& up, std::string first, EgressRecord& rec,
                                            egress::ClientFlightWatch* watch) {
  Tunnel tunnel(w_.ioc);
  tunnel_ = &tunnel;
  idle_ = false;
  error_code ec;
  if (watch && watch->feed(first) == egress::ClientFlightWatch::Verdict::refused) {
    rec.error = refuse_watched(rec, *watch);
    tunnel_ = nullptr;
    co_return;
  }
  if (!first.empty()) {
    co_await net::async_write(up, net::buffer(first), with_ec(ec));
    if (!ec) tunnel.up += first.size();
  }
  error_code down_ec;
  if (!ec) {
    auto self = this->shared_from_this();
    net::co_spawn(
        w_.ioc,
        [self, &up, &tunnel, &down_ec]() -> aio::Task<void> {
          down_ec = co_await pump(up, self->stream_, tunnel.down, tunnel);
          tunnel.down_done = true;
          tunnel.waiter.cancel();
          // The destination has closed and everything it sent is with the client: the client's
          // side ends too (a tunnel does not outlive its destination).
          error_code ignored;
          self->stream_.cancel(ignored);
        },
        net::detached);
    if (watch && (ec = co_await watch_client_flight(up, tunnel, *watch)) == net::error::access_denied) {
      tunnel.cut = refuse_watched(rec, *watch);  // the row's error (below)
      ec = {};
    } else if (ec == net::error::eof) {  // the client ended during its handshake: as pump ends
      error_code ignored;
      up.shutdown(net::socket_base::shutdown_send, ignored);
      ec = {};
    } else if (!ec) {
      ec = co_await pump(stream_, up, tunnel.up, tunnel);
    }
    if (ec == net::error::operation_aborted) ec = {};
    if (ec) {
      error_code ignored;
      up.shutdown(net::socket_base::shutdown_both, ignored);
    }
    while (!tunnel.down_done) {
      tunnel.waiter.expires_at(SteadyClock::time_point::max());
      error_code wait_ec;
      co_await tunnel.waiter.async_wait(with_ec(wait_ec));
    }
  } else {
    tunnel.down_done = true;
  }
  rec.bytes_up += tunnel.up;
  rec.bytes_down = tunnel.down;
  if (!tunnel.cut.empty())
    rec.error = tunnel.cut;
  else if (ec && ec != net::error::connection_reset)
    rec.error = "client side: " + ec.message();
  else if (down_ec && down_ec != net::error::connection_reset)
    rec.error = "destination side: " + down_ec.message();
  tunnel_ = nullptr;
}
