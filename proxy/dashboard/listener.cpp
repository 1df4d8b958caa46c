#include "proxy/dashboard/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <variant>

#include "core/loopback_listen.hpp"
#include "core/peer.hpp"
#include "proxy/dashboard/auth.hpp"
#include "proxy/dashboard/web.hpp"

namespace tokfence::proxy {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxHead = 8192;
constexpr auto kReadTime = std::chrono::seconds(2);
constexpr auto kWriteTime = std::chrono::seconds(2);

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

bool write_all(int fd, const std::string& data, Clock::time_point deadline) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      int left = ms_left(deadline);
      if (left == 0 || ::poll(&p, 1, left) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  return s.substr(b);
}

HttpResponse text_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// The request line and headers of `head` (up to the blank line); a response when malformed.
std::variant<HttpRequest, HttpResponse> parse_head(const std::string& head) {
  HttpRequest req;
  const std::size_t line_end = head.find("\r\n");
  const std::string request_line = head.substr(0, line_end);
  const std::size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1 || request_line.compare(sp2 + 1, 7, "HTTP/1.") != 0)
    return text_response(400, "malformed request line\n");
  req.method = request_line.substr(0, sp1);
  std::string target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty() || target[0] != '/') return text_response(400, "the request target must be a path\n");
  if (auto q = target.find('?'); q != std::string::npos) {
    req.query = target.substr(q + 1);
    target.resize(q);
  }
  req.path = std::move(target);
  for (std::size_t at = line_end + 2; at < head.size();) {
    std::size_t end = head.find("\r\n", at);
    if (end == std::string::npos || end == at) break;
    std::string line = head.substr(at, end - at);
    at = end + 2;
    std::size_t colon = line.find(':');
    // A folded line (leading space) or a name with spaces could hide a header from our checks.
    if (colon == std::string::npos || colon == 0 || line.find_first_of(" \t") < colon)
      return text_response(400, "malformed header line\n");
    req.headers.emplace_back(lower(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return req;
}

}  // namespace

struct DashboardListener::Impl {
  DashboardOptions options;
  int listen_fd = -1;
  int listen_fd6 = -1;  // [::1]:port, the IPv6 twin (core/loopback_listen.hpp); -1 without IPv6
  int wake[2] = {-1, -1};
  int port = 0;
  std::thread thread;
  Clock::time_point last_refusal_log{};
  std::optional<DashboardAuth> auth;
  std::unique_ptr<DashboardWeb> web;

  ~Impl() {
    for (int fd : {listen_fd, listen_fd6, wake[0], wake[1]})
      if (fd >= 0) ::close(fd);
  }

  void respond(int fd, const HttpResponse& r, bool head_only = false) {
    (void)write_all(fd, serialize(r, head_only), Clock::now() + kWriteTime);
  }

  void note_refusal(const std::string& line) {
    if (!options.log) return;
    const auto now = Clock::now();
    if (last_refusal_log != Clock::time_point{} && now - last_refusal_log < std::chrono::minutes(1)) return;
    last_refusal_log = now;
    options.log(line);
  }

  bool host_allowed(const std::string& host) const {
    const std::string h = lower(host);
    const std::string p = ":" + std::to_string(port);
    for (const char* name : {"127.0.0.1", "localhost"})
      if (h == name || h == std::string(name) + p) return true;
    return false;
  }

  // What the bytes a connection sent so far hold: nullopt = not a whole request yet; else the
  // request (head and, for POST, its body) or the response refusing it. Bounded: kMaxHead of head,
  // kMaxBody of body.
  std::optional<std::variant<HttpRequest, HttpResponse>> parse_request(const std::string& data) const {
    const std::size_t head_end = data.find("\r\n\r\n");
    if (head_end == std::string::npos && data.size() <= kMaxHead) return std::nullopt;
    if (head_end == std::string::npos || head_end > kMaxHead) return text_response(431, "request head too large\n");
    auto parsed = parse_head(data.substr(0, head_end + 2));
    if (auto* refused = std::get_if<HttpResponse>(&parsed)) return *refused;
    HttpRequest req = std::get<HttpRequest>(std::move(parsed));
    int hosts = 0, lengths = 0;
    std::string host, length;
    for (const auto& [name, value] : req.headers) {
      if (name == "host") ++hosts, host = value;
      if (name == "content-length") ++lengths, length = value;
      if (name == "transfer-encoding") return text_response(411, "send the body with Content-Length\n");
    }
    if (hosts != 1 || !host_allowed(host))
      return text_response(421, "the Host header must be 127.0.0.1:" + std::to_string(port) + " or localhost:" +
                                    std::to_string(port) + "\n");
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (lengths > 1 ||
        (lengths == 1 && (length.empty() || length.size() > 6 || !std::all_of(length.begin(), length.end(), digit))))
      return text_response(400, "malformed Content-Length\n");
    const std::size_t body_size = lengths ? std::stoul(length) : 0;
    if (body_size > 0 && req.method != "POST") return text_response(400, "only POST takes a body\n");
    if (body_size > kMaxBody) return text_response(413, "the body may hold at most 4096 bytes\n");
    if (data.size() < head_end + 4 + body_size) return std::nullopt;
    req.body = data.substr(head_end + 4, body_size);
    return req;
  }

  HttpResponse metrics(const HttpRequest& req) {
    if (req.method != "GET" && req.method != "HEAD") return text_response(405, "use GET\n");
    HttpResponse r;
    r.type = "text/plain; version=0.0.4; charset=utf-8";
    try {
      r.body = options.metrics ? options.metrics() : std::string();
    } catch (const std::exception& e) {
      return text_response(500, std::string("metrics failed: ") + e.what() + "\n");
    }
    return r;
  }

  // Who is asking, before reading a byte: only the daemon's own user. False: refused (answered).
  bool peer_allowed(int fd) {
    auto owner = tcp_peer_owner(fd);
    if (owner && owner->uid == ::geteuid()) return true;
    note_refusal("dashboard: refused a connection from " +
                 (owner ? "uid " + std::to_string(owner->uid) : std::string("an unknown peer")) +
                 ": only the daemon's own user may connect");
    respond(fd, text_response(403, "forbidden: only the user running the tokfence daemon may connect\n"));
    return false;
  }

  // Answers one whole request (or its refusal); true when the connection was handed over (an
  // event stream).
  bool serve(int fd, const std::variant<HttpRequest, HttpResponse>& read) {
    if (auto* refused = std::get_if<HttpResponse>(&read)) {
      respond(fd, *refused);
      return false;
    }
    const HttpRequest& req = std::get<HttpRequest>(read);
    const bool head_only = req.method == "HEAD";
    if (req.path == "/metrics") {
      respond(fd, metrics(req), head_only);
      return false;
    }
    if (!web) {
      respond(fd, text_response(404, "not found: the listener serves GET /metrics\n"));
      return false;
    }
    HttpResponse r = web->handle(req);
    if (r.status == 403 && req.method == "POST")
      note_refusal("dashboard: refused an action (" + req.path.substr(0, 40) + "): " + r.body.substr(0, 120));
    if (!r.ended_session.empty() && options.events) options.events->end_session(r.ended_session);
    if (r.event_stream && !head_only) {
      if (options.events && options.events->adopt(fd, serialize(r, false), r.stream_session, r.stream_ends)) return true;
      r = text_response(503, "too many live views are open: close one\n");
    }
    respond(fd, r, head_only);
    return false;
  }

  // One thread, many connections: every accepted connection is read as its bytes arrive (poll),
  // and answered once its request is whole. A connection that sends nothing (a page's
  // `preconnect`, a stalled client) holds up no other; at most kMaxPending wait at once, the
  // oldest is dropped for a newer one, and each is closed after kReadTime.
  struct Pending {
    int fd;
    std::string data;
    Clock::time_point deadline;
  };
  static constexpr std::size_t kMaxPending = 64;
  static constexpr std::size_t kListening = 3;  // polled[0..2]: the two listeners and the wake pipe

  void finish(int fd, const std::variant<HttpRequest, HttpResponse>& read) {
    if (serve(fd, read)) return;  // the event stream owns it now
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }

  void accept_ready(int listening, std::vector<Pending>& pending) {
    for (int i = 0; i < 16; ++i) {  // a burst, then back to the connections already waiting
      int fd = ::accept4(listening, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      if (!peer_allowed(fd)) {
        ::close(fd);
        continue;
      }
      if (pending.size() >= kMaxPending) {
        ::close(pending.front().fd);
        pending.erase(pending.begin());
      }
      pending.push_back(Pending{fd, {}, Clock::now() + kReadTime});
    }
  }

  // Reads what `p` has; true when it is done with (answered or gone).
  bool read_ready(Pending& p) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(p.fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        ::close(p.fd);  // closed before a whole request: nothing to answer
        return true;
      }
      p.data.append(buf, static_cast<std::size_t>(n));
      if (p.data.size() > kMaxHead + kMaxBody + 4) break;
    }
    auto read = parse_request(p.data);
    if (!read) return false;
    finish(p.fd, *read);
    return true;
  }

  void loop() {
    ::pthread_setname_np(::pthread_self(), "tf-dashboard");  // bench/widget_cost.sh reads its CPU time
    std::vector<Pending> pending;
    std::vector<pollfd> polled;
    for (;;) {
      // listen_fd6 -1 (no twin): poll skips a negative descriptor.
      polled.assign({{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}, {listen_fd6, POLLIN, 0}});
      auto next_deadline = Clock::time_point::max();
      for (const auto& p : pending) {
        polled.push_back({p.fd, POLLIN, 0});
        next_deadline = std::min(next_deadline, p.deadline);
      }
      const int wait_ms = pending.empty() ? -1 : std::max(1, ms_left(next_deadline));
      if (::poll(polled.data(), polled.size(), wait_ms) < 0 && errno != EINTR) break;
      if (polled[1].revents) break;
      std::vector<Pending> still;
      for (std::size_t i = 0; i < pending.size(); ++i) {
        Pending& p = pending[i];
        if (polled[i + kListening].revents && read_ready(p)) continue;
        if (Clock::now() >= p.deadline) {
          finish(p.fd, text_response(408, "request not received in time\n"));
          continue;
        }
        still.push_back(std::move(p));
      }
      pending = std::move(still);
      if (polled[0].revents & POLLIN) accept_ready(listen_fd, pending);
      if (polled[2].revents & POLLIN) accept_ready(listen_fd6, pending);
    }
    for (const auto& p : pending) ::close(p.fd);
  }
};

