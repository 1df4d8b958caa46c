#include "proxy/control/protocol.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include "core/file.hpp"
#include "core/peer.hpp"
#include "proxy/control/server.hpp"
#include "core/unix_socket.hpp"

namespace tokfence::proxy {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_line_bytes = 4 * 1024 * 1024;

// Writes all of `data`, waiting at most until `deadline`.
bool write_all(int fd, std::string_view data, std::chrono::steady_clock::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
      continue;
    }
    return false;
  }
  return true;
}

// Reads one '\n'-terminated line. nullopt on EOF before a full line, timeout or error.
std::optional<std::string> read_line(int fd, std::chrono::steady_clock::time_point deadline, bool* timed_out) {
  std::string line;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (timed_out) *timed_out = true;
      return std::nullopt;
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    // Peek first so nothing past the newline is consumed.
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return std::nullopt;
    auto* nl = static_cast<char*>(std::memchr(buf, '\n', static_cast<std::size_t>(n)));
    std::size_t take = nl ? static_cast<std::size_t>(nl - buf) + 1 : static_cast<std::size_t>(n);
    n = ::recv(fd, buf, take, MSG_DONTWAIT);
    if (n <= 0) return std::nullopt;
    line.append(buf, static_cast<std::size_t>(n));
    if (nl) {
      line.pop_back();
      return line;
    }
    if (line.size() > max_line_bytes) return std::nullopt;
  }
}

std::string tail_of_file(const fs::path& path, std::size_t lines) {
  std::ifstream in(path);
  if (!in) return "";
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  std::size_t start = all.size() > lines ? all.size() - lines : 0;
  for (std::size_t i = start; i < all.size(); ++i) out += "\n  " + all[i];
  return out;
}

}  // namespace

void ControlRouter::add(const std::string& op, Handler handler) {
  std::lock_guard lock(mutex_);
  handlers_[op] = std::move(handler);
}

json ControlRouter::dispatch(const json& request) const {
  try {
    if (!request.is_object() || !request.contains("op") || !request["op"].is_string())
      return {{"ok", false}, {"error", "control: malformed request: expected {\"op\": \"<name>\", ...}"}};
    std::string op = request["op"].get<std::string>();
    Handler handler;
    {
      std::lock_guard lock(mutex_);
      auto it = handlers_.find(op);
      if (it == handlers_.end()) return {{"ok", false}, {"error", "control: unknown op: " + op}};
      handler = it->second;
    }
    Result<json> result = handler(request);
    if (!result) return {{"ok", false}, {"error", result.error().message}};
    json out = result->is_object() ? *result : json{{"result", *result}};
    out["ok"] = true;
    if (observer_) observer_(op);
    return out;
  } catch (const std::exception& e) {
    return {{"ok", false}, {"error", std::string("control: request failed: ") + e.what()}};
  }
}

