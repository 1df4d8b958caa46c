// tokfence-relay: carries proxy traffic across a namespace boundary, and can be a container's or a
// sandbox's init.
//
//   tokfence-relay [--forward SPEC]... [--ready-file PATH | --ready-fd N] [--own-uid-only] [--check-host
//                  [--page-policy]] [--agent-seccomp [--agent-allow-unix-sockets]] [-- COMMAND ARGS...]
//
//   SPEC  tcp:HOST:PORT=unix:/path.sock   listen on TCP (numeric host), relay each connection to the
//                                         Unix socket (PORT 0 picks a free port)
//         unix:/path.sock=tcp:HOST:PORT   listen on a Unix socket (mode 0666; a stale socket file is
//                                         replaced), relay each connection to TCP
//         tcp:HOST:PORT=unixat:FD/NAME[@UID]
//                                         listen on TCP, relay each connection to the socket NAME in
//                                         the inherited directory descriptor FD, opened safely for
//                                         EVERY connection (see below)
//
// `unixat:` is for a directory another principal can write (the container's ui.sock directory):
// the host must never connect there by name, because the container can replace NAME with a symlink
// to any host socket (/var/run/docker.sock, tokfence's control.sock) and a connect() by path would
// follow it with the host user's rights. So for each connection the relay does
// openat(FD, NAME, O_PATH|O_NOFOLLOW), checks through that descriptor (fstat) that it is a socket
// owned by UID (when given: the container user's uid as the host sees it), and connects through
// /proc/self/fd/<that descriptor>, i.e. to exactly the inode it checked. Anything else (a symlink,
// a regular file, a socket of another owner, a missing NAME) refuses that connection with a
// "tokfence-relay: refused:" line on stderr. NAME is one path component.
//
// Why it exists: a network namespace with only loopback (a sandbox, or a container on
// `--network none`) cannot reach the daemon's TCP port, but a Unix socket bind-mounted into it
// works across namespaces. The relay listens on the address the client expects (127.0.0.1:<port>)
// and passes the bytes to the daemon's Unix socket, unchanged.
//
// With COMMAND the relay runs it as its child, forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/
// SIGUSR2 to it, reaps every process that gets re-parented to it (it may be PID 1), and exits with
// the child's status (128+signal if the child was killed). Without COMMAND it relays until
// SIGTERM/SIGINT. `--ready-file` is written (atomically) once every listener is up, one line per
// forward with the actual listening address; `--ready-fd N` writes the same lines to descriptor N
// (a pipe) and closes it, for starters that must not have anything written by name.
//
// `--own-uid-only` and `--check-host` (launch's dashboard relay passes both; they apply to every
// TCP listener of this relay): a TCP connection whose client socket is not owned by the relay's
// own uid (core/peer.hpp tcp_peer_owner: NETLINK_SOCK_DIAG, as the proxy and the web dashboard
// check) is answered 403 and closed before anything is connected; and the first request head
// (peeked, at most 8 KiB within 5 s, so the bytes stay queued for the target) must name the
// listener as Host: 127.0.0.1:<port> or localhost:<port>, else 421 and close. That stops other
// local users and DNS-rebinding web pages (a page at http://evil.example:<port> whose name now
// resolves to 127.0.0.1 sends Host: evil.example:<port>); a WebSocket upgrade starts with such a
// head too. The same head must not come from a web page of another origin, else 403 and close: an
// Origin field other than http://127.0.0.1:<port> / http://localhost:<port>, or Sec-Fetch-Site
// cross-site or same-site (core/page_origin.hpp). A page on any site names the right Host when it
// opens ws://127.0.0.1:<port>/, and a WebSocket has no same-origin read barrier, so without this
// any page could read and drive the container's UI. Only the first head of a connection is
// looked at, so it goes on with Connection: close (forwarded_head) and the connection
// carries no second request; a WebSocket handshake keeps its fields, and after the head the bytes
// flow untouched.
//
// With --check-host a listener on 127.0.0.1:<port> also listens on [::1]:<port> (the same checks;
// core/loopback_listen.hpp): a browser tries localhost at ::1 first, and another local user
// listening there would serve the page. A fixed port whose twin another program holds is an error
// naming its uid; port 0 picks a port free on both. The ready line names 127.0.0.1 only.
//
// `--page-policy` (with --check-host; launch's dashboard relay passes it): the relayed UI is the
// container's page, run by the user's browser, which has the network the container lacks. The
// answer to every checked request that is no WebSocket handshake gets core/page_policy.hpp's
// Content-Security-Policy (loads, connections, forms and workers only to the listener's own
// origin), X-DNS-Prefetch-Control: off and Connection: close (so no later answer on the
// connection goes unrewritten), the head rebuilt from allow-listed fields after a strict reading
// (core/page_policy.hpp: whatever a browser could read differently ends the connection); a
// service worker script is answered with one that unregisters itself. No cookie crosses the
// relay either way (browsers keep cookies per host, not per port: the web dashboard's session
// cookie would reach the container).
//
// `--agent-seccomp` (the Linux sandbox always passes it): COMMAND starts under the agent's
// seccomp filter (sandbox/seccomp.hpp: no AF_UNIX sockets, no io_uring, no ptrace...); if the
// filter cannot be installed, COMMAND never runs. `--agent-allow-unix-sockets` (`tokfence run
// --allow-socket`) lets it create AF_UNIX sockets. The relay itself stays unfiltered (it connects
// to the proxy socket) and makes itself non-dumpable, so the agent cannot ptrace it or reach its
// memory and descriptors through /proc/1. COMMAND never inherits a descriptor above stderr.
//
// Deliberately small: one thread, Boost.Asio only, linked statically so it runs in any image.
// Listening sockets are close-on-exec (Asio 1.74 does not do that), so the child never inherits
// them. TCP_NODELAY on both sides: without it small SSE frames stall for 40 ms.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "core/ascii.hpp"
#include "core/fs_identity.hpp"
#include "core/loopback_listen.hpp"
#include "core/page_origin.hpp"
#include "core/page_policy.hpp"
#include "core/peer.hpp"
#include "core/splice.hpp"
#include "sandbox/seccomp.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using unix_proto = asio::local::stream_protocol;
using boost::system::error_code;
using tokfence::SplicePipe;
using tokfence::SpliceStep;
using tokfence::splice_some;

