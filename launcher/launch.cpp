#include "launcher/launch.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <set>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "launcher/docker.hpp"
#include "launcher/launch_config.hpp"
#include "proxy/control_protocol.hpp"
#include "proxy/pricing.hpp"
#include "vault/vault.hpp"

namespace tokfence::launcher {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// Small utilities

std::atomic<int> g_signal{0};
void on_stop_signal(int signo) { g_signal.store(signo); }

// Routes SIGINT/SIGTERM/SIGHUP to a flag for the lifetime of a launch, so every stage can clean up.
class SignalGuard {
 public:
  SignalGuard() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    for (int signo : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signo, &action, &old_[index(signo)]);
    // A closed stdout pipe must not kill us before we have removed the container.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old_pipe_);
  }
  ~SignalGuard() {
    for (int signo : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signo, &old_[index(signo)], nullptr);
    ::sigaction(SIGPIPE, &old_pipe_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  static int index(int signo) { return signo == SIGINT ? 0 : signo == SIGTERM ? 1 : 2; }
  struct sigaction old_[3] {};
  struct sigaction old_pipe_ {};
};

void check_interrupted() {
  if (int signo = g_signal.load()) throw UserError("launch: interrupted by signal " + std::to_string(signo), 128 + signo);
}

std::string self_dir() {
  char buffer[4096];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) return {};
  return fs::path(std::string(buffer, static_cast<std::size_t>(n))).parent_path().string();
}

fs::path find_relay() {
  if (const char* env = std::getenv("TOKFENCE_RELAY"); env && *env) {
    if (::access(env, X_OK) == 0) return env;
    throw UserError(std::string("launch: TOKFENCE_RELAY: not an executable: ") + env);
  }
  fs::path next_to_us = fs::path(self_dir()) / "tokfence-relay";
  if (::access(next_to_us.c_str(), X_OK) == 0) return next_to_us;
  throw UserError("launch: tokfence-relay not found next to tokfence (" + next_to_us.string() +
                  "): rebuild tokfence (scripts/build) or set TOKFENCE_RELAY");
}

void write_private_file(const fs::path& path, const std::string& content, std::optional<std::pair<unsigned, unsigned>> owner) {
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw UserError("launch: cannot write " + tmp.string() + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw UserError("launch: cannot write " + tmp.string() + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, 0600);
  if (owner && ::fchown(fd, owner->first, owner->second) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw UserError("launch: cannot hand " + path.string() + " to the container user: " + std::strerror(errno));
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw UserError("launch: cannot write " + path.string() + ": " + std::strerror(errno));
  }
}

void make_dir(const fs::path& dir, mode_t mode, std::optional<std::pair<unsigned, unsigned>> owner) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError("launch: cannot create " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), mode);
  if (owner && ::chown(dir.c_str(), owner->first, owner->second) != 0)
    throw UserError("launch: cannot hand " + dir.string() + " to the container user: " + std::strerror(errno));
}

bool process_alive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

std::string short_id(const std::string& id) { return id.size() > 12 ? id.substr(0, 12) : id; }

// ---------------------------------------------------------------------------------------------
// Per-launch paths and state

struct Paths {
  fs::path dir;         // TOKFENCE_HOME/openclaw/<name>
  fs::path config;      // .../openclaw.json
  fs::path state_file;  // .../launch.json (what `launch status|stop` read)
  fs::path state_home;  // .../home (the container's $HOME, OpenClaw's state)
  fs::path workspace;   // .../workspace unless --workspace
  fs::path sockets;     // TOKFENCE_HOME/sockets/launch-<name>
  fs::path proxy_sock, ui_sock;
  fs::path relay_ready;
  fs::path relay_log;
};

Paths paths_for(const Home& home, const std::string& name) {
  Paths p;
  p.dir = home.openclaw_dir() / name;
  p.config = p.dir / "openclaw.json";
  p.state_file = p.dir / "launch.json";
  p.state_home = p.dir / "home";
  p.workspace = p.dir / "workspace";
  p.sockets = home.sockets_dir() / ("launch-" + name);
  p.proxy_sock = p.sockets / "proxy.sock";
  p.ui_sock = p.sockets / "ui.sock";
  p.relay_ready = p.dir / "dashboard-relay.ready";
  p.relay_log = p.dir / "dashboard-relay.log";
  return p;
}

json read_state(const Paths& paths) {
  std::ifstream in(paths.state_file);
  if (!in) return json::object();
  auto state = json::parse(in, nullptr, false);
  return state.is_object() ? state : json::object();
}

std::string caller_label(const std::string& name) { return "openclaw:" + name; }

// Asks the daemon to drop a launch's proxy socket. Quiet when there is no daemon (then there is
// no listener either).
void close_proxy_socket(const Home& home, const fs::path& path) {
  if (!proxy::running_daemon(home)) return;
  (void)proxy::control_call(home, {{"op", "close_proxy_socket"}, {"path", path.string()}}, 5000);
}