Result<std::unique_ptr<DashboardListener>> DashboardListener::start(DashboardOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  // 127.0.0.1 and its IPv6 twin: a browser tries localhost at ::1 first, where another local user
  // would otherwise serve a look-alike dashboard (review 14a F2).
  LoopbackPair pair = listen_loopback_pair(static_cast<std::uint16_t>(impl->options.port), 16, SOCK_NONBLOCK);
  if (!pair.error.empty())
    return fail("dashboard: " + pair.error +
                (pair.twin_busy ? "; stop it or choose another [dashboard] port (0 = any free one)"
                                : ": choose another [dashboard] port (0 = any free one)"));
  impl->listen_fd = pair.v4;
  impl->listen_fd6 = pair.v6;
  impl->port = pair.port;
  const std::string where = "dashboard: cannot listen on 127.0.0.1:" + std::to_string(impl->port);
  if (impl->options.control) {
    auto auth = DashboardAuth::create();
    if (!auth) return std::unexpected(auth.error());
    impl->auth.emplace(std::move(*auth));
    impl->web = std::make_unique<DashboardWeb>(
        DashboardWeb::Sources{impl->port, impl->options.control, impl->options.db_path, impl->options.log}, *impl->auth);
  }
  if (::pipe2(impl->wake, O_CLOEXEC) != 0) return fail(where + ": cannot create a pipe");
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->loop(); });
  return std::unique_ptr<DashboardListener>(new DashboardListener(std::move(impl)));
}

DashboardListener::DashboardListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DashboardListener::~DashboardListener() { stop(); }
int DashboardListener::port() const { return impl_->port; }
std::vector<std::string> DashboardListener::addresses() const {
  std::vector<std::string> out{"127.0.0.1:" + std::to_string(impl_->port)};
  if (impl_->listen_fd6 >= 0) out.push_back("[::1]:" + std::to_string(impl_->port));
  return out;
}

Result<nlohmann::json> DashboardListener::login_url() {
  if (!impl_->web) return fail("dashboard: the web dashboard is not served by this daemon");
  return impl_->web->login_url();
}

void DashboardListener::stop() {
  if (!impl_->thread.joinable()) return;
  [[maybe_unused]] auto n = ::write(impl_->wake[1], "x", 1);
  impl_->thread.join();
  if (impl_->options.events) impl_->options.events->stop();
}

}  // namespace tokfence::proxy