// Per direction and connection. 64 KiB: with 16 KiB a CONNECT tunnel through the relay moved
// 0.46x what a direct connection does (bench/egress_tunnel.sh), four syscalls per 64 KiB instead of
// one; at most kMaxConnections x 128 KiB.
constexpr std::size_t kBufferSize = 64 * 1024;
// A bound on open relayed connections: beyond it new connections are closed at once.
constexpr int kMaxConnections = 1024;
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// A Unix server with a full listen queue answers EAGAIN: retry this often, this far apart.
constexpr int kUnixConnectRetries = 200;
constexpr auto kUnixRetryDelay = std::chrono::milliseconds(10);
// --check-host: the first request head, at most this big, within this time; looked at again this
// often while incomplete (it is peeked, so the socket stays readable until the target reads it).
constexpr std::size_t kMaxFirstHead = 8 * 1024;
constexpr auto kFirstHeadTime = std::chrono::seconds(5);
constexpr auto kPeekInterval = std::chrono::milliseconds(10);
// --page-policy: the answer's head (interim ones included) read before it is rewritten, at most.
constexpr std::size_t kMaxAnswerHead = 64 * 1024;

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "tokfence-relay: error: " << message << "\n"
            << "usage: tokfence-relay [--forward tcp:127.0.0.1:PORT=unix:/path.sock | "
               "--forward unix:/path.sock=tcp:127.0.0.1:PORT]... [--ready-file PATH | --ready-fd N] [-- COMMAND ARGS...]\n";
  std::exit(2);
}

struct TcpEndpoint {
  tcp::endpoint endpoint;
};
struct UnixEndpoint {
  std::string path;
};
// A socket NAME inside an inherited directory descriptor, checked on every connect (unixat:).
struct UnixAtEndpoint {
  int dir_fd = -1;
  std::string name;
  std::optional<uid_t> owner;
  std::string text;  // as given, for messages and the ready file
};
using Endpoint = std::variant<TcpEndpoint, UnixEndpoint, UnixAtEndpoint>;

// Parses a decimal number that must fit `max`; nullopt for anything else.
std::optional<unsigned long> parse_decimal(const std::string& text, unsigned long max) {
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  unsigned long value = std::stoul(text);
  if (value > max) return std::nullopt;
  return value;
}

// unixat:FD/NAME[@UID]. FD must be an open directory now; NAME one component.
UnixAtEndpoint parse_unixat(const std::string& text, const std::string& spec) {
  std::string rest = text.substr(7);
  auto slash = rest.find('/');
  if (slash == std::string::npos) usage_error("forward: unixat needs FD/NAME: " + spec);
  auto fd = parse_decimal(rest.substr(0, slash), 1 << 20);
  if (!fd) usage_error("forward: unixat: bad descriptor number: " + spec);
  std::string name = rest.substr(slash + 1);
  std::optional<uid_t> owner;
  if (auto at = name.rfind('@'); at != std::string::npos) {
    auto uid = parse_decimal(name.substr(at + 1), 0xfffffffeUL);
    if (!uid) usage_error("forward: unixat: bad owner uid: " + spec);
    owner = static_cast<uid_t>(*uid);
    name.resize(at);
  }
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    usage_error("forward: unixat: NAME must be one file name: " + spec);
  struct stat st{};
  if (::fstat(static_cast<int>(*fd), &st) != 0 || !S_ISDIR(st.st_mode))
    usage_error("forward: unixat: descriptor " + std::to_string(*fd) + " is not an open directory: " + spec);
  return UnixAtEndpoint{static_cast<int>(*fd), name, owner, text};
}

struct Forward {
  std::string spec;
  Endpoint listen;
  Endpoint target;
};

Endpoint parse_endpoint(const std::string& text, const std::string& spec) {
  if (text.rfind("unixat:", 0) == 0) return parse_unixat(text, spec);
  if (text.rfind("unix:", 0) == 0) {
    std::string path = text.substr(5);
    if (path.empty() || path[0] != '/') usage_error("forward: unix path must be absolute: " + spec);
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) usage_error("forward: unix path too long: " + spec);
    return UnixEndpoint{path};
  }
  if (text.rfind("tcp:", 0) == 0) {
    std::string rest = text.substr(4);
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) usage_error("forward: tcp address needs HOST:PORT: " + spec);
    std::string host = rest.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    std::string port_text = rest.substr(colon + 1);
    error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) usage_error("forward: tcp host must be a numeric address: " + spec);
    if (port_text.empty() || port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string::npos)
      usage_error("forward: bad tcp port: " + spec);
    unsigned long port = std::stoul(port_text);
    if (port > 65535) usage_error("forward: bad tcp port: " + spec);
    return TcpEndpoint{tcp::endpoint(address, static_cast<unsigned short>(port))};
  }
  usage_error("forward: endpoint must start with tcp:, unix: or unixat: : " + spec);
}

Forward parse_forward(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos) usage_error("forward: expected LISTEN=TARGET: " + spec);
  Forward f{spec, parse_endpoint(spec.substr(0, eq), spec), parse_endpoint(spec.substr(eq + 1), spec)};
  bool listen_tcp = std::holds_alternative<TcpEndpoint>(f.listen);
  bool target_tcp = std::holds_alternative<TcpEndpoint>(f.target);
  if (listen_tcp == target_tcp) usage_error("forward: one side must be tcp and the other unix: " + spec);
  if (std::holds_alternative<UnixAtEndpoint>(f.listen)) usage_error("forward: unixat can only be a target: " + spec);
  if (target_tcp && std::get<TcpEndpoint>(f.target).endpoint.port() == 0)
    usage_error("forward: target tcp port must not be 0: " + spec);
  return f;
}

void set_cloexec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int g_open_connections = 0;

// One side of a relayed connection: a TCP or a Unix stream socket.
class Stream {
 public:
  explicit Stream(tcp::socket s) : socket_(std::move(s)) {}
  explicit Stream(unix_proto::socket s) : socket_(std::move(s)) {}

  template <class Handler>
  void async_read_some(asio::mutable_buffer buffer, Handler&& handler) {
    std::visit([&](auto& s) { s.async_read_some(buffer, std::forward<Handler>(handler)); }, socket_);
  }
  template <class Handler>
  void async_write(asio::const_buffer buffer, Handler&& handler) {
    std::visit([&](auto& s) { asio::async_write(s, buffer, std::forward<Handler>(handler)); }, socket_);
  }
  template <class Handler>
  void async_wait(asio::socket_base::wait_type what, Handler&& handler) {
    std::visit([&](auto& s) { s.async_wait(what, std::forward<Handler>(handler)); }, socket_);
  }
  int native_handle() {
    return std::visit([](auto& s) { return static_cast<int>(s.native_handle()); }, socket_);
  }
  bool set_non_blocking() {
    error_code ec;
    std::visit([&](auto& s) { s.native_non_blocking(true, ec); }, socket_);
    return !ec;
  }
  void shutdown_send() {
    error_code ec;
    std::visit([&](auto& s) { s.shutdown(asio::socket_base::shutdown_send, ec); }, socket_);
  }
  void close() {
    error_code ec;
    std::visit([&](auto& s) { s.close(ec); }, socket_);
  }
  asio::any_io_executor executor() {
    return std::visit([](auto& s) { return asio::any_io_executor(s.get_executor()); }, socket_);
  }