void stop_process(int pid) {
  if (pid <= 0 || !process_alive(pid)) return;
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid || !process_alive(pid)) return;
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, WNOHANG);
}

// Removes everything a launch of `name` leaves on the host: the dashboard relay, the daemon's
// listener and the socket directory, the config (it holds the gateway token) and the state file.
// OpenClaw's state home and the workspace are the user's data and stay.
void remove_host_resources(const Home& home, const std::string& name) {
  Paths paths = paths_for(home, name);
  json state = read_state(paths);
  // Only a relay we recorded, and only if it still is a tokfence-relay (pids get reused).
  int relay_pid = state.value("dashboard_relay_pid", 0);
  if (relay_pid > 0) {
    char buffer[4096];
    std::string link = "/proc/" + std::to_string(relay_pid) + "/exe";
    ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer - 1);
    if (n > 0 && std::string(buffer, static_cast<std::size_t>(n)).find("tokfence-relay") != std::string::npos)
      stop_process(relay_pid);
  }
  close_proxy_socket(home, paths.proxy_sock);
  std::error_code ec;
  fs::remove_all(paths.sockets, ec);
  for (const auto& file : {paths.config, paths.state_file, paths.relay_ready, paths.relay_log}) fs::remove(file, ec);
  fs::path tmp = paths.config;
  tmp += ".tmp";
  fs::remove(tmp, ec);
}

Result<std::unique_ptr<ContainerEngine>> engine_from_env() {
  auto socket = docker_socket_from_env();
  if (!socket) return std::unexpected(socket.error());
  return connect_engine(*socket);
}

std::unique_ptr<ContainerEngine> engine_or_throw() { return value_or_throw(engine_from_env()); }

// Removes what crashed launches of this home left: stopped containers with our label, running
// foreground containers whose supervising tokfence is gone, and socket directories nobody uses.
void clean_leftovers(const Home& home, ContainerEngine& engine) {
  auto containers = engine.list_containers(kLaunchLabel);
  if (!containers) return;
  std::set<std::string> alive_names;
  for (const auto& c : *containers) {
    auto label = [&](const char* key) {
      auto it = c.labels.find(key);
      return it == c.labels.end() ? std::string{} : it->second;
    };
    if (label("org.tokfence.home") != home.root().string()) continue;
    std::string name = label(kLaunchLabel);
    bool running = c.state == "running" || c.state == "restarting";
    bool orphan = label("org.tokfence.mode") == "foreground" && !process_alive(std::atoi(label("org.tokfence.pid").c_str()));
    if (running && !orphan) {
      alive_names.insert(name);
      continue;
    }
    if (label("org.tokfence.mode") == "detach" && c.state != "dead") {
      // A detached launch that was stopped (e.g. by the engine restarting) is still the user's.
      alive_names.insert(name);
      continue;
    }
    std::cerr << "launch: removing leftover container " << (c.names.empty() ? short_id(c.id) : c.names.front())
              << " of an earlier launch\n";
    (void)engine.remove_container(c.id, /*force=*/true);
    remove_host_resources(home, name);
  }
  std::error_code ec;
  for (fs::directory_iterator it(home.sockets_dir(), ec), end; !ec && it != end; it.increment(ec)) {
    std::string dir = it->path().filename().string();
    if (!dir.starts_with("launch-")) continue;
    std::string name = dir.substr(7);
    if (alive_names.count(name)) continue;
    auto held = engine.inspect_container(name);
    if (held && *held) continue;  // the container exists (maybe created by a launch in progress)
    int launcher = read_state(paths_for(home, name)).value("launcher_pid", 0);
    if (launcher != ::getpid() && process_alive(launcher)) continue;  // a launch still setting up
    remove_host_resources(home, name);
  }
}

// ---------------------------------------------------------------------------------------------
// Providers

std::vector<OpenClawProvider> providers_with_keys(const Home& home, const Config& config,
                                                  const std::optional<std::string>& model_override) {
  auto vault = value_or_throw(vault::open_vault(config, home, vault::default_passphrase_source()));
  auto keys = value_or_throw(vault->list());
  proxy::PricingTable pricing(config);
  std::string root = "http://127.0.0.1:" + std::to_string(kContainerProxyPort);
  std::vector<std::string> names;
  for (const auto& key : keys) names.push_back(key.provider);
  std::vector<OpenClawProvider> out;
  for (const auto& name : provider_priority(names)) {
    auto spec = config.provider(name);
    if (!spec) continue;
    auto api = openclaw_api(*spec);
    if (!api) continue;
    OpenClawProvider provider{name, *api, proxy_base_url(*spec, root), {}};
    for (const auto& m : pricing.models_of(name))
      if (std::find(provider.models.begin(), provider.models.end(), m.model) == provider.models.end())
        provider.models.push_back(m.model);
    if (model_override && model_override->starts_with(name + "/")) {
      std::string model = model_override->substr(name.size() + 1);
      if (std::find(provider.models.begin(), provider.models.end(), model) == provider.models.end())
        provider.models.insert(provider.models.begin(), model);
    }
    if (provider.models.empty()) {
      std::cerr << "launch: provider '" << name << "' skipped: no models in the pricing table (pass --model " << name
                << "/<model>)\n";
      continue;
    }
    out.push_back(std::move(provider));
  }
  if (out.empty())
    throw UserError(keys.empty() ? "launch: no provider has a key: run 'tokfence vault add openai -' (or another provider) first"
                                 : "launch: no provider with a key can be used by OpenClaw: pass --model provider/model");
  return out;
}

