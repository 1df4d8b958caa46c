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
#include <thread>

#include "core/peer.hpp"

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

}  // namespace

struct DashboardListener::Impl {
  DashboardOptions options;
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  int port = 0;
  std::thread thread;
  Clock::time_point last_refusal_log{};

  ~Impl() {
    for (int fd : {listen_fd, wake[0], wake[1]})
      if (fd >= 0) ::close(fd);
  }

  void respond(int fd, int status, const char* reason, const std::string& type, const std::string& body,
               bool head_only = false) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
                      "\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
    if (!head_only) out += body;
    (void)write_all(fd, out, Clock::now() + kWriteTime);
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

  void serve(int fd) {
    const char* text = "text/plain; charset=utf-8";
    // Who is asking, before reading a byte: only the daemon's own user.
    auto owner = tcp_peer_owner(fd);
    if (!owner || owner->uid != ::geteuid()) {
      note_refusal("dashboard: refused a connection from " +
                   (owner ? "uid " + std::to_string(owner->uid) : std::string("an unknown peer")) +
                   ": only the daemon's own user may connect");
      respond(fd, 403, "Forbidden", text, "forbidden: only the user running the tokfence daemon may connect\n");
      return;
    }
    // The request head, bounded in size and time.
    std::string head;
    const auto deadline = Clock::now() + kReadTime;
    char buf[2048];
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (head.size() > kMaxHead) return respond(fd, 431, "Request Header Fields Too Large", text, "request head too large\n");
      pollfd p{fd, POLLIN, 0};
      int left = ms_left(deadline);
      if (left == 0) return respond(fd, 408, "Request Timeout", text, "request head not received in time\n");
      int r = ::poll(&p, 1, left);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return respond(fd, 408, "Request Timeout", text, "request head not received in time\n");
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return;
      head.append(buf, static_cast<std::size_t>(n));
    }
    const std::size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    const std::size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    if (sp1 == std::string::npos || sp2 == sp1 || request_line.compare(sp2 + 1, 7, "HTTP/1.") != 0)
      return respond(fd, 400, "Bad Request", text, "malformed request line\n");
    const std::string method = request_line.substr(0, sp1);
    std::string target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string host;
    int hosts = 0;
    for (std::size_t at = line_end + 2; at < head.size();) {
      std::size_t end = head.find("\r\n", at);
      if (end == std::string::npos || end == at) break;
      std::string line = head.substr(at, end - at);
      at = end + 2;
      std::size_t colon = line.find(':');
      if (colon == std::string::npos) return respond(fd, 400, "Bad Request", text, "malformed header line\n");
      if (lower(line.substr(0, colon)) == "host") {
        ++hosts;
        host = trim(line.substr(colon + 1));
      }
    }
    if (hosts != 1 || !host_allowed(host))
      return respond(fd, 421, "Misdirected Request", text,
                     "the Host header must be 127.0.0.1:" + std::to_string(port) + " or localhost:" + std::to_string(port) + "\n");
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    if (target != "/metrics") return respond(fd, 404, "Not Found", text, "not found: the listener serves GET /metrics\n");
    if (method != "GET" && method != "HEAD") return respond(fd, 405, "Method Not Allowed", text, "use GET\n");
    std::string body;
    try {
      body = options.metrics ? options.metrics() : std::string();
    } catch (const std::exception& e) {
      return respond(fd, 500, "Internal Server Error", text, std::string("metrics failed: ") + e.what() + "\n");
    }
    respond(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, method == "HEAD");
  }

  void loop() {
    ::pthread_setname_np(::pthread_self(), "tf-dashboard");  // bench/widget_cost.sh reads its CPU time
    for (;;) {
      pollfd p[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (p[1].revents) return;
      if (!(p[0].revents & POLLIN)) continue;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      serve(fd);
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
    }
  }
};

Result<std::unique_ptr<DashboardListener>> DashboardListener::start(DashboardOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const std::string where = "dashboard: cannot listen on 127.0.0.1:" + std::to_string(impl->options.port);
  impl->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (impl->listen_fd < 0) return fail(where + ": " + std::strerror(errno));
  int one = 1;
  ::setsockopt(impl->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(impl->options.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return fail(where + ": " + std::strerror(errno) + ": choose another [dashboard] port (0 = any free one)");
  if (::listen(impl->listen_fd, 16) != 0) return fail(where + ": " + std::strerror(errno));
  socklen_t len = sizeof addr;
  ::getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  impl->port = ntohs(addr.sin_port);
  if (::pipe2(impl->wake, O_CLOEXEC) != 0) return fail(where + ": cannot create a pipe");
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->loop(); });
  return std::unique_ptr<DashboardListener>(new DashboardListener(std::move(impl)));
}

DashboardListener::DashboardListener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DashboardListener::~DashboardListener() { stop(); }
int DashboardListener::port() const { return impl_->port; }

void DashboardListener::stop() {
  if (!impl_->thread.joinable()) return;
  [[maybe_unused]] auto n = ::write(impl_->wake[1], "x", 1);
  impl_->thread.join();
}

}  // namespace tokfence::proxy