 private:
  std::variant<tcp::socket, unix_proto::socket> socket_;
};

// A relayed connection: two pumps (client->server, server->client). EOF on one side becomes a
// half-close (shutdown of sending) on the other, so request/response protocols that signal the end
// of a request by closing work; the connection ends when both directions are done or on an error.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Stream client, Stream server) : streams_{std::move(client), std::move(server)} { ++g_open_connections; }

  ~Session() { --g_open_connections; }

  // The bytes go through a pipe per direction with splice(2), from one socket's kernel buffer to
  // the other's without a trip through this process (read and write copy each byte twice: on
  // loopback that was most of the relay's cost, bench/egress_tunnel.sh --relay). Without pipes
  // (descriptors exhausted) or non-blocking sockets: read and write.
  void start() {
    if (pipes_[0].ok() && pipes_[1].ok() && streams_[0].set_non_blocking() && streams_[1].set_non_blocking()) {
      splice_pump(0, 1);
      splice_pump(1, 0);
      return;
    }
    pump(0, 1);
    pump(1, 0);
  }

 private:
  // Moves what `from` has on to `to` until a socket would block (then waits for it) or `from` ends
  // (then half-closes `to`). After 16 chunks it yields, so one busy connection does not hold the
  // relay's one thread.
  void splice_pump(int from, int to) {
    auto self = shared_from_this();
    const SpliceStep step = splice_some(streams_[from].native_handle(), streams_[to].native_handle(),
                                        pipes_[static_cast<std::size_t>(from)], kBufferSize, 16);
    auto resume = [this, self, from, to](error_code ec) {
      if (ec) return close_both();
      splice_pump(from, to);
    };
    switch (step.next) {
      case SpliceStep::again:
        return asio::post(io_of(from), [this, self, from, to] { splice_pump(from, to); });
      case SpliceStep::wait_readable:
        return streams_[from].async_wait(asio::socket_base::wait_read, resume);
      case SpliceStep::wait_writable:
        return streams_[to].async_wait(asio::socket_base::wait_write, resume);
      case SpliceStep::from_ended:
        return end_direction(to);
      case SpliceStep::to_failed:
        // `to` cannot take more (it closed): this direction is over, but what `to` sent before it
        // closed (a refusal, an error page) still goes the other way before both close.
        return end_direction(to);
      case SpliceStep::from_failed:
        return close_both();
    }
  }
  asio::any_io_executor io_of(int from) { return streams_[from].executor(); }
  void end_direction(int to) {
    streams_[to].shutdown_send();
    if (++finished_ == 2) close_both();
  }

  void pump(int from, int to) {
    auto self = shared_from_this();
    streams_[from].async_read_some(asio::buffer(buffers_[from]), [this, self, from, to](error_code ec, std::size_t n) {
      if (ec) {
        if (ec == asio::error::eof) {
          streams_[to].shutdown_send();
          if (++finished_ == 2) close_both();
        } else {
          close_both();
        }
        return;
      }
      streams_[to].async_write(asio::buffer(buffers_[from].data(), n), [this, self, from, to](error_code ec, std::size_t) {
        if (ec) return close_both();
        pump(from, to);
      });
    });
  }
  void close_both() {
    streams_[0].close();
    streams_[1].close();
  }

  std::array<Stream, 2> streams_;
  std::array<std::array<char, kBufferSize>, 2> buffers_{};
  std::array<SplicePipe, 2> pipes_;  // per direction, indexed by the side bytes come from
  int finished_ = 0;
};

// Where a TCP listener's connections go: a Unix socket path, or a name checked inside a directory
// descriptor on every connect.
using UnixTarget = std::variant<UnixEndpoint, UnixAtEndpoint>;

std::string target_text(const UnixTarget& target) {
  if (const auto* at = std::get_if<UnixAtEndpoint>(&target)) return at->text;
  return "unix:" + std::get<UnixEndpoint>(target).path;
}

// Opens NAME in the directory without following a symlink and checks what it is through the
// descriptor. Returns the O_PATH descriptor (the caller connects via /proc/self/fd/N and closes
// it), or -1 with `why` set.
int open_checked_socket(const UnixAtEndpoint& at, std::string* why) {
  int fd = ::openat(at.dir_fd, at.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    *why = at.name + ": " + std::strerror(errno);
    return -1;
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    *why = at.name + ": cannot stat: " + std::strerror(errno);
  } else if (S_ISLNK(st.st_mode)) {
    *why = at.name + ": is a symlink (never followed)";
  } else if (!S_ISSOCK(st.st_mode)) {
    *why = at.name + ": is not a socket";
  } else if (at.owner && st.st_uid != *at.owner) {
    *why = at.name + ": owned by uid " + std::to_string(st.st_uid) + ", expected uid " + std::to_string(*at.owner);
  } else {
    return fd;
  }
  ::close(fd);
  return -1;
}

void note_refusal(const std::string& line);

// Connects to a Unix socket, retrying while the server's listen queue is full (EAGAIN).
class UnixConnector : public std::enable_shared_from_this<UnixConnector> {
 public:
  // `first`: bytes that go to the server before the two sides are joined (HeadGate's rewritten head).
  // `policy` (--page-policy): the server's answer head goes to the client with it
  // (core/page_policy.hpp rewrite_answer_head) before the two sides are joined.
  UnixConnector(asio::io_context& io, UnixTarget target, tcp::socket client, std::string first = {},
                std::string policy = {})
      : io_(io), target_(std::move(target)), path_(target_text(target_)), client_(std::move(client)), server_(io),
        timer_(io), first_(std::move(first)), policy_(std::move(policy)) {}
  ~UnixConnector() { close_checked(); }

  void start() { attempt(); }

 private:
  void close_checked() {
    if (checked_fd_ >= 0) ::close(checked_fd_);
    checked_fd_ = -1;
  }