// ---------------------------------------------------------------------------------------------
// The host side of the dashboard: tokfence-relay on 127.0.0.1:<port> -> ui.sock

struct DashboardRelay {
  int pid = 0;
  int port = 0;
};

// Starts the relay (as our child, or detached into its own session). The socket directory is
// passed as an inherited directory descriptor (/proc/self/fd/N/ui.sock), so a deep TOKFENCE_HOME
// does not hit the 108-byte limit of Unix socket paths.
DashboardRelay start_dashboard_relay(const fs::path& relay, const Paths& paths, int port, bool detach) {
  std::error_code ec;
  fs::remove(paths.relay_ready, ec);
  int dir_fd = ::open(paths.sockets.c_str(), O_PATH | O_DIRECTORY);  // inherited on purpose
  if (dir_fd < 0) throw UserError("launch: cannot open " + paths.sockets.string() + ": " + std::strerror(errno));
  std::string spec = "tcp:127.0.0.1:" + std::to_string(port) + "=unix:/proc/self/fd/" + std::to_string(dir_fd) + "/ui.sock";
  std::vector<std::string> args = {relay.string(), "--forward", spec, "--ready-file", paths.relay_ready.string()};
  int log_fd = ::open(paths.relay_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(dir_fd);
    throw UserError(std::string("launch: cannot start the dashboard relay: ") + std::strerror(errno));
  }
  if (pid == 0) {
    if (detach) ::setsid();
    else ::setpgid(0, 0);  // Ctrl-C goes to us; we stop the relay ourselves, after the container
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0);
    ::dup2(log_fd >= 0 ? log_fd : null_fd, 1);
    ::dup2(log_fd >= 0 ? log_fd : null_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(signo, SIG_DFL);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(dir_fd);
  if (log_fd >= 0) ::close(log_fd);
  for (int i = 0; i < 250; ++i) {  // up to 5 s
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      std::ifstream log(paths.relay_log);
      std::string line, last;
      while (std::getline(log, line))
        if (!line.empty()) last = line;
      if (last.find("in use") != std::string::npos || last.find("ddress already") != std::string::npos)
        throw UserError("launch: dashboard port " + std::to_string(port) + " is in use: pass --port N (or --port 0 for any free port)");
      throw UserError("launch: the dashboard relay failed: " + (last.empty() ? std::string("no output") : last));
    }
    std::ifstream ready(paths.relay_ready);
    std::string line;
    if (ready && std::getline(ready, line) && !line.empty()) {
      // "tcp:127.0.0.1:PORT=unix:..."
      auto eq = line.find('=');
      auto colon = line.rfind(':', eq);
      DashboardRelay out{pid, std::atoi(line.substr(colon + 1, eq - colon - 1).c_str())};
      return out;
    }
    std::this_thread::sleep_for(20ms);
  }
  stop_process(pid);
  throw UserError("launch: the dashboard relay did not start within 5 s: see " + paths.relay_log.string());
}

