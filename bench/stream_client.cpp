// stream_client: the streaming half of bench/proxy_bench.sh, which compiles it on the fly.
//
//   stream_client ttfc  --port P --path /v1/chat/completions --body JSON [--header "k: v"]... --count N
//       N sequential streaming requests, each on a new connection; prints the time from connect()
//       to the first byte of the first SSE event ("data:" after the headers), one line per request
//       in microseconds, then "median_us M".
//   stream_client hold  --port P --path ... --body JSON [--header ...] --count N --hold-ms H
//                       --ready-file F [--timeout-s T]
//       Opens N streams at once and, once each has delivered its first event (or T seconds passed),
//       writes "ready K" to F, keeps them open (draining) for H ms, then closes them all.
//   stream_client burst --port P --path ... --body JSON [--header ...] --count N [--timeout-s T]
//                       [--result-file F]
//       Opens N streams at once from this one process (as one agent with many requests in flight
//       would) and reads each to its end (the proxy closes it: Connection: close). Prints, and
//       writes to F: "opened K", "completed C" (a 200 whose stream reached "[DONE]"), "statuses
//       200:A 503:B ...", "end_unix_ms T" (when the last stream ended). Exit 0 when all completed.
//
// Loopback only, bounded in count and time. Plain POSIX sockets and poll(): no dependencies.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  int port = 0;
  std::string path = "/v1/chat/completions";
  std::string body;
  std::vector<std::string> headers;
  int count = 1;
  int hold_ms = 1000;
  int timeout_s = 60;
  std::string ready_file;
  std::string result_file;
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "stream_client: error: %s\n", message.c_str());
  std::exit(2);
}

std::string request_text(const Options& o) {
  std::string r = "POST " + o.path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(o.port) +
                  "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nConnection: close\r\nContent-Length: " +
                  std::to_string(o.body.size()) + "\r\n";
  for (const auto& h : o.headers) r += h + "\r\n";
  r += "\r\n" + o.body;
  return r;
}

int open_socket(int port, bool nonblocking) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True once `buf` holds the response headers and the start of an SSE event after them.
bool has_first_event(const std::string& buf) {
  auto end = buf.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  return buf.find("data:", end) != std::string::npos;
}

int run_ttfc(const Options& o) {
  std::string req = request_text(o);
  std::vector<long> samples;
  for (int i = 0; i < o.count; ++i) {
    auto start = Clock::now();
    int fd = open_socket(o.port, false);
    if (fd < 0) die("connect failed");
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) die("send failed");
    std::string buf;
    char chunk[8192];
    bool ok = false;
    while (buf.size() < 1024 * 1024) {
      auto n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buf.append(chunk, static_cast<std::size_t>(n));
      if (has_first_event(buf)) {
        ok = true;
        break;
      }
    }
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    ::close(fd);
    if (!ok) die("request " + std::to_string(i) + ": no SSE event in the reply: " + buf.substr(0, 200));
    samples.push_back(us);
    std::printf("%ld\n", static_cast<long>(us));
  }
  std::sort(samples.begin(), samples.end());
  std::printf("median_us %ld\n", samples[samples.size() / 2]);
  return 0;
}