  void attempt() {
    auto self = shared_from_this();
    server_ = unix_proto::socket(io_);
    std::string connect_path;
    if (const auto* at = std::get_if<UnixAtEndpoint>(&target_)) {
      // Checked afresh for every attempt: the directory's owner may swap NAME at any time.
      close_checked();
      std::string why;
      checked_fd_ = open_checked_socket(*at, &why);
      if (checked_fd_ < 0) {
        std::cerr << "tokfence-relay: refused: connection to " << at->text << ": " << why << "\n";
        error_code ignored;
        client_.close(ignored);
        return;
      }
      connect_path = "/proc/self/fd/" + std::to_string(checked_fd_);
    } else {
      connect_path = std::get<UnixEndpoint>(target_).path;
    }
    server_.async_connect(unix_proto::endpoint(connect_path), [this, self](error_code ec) {
      close_checked();
      if ((ec == asio::error::try_again || ec == asio::error::would_block || ec == asio::error::no_buffer_space) &&
          ++tries_ < kUnixConnectRetries) {
        timer_.expires_after(kUnixRetryDelay);
        timer_.async_wait([this, self](error_code) { attempt(); });
        return;
      }
      if (ec) {
        std::cerr << "tokfence-relay: connect: " << path_ << ": " << ec.message() << "\n";
        error_code ignored;
        client_.close(ignored);
        return;
      }
      if (first_.empty()) return join();
      asio::async_write(server_, asio::buffer(first_), [this, self](error_code write_ec, std::size_t) {
        if (write_ec) {
          error_code ignored;
          client_.close(ignored);
          return;
        }
        if (policy_.empty()) return join();
        read_answer_head();
      });
    });
  }
  // Reads the server's answer up to its final head, delimited as a browser delimits it, and sends
  // the head core/page_policy.hpp rebuilds from it (never the server's own text) and what came
  // after it, then joins. Interim 100/103 heads are dropped. An answer the strict reading refuses,
  // or whose head is over kMaxAnswerHead, ends both sides: nothing unrewritten reaches the browser.
  void read_answer_head() {
    auto self = shared_from_this();
    server_.async_read_some(asio::buffer(chunk_), [this, self](error_code ec, std::size_t n) {
      if (ec) return close_both();
      answer_.append(chunk_.data(), n);
      for (auto length = tokfence::answer_head_length(answer_); length != std::string::npos;
           length = tokfence::answer_head_length(answer_)) {
        auto rewrite = tokfence::rewrite_answer_head(std::string_view(answer_).substr(0, length), policy_);
        if (rewrite.kind == tokfence::AnswerRewrite::interim) {
          answer_.erase(0, length);
          continue;
        }
        if (rewrite.kind == tokfence::AnswerRewrite::refused) {
          note_refusal("dashboard answer: " + rewrite.why + ": connection closed");
          return close_both();
        }
        answer_ = rewrite.head + answer_.substr(length);
        asio::async_write(client_, asio::buffer(answer_), [this, self](error_code write_ec, std::size_t) {
          if (write_ec) return close_both();
          join();
        });
        return;
      }
      if (answer_.size() > kMaxAnswerHead) return close_both();
      read_answer_head();
    });
  }
  void close_both() {
    error_code ignored;
    client_.close(ignored);
    server_.close(ignored);
  }
  void join() { std::make_shared<Session>(Stream(std::move(client_)), Stream(std::move(server_)))->start(); }

  asio::io_context& io_;
  UnixTarget target_;
  std::string path_;  // for messages
  int checked_fd_ = -1;
  tcp::socket client_;
  unix_proto::socket server_;
  asio::steady_timer timer_;
  int tries_ = 0;
  std::string first_;
  std::string policy_;
  std::array<char, 16 * 1024> chunk_{};
  std::string answer_;  // the answer read so far, then the rewritten head and what followed it
};

// Connects to a TCP target with a timeout.
class TcpConnector : public std::enable_shared_from_this<TcpConnector> {
 public:
  TcpConnector(asio::io_context& io, tcp::endpoint target, unix_proto::socket client)
      : target_(target), client_(std::move(client)), server_(io), timer_(io) {}

  void start() {
    auto self = shared_from_this();
    timer_.expires_after(kConnectTimeout);
    timer_.async_wait([this, self](error_code ec) {
      if (!ec) {
        error_code ignored;
        server_.close(ignored);
      }
    });
    server_.async_connect(target_, [this, self](error_code ec) {
      timer_.cancel();
      if (ec) {
        std::cerr << "tokfence-relay: connect: " << target_ << ": " << ec.message() << "\n";
        error_code ignored;
        client_.close(ignored);
        return;
      }
      error_code ignored;
      server_.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(Stream(std::move(client_)), Stream(std::move(server_)))->start();
    });
  }

 private:
  tcp::endpoint target_;
  unix_proto::socket client_;
  tcp::socket server_;
  asio::steady_timer timer_;
};

// What a TCP listener checks before it connects anything (--own-uid-only, --check-host).
struct TcpGuard {
  bool own_uid_only = false;
  bool check_host = false;
  bool page_policy = false;  // needs check_host: the answer to a checked head gets the page policy
};

// A refusal line on stderr (the dashboard relay's log file), at most one a second: another user
// connecting in a loop must not fill the disk.
void note_refusal(const std::string& line) {
  static auto last = std::chrono::steady_clock::time_point{};
  static unsigned long dropped = 0;
  const auto now = std::chrono::steady_clock::now();
  if (last != std::chrono::steady_clock::time_point{} && now - last < std::chrono::seconds(1)) {
    ++dropped;
    return;
  }
  last = now;
  std::cerr << "tokfence-relay: refused: " << line;
  if (dropped) std::cerr << " (" << dropped << " more refusals not shown)";
  std::cerr << "\n";
  dropped = 0;
}

// The first request head of a checked connection (its final CRLF CRLF included), as it goes on:
//  - not a WebSocket handshake: "Connection: close" in place of the client's own Connection and
//    Keep-Alive fields. Only the first head is checked, so the connection must carry no second
//    request: a browser reused the one a same-origin request of its own (the favicon of a 403
//    page) had opened for a page's cross-site POST (review 13d R1). A WebSocket connection is
//    never reused for HTTP by a browser, so a handshake keeps its fields.
//  - with --page-policy, without Cookie: browsers keep cookies per host, not per port, so the
//    container's UI would get the web dashboard's session cookie and other launches' (review 14c
//    R1); the answers' Set-Cookie is dropped too (core/page_policy.cpp).
struct ForwardedHead {
  std::string text;
  bool websocket = false;
};
ForwardedHead forwarded_head(std::string_view head, bool page_policy) {
  ForwardedHead out;
  std::size_t at = head.find("\r\n") + 2;
  out.text.append(head.substr(0, at));
  std::vector<std::string_view> lines;
  while (at < head.size()) {
    const auto end = head.find("\r\n", at);
    if (end == std::string_view::npos || end == at) break;
    lines.push_back(head.substr(at, end - at));
    out.websocket = out.websocket || tokfence::ascii::lower(lines.back().substr(0, lines.back().find(':'))) == "upgrade";
    at = end + 2;
  }
  for (const auto line : lines) {
    const std::string name = tokfence::ascii::lower(line.substr(0, line.find(':')));
    if (page_policy && name == "cookie") continue;
    if (!out.websocket && (name == "connection" || name == "keep-alive" || name == "proxy-connection")) continue;
    out.text.append(line).append("\r\n");
  }
  out.text.append(out.websocket ? "\r\n" : "Connection: close\r\n\r\n");
  return out;
}