// True when an HTTP request through `socket_dir`/ui.sock gets an HTTP response: the relay is up
// and the gateway behind it answers. The directory is reached through a descriptor
// (/proc/self/fd/N/ui.sock) because a deep TOKFENCE_HOME exceeds the 108 bytes of sun_path.
bool gateway_answers(const fs::path& socket_dir) {
  int dir = ::open(socket_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return false;
  std::string path = "/proc/self/fd/" + std::to_string(dir) + "/ui.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = false;
  if (fd >= 0) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      const char request[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
      char buffer[5] = {};
      if (::send(fd, request, sizeof request - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof request - 1)) {
        std::size_t got = 0;
        while (got < sizeof buffer) {
          ssize_t n = ::recv(fd, buffer + got, sizeof buffer - got, 0);
          if (n <= 0) break;
          got += static_cast<std::size_t>(n);
        }
        ok = got == sizeof buffer && std::string_view(buffer, 5) == "HTTP/";
      }
    }
    ::close(fd);
  }
  ::close(dir);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// The launch itself

class Launch {
 public:
  Launch(const Home& home, const Config& config, const LaunchOptions& options)
      : home_(home), config_(config), options_(options), paths_(paths_for(home, options.name)) {}

  ~Launch() { cleanup(); }

  int run();

 private:
  void cleanup() noexcept;
  void prepare_image();
  void check_name();
  std::pair<unsigned, unsigned> container_user_ids();
  std::vector<std::string> command_for(const ImageInfo& image) const;
  void print_started();
  int supervise();
  int wait_detached_start();
  std::string last_log_lines(int lines);

  const Home& home_;
  const Config& config_;
  LaunchOptions options_;
  Paths paths_;
  std::unique_ptr<ContainerEngine> engine_;
  ImageInfo image_;
  std::string user_;
  std::optional<std::pair<unsigned, unsigned>> owner_;  // chown target when we are root
  std::int64_t memory_ = 0;
  std::vector<OpenClawProvider> providers_;
  RenderedConfig rendered_;
  std::string token_;
  std::optional<proxy::DaemonInfo> daemon_;
  DashboardRelay dashboard_;
  std::string dashboard_url_;
  std::string container_id_;
  bool created_host_resources_ = false;
  bool keep_ = false;  // detached and started: leave everything in place
};

std::pair<unsigned, unsigned> Launch::container_user_ids() {
  if (options_.user.empty()) {
    // As root, a fixed unprivileged user; otherwise the caller's own ids, so files in the state
    // home and workspace stay the caller's.
    if (::geteuid() == 0) user_ = "1000:1000";
    else user_ = std::to_string(::geteuid()) + ":" + std::to_string(::getegid());
  } else {
    user_ = options_.user;
  }
  auto ids = numeric_user(user_);
  if (!ids) throw UserError("launch: --user: expected UID[:GID] (numeric): " + user_);
  if (ids->first == 0) throw UserError("launch: --user: refusing to run the container as root: " + user_);
  if (::geteuid() == 0) owner_ = *ids;
  else if (ids->first != ::geteuid())
    throw UserError("launch: --user: " + user_ + " cannot use files owned by uid " + std::to_string(::geteuid()) +
                    ": omit --user, or run as root");
  return *ids;
}

void Launch::check_name() {
  auto held = value_or_throw(engine_->inspect_container(options_.name));
  if (!held) return;
  auto it = held->labels.find(kLaunchLabel);
  if (it == held->labels.end())
    throw UserError("launch: container name '" + options_.name +
                    "' is taken by a container tokfence did not create: pass --name, or remove it (docker rm -f " +
                    options_.name + ")");
  auto home_it = held->labels.find("org.tokfence.home");
  if (home_it == held->labels.end() || home_it->second != home_.root().string())
    throw UserError("launch: container name '" + options_.name + "' is used by the tokfence home " +
                    (home_it == held->labels.end() ? std::string("?") : home_it->second) + ": pass --name");
  if (!held->running)
    throw UserError("launch: '" + options_.name + "' exists but is " + held->state + ": 'tokfence launch restart --name " +
                    options_.name + "' to run it again, or 'tokfence launch stop --name " + options_.name + "' to remove it");
  throw UserError("launch: '" + options_.name + "' is already running: see 'tokfence launch status --name " + options_.name +
                  "', or stop it with 'tokfence launch stop --name " + options_.name + "'");
}

void Launch::prepare_image() {
  auto found = value_or_throw(engine_->inspect_image(options_.image));
  if (!found) {
    if (!options_.pull)
      throw UserError("launch: image " + options_.image + " not present and --no-pull given: pull it or build it first");
    bool tty = ::isatty(2);
    std::cerr << "launch: pulling " << options_.image << "\n";
    auto last = std::chrono::steady_clock::now() - 1s;
    auto pulled = engine_->pull_image(options_.image, [&](const PullProgress& progress) {
      auto now = std::chrono::steady_clock::now();
      if (now - last < (tty ? 100ms : 2s)) return;
      last = now;
      std::cerr << (tty ? "\r" : "") << render_progress_bar(progress) << (tty ? "\x1b[K" : "\n") << std::flush;
    });
    if (tty) std::cerr << "\r\x1b[K";
    if (!pulled) throw UserError(pulled.error());
    check_interrupted();
    found = value_or_throw(engine_->inspect_image(options_.image));
    if (!found) throw UserError("launch: image " + options_.image + " still missing after the pull");
  }
  image_ = *found;
}

std::vector<std::string> Launch::command_for(const ImageInfo& image) const {
  std::vector<std::string> command = image.entrypoint;
  const auto& cmd = options_.command.empty() ? image.cmd : options_.command;
  command.insert(command.end(), cmd.begin(), cmd.end());
  return command;
}

int Launch::run() {
  SignalGuard signals;
  g_signal.store(0);
  value_or_throw(check_launch_name(options_.name));
  auto memory = parse_memory(options_.memory);
  if (!memory) throw UserError("launch: --memory: expected a size of at least 64m like 512m or 2g: " + options_.memory);
  memory_ = *memory;
  if (options_.pids_limit < 16) throw UserError("launch: --pids-limit: must be at least 16: " + std::to_string(options_.pids_limit));
  if (options_.port < 0 || options_.port > 65535) throw UserError("launch: --port: not a port: " + std::to_string(options_.port));
  if (options_.model && options_.model->find('/') == std::string::npos)
    throw UserError("launch: --model: expected provider/model: " + *options_.model);

  // Docker first: without an engine nothing else is worth doing.
  engine_ = engine_or_throw();
  providers_ = providers_with_keys(home_, config_, options_.model);
  if (options_.model) {
    std::string provider = options_.model->substr(0, options_.model->find('/'));
    bool keyed = std::any_of(providers_.begin(), providers_.end(), [&](const auto& p) { return p.name == provider; });
    if (!keyed) throw UserError("launch: --model: provider '" + provider + "' has no key: run 'tokfence vault add " + provider + " -'");
  }
  fs::path relay = find_relay();
  auto ids = container_user_ids();
  prepare_image();
  if (command_for(image_).empty())
    throw UserError("launch: image " + options_.image + " has no entrypoint or command: pass one after --");
  check_interrupted();
  clean_leftovers(home_, *engine_);
  check_name();

  daemon_ = value_or_throw(proxy::ensure_daemon(home_));
  check_interrupted();

  // From here on, everything created is removed by cleanup() unless the launch is detached.
  created_host_resources_ = true;
  value_or_throw(ensure_private_dir(home_.openclaw_dir()));
  value_or_throw(ensure_private_dir(home_.sockets_dir()));
  make_dir(paths_.dir, 0700, std::nullopt);
  // Marks the launch as in progress, so a concurrent launch's leftover sweep leaves it alone.
  write_private_file(paths_.state_file,
                     json{{"name", options_.name}, {"launcher_pid", ::getpid()}, {"mode", options_.detach ? "detach" : "foreground"}}.dump() + "\n",
                     std::nullopt);
  make_dir(paths_.state_home, 0700, owner_);
  fs::path workspace = options_.workspace ? fs::absolute(*options_.workspace) : paths_.workspace;
  if (options_.workspace) {
    if (!fs::is_directory(workspace)) throw UserError("launch: --workspace: not a directory: " + workspace.string());
  } else {
    make_dir(workspace, 0700, owner_);
  }
  std::error_code ec;
  fs::remove_all(paths_.sockets, ec);
  // The container user creates ui.sock here; the daemon (our uid) creates proxy.sock.
  make_dir(paths_.sockets, 0700, owner_);

  auto opened = proxy::control_call(home_, {{"op", "open_proxy_socket"},
                                            {"path", paths_.proxy_sock.string()},
                                            {"caller", caller_label(options_.name)},
                                            {"mode", 0666},
                                            {"persist", options_.detach}});
  if (!opened) throw UserError("launch: the daemon could not open the launch's proxy socket: " + opened.error().message);

  token_ = random_token();
  RenderRequest request{providers_, options_.model, token_, kGatewayPort, kContainerWorkspace};
  rendered_ = value_or_throw(render_openclaw_config(value_or_throw(read_template("openclaw/openclaw.json.tmpl")), request));
  write_private_file(paths_.config, rendered_.text, owner_);
  check_interrupted();

  if (options_.dashboard) {
    dashboard_ = start_dashboard_relay(relay, paths_, options_.port, options_.detach);
    dashboard_url_ = "http://127.0.0.1:" + std::to_string(dashboard_.port) + "/#token=" + token_;
  }

  ContainerSpecInput spec{options_.name, options_.image, command_for(image_), user_, memory_, options_.pids_limit,
                          options_.detach, static_cast<int>(::getpid()), home_.root().string(), relay, paths_.sockets,
                          paths_.config, paths_.state_home, workspace};
  (void)ids;
  container_id_ = value_or_throw(engine_->create_container(options_.name, container_spec(spec)));

  json state = {{"name", options_.name},
                {"container_id", container_id_},
                {"image", options_.image},
                {"mode", options_.detach ? "detach" : "foreground"},
                {"launcher_pid", ::getpid()},
                {"dashboard_url", dashboard_url_.empty() ? json(nullptr) : json(dashboard_url_)},
                {"dashboard_port", dashboard_.port},
                {"dashboard_relay_pid", dashboard_.pid},
                {"socket_dir", paths_.sockets.string()},
                {"config_path", paths_.config.string()},
                {"primary_model", rendered_.primary_model},
                {"providers", json::array()}};
  for (const auto& p : providers_) state["providers"].push_back(p.name);
  write_private_file(paths_.state_file, state.dump(2) + "\n", std::nullopt);
  check_interrupted();

  value_or_throw(engine_->start_container(container_id_));
  if (options_.detach) return wait_detached_start();
  return supervise();
}

std::string Launch::last_log_lines(int lines) {
  std::string text;
  (void)engine_->stream_logs(container_id_, false, lines, [&](LogStream, std::string_view bytes) {
    if (text.size() < 64 * 1024) text.append(bytes);
    return true;
  });
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::string indented = "  ";
  for (char c : text) {
    indented += c;
    if (c == '\n') indented += "  ";
  }
  return text.empty() ? "  (no output)" : indented;
}

void Launch::print_started() {
  json out = {{"name", options_.name},
              {"container_id", container_id_},
              {"image", options_.image},
              {"dashboard_url", dashboard_url_.empty() ? json(nullptr) : json(dashboard_url_)},
              {"providers", json::array()},
              {"primary_model", rendered_.primary_model},
              {"config_path", paths_.config.string()},
              {"status", "running"},
              {"detached", options_.detach}};
  for (const auto& p : providers_) out["providers"].push_back(p.name);
  if (options_.json) {
    std::cout << out.dump() << std::endl;
    return;
  }
  std::ostream& os = options_.detach ? std::cout : std::cerr;
  os << "launch: " << options_.name << " running (container " << short_id(container_id_) << ", image " << options_.image
     << ")\n";
  std::string names;
  for (const auto& p : providers_) names += (names.empty() ? "" : ", ") + p.name;
  os << "  providers: " << names << "; primary model: " << rendered_.primary_model << "\n";
  os << "  config:    " << paths_.config.string() << "\n";
  if (!dashboard_url_.empty()) os << "  dashboard: " << dashboard_url_ << "\n";
  os << (options_.detach ? "  stop with: tokfence launch stop --name " + options_.name + "\n"
                         : "  Ctrl-C stops and removes it.\n");
  os.flush();
  if (options_.open_browser && !dashboard_url_.empty() && (std::getenv("DISPLAY") || std::getenv("WAYLAND_DISPLAY")) &&
      ::access("/usr/bin/xdg-open", X_OK) == 0) {
    if (pid_t pid = ::fork(); pid == 0) {
      ::setsid();
      int null_fd = ::open("/dev/null", O_RDWR);
      ::dup2(null_fd, 0), ::dup2(null_fd, 1), ::dup2(null_fd, 2);
      ::execl("/usr/bin/xdg-open", "xdg-open", dashboard_url_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
}

int Launch::wait_detached_start() {
  // The relay creates ui.sock as soon as it runs. With the image's own command (the gateway) we
  // also wait until the gateway answers through it, so a config OpenClaw rejects is reported here
  // (with its output) rather than discovered later. A container that dies meanwhile is removed.
  auto deadline = std::chrono::steady_clock::now() + (options_.dashboard ? 180s : 15s);
  bool announced = false;
  while (std::chrono::steady_clock::now() < deadline) {
    check_interrupted();
    auto info = value_or_throw(engine_->inspect_container(container_id_));
    // With restart policy unless-stopped a dying container shows up as restarting: also a failure.
    if (!info || (!info->running && info->state != "created") || info->state == "restarting") {
      int code = info ? info->exit_code : -1;
      throw UserError("launch: container '" + options_.name + "' exited at start with status " + std::to_string(code) +
                      "; last output:\n" + last_log_lines(20));
    }
    if (info->running && fs::exists(paths_.ui_sock)) {
      if (!options_.dashboard || gateway_answers(paths_.sockets)) break;
      if (!announced && !options_.json) std::cerr << "launch: waiting for the OpenClaw gateway to answer...\n";
      announced = true;
    }
    std::this_thread::sleep_for(250ms);
  }
  if (std::chrono::steady_clock::now() >= deadline)
    std::cerr << "launch: " << options_.name << " runs but its gateway did not answer yet: see 'tokfence launch logs --name "
              << options_.name << "'\n";
  keep_ = true;
  print_started();
  return 0;
}

int Launch::supervise() {
  print_started();
  std::atomic<bool> finished{false};
  std::optional<Result<int>> waited;
  std::thread waiter([&] {
    auto engine = engine_from_env();
    waited = engine ? (*engine)->wait_container(container_id_) : Result<int>(std::unexpected(engine.error()));
    finished = true;
  });
  std::thread logs([&] {
    auto engine = engine_from_env();
    if (!engine) return;
    (void)(*engine)->stream_logs(container_id_, true, -1, [](LogStream stream, std::string_view bytes) {
      auto& os = stream == LogStream::stderr_stream ? std::cerr : std::cout;
      os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      os.flush();
      return true;
    });
  });

  bool stop_requested = false;
  bool daemon_lost = false;
  auto next_daemon_check = std::chrono::steady_clock::now();
  std::thread stopper;
  while (!finished) {
    std::this_thread::sleep_for(50ms);
    if (int signo = g_signal.load(); signo && !stop_requested) {
      stop_requested = true;
      std::cerr << "launch: stopping " << options_.name << " (signal " << signo << ")\n";
      stopper = std::thread([this] {
        if (auto engine = engine_from_env()) (void)(*engine)->stop_container(container_id_, options_.stop_timeout_seconds);
      });
    }
    auto now = std::chrono::steady_clock::now();
    if (!stop_requested && now >= next_daemon_check) {
      next_daemon_check = now + 500ms;
      if (!process_alive(daemon_->pid) || !fs::exists(paths_.proxy_sock)) {
        daemon_lost = true;
        stop_requested = true;
        std::cerr << "launch: the tokfence daemon stopped: stopping " << options_.name << "\n";
        stopper = std::thread([this] {
          if (auto engine = engine_from_env()) (void)(*engine)->stop_container(container_id_, options_.stop_timeout_seconds);
        });
      }
    }
  }
  waiter.join();
  logs.join();
  if (stopper.joinable()) stopper.join();

  if (!waited || !*waited) {
    std::string why = waited && !*waited ? waited->error().message : "no answer";
    throw UserError("launch: lost track of container '" + options_.name + "': " + why);
  }
  int code = **waited;
  if (daemon_lost)
    throw UserError("launch: the tokfence daemon stopped while '" + options_.name +
                    "' ran: the container was stopped and removed; run 'tokfence start -d' and launch again");
  if (code != 0 && !stop_requested) std::cerr << "launch: container '" << options_.name << "' exited with status " << code << "\n";
  return code;
}

void Launch::cleanup() noexcept {
  if (keep_) return;
  try {
    if (!container_id_.empty() && engine_) (void)engine_->remove_container(container_id_, /*force=*/true);
    if (dashboard_.pid > 0) stop_process(dashboard_.pid);
    if (created_host_resources_) remove_host_resources(home_, options_.name);
  } catch (...) {
  }
}

// ---------------------------------------------------------------------------------------------
// Subcommands

std::optional<ContainerInfo> find_launch(ContainerEngine& engine, const Home& home, const std::string& name) {
  auto info = value_or_throw(engine.inspect_container(name));
  if (!info) return std::nullopt;
  auto it = info->labels.find(kLaunchLabel);
  if (it == info->labels.end())
    throw UserError("launch: container '" + name + "' was not started by tokfence: use docker to manage it");
  return info;
}

}  // namespace

int run_launch(const Home& home, const Config& config, const LaunchOptions& options) {
  Launch launch(home, config, options);
  return launch.run();
}

int launch_status(const Home& home, const LaunchTarget& target) {
  value_or_throw(check_launch_name(target.name));
  auto engine = engine_or_throw();
  auto info = find_launch(*engine, home, target.name);
  Paths paths = paths_for(home, target.name);
  json state = read_state(paths);
  json out = {{"name", target.name},
              {"status", info ? info->state : "absent"},
              {"container_id", info ? json(info->id) : json(nullptr)},
              {"image", info ? json(info->image) : json(nullptr)},
              {"dashboard_url", state.value("dashboard_url", json(nullptr))},
              {"providers", state.value("providers", json::array())},
              {"primary_model", state.value("primary_model", json(nullptr))},
              {"config_path", fs::exists(paths.config) ? json(paths.config.string()) : json(nullptr)},
              {"mode", state.value("mode", json(nullptr))}};
  if (info && !info->running) out["exit_code"] = info->exit_code;
  if (target.json) {
    std::cout << out.dump() << "\n";
  } else if (!info) {
    std::cout << target.name << ": not running\n";
  } else {
    std::cout << target.name << ": " << info->state << " (container " << short_id(info->id) << ", image " << info->image
              << ")\n";
    if (out["dashboard_url"].is_string()) std::cout << "  dashboard: " << out["dashboard_url"].get<std::string>() << "\n";
    if (out["primary_model"].is_string()) std::cout << "  primary model: " << out["primary_model"].get<std::string>() << "\n";
    if (out["config_path"].is_string()) std::cout << "  config: " << out["config_path"].get<std::string>() << "\n";
  }
  return info && info->running ? 0 : 3;
}

int launch_stop(const Home& home, const LaunchTarget& target, int timeout_seconds) {
  value_or_throw(check_launch_name(target.name));
  auto engine = engine_or_throw();
  auto info = find_launch(*engine, home, target.name);
  if (info) {
    value_or_throw(engine->stop_container(info->id, timeout_seconds));
    value_or_throw(engine->remove_container(info->id, true));
  }
  remove_host_resources(home, target.name);
  if (target.json) {
    std::cout << json{{"name", target.name}, {"stopped", info.has_value()}}.dump() << "\n";
  } else {
    std::cout << target.name << (info ? ": stopped and removed\n" : ": was not running (cleaned up)\n");
  }
  return 0;
}

int launch_logs(const Home& home, const LaunchTarget& target, bool follow, int tail) {
  value_or_throw(check_launch_name(target.name));
  auto engine = engine_or_throw();
  auto info = find_launch(*engine, home, target.name);
  if (!info) throw UserError("launch: '" + target.name + "' is not running: start it with 'tokfence launch'");
  value_or_throw(engine->stream_logs(info->id, follow, tail, [](LogStream stream, std::string_view bytes) {
    auto& os = stream == LogStream::stderr_stream ? std::cerr : std::cout;
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    os.flush();
    return static_cast<bool>(os);
  }));
  return 0;
}

int launch_restart(const Home& home, const LaunchTarget& target, int timeout_seconds) {
  value_or_throw(check_launch_name(target.name));
  auto engine = engine_or_throw();
  auto info = find_launch(*engine, home, target.name);
  if (!info) throw UserError("launch: '" + target.name + "' is not running: start it with 'tokfence launch'");
  Paths paths = paths_for(home, target.name);
  json state = read_state(paths);
  if (state.value("mode", "") == "detach") {
    // The daemon must be serving the launch's socket again (it restores persisted ones).
    value_or_throw(proxy::ensure_daemon(home));
  }
  value_or_throw(engine->restart_container(info->id, timeout_seconds));
  // A detached launch's dashboard relay may be gone (e.g. after a reboot): start it again.
  if (state.value("mode", "") == "detach" && state.value("dashboard_port", 0) > 0 &&
      !process_alive(state.value("dashboard_relay_pid", 0))) {
    auto relay = start_dashboard_relay(find_relay(), paths, state.value("dashboard_port", 0), true);
    state["dashboard_relay_pid"] = relay.pid;
    write_private_file(paths.state_file, state.dump(2) + "\n", std::nullopt);
  }
  if (target.json) std::cout << json{{"name", target.name}, {"restarted", true}}.dump() << "\n";
  else std::cout << target.name << ": restarted\n";
  return 0;
}

int launch_config(const Home& home, const LaunchTarget& target) {
  value_or_throw(check_launch_name(target.name));
  Paths paths = paths_for(home, target.name);
  std::ifstream in(paths.config);
  if (!in) throw UserError("launch: no rendered config for '" + target.name + "' (" + paths.config.string() + "): is it running?");
  std::ostringstream text;
  text << in.rdbuf();
  if (target.json) {
    std::cout << json{{"name", target.name}, {"config_path", paths.config.string()}, {"config", json::parse(text.str(), nullptr, false)}}.dump()
              << "\n";
  } else {
    std::cerr << "# " << paths.config.string() << "\n";
    std::cout << text.str();
  }
  return 0;
}

int setup_openclaw(const Home& home, const Config& config, const SetupOptions& options) {
  auto daemon = proxy::running_daemon(home);
  std::string base = daemon ? daemon->base_url() : "http://" + config.daemon.host + ":" + std::to_string(config.daemon.port);

  std::vector<std::string> keyed;
  std::optional<std::string> vault_error;
  if (auto vault = vault::open_vault(config, home, vault::default_passphrase_source())) {
    if (auto keys = (*vault)->list()) {
      for (const auto& k : *keys) keyed.push_back(k.provider);
    } else {
      vault_error = keys.error().message;
    }
  } else {
    vault_error = vault.error().message;
  }

  std::string provider_name;
  if (options.provider) {
    provider_name = *options.provider;
  } else {
    auto ordered = provider_priority(keyed);
    provider_name = ordered.empty() ? "openai" : ordered.front();
  }
  auto spec = config.provider(provider_name);
  if (!spec) throw UserError("setup openclaw: unknown provider: " + provider_name + " (see 'tokfence provider list')");
  auto api = openclaw_api(*spec);
  if (!api) throw UserError("setup openclaw: provider '" + provider_name + "' speaks an API OpenClaw cannot use");

  proxy::PricingTable pricing(config);
  json models = json::array();
  for (const auto& m : pricing.models_of(provider_name)) models.push_back({{"id", m.model}, {"name", m.model}});
  std::string base_url = proxy_base_url(*spec, base);
  json snippet = {{provider_name, {{"baseUrl", base_url}, {"apiKey", kPlaceholderKey}, {"api", *api}, {"models", models}}}};

  bool has_key = std::find(keyed.begin(), keyed.end(), provider_name) != keyed.end();
  json checks = json::array();
  int exit_code = 0;
  if (options.test) {
    checks.push_back({{"name", "daemon_reachable"},
                      {"ok", daemon.has_value()},
                      {"detail", daemon ? "daemon pid " + std::to_string(daemon->pid) + " at " + base : std::string("no daemon running: run 'tokfence start -d'")}});
    checks.push_back({{"name", "provider_has_key"},
                      {"ok", has_key},
                      {"detail", has_key ? "vault has a key for " + provider_name
                                         : vault_error ? "vault: " + *vault_error
                                                       : "no key: run 'tokfence vault add " + provider_name + " -'"}});
    for (const auto& c : checks)
      if (!c["ok"].get<bool>()) exit_code = 1;
  }

  if (options.json) {
    json out = {{"provider", provider_name}, {"base_url", base_url}, {"api", *api}, {"models_providers", snippet}};
    if (options.test) out["checks"] = checks;
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "OpenClaw through tokfence, provider " << provider_name << ":\n";
    std::cout << "  base URL: " << base_url << "\n";
    std::cout << "  api:      " << *api << "\n";
    std::cout << "  apiKey:   " << kPlaceholderKey << " (tokfence injects the real key)\n\n";
    std::cout << "Paste into openclaw.json under \"models\": { \"providers\": ... }:\n";
    std::cout << snippet.dump(2) << "\n";
    if (options.test) {
      std::cout << "\nchecks:\n";
      for (const auto& c : checks)
        std::cout << "  " << (c["ok"].get<bool>() ? "ok    " : "FAIL  ") << c["name"].get<std::string>() << ": "
                  << c["detail"].get<std::string>() << "\n";
    }
  }
  return exit_code;
}

}  // namespace tokfence::launcher