int run_hold(const Options& o) {
  std::string req = request_text(o);
  struct Conn {
    int fd = -1;
    std::size_t sent = 0;
    std::string head;  // bytes until the first event is seen
    bool ready = false, done = false;
  };
  std::vector<Conn> conns(static_cast<std::size_t>(o.count));
  for (auto& c : conns) {
    // The listen queue may overflow when a thousand connect at once: retry a little.
    for (int attempt = 0; attempt < 50 && c.fd < 0; ++attempt) {
      c.fd = open_socket(o.port, true);
      if (c.fd < 0) ::usleep(2000);
    }
    if (c.fd < 0) c.done = true;
  }
  auto deadline = Clock::now() + std::chrono::seconds(o.timeout_s);
  int ready = 0;
  bool reported = false;
  Clock::time_point release{};
  std::vector<pollfd> pfds;
  char chunk[16384];
  for (;;) {
    auto now = Clock::now();
    if (!reported && (ready == o.count || now >= deadline)) {
      std::ofstream(o.ready_file) << "ready " << ready << "\n";
      reported = true;
      release = now + std::chrono::milliseconds(o.hold_ms);
    }
    if (reported && now >= release) break;
    pfds.clear();
    std::vector<Conn*> owners;
    for (auto& c : conns) {
      if (c.done) continue;
      short events = POLLIN;
      if (c.sent < req.size()) events |= POLLOUT;
      pfds.push_back({c.fd, events, 0});
      owners.push_back(&c);
    }
    if (pfds.empty() && reported) {
      ::usleep(10000);
      continue;
    }
    if (::poll(pfds.data(), pfds.size(), 50) < 0 && errno != EINTR) die("poll failed");
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      Conn& c = *owners[i];
      if (pfds[i].revents & POLLOUT) {
        auto n = ::send(c.fd, req.data() + c.sent, req.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) c.sent += static_cast<std::size_t>(n);
        else if (n < 0 && errno != EAGAIN) c.done = true;
      }
      if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        auto n = ::recv(c.fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
          if (n == 0 || errno != EAGAIN) c.done = true;
          continue;
        }
        if (!c.ready) {
          c.head.append(chunk, static_cast<std::size_t>(n));
          if (has_first_event(c.head)) {
            c.ready = true;
            c.head.clear();
            c.head.shrink_to_fit();
            ++ready;
          } else if (c.head.size() > 65536) {
            c.done = true;
          }
        }
      }
    }
  }
  for (auto& c : conns)
    if (c.fd >= 0) ::close(c.fd);
  std::printf("ready %d of %d\n", ready, o.count);
  return ready == o.count ? 0 : 1;
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int run_burst(const Options& o) {
  std::string req = request_text(o);
  struct Conn {
    int fd = -1;
    std::size_t sent = 0;
    int status = 0;
    std::string head;  // until the status line is read
    std::string tail;  // the last bytes seen, to find "[DONE]" across reads
    bool done_seen = false, closed = false;
  };
  std::vector<Conn> conns(static_cast<std::size_t>(o.count));
  int opened = 0;
  for (auto& c : conns) {
    for (int attempt = 0; attempt < 50 && c.fd < 0; ++attempt) {
      c.fd = open_socket(o.port, true);
      if (c.fd < 0) ::usleep(2000);
    }
    if (c.fd < 0) c.closed = true;
    else ++opened;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(o.timeout_s);
  std::int64_t end_ms = 0;
  std::vector<pollfd> pfds;
  std::vector<Conn*> owners;
  char chunk[16384];
  for (;;) {
    pfds.clear();
    owners.clear();
    for (auto& c : conns) {
      if (c.closed) continue;
      short events = POLLIN;
      if (c.sent < req.size()) events |= POLLOUT;
      pfds.push_back({c.fd, events, 0});
      owners.push_back(&c);
    }
    if (pfds.empty() || Clock::now() >= deadline) break;
    if (::poll(pfds.data(), pfds.size(), 100) < 0 && errno != EINTR) die("poll failed");
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      Conn& c = *owners[i];
      if (pfds[i].revents & POLLOUT) {
        auto n = ::send(c.fd, req.data() + c.sent, req.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) c.sent += static_cast<std::size_t>(n);
      }
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      auto n = ::recv(c.fd, chunk, sizeof chunk, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        ::close(c.fd);
        c.fd = -1;
        c.closed = true;
        end_ms = unix_ms_now();
        continue;
      }
      std::string_view got(chunk, static_cast<std::size_t>(n));
      if (c.status == 0) {
        c.head.append(got.substr(0, std::min<std::size_t>(got.size(), 64)));
        if (c.head.size() >= 12 && c.head.compare(0, 5, "HTTP/") == 0) {
          c.status = std::atoi(c.head.c_str() + 9);
          c.head.clear();
          c.head.shrink_to_fit();
        }
      }
      c.tail.append(got.substr(got.size() > 64 ? got.size() - 64 : 0));
      if (c.tail.find("[DONE]") != std::string::npos) c.done_seen = true;
      if (c.tail.size() > 64) c.tail.erase(0, c.tail.size() - 64);
    }
  }
  int completed = 0;
  std::vector<std::pair<int, int>> statuses;  // status, count
  for (auto& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
    if (c.status == 200 && c.done_seen) ++completed;
    auto it = std::find_if(statuses.begin(), statuses.end(), [&](auto& s) { return s.first == c.status; });
    if (it == statuses.end()) statuses.emplace_back(c.status, 1);
    else ++it->second;
  }
  std::sort(statuses.begin(), statuses.end());
  std::string report = "opened " + std::to_string(opened) + "\ncompleted " + std::to_string(completed) + "\nstatuses";
  for (auto& [status, n] : statuses) report += " " + std::to_string(status) + ":" + std::to_string(n);
  report += "\nend_unix_ms " + std::to_string(end_ms ? end_ms : unix_ms_now()) + "\n";
  std::fputs(report.c_str(), stdout);
  if (!o.result_file.empty()) std::ofstream(o.result_file) << report;
  return completed == o.count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc < 2) die("usage: stream_client ttfc|hold|burst --port P --body JSON [options] (see the source)");
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + ": missing value");
      return argv[++i];
    };
    if (a == "--port") o.port = std::atoi(value().c_str());
    else if (a == "--path") o.path = value();
    else if (a == "--body") o.body = value();
    else if (a == "--header") o.headers.push_back(value());
    else if (a == "--count") o.count = std::clamp(std::atoi(value().c_str()), 1, 20000);
    else if (a == "--hold-ms") o.hold_ms = std::clamp(std::atoi(value().c_str()), 0, 600000);
    else if (a == "--timeout-s") o.timeout_s = std::clamp(std::atoi(value().c_str()), 1, 600);
    else if (a == "--ready-file") o.ready_file = value();
    else if (a == "--result-file") o.result_file = value();
    else die("unknown argument: " + a);
  }
  if (o.port <= 0 || o.port > 65535) die("--port: missing or out of range");
  if (o.mode == "ttfc") return run_ttfc(o);
  if (o.mode == "burst") return run_burst(o);
  if (o.mode == "hold") {
    if (o.ready_file.empty()) die("hold: --ready-file is required");
    return run_hold(o);
  }
  die("unknown mode: " + o.mode);
}