// Why the first request head of a --check-host connection is refused: 421 when it is not for
// this listener (Host), 403 when a web page of another origin sent it (Origin, Sec-Fetch-Site).
// status 0: admitted.
struct HeadRefusal {
  int status = 0;
  std::string why;
};

// Checks the request head `head` (up to and including the CRLF of its last field line) of a
// connection to 127.0.0.1:<port>. Strict: an origin-form target ('/'), one Host field, no folded
// lines, field names without blanks; anything else is refused, not guessed.
//  - Host must be 127.0.0.1:<port> or localhost:<port> (421): a DNS-rebinding page sends its own
//    name there.
//  - Origin / Sec-Fetch-Site must not say a page of another origin sent it (403,
//    core/page_origin.hpp): a page on ANY site can open ws://127.0.0.1:<port>/ and read and write
//    the container UI's WebSocket (a WebSocket has no same-origin read barrier, and its handshake
//    carries Host 127.0.0.1:<port>, which passes the Host check), or POST to it blind (CSRF).
//    Only the listener's own origin, a typed URL (Sec-Fetch-Site none) and curl (neither field)
//    get through.
HeadRefusal head_refusal(std::string_view head, unsigned short port) {
  auto eol = head.find("\r\n");
  const std::string_view request_line = head.substr(0, eol);
  const auto sp1 = request_line.find(' ');
  if (sp1 == std::string_view::npos || sp1 + 1 >= request_line.size() || request_line[sp1 + 1] != '/' ||
      request_line.find(" HTTP/1.") == std::string_view::npos)
    return {421, "not an HTTP/1 request with an origin-form target"};
  int hosts = 0;
  std::string host;
  std::vector<std::string_view> origins, fetch_sites;
  for (std::size_t at = eol + 2; at < head.size();) {
    const auto end = head.find("\r\n", at);
    const std::string_view line = head.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? head.size() : end + 2;
    if (line.empty()) continue;
    const auto colon = line.find(':');
    if (line[0] == ' ' || line[0] == '\t' || colon == std::string_view::npos || colon == 0 ||
        line.substr(0, colon).find_first_of(" \t") != std::string_view::npos)
      return {421, "malformed field line in the request head"};
    const std::string name = tokfence::ascii::lower(line.substr(0, colon));
    if (name != "host" && name != "origin" && name != "sec-fetch-site") continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (name == "origin") {
      origins.push_back(value);
    } else if (name == "sec-fetch-site") {
      fetch_sites.push_back(value);
    } else {
      ++hosts;
      host = tokfence::ascii::lower(value);
    }
  }
  const std::string p = ":" + std::to_string(port);
  if (hosts != 1) return {421, std::to_string(hosts) + " Host fields"};
  if (host != "127.0.0.1" + p && host != "localhost" + p) return {421, "Host " + host.substr(0, 100)};
  if (auto why = tokfence::foreign_page_refusal(origins, fetch_sites, host); !why.empty()) return {403, why};
  return {};
}