Result<json> control_call(const Home& home, const json& request, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int err = 0;
  auto fd = connect_unix(home.control_socket(), timeout_ms, &err);
  if (!fd) {
    if (err == ENOENT || err == ECONNREFUSED)
      return fail("daemon: not running (no control socket at " + home.control_socket().string() +
                  "): run 'tokfence start -d'");
    if (err == EACCES || err == EPERM)
      return fail("daemon: control socket refused access: " + home.control_socket().string());
    return std::unexpected(fd.error());
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{*fd};
  std::string line = request.dump() + "\n";
  bool timed_out = false;
  if (!write_all(*fd, line, deadline)) {
    // The daemon may have refused us already and explained why: read that first.
    auto reply = read_line(*fd, std::chrono::steady_clock::now() + std::chrono::milliseconds(500), nullptr);
    if (reply) {
      auto j = json::parse(*reply, nullptr, false);
      if (j.is_object() && j.contains("error") && j["error"].is_string())
        return fail(j["error"].get<std::string>());
    }
    return fail("daemon: control request could not be sent");
  }
  auto reply = read_line(*fd, deadline, &timed_out);
  if (!reply) {
    if (timed_out) return fail("daemon: no answer on the control socket within " + std::to_string(timeout_ms) + " ms");
    return fail("daemon: control connection closed without an answer");
  }
  json j = json::parse(*reply, nullptr, false);
  if (!j.is_object()) return fail("daemon: malformed control answer");
  if (!j.value("ok", false)) {
    std::string msg = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "control request failed";
    return fail(msg);
  }
  return j;
}

std::optional<DaemonInfo> running_daemon(const Home& home) {
  std::ifstream in(home.runtime_file());
  if (!in) return std::nullopt;
  json j = json::parse(in, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  auto pong = control_call(home, {{"op", "ping"}}, 3000);
  if (!pong) return std::nullopt;
  DaemonInfo info;
  info.pid = j.value("pid", 0);
  info.host = j.value("host", std::string("127.0.0.1"));
  info.port = j.value("port", 0);
  info.proxy_socket = j.value("proxy_socket", std::string());
  info.vault_backend = j.value("vault_backend", std::string());
  // The ping answers with the live pid: trust it over a file that might be stale.
  if (pong->contains("pid") && (*pong)["pid"].is_number_integer()) info.pid = (*pong)["pid"].get<int>();
  return info;
}

Result<DaemonInfo> ensure_daemon(const Home& home) {
  if (auto info = running_daemon(home)) return *info;
  const fs::path self = file::self_exe();
  const std::string exe = self.empty() ? std::string("tokfence") : self.string();
  pid_t child = ::fork();
  if (child < 0) return fail("daemon: cannot start: fork failed");
  if (child == 0) {
    // stdout is the caller's: keep it clean, our messages go to stderr.
    ::dup2(2, 1);
    ::setenv("TOKFENCE_HOME", home.root().c_str(), 1);
    const char* argv[] = {exe.c_str(), "start", "-d", nullptr};
    ::execv(exe.c_str(), const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  std::string log_tail = tail_of_file(home.daemon_log(), 10);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // A concurrent `start` may have won the race: that daemon is as good as ours.
    if (auto info = running_daemon(home)) return *info;
    return fail("daemon: 'tokfence start -d' failed" + (log_tail.empty() ? std::string() : ": last log lines:" + log_tail));
  }
  for (int i = 0; i < 200; ++i) {
    if (auto info = running_daemon(home)) return *info;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fail("daemon: started but does not answer on " + home.control_socket().string() +
              (log_tail.empty() ? std::string() : ": last log lines:" + tail_of_file(home.daemon_log(), 10)));
}

// ---- Server side ------------------------------------------------------------------------------

namespace {

bool same_namespace(int pid, const char* ns, std::string* why) {
  struct stat mine{}, theirs{};
  std::string self_path = std::string("/proc/self/ns/") + ns;
  std::string peer_path = "/proc/" + std::to_string(pid) + "/ns/" + ns;
  if (::stat(self_path.c_str(), &mine) != 0) {
    *why = std::string("cannot read own ") + ns + " namespace";
    return false;
  }
  if (::stat(peer_path.c_str(), &theirs) != 0) {
    *why = std::string("cannot read the peer's ") + ns + " namespace (pid " + std::to_string(pid) + ")";
    return false;
  }
  if (mine.st_ino != theirs.st_ino || mine.st_dev != theirs.st_dev) {
    *why = std::string("peer (pid ") + std::to_string(pid) + ") is in another " +
           (std::string(ns) == "net" ? "network" : "mount") + " namespace";
    return false;
  }
  return true;
}

// tokfence-relay only ever carries agent traffic (a sandbox's or a container's proxy and dashboard
// sockets): a control request arriving through one means a relay was tricked into connecting here
// (e.g. a socket name in a directory the agent can write, replaced by a symlink to control.sock).
// Recognised by the name of the peer's executable and by being the very file next to our own
// binary (a hard link under another name). Defence in depth: the relay itself refuses such links.
bool peer_is_relay(int pid, std::string* why) {
  std::string exe_link = "/proc/" + std::to_string(pid) + "/exe";
  std::error_code ec;
  fs::path exe = fs::read_symlink(exe_link, ec);
  if (ec) {
    *why = "cannot read the peer's executable (pid " + std::to_string(pid) + ")";
    return true;  // fail closed: the namespace checks read the same /proc entry
  }
  std::string base = exe.filename().string();
  bool named_relay = base.rfind("tokfence-relay", 0) == 0;
  bool same_file = false;
  struct stat peer{}, relay{};
  const fs::path ours = file::self_exe();
  if (!ours.empty() && ::stat(exe_link.c_str(), &peer) == 0 &&
      ::stat((ours.parent_path() / "tokfence-relay").c_str(), &relay) == 0)
    same_file = peer.st_dev == relay.st_dev && peer.st_ino == relay.st_ino;
  if (!named_relay && !same_file) return false;
  *why = "peer (pid " + std::to_string(pid) + ") is tokfence-relay (" + exe.string() +
         "): a relay carries agent traffic, never control requests";
  return true;
}

}  // namespace

Result<void> check_control_peer(int fd) {
  auto cred = peer_credentials(fd);
  if (!cred) return fail("control: refused: cannot read the peer's credentials");
  if (cred->uid != ::getuid())
    return fail("control: refused: peer uid " + std::to_string(cred->uid) + " is not the daemon's uid " +
                std::to_string(::getuid()));
  if (cred->pid <= 0) return fail("control: refused: peer pid unknown (another pid namespace)");
  std::string why;
  if (!same_namespace(cred->pid, "net", &why) || !same_namespace(cred->pid, "mnt", &why))
    return fail("control: refused: " + why);
  if (peer_is_relay(cred->pid, &why)) return fail("control: refused: " + why);
  return {};
}

// Control traffic is a handful of short requests from the user's own processes; more open
// connections than this at once is a runaway client, refused so it cannot pile up threads.
constexpr std::size_t max_control_connections = 64;

struct ControlServer::Impl {
  const ControlRouter* router = nullptr;
  fs::path path;
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  std::thread acceptor;
  std::mutex mutex;
  std::condition_variable idle;
  // One entry per connection thread, joined (never detached): a handler may use the router and
  // the daemon behind it, so no thread may outlive stop(), however long its op takes.
  struct Connection {
    int fd = -1;
    bool done = false;
    std::thread thread;
  };
  std::list<Connection> connections;
  bool stopped = false;

  void serve(int fd) {
    auto check = check_control_peer(fd);
    if (!check) {
      json refusal = {{"ok", false}, {"error", check.error().message}};
      write_all(fd, refusal.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", std::chrono::steady_clock::now() + std::chrono::seconds(2));
      return;
    }
    for (;;) {
      auto line = read_line(fd, std::chrono::steady_clock::now() + std::chrono::seconds(30), nullptr);
      if (!line) return;
      json request = json::parse(*line, nullptr, false);
      json reply = request.is_discarded()
                       ? json{{"ok", false}, {"error", "control: malformed request: not JSON"}}
                       : router->dispatch(request);
      if (!write_all(fd, reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", std::chrono::steady_clock::now() + std::chrono::seconds(10))) return;
    }
  }

  // Joins the threads that have finished. Called with `mutex` held; a finished thread has left
  // every lock, so joining it here does not wait.
  void reap_finished() {
    for (auto it = connections.begin(); it != connections.end();) {
      if (!it->done) {
        ++it;
        continue;
      }
      it->thread.join();
      it = connections.erase(it);
    }
  }

  std::size_t open_connections() const {
    std::size_t n = 0;
    for (const auto& c : connections) n += c.done ? 0 : 1;
    return n;
  }

  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (p[1].revents) return;
      if (!(p[0].revents & POLLIN)) continue;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard lock(mutex);
      reap_finished();
      if (stopped || open_connections() >= max_control_connections) {
        if (!stopped) {
          // Said, not just closed, so the user's CLI can tell (and `tokfence stop` falls back to a
          // signal): one non-blocking send, the socket buffer of a new connection takes it.
          static constexpr std::string_view busy =
              R"json({"ok":false,"error":"control: busy: 64 connections are open (a runaway client of this user?)"})json" "\n";
          [[maybe_unused]] auto n = ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        ::close(fd);
        if (stopped) return;
        continue;
      }
      auto& c = connections.emplace_back();
      c.fd = fd;
      try {
        c.thread = std::thread([this, &c] {
          serve(c.fd);
          std::lock_guard lock(mutex);
          ::close(c.fd);
          c.fd = -1;
          c.done = true;
          idle.notify_all();
        });
      } catch (const std::system_error&) {
        // No thread to be had (a process limit): this client is turned away, the daemon goes on.
        ::close(fd);
        connections.pop_back();
      }
    }
  }
};

Result<std::unique_ptr<ControlServer>> ControlServer::start(const fs::path& path, const ControlRouter& router) {
  auto impl = std::make_unique<Impl>();
  impl->router = &router;
  impl->path = path;
  auto fd = bind_unix_listener(path, 0600, 64);
  if (!fd) return std::unexpected(fd.error());
  impl->listen_fd = *fd;
  if (::pipe2(impl->wake, O_CLOEXEC) != 0) {
    ::close(*fd);
    remove_socket_file(path);
    return fail("control: cannot create a pipe");
  }
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] { raw->accept_loop(); });
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() {
  if (!impl_ || impl_->listen_fd < 0) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopped = true;
  }
  char byte = 1;
  [[maybe_unused]] auto n = ::write(impl_->wake[1], &byte, 1);
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  ::close(impl_->listen_fd);
  impl_->listen_fd = -1;
  remove_socket_file(impl_->path);
  std::unique_lock lock(impl_->mutex);
  // Answers in progress (e.g. the reply to `shutdown`) go out first; idle clients are cut, which
  // ends their reads at once. An op still running is waited for: its thread uses the router.
  impl_->idle.wait_for(lock, std::chrono::seconds(1), [&] { return impl_->open_connections() == 0; });
  for (const auto& c : impl_->connections)
    if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
  std::list<Impl::Connection> left;
  left.swap(impl_->connections);
  lock.unlock();
  for (auto& c : left) c.thread.join();
  ::close(impl_->wake[0]);
  ::close(impl_->wake[1]);
}

}  // namespace tokfence::proxy