// Writes a whole answer of the relay's own to a client and closes it (the client's unread bytes
// are taken first, so the close is not a reset that would lose the answer).
void answer_client(tcp::socket client, std::string text) {
  auto socket = std::make_shared<tcp::socket>(std::move(client));
  char sink[kMaxFirstHead];
  for (int i = 0; i < 8 && ::recv(socket->native_handle(), sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
  auto answer = std::make_shared<std::string>(std::move(text));
  asio::async_write(*socket, asio::buffer(*answer), [socket, answer](error_code, std::size_t) {
    error_code ignored;
    socket->shutdown(asio::socket_base::shutdown_send, ignored);
    socket->close(ignored);
  });
}

// A short plain-text refusal (answer_client).
void refuse_client(tcp::socket client, int status, const std::string& reason, const std::string& text) {
  answer_client(std::move(client), "HTTP/1.1 " + std::to_string(status) + " " + reason +
                                       "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(text.size()) +
                                       "\r\nConnection: close\r\n\r\n" + text);
}

// --check-host: peeks at a new connection's first request head (MSG_PEEK: nothing is taken before
// it is admitted) and hands the connection on only when head_refusal admits it; the head then goes
// to the target rewritten by forwarded_head.
class HeadGate : public std::enable_shared_from_this<HeadGate> {
 public:
  HeadGate(asio::io_context& io, tcp::socket client, UnixTarget target, unsigned short port, bool page_policy)
      : io_(io), client_(std::move(client)), target_(std::move(target)), port_(port), page_policy_(page_policy),
        deadline_(io), poll_(io) {
    ++g_open_connections;  // a connection waiting for its head counts against kMaxConnections too
  }
  ~HeadGate() { --g_open_connections; }

  void start() {
    auto self = shared_from_this();
    deadline_.expires_after(kFirstHeadTime);
    deadline_.async_wait([this, self](error_code ec) {
      if (ec || done_) return;
      finish_refused(408, "Request Timeout", "no complete request head within 5 s");
    });
    client_.async_wait(tcp::socket::wait_read, [this, self](error_code ec) {
      if (ec) return finish_closed();
      peek();
    });
  }

 private:
  void peek() {
    if (done_) return;
    char buf[kMaxFirstHead];
    const ssize_t n = ::recv(client_.native_handle(), buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return finish_closed();
    const std::string_view data(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    const auto end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (data.size() >= kMaxFirstHead) return finish_refused(431, "Request Header Fields Too Large", "request head over 8 KiB");
      auto self = shared_from_this();
      poll_.expires_after(kPeekInterval);
      poll_.async_wait([this, self](error_code ec) {
        if (!ec) peek();
      });
      return;
    }
    if (auto refused = head_refusal(data.substr(0, end + 2), port_); refused.status != 0)
      return finish_refused(refused);
    // --page-policy: a service worker script is the relay's own, one that unregisters itself
    // (core/page_policy.hpp); the UI behind never sees the request.
    if (page_policy_ && tokfence::requests_service_worker(data.substr(0, end + 2))) {
      done_ = true;
      deadline_.cancel();
      note_refusal("dashboard request: a service worker script: answered with one that unregisters itself");
      return answer_client(std::move(client_), tokfence::service_worker_answer(tokfence::relayed_page_policy(port_)));
    }
    done_ = true;
    deadline_.cancel();
    ForwardedHead first = forwarded_head(data.substr(0, end + 4), page_policy_);
    // The head is taken off the socket (it was only peeked) and its rewrite sent instead.
    std::size_t taken = 0;
    while (taken < end + 4) {
      const ssize_t got = ::recv(client_.native_handle(), buf, end + 4 - taken, MSG_DONTWAIT);
      if (got <= 0) return finish_closed();  // the peeked bytes are queued: only an error ends here
      taken += static_cast<std::size_t>(got);
    }
    // A WebSocket's answer is no page; every other answer gets the page policy (--page-policy).
    std::string policy = page_policy_ && !first.websocket ? tokfence::relayed_page_policy(port_) : std::string();
    std::make_shared<UnixConnector>(io_, target_, std::move(client_), std::move(first.text), std::move(policy))->start();
  }
  void finish_refused(const HeadRefusal& refused) {
    finish_refused(refused.status, refused.status == 421 ? "Misdirected Request" : "Forbidden", refused.why);
  }
  void finish_refused(int status, const char* reason, const std::string& why) {
    done_ = true;
    deadline_.cancel();
    poll_.cancel();
    const std::string own = "127.0.0.1:" + std::to_string(port_) + " or localhost:" + std::to_string(port_);
    if (status == 403) {
      note_refusal("dashboard request: " + why + " (only pages of http://127.0.0.1:" + std::to_string(port_) +
                   " or http://localhost:" + std::to_string(port_) + " may use it)");
      refuse_client(std::move(client_), status, reason,
                    "refused by tokfence-relay: a request from a web page of another origin\n");
      return;
    }
    note_refusal("dashboard request: " + why + " (the Host must be " + own + ")");
    refuse_client(std::move(client_), status, reason, "refused by tokfence-relay: the Host header must be " + own + "\n");
  }
  void finish_closed() {
    done_ = true;
    deadline_.cancel();
    poll_.cancel();
    error_code ignored;
    client_.close(ignored);
  }

  asio::io_context& io_;
  tcp::socket client_;
  UnixTarget target_;
  unsigned short port_;
  bool page_policy_;
  asio::steady_timer deadline_, poll_;
  bool done_ = false;
};

class TcpListener {
 public:
  TcpListener(asio::io_context& io, const tcp::endpoint& at, UnixTarget target, TcpGuard guard)
      : io_(io), acceptor_(io), twin_(io), target_(std::move(target)), guard_(guard) {
    // --check-host serves a browser (launch's dashboard relay), which tries localhost at ::1
    // first: 127.0.0.1 comes with its IPv6 twin, else another local user listening on
    // [::1]:<port> would serve the user a page of the UI's origin (review 14a F1). The relays of
    // containers and sandboxes (no --check-host) live in namespaces of their own.
    if (guard_.check_host && at.address() == asio::ip::address_v4::loopback()) {
      const tokfence::LoopbackPair pair = tokfence::listen_loopback_pair(at.port(), SOMAXCONN);
      if (!pair.error.empty()) throw std::runtime_error(pair.error);
      acceptor_.assign(tcp::v4(), pair.v4);
      if (pair.v6 >= 0) twin_.assign(tcp::v6(), pair.v6);
      return;
    }
    acceptor_.open(at.protocol());
    set_cloexec(acceptor_.native_handle());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }
  std::string address() const {
    auto ep = acceptor_.local_endpoint();
    std::string host = ep.address().to_string();
    if (ep.address().is_v6()) host = "[" + host + "]";
    return "tcp:" + host + ":" + std::to_string(ep.port());
  }
  void accept() {
    accept_on(acceptor_);
    if (twin_.is_open()) accept_on(twin_);
  }
  void close() {
    error_code ignored;
    acceptor_.close(ignored);
    twin_.close(ignored);
  }

 private:
  void accept_on(tcp::acceptor& acceptor) {
    acceptor.async_accept([this, &acceptor](error_code ec, tcp::socket client) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        set_cloexec(client.native_handle());
        if (g_open_connections >= kMaxConnections) {
          error_code ignored;
          client.close(ignored);
        } else {
          error_code ignored;
          client.set_option(tcp::no_delay(true), ignored);
          admit(std::move(client));
        }
      }
      accept_on(acceptor);
    });
  }

  // --own-uid-only before anything is read or connected; --check-host before the target is.
  void admit(tcp::socket client) {
    if (guard_.own_uid_only) {
      const auto owner = tokfence::tcp_peer_owner(client.native_handle());
      if (!owner || owner->uid != ::geteuid()) {
        note_refusal("connection from " + (owner ? "uid " + std::to_string(owner->uid) : std::string("an unknown peer")) +
                     ": only uid " + std::to_string(::geteuid()) + " may connect");
        refuse_client(std::move(client), 403, "Forbidden", "refused by tokfence-relay: only the user who started it may connect\n");
        return;
      }
    }
    if (guard_.check_host) {
      const unsigned short port = acceptor_.local_endpoint().port();
      std::make_shared<HeadGate>(io_, std::move(client), target_, port, guard_.page_policy)->start();
      return;
    }
    std::make_shared<UnixConnector>(io_, target_, std::move(client))->start();
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  tcp::acceptor twin_;  // [::1]:<port> (--check-host on 127.0.0.1), closed when none
  UnixTarget target_;
  TcpGuard guard_;
};

class UnixListener {
 public:
  UnixListener(asio::io_context& io, const std::string& path, tcp::endpoint target)
      : io_(io), acceptor_(io), path_(path), target_(target) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
      // Replace a stale socket; never delete anything that is not a socket.
      if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + ": exists and is not a socket");
      ::unlink(path.c_str());
    }
    acceptor_.open(unix_proto());
    set_cloexec(acceptor_.native_handle());
    acceptor_.bind(unix_proto::endpoint(path));
    // Any uid inside a container must be able to connect: the socket is the only way out anyway.
    ::chmod(path.c_str(), 0666);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }
  std::string address() const { return "unix:" + path_; }
  void accept() {
    acceptor_.async_accept([this](error_code ec, unix_proto::socket client) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        set_cloexec(client.native_handle());
        if (g_open_connections >= kMaxConnections) {
          error_code ignored;
          client.close(ignored);
        } else {
          std::make_shared<TcpConnector>(io_, target_, std::move(client))->start();
        }
      }
      accept();
    });
  }
  void close() {
    error_code ignored;
    acceptor_.close(ignored);
    ::unlink(path_.c_str());
  }

 private:
  asio::io_context& io_;
  unix_proto::acceptor acceptor_;
  std::string path_;
  tcp::endpoint target_;
};

// Starts `argv` as a child in its own process group. If our stdin is a terminal whose foreground
// group is ours, the child's group becomes the foreground one, so terminal-generated signals
// (Ctrl-C) reach it once, directly, rather than both through the terminal and our forwarding.
// Closes every descriptor above stderr: whatever the relay's own parent left open (a file the user
// opened in the shell that ran tokfence) must not reach the agent.
void close_inherited_descriptors() {
  if (::close_range(3, ~0U, 0) == 0) return;
  long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); ++fd) ::close(static_cast<int>(fd));
}

// `agent_filter`: the seccomp program to install just before the exec, or null.
pid_t start_child(const std::vector<std::string>& args, const std::vector<sock_filter>* agent_filter) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  bool give_terminal = ::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();

  sigset_t all, old;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &old);
  pid_t pid = ::fork();
  if (pid == 0) {
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      ::signal(sig, SIG_DFL);
    }
    ::setpgid(0, 0);
    if (give_terminal) {
      ::signal(SIGTTOU, SIG_IGN);
      ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
      ::signal(SIGTTOU, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    close_inherited_descriptors();
    // Fail closed: the command never runs without the filter it was promised.
    if (agent_filter) {
      if (int err = tokfence::sandbox::install_seccomp_program(*agent_filter)) {
        std::fprintf(stderr, "tokfence-relay: error: agent seccomp filter: cannot install: %s: not starting %s\n",
                     std::strerror(err), argv[0]);
        ::_exit(126);
      }
    }
    ::execvp(argv[0], argv.data());
    int err = errno;
    std::fprintf(stderr, "tokfence-relay: error: cannot run %s: %s\n", argv[0], std::strerror(err));
    ::_exit(err == ENOENT ? 127 : 126);
  }
  int saved = errno;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    std::fprintf(stderr, "tokfence-relay: error: fork: %s\n", std::strerror(saved));
    std::exit(1);
  }
  // Also from the parent, so a signal forwarded before the child's own setpgid finds the group.
  ::setpgid(pid, pid);
  return pid;
}

[[noreturn]] void ready_error(const std::string& what, int err) {
  std::cerr << "tokfence-relay: error: ready file: " << what << ": " << std::strerror(err) << "\n";
  std::exit(1);
}

bool write_all(int fd, const std::string& text) {
  for (std::size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::string ready_text(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

// --ready-fd: the lines go down a pipe the starter holds, so nothing is written by name at all
// (the way for a starter on the host whose directories another principal can write).
void write_ready_fd(int fd, const std::vector<std::string>& lines) {
  if (!write_all(fd, ready_text(lines))) ready_error("fd " + std::to_string(fd), errno);
  ::close(fd);
}

// --ready-file: the file appears complete or not at all (temp file, then rename). The temp file
// is created O_EXCL|O_NOFOLLOW under a random name: a link planted at a guessable name (say
// <path>.tmp<pid>, written through when this was an ofstream) makes the create fail, never a write
// through it; rename replaces a link at `path` itself rather than following it.
void write_ready_file(const std::string& path, const std::vector<std::string>& lines) {
  std::random_device rd;
  for (int attempt = 0; attempt < 8; ++attempt) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".tmp-%08x%08x", rd(), rd());
    const std::string tmp = path + suffix;
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) ready_error(path, errno);
    const bool ok = write_all(fd, ready_text(lines));
    const int err = errno;
    ::close(fd);
    if (!ok) {
      ::unlink(tmp.c_str());
      ready_error(path, err);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      const int rename_err = errno;
      ::unlink(tmp.c_str());
      ready_error(path, rename_err);
    }
    return;
  }
  ready_error(path, EEXIST);
}

}  // namespace

// --expect-mount PATH=DEV:INO: what the launcher recorded of a bind's source when it made the
// container. The engine resolves each source by host path again at every start (restarts
// included), so a source renamed and replaced since then (by another agent that writes a parent
// of it: review 15c X1) would be what is mounted. Checked before anything else, by lstat of the
// mount point: a link, another file or nothing there, and the relay (the container's first
// process) exits before the agent runs.
struct ExpectedMount {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint64_t fsid = 0;  // statfs f_fsid, 0 = none
};

ExpectedMount parse_expected_mount(const std::string& spec) {
  const auto eq = spec.rfind('=');
  if (eq == std::string::npos || spec.empty() || spec[0] != '/') usage_error("--expect-mount: want /PATH=DEV:INO[:FSID], got: " + spec);
  auto number = [&](const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0) usage_error("--expect-mount: not a number: " + text);
    return v;
  };
  std::vector<unsigned long long> values;
  for (std::size_t at = eq + 1;;) {
    const auto colon = spec.find(':', at);
    values.push_back(number(spec.substr(at, colon == std::string::npos ? std::string::npos : colon - at)));
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  if (values.size() < 2 || values.size() > 3) usage_error("--expect-mount: want /PATH=DEV:INO[:FSID], got: " + spec);
  return {spec.substr(0, eq), static_cast<dev_t>(values[0]), static_cast<ino_t>(values[1]), values.size() == 3 ? values[2] : 0};
}

// The same file system: the same device, or (st_dev is not stable across a reboot on btrfs, NFS,
// LVM) the same statfs f_fsid when one was recorded.
bool same_file_system(const ExpectedMount& m, const struct stat& st) {
  if (st.st_dev == m.dev) return true;
  struct statfs fs {};
  return m.fsid != 0 && ::statfs(m.path.c_str(), &fs) == 0 && tokfence::fsid_number(fs) == m.fsid;
}

bool mounts_as_expected(const std::vector<ExpectedMount>& expected) {
  for (const auto& m : expected) {
    struct stat st {};
    if (::lstat(m.path.c_str(), &st) != 0 || S_ISLNK(st.st_mode) || st.st_ino != m.ino || !same_file_system(m, st)) {
      std::cerr << "tokfence-relay: refused: " << m.path
                << " is not what tokfence launch mounted there: its source on the host was replaced since the "
                   "container was made (by something that can write a directory above it). Not starting; "
                   "'tokfence launch stop' and launch again\n";
      return false;
    }
  }
  return true;
}

int main(int argc, char** argv) {
  std::vector<Forward> forwards;
  std::vector<ExpectedMount> expected_mounts;
  std::string ready_file;
  int ready_fd = -1;
  bool agent_seccomp = false, agent_allow_unix = false;
  TcpGuard guard;
  std::vector<std::string> command;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) command.emplace_back(argv[i]);
      if (command.empty()) usage_error("'--' must be followed by a command");
      break;
    } else if (arg == "--forward" && i + 1 < argc) {
      forwards.push_back(parse_forward(argv[++i]));
    } else if (arg.rfind("--forward=", 0) == 0) {
      forwards.push_back(parse_forward(arg.substr(10)));
    } else if (arg == "--ready-file" && i + 1 < argc) {
      ready_file = argv[++i];
    } else if (arg.rfind("--ready-file=", 0) == 0) {
      ready_file = arg.substr(13);
    } else if (arg == "--ready-fd" && i + 1 < argc) {
      const std::string value = argv[++i];
      char* end = nullptr;
      const long fd = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || fd < 0 || fd > 1 << 20 || ::fcntl(static_cast<int>(fd), F_GETFD) < 0)
        usage_error("--ready-fd: not an open descriptor: " + value);
      ready_fd = static_cast<int>(fd);
    } else if (arg == "--expect-mount" && i + 1 < argc) {
      expected_mounts.push_back(parse_expected_mount(argv[++i]));
    } else if (arg == "--own-uid-only") {
      guard.own_uid_only = true;
    } else if (arg == "--check-host") {
      guard.check_host = true;
    } else if (arg == "--page-policy") {
      guard.page_policy = true;
    } else if (arg == "--agent-seccomp") {
      agent_seccomp = true;
    } else if (arg == "--agent-allow-unix-sockets") {
      agent_allow_unix = true;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << "usage: tokfence-relay [--forward SPEC]... [--ready-file PATH | --ready-fd N] [--agent-seccomp\n"
                   "                      [--agent-allow-unix-sockets]] [-- COMMAND ARGS...]\n"
                   "  SPEC tcp:127.0.0.1:PORT=unix:/path.sock   TCP listener relayed to a Unix socket\n"
                   "       unix:/path.sock=tcp:127.0.0.1:PORT   Unix listener (0666) relayed to TCP\n"
                   "       tcp:127.0.0.1:PORT=unixat:FD/NAME[@UID]  TCP listener relayed to socket NAME in\n"
                   "            directory descriptor FD, no symlink followed, owner UID checked, per connection\n"
                   "  --own-uid-only    TCP listeners refuse peers of another uid (403)\n"
                   "  --check-host      TCP listeners refuse a first request head whose Host is not\n"
                   "                    127.0.0.1:PORT or localhost:PORT (421)\n"
                   "  --page-policy     with --check-host: answers carry a Content-Security-Policy that\n"
                   "                    keeps the page's loads on the listener's origin; no service worker\n"
                   "  --agent-seccomp   COMMAND runs under the sandbox's seccomp filter (never without it)\n"
                   "  --expect-mount /PATH=DEV:INO[:FSID]  refuse to start unless PATH (not a link) is that inode\n"
                   "example: tokfence-relay --forward tcp:127.0.0.1:9471=unix:/run/tokfence-proxy/proxy.sock -- codex\n";
      return 0;
    } else {
      usage_error("unknown argument: " + arg);
    }
  }
  if (forwards.empty() && command.empty()) usage_error("nothing to do: give --forward or a command");
  if (!mounts_as_expected(expected_mounts)) return 1;
  if (agent_allow_unix && !agent_seccomp) usage_error("--agent-allow-unix-sockets needs --agent-seccomp");
  if (guard.page_policy && !guard.check_host) usage_error("--page-policy needs --check-host");
  if (agent_seccomp && command.empty()) usage_error("--agent-seccomp needs a command");
  std::optional<std::vector<sock_filter>> agent_filter;
  if (agent_seccomp) {
    agent_filter = tokfence::sandbox::agent_seccomp_program({.allow_unix_sockets = agent_allow_unix});
    // Unfiltered and holding the way out: the agent must not ptrace us or reach /proc/1/mem or
    // /proc/1/fd (non-dumpable: only CAP_SYS_PTRACE could, and the sandbox has no capabilities).
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
      std::cerr << "tokfence-relay: error: cannot make the relay non-dumpable: " << std::strerror(errno) << "\n";
      return 1;
    }
  }

  // A write to a peer that has gone must be an error on that connection, not the end of the relay.
  ::signal(SIGPIPE, SIG_IGN);

  asio::io_context io(1);
  // Installed before the child starts, so no signal between fork and run() is lost.
  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  signals.add(SIGQUIT);
  signals.add(SIGUSR1);
  signals.add(SIGUSR2);
  signals.add(SIGCHLD);

  std::vector<std::unique_ptr<TcpListener>> tcp_listeners;
  std::vector<std::unique_ptr<UnixListener>> unix_listeners;
  std::vector<std::string> ready_lines;
  for (const auto& f : forwards) {
    try {
      if (auto* t = std::get_if<TcpEndpoint>(&f.listen)) {
        UnixTarget target = std::holds_alternative<UnixAtEndpoint>(f.target)
                                ? UnixTarget(std::get<UnixAtEndpoint>(f.target))
                                : UnixTarget(std::get<UnixEndpoint>(f.target));
        auto& l = tcp_listeners.emplace_back(std::make_unique<TcpListener>(io, t->endpoint, target, guard));
        ready_lines.push_back(l->address() + "=" + target_text(target));
        l->accept();
      } else {
        const auto& target = std::get<TcpEndpoint>(f.target).endpoint;
        auto& l = unix_listeners.emplace_back(
            std::make_unique<UnixListener>(io, std::get<UnixEndpoint>(f.listen).path, target));
        ready_lines.push_back(l->address() + "=tcp:" + target.address().to_string() + ":" +
                              std::to_string(target.port()));
        l->accept();
      }
    } catch (const std::exception& e) {
      std::cerr << "tokfence-relay: error: listen: " << f.spec << ": " << e.what() << "\n";
      return 1;
    }
  }
  if (!ready_file.empty()) write_ready_file(ready_file, ready_lines);
  if (ready_fd >= 0) write_ready_fd(ready_fd, ready_lines);

  std::optional<pid_t> child;
  if (!command.empty()) child = start_child(command, agent_filter ? &*agent_filter : nullptr);
  int exit_code = 0;
  bool done = false;

  auto stop = [&] {
    done = true;
    for (auto& l : tcp_listeners) l->close();
    for (auto& l : unix_listeners) l->close();
    io.stop();
  };
  // Reaps every exited process (orphans re-parented to us when we are PID 1 included).
  auto reap = [&] {
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (child && pid == *child) {
        exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        stop();
      }
    }
  };
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGCHLD) {
        reap();
      } else if (child) {
        ::kill(*child, sig);
      } else if (sig == SIGTERM || sig == SIGINT) {
        stop();
      }
      if (!done) wait_signal();
    });
  };
  wait_signal();
  // A child that exited before the handler was in place is reaped here.
  reap();
  if (!done) io.run();
  return exit_code;
}
