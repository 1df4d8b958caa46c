#include "launcher/openclaw/launch.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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

#include "core/egress_env.hpp"
#include "core/error.hpp"
#include "core/file.hpp"
#include "core/fs_identity.hpp"
#include "core/process.hpp"
#include "core/text_format.hpp"
#include "launcher/openclaw/docker.hpp"
#include "launcher/openclaw/config.hpp"
#include "launcher/openclaw/image.hpp"
#include "launcher/openclaw/session.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/metering/pricing.hpp"
#include "sandbox/git_settings.hpp"
#include "vault/terminal.hpp"
#include "vault/vault.hpp"

#include <openssl/evp.h>

namespace tokfence::launcher {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// Small utilities

// The container's output on its way to the user's terminal (foreground `launch`, `launch logs`).
// The agent in the container chooses those bytes: raw, they could set the terminal's clipboard
// (OSC 52), clear the screen and print a fake prompt, hide text or plant links. Masked the way
// `tokfence log` masks what clients chose (core/text_format TerminalText: newlines and tabs pass),
// one state per stream; `raw` (`launch logs --raw`) passes the bytes unchanged.
class ContainerOutput {
 public:
  explicit ContainerOutput(bool raw) : raw_(raw) {}
  bool write(LogStream stream, std::string_view bytes) {
    const bool err = stream == LogStream::stderr_stream;
    return put(err, raw_ ? std::string(bytes) : (err ? err_ : out_).feed(bytes));
  }
  void finish() {
    put(false, out_.finish());
    put(true, err_.finish());
  }

 private:
  static bool put(bool err, const std::string& text) {
    auto& os = err ? std::cerr : std::cout;
    os.write(text.data(), static_cast<std::streamsize>(text.size()));
    os.flush();
    return static_cast<bool>(os);
  }
  bool raw_;
  TerminalText out_, err_;
};

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

std::string self_dir() { return file::self_exe().parent_path().string(); }

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

using Owner = std::optional<std::pair<unsigned, unsigned>>;

// Files of a launch live in TOKFENCE_HOME/openclaw/<name>, which only we can write; still written
// atomically through core/file (random temp name, no link followed), mode 0600.
void write_private_file(const fs::path& path, const std::string& content, Owner owner) {
  file::WriteOptions options;
  if (owner) options.owner = std::pair<uid_t, gid_t>(owner->first, owner->second);
  if (auto ok = file::write_atomic(path, content, options); !ok) throw UserError("launch: cannot write: " + ok.error().message);
}

// Creates (or reuses) directory `name` in `parent_fd` without following a symlink, then sets `mode`
// and, if given, `owner` through its descriptor. An existing one must be ours or already `owner`'s
// (a directory handed to the container user by an earlier launch); anything else is refused.
file::Fd make_dir_at(int parent_fd, const std::string& name, mode_t mode, Owner owner) {
  if (::mkdirat(parent_fd, name.c_str(), 0700) != 0 && errno != EEXIST)
    throw UserError("launch: cannot create " + file::describe_fd(parent_fd) + "/" + name + ": " + std::strerror(errno));
  auto opened = file::open_dir_at(parent_fd, name, file::Create::no);
  if (!opened && owner) opened = file::open_dir_at(parent_fd, name, file::Create::no, owner->first);
  if (!opened) throw UserError("launch: " + opened.error().message);
  if (owner && ::fchown(opened->get(), owner->first, owner->second) != 0)
    throw UserError("launch: cannot hand " + file::describe_fd(opened->get()) + " to the container user: " + std::strerror(errno));
  if (::fchmod(opened->get(), mode) != 0)
    throw UserError("launch: cannot set the mode of " + file::describe_fd(opened->get()) + ": " + std::strerror(errno));
  return std::move(*opened);
}

// An absolute directory path we own (TOKFENCE_HOME/openclaw/<name> and the like), opened with no
// symlink at its last component.
file::Fd open_own_dir(const fs::path& dir) {
  auto opened = file::open_dir_nofollow(dir);
  if (!opened) throw UserError("launch: " + opened.error().message);
  return std::move(*opened);
}

bool process_alive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

std::string short_id(const std::string& id) { return id.size() > 12 ? id.substr(0, 12) : id; }

// ---------------------------------------------------------------------------------------------
// Per-launch paths and state

// The socket layout (docs/LAUNCH.md): TOKFENCE_HOME/sockets/launch-<name>/ is ours (0700) and holds
//   proxy/  ours, 0755, mounted READ-ONLY at /run/tokfence: the daemon's proxy.sock. The container
//           can connect to it but can neither replace it nor plant anything beside it. Also the
//           fence's trust in the local CA: egress-ca.pem and egress-ca-bundle.pem (0644, written
//           by descriptor before the container starts; core/egress_env.hpp).
//   ui/     the container user's, 0700, mounted read-write at /run/tokfence-ui: the container's
//           relay creates ui.sock here. The host treats everything in it as hostile: it is only
//           ever reached through a descriptor of ui/ (openat O_NOFOLLOW + fstat type/owner, connect
//           via /proc/self/fd/N: core/file's connect_unix_at, the relay's unixat:), never by path.
// Until this layout, launch-<name>/ itself was the container user's and held both sockets; such
// leftovers are removed by the same no-follow walk.
inline constexpr const char* kSocketDirPrefix = "launch-";
inline constexpr const char* kProxyDirName = "proxy";
inline constexpr const char* kUiDirName = "ui";
inline constexpr int kSocketLayout = 2;  // recorded in launch.json; absent = the old single directory
// What the container itself is made with, recorded in launch.json as "fence_layout": raise it
// whenever a launch's container gets a protection the engine keeps in the container's config (its
// user, binds, mounts), because `launch restart` reuses that config as it is. 1: the container
// user's own account (passwd/group binds) and the workspace's git settings bound read-only. 2: the
// directories on the way to those are bound too, and the relay checks every bind's identity at
// each start (--expect-mount).
inline constexpr int kFenceLayout = 2;

struct Paths {
  fs::path dir;         // TOKFENCE_HOME/openclaw/<name>
  fs::path config;      // .../openclaw.json
  fs::path state_file;  // .../launch.json (what `launch status|stop` read)
  fs::path state_home;  // .../home (the container's $HOME, OpenClaw's state)
  fs::path workspace;   // .../workspace unless --workspace
  fs::path dashboard_page;  // .../dashboard.html: what --open hands the browser (holds the token)
  fs::path passwd, group;   // .../passwd, .../group: bound read-only over the container's (container_accounts)
  std::string sockets_name;  // launch-<name>, inside home.sockets_dir()
  fs::path sockets;     // TOKFENCE_HOME/sockets/launch-<name>
  fs::path proxy_dir, ui_dir;
  fs::path proxy_sock;
  fs::path old_proxy_sock;  // where the old layout had it (still closed at the daemon on stop)
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
  p.dashboard_page = p.dir / "dashboard.html";
  p.passwd = p.dir / "passwd";
  p.group = p.dir / "group";
  p.sockets_name = kSocketDirPrefix + name;
  p.sockets = home.sockets_dir() / p.sockets_name;
  p.proxy_dir = p.sockets / kProxyDirName;
  p.ui_dir = p.sockets / kUiDirName;
  p.proxy_sock = p.proxy_dir / kProxySocketName;
  p.old_proxy_sock = p.sockets / kProxySocketName;
  p.relay_ready = p.dir / "dashboard-relay.ready";
  p.relay_log = p.dir / "dashboard-relay.log";
  return p;
}

// Opens the container-writable ui/ directory of a launch through descriptors only: sockets/ and
// launch-<name>/ must be ours, ui/ the container user's (`container_uid`); no symlink anywhere.
Result<file::Fd> open_ui_dir(const Home& home, const Paths& paths, uid_t container_uid) {
  auto sockets = file::open_dir_nofollow(home.sockets_dir());
  if (!sockets) return std::unexpected(sockets.error());
  auto launch_dir = file::open_dir_at(sockets->get(), paths.sockets_name);
  if (!launch_dir) return std::unexpected(launch_dir.error());
  return file::open_dir_at(launch_dir->get(), kUiDirName, file::Create::no, container_uid);
}

// True when ui.sock in `ui_dir` is a socket of the container user: looked at without following a
// symlink (fstatat AT_SYMLINK_NOFOLLOW), so a planted link is simply "not there yet".
bool ui_socket_present(int ui_dir, uid_t container_uid) {
  struct stat st {};
  return ::fstatat(ui_dir, kUiSocketName, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
         st.st_uid == container_uid;
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

// The session's decoy files (recorded in launch.json) leave the state home with the launch. The
// state home is the container's: reached through descriptors, each directory checked to be the
// container user's, names unlinked (a link is removed, never followed); directories on the way
// are removed only if empty.
void remove_decoy_files(int launch_dir, const Paths& paths, const json& state) {
  const json files = state.value("decoy_files", json::array());
  if (!files.is_array() || files.empty()) return;
  const uid_t owner = state.value("container_uid", static_cast<unsigned>(::geteuid()));
  auto home = file::open_dir_at(launch_dir, paths.state_home.filename().string(), file::Create::no, owner);
  if (!home) return;
  std::set<std::string, std::greater<>> dirs;  // deepest first
  for (const auto& f : files) {
    if (!f.is_string()) continue;
    const fs::path rel = f.get<std::string>();
    bool plain = !rel.empty() && rel.is_relative();
    for (const auto& part : rel) plain = plain && file::is_single_component(part.string());
    if (!plain) continue;
    if (!rel.has_parent_path()) {
      ::unlinkat(home->get(), rel.c_str(), 0);
      continue;
    }
    auto parent = file::open_dir_at(home->get(), rel.parent_path().string(), file::Create::no, owner);
    if (parent) ::unlinkat(parent->get(), rel.filename().c_str(), 0);
    for (fs::path d = rel.parent_path(); !d.empty(); d = d.parent_path()) dirs.insert(d.string());
  }
  for (const auto& d : dirs) {
    const fs::path rel = d;
    if (!rel.has_parent_path()) {
      ::unlinkat(home->get(), rel.c_str(), AT_REMOVEDIR);
      continue;
    }
    auto parent = file::open_dir_at(home->get(), rel.parent_path().string(), file::Create::no, owner);
    if (parent) ::unlinkat(parent->get(), rel.filename().c_str(), AT_REMOVEDIR);
  }
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
  close_proxy_socket(home, paths.old_proxy_sock);
  // ui/ (and all of an old-layout directory) was the container's to write: removed by a walk that
  // never follows a symlink, through descriptors (core/file), never by fs::remove_all on a path.
  if (auto sockets = file::open_dir_nofollow(home.sockets_dir())) {
    if (auto removed = file::remove_tree_at(sockets->get(), paths.sockets_name); !removed)
      std::cerr << "launch: cannot remove the socket directory: " << removed.error().message << "\n";
  }
  if (auto dir = file::open_dir_nofollow(paths.dir)) {
    remove_decoy_files(dir->get(), paths, state);
    for (const auto& path : {paths.config, paths.state_file, paths.relay_ready, paths.relay_log, paths.dashboard_page,
                             paths.passwd, paths.group})
      ::unlinkat(dir->get(), path.filename().c_str(), 0);
  }
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
    // The label names host directories (openclaw/<name>, sockets/launch-<name>): anything that is
    // not a valid launch name (e.g. "../..") is never turned into a path.
    if (auto valid = check_launch_name(name); !valid) {
      std::cerr << "launch: ignoring container " << (c.names.empty() ? short_id(c.id) : c.names.front())
                << ": its label " << kLaunchLabel << " is not a launch name\n";
      continue;
    }
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
    if (!dir.starts_with(kSocketDirPrefix)) continue;
    std::string name = dir.substr(std::string_view(kSocketDirPrefix).size());
    if (!check_launch_name(name)) continue;  // not one of ours: never turned into paths
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

// The first run: no key in the vault. On a terminal, asks for a provider and its key (read without
// echo, like `vault add <provider> -`) and stores it; the vault is written only once both were
// entered, so Ctrl-C at either prompt leaves it as it was. Without a terminal, names the command.
void ask_for_first_key(vault::Vault& vault, const Config& config) {
  std::vector<std::string> usable;
  for (const auto& spec : config.providers())
    if (openclaw_api(spec)) usable.push_back(spec.name);
  usable = provider_priority(usable);
  // The suggestion: openai (the most common key), else the first OpenClaw can use.
  std::string fallback = usable.empty() || std::find(usable.begin(), usable.end(), "openai") != usable.end() ? "openai" : usable.front();
  if (!::isatty(STDIN_FILENO))
    throw UserError("launch: no provider has a key: run 'tokfence vault add " + fallback + " -' (then paste the key), then launch again");
  std::string names;
  for (const auto& n : usable) names += (names.empty() ? "" : ", ") + n;
  std::cerr << "launch: the vault has no provider key yet. OpenClaw can use: " << names << "\n";
  std::string provider;
  for (int attempt = 0; attempt < 5 && provider.empty(); ++attempt) {
    // A Ctrl-C already recorded by the launch's handler, or one while the prompt waits, ends it.
    auto answer = vault::read_terminal_line(STDIN_FILENO, STDERR_FILENO, "launch: provider [" + fallback + "]: ",
                                            vault::Echo::on, 256, &g_signal);
    check_interrupted();
    if (!answer) throw UserError("launch: no provider entered: " + answer.error().message + ": nothing was changed");
    std::string line(answer->reveal());
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.erase(0, 1);
    if (line.empty()) line = fallback;
    if (std::find(usable.begin(), usable.end(), line) != usable.end()) provider = line;
    else std::cerr << "launch: '" << line << "' is not one of: " << names << "\n";
  }
  if (provider.empty()) throw UserError("launch: no usable provider entered: nothing was changed");
  auto raw = vault::read_terminal_line(STDIN_FILENO, STDERR_FILENO, "launch: key for " + provider + " (input hidden): ",
                                       vault::Echo::off, 16 * 1024, &g_signal);
  check_interrupted();
  if (!raw) throw UserError("launch: key for '" + provider + "': " + raw.error().message + ": nothing was changed");
  SecretString key = vault::trim_secret(*raw);
  if (auto ok = vault::check_key(key.reveal()); !ok)
    throw UserError("launch: key for '" + provider + "': " + ok.error().message + ": nothing was changed");
  value_or_throw(vault.put(provider, key, vault::Overwrite::no, {}));
  std::cerr << "launch: stored the key for " << provider << " in the vault (" << vault.backend_name()
            << "); 'tokfence vault list' shows it\n";
}

std::vector<OpenClawProvider> providers_with_keys(const Home& home, const Config& config,
                                                  const std::optional<std::string>& model_override,
                                                  const std::vector<std::string>& bound_secrets,
                                                  const std::string& telegram_secret) {
  auto vault = value_or_throw(vault::open_vault(config, home, vault::default_passphrase_source()));
  // --secret and --telegram-secret name secrets bound to hosts, or nothing starts.
  if (!bound_secrets.empty()) {
    const auto entries = value_or_throw(vault->list());
    for (const auto& name : bound_secrets)
      if (auto ok = vault::check_bound_secret(entries, name); !ok)
        throw UserError("launch: secret '" + name + "': " + ok.error().message + ": nothing was started");
    // The bot token goes in the URL path (/bot<token>/), where the proxy writes only a secret
    // bound for the path: say so here rather than have every Telegram call refused.
    for (const auto& e : entries) {
      if (telegram_secret.empty() || e.provider != telegram_secret || e.in_path) continue;
      std::string hosts;
      for (const auto& h : e.hosts) hosts += " --host " + h;
      throw UserError("launch: --telegram-secret " + telegram_secret +
                      ": Telegram reads the bot token in the URL path, but the secret is bound for credential fields "
                      "only: bind it for the path with 'tokfence vault rotate " + telegram_secret + " -" + hosts +
                      " --in path': nothing was started");
    }
  }
  // Provider keys only: a secret bound to hosts (vault.hpp) is never a provider's key.
  auto provider_keys = [&] {
    auto all = value_or_throw(vault->list());
    std::erase_if(all, [](const vault::KeyInfo& k) { return !k.hosts.empty(); });
    return all;
  };
  auto keys = provider_keys();
  if (keys.empty()) {
    ask_for_first_key(*vault, config);
    keys = provider_keys();
  }
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
// The host side of the dashboard: tokfence-relay on 127.0.0.1:<port> and [::1]:<port> -> ui.sock

struct DashboardRelay {
  int pid = 0;
  int port = 0;
};

// Starts the relay (as our child, or detached into its own session). The container-writable ui/
// directory is handed over as an inherited descriptor, `unixat:N/ui.sock@UID`: the relay opens
// ui.sock in it without following links and checks it is the container user's socket, for every
// connection (sandbox/relay_main.cpp). A by-path connect would follow a symlink the container
// planted at ui.sock to any host socket (Docker's, our control socket). The descriptor also keeps
// a deep TOKFENCE_HOME clear of the 108-byte limit of Unix socket paths.
DashboardRelay start_dashboard_relay(const fs::path& relay, const Paths& paths, int ui_dir, uid_t container_uid, int port,
                                     bool detach) {
  std::error_code ec;
  fs::remove(paths.relay_ready, ec);
  // CLOEXEC here (other children must not get it); cleared in the relay's child only.
  int dir_fd = ::fcntl(ui_dir, F_DUPFD_CLOEXEC, 3);
  if (dir_fd < 0) throw UserError(std::string("launch: cannot pass the ui directory to the relay: ") + std::strerror(errno));
  std::string spec = "tcp:127.0.0.1:" + std::to_string(port) + "=unixat:" + std::to_string(dir_fd) + "/" + kUiSocketName +
                     "@" + std::to_string(container_uid);
  // Only our own uid, and only requests for 127.0.0.1:<port> / localhost:<port>: the gateway
  // behind ui.sock sees every client as loopback, so other local users and DNS-rebinding pages are
  // stopped here (review 12b F4). The UI is the container's page in the user's browser: its
  // answers carry a policy that keeps its loads on this origin (--page-policy).
  std::vector<std::string> args = {relay.string(), "--forward",      spec, "--own-uid-only", "--check-host", "--page-policy",
                                   "--ready-file",  paths.relay_ready.string()};
  int log_fd = ::open(paths.relay_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
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
    ::fcntl(dir_fd, F_SETFD, 0);
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
      // Another program on [::1]:<port> (the relay's own line names it, core/loopback_listen.hpp).
      if (last.find("[::1]") != std::string::npos && last.find("in use") != std::string::npos)
        throw UserError("launch: dashboard port " + std::to_string(port) + ": " +
                        last.substr(std::min(last.find("[::1]"), last.size())) +
                        ": stop it, or pass --port N (or --port 0 for any free port)");
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

// True when an HTTP request through ui.sock in `ui_dir` gets an HTTP response: the relay is up and
// the gateway behind it answers. Connected the safe way (core/file connect_unix_at: no symlink
// followed, a socket of the container user only), since the container can write `ui_dir`.
bool gateway_answers(int ui_dir, uid_t container_uid) {
  auto connected = file::connect_unix_at(ui_dir, kUiSocketName, container_uid);
  if (!connected) return false;
  int fd = connected->get();
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const char request[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof request - 1)) return false;
  char buffer[5] = {};
  std::size_t got = 0;
  while (got < sizeof buffer) {
    ssize_t n = ::recv(fd, buffer + got, sizeof buffer - got, 0);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got == sizeof buffer && std::string_view(buffer, 5) == "HTTP/";
}

// ---------------------------------------------------------------------------------------------
// A user's workspace that is a git repository

// `launch --workspace DIR` gives the container DIR read-write, but some of DIR is code the HOST
// runs: .git/hooks/* (on commit, checkout, ...) and .git/config (core.fsmonitor, core.pager,
// aliases: on plain `git status`). So .git/hooks and .git/config are bound read-only over
// themselves, and .git itself read-write over itself: a mount point cannot be renamed or removed
// (EBUSY), so the container cannot move .git away and put a writable one in its place. Everything
// is looked at through descriptors without following links; a symlinked .git, .git/hooks or
// .git/config is refused (it may point anywhere, and Docker would follow it). A missing .git/hooks
// is created empty (as `git init` does), so the container cannot create one. A .git *file*
// (worktree, submodule) is bound read-only, so it cannot be pointed elsewhere. The same binds
// cover config.worktree and the git directories of submodules and worktrees
// (sandbox/git_settings.hpp). Not covered, see docs/LAUNCH.md: every other file of DIR; what the
// agent leaves for git (a repository of its own, a commondir) is named when the launch ends.
std::vector<ContainerSpecInput::WorkspaceBind> guard_workspace_git(const fs::path& workspace) {
  auto refuse = [&](const std::string& what, const std::string& why) -> UserError {
    return UserError("launch: --workspace: " + (workspace / what).string() + ": " + why +
                     ": refusing to mount the workspace (remove it, or check where it points)");
  };
  int ws = ::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (ws < 0) throw UserError("launch: --workspace: cannot open " + workspace.string() + ": " + std::strerror(errno));
  file::Fd ws_fd(ws);
  struct stat st {};
  if (::fstatat(ws, ".git", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    throw refuse(".git", std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) throw refuse(".git", "is a symlink");
  if (S_ISREG(st.st_mode)) return {{".git", true}};
  if (!S_ISDIR(st.st_mode)) throw refuse(".git", "is neither a directory nor a file");
  int git = ::openat(ws, ".git", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (git < 0) throw refuse(".git", std::strerror(errno));
  file::Fd git_fd(git);

  if (::fstatat(git, "hooks", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT || ::mkdirat(git, "hooks", 0755) != 0 || ::fstatat(git, "hooks", &st, AT_SYMLINK_NOFOLLOW) != 0)
      throw refuse(".git/hooks", std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) throw refuse(".git/hooks", "is a symlink");
  if (!S_ISDIR(st.st_mode)) throw refuse(".git/hooks", "is not a directory");

  if (::fstatat(git, "config", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) throw refuse(".git/config", std::strerror(errno));
    int created = ::openat(git, "config", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (created < 0 || ::fstat(created, &st) != 0) throw refuse(".git/config", std::strerror(errno));
    ::close(created);
  }
  if (S_ISLNK(st.st_mode)) throw refuse(".git/config", "is a symlink");
  if (!S_ISREG(st.st_mode)) throw refuse(".git/config", "is not a regular file");
  std::vector<ContainerSpecInput::WorkspaceBind> binds = {{".git", false}, {".git/hooks", true}, {".git/config", true}};
  // The same for config.worktree and the git directories of submodules and worktrees.
  auto entries = sandbox::git_settings_entries(git);
  if (!entries) throw refuse(".git", entries.error().message);
  // The directories on the way to them are mount points too (git_settings_parents): the engine
  // resolves every bind's source by host path again at each start, restarts included, and would
  // follow links planted in a directory the container renamed aside (review 15b L1).
  for (const auto& dir : sandbox::git_settings_parents(*entries)) binds.push_back({".git/" + dir, false});
  for (const auto& entry : *entries)
    if (entry.path != "hooks" && entry.path != "config") binds.push_back({".git/" + entry.path, true});
  return binds;
}

// What each bind of `spec` is now (device, inode), for the relay's check at every start of the
// container (ContainerSpecInput::expected_mounts). TOKFENCE_HOME's sources are ours and looked up
// by path; the workspace must still be what `workspace_checked` says; the binds below it are
// reached one component at a time without following a link, since another agent writing the
// workspace may have swapped a component.
std::vector<ContainerSpecInput::MountIdentity> mount_identities(const ContainerSpecInput& spec,
                                                                const std::optional<file::FenceDir>& workspace_checked) {
  std::vector<ContainerSpecInput::MountIdentity> out;
  auto record_fd = [&](int fd, const struct stat& st, std::string in_container) {
    struct statfs fs {};
    const std::uint64_t fsid = ::fstatfs(fd, &fs) == 0 ? fsid_number(fs) : 0;
    out.push_back({std::move(in_container), static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino), fsid});
  };
  auto by_path = [&](const fs::path& host, std::string in_container) {
    file::Fd fd(::open(host.c_str(), O_PATH | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) throw UserError("launch: cannot stat " + host.string() + ": " + std::strerror(errno));
    record_fd(fd.get(), st, std::move(in_container));
  };
  by_path(spec.proxy_socket_dir, kContainerSocketDir);
  by_path(spec.ui_socket_dir, kContainerUiDir);
  by_path(spec.config_file, kContainerConfig);
  by_path(spec.state_home, kContainerHome);
  if (!spec.passwd_file.empty()) by_path(spec.passwd_file, "/etc/passwd");
  if (!spec.group_file.empty()) by_path(spec.group_file, "/etc/group");
  file::Fd ws(::open(spec.workspace.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  struct stat st {};
  if (!ws || ::fstat(ws.get(), &st) != 0)
    throw UserError("launch: cannot open " + spec.workspace.string() + ": " + std::strerror(errno));
  // --workspace: what it was when it was checked, or the launch stops here (review 15e E1: a swap
  // for a link during the set-up would otherwise be recorded, and so pass the relay's check).
  if (workspace_checked && (st.st_dev != workspace_checked->dev || st.st_ino != workspace_checked->ino))
    throw UserError("launch: --workspace: " + spec.workspace.string() +
                    ": changed while the launch was being prepared (replaced by a link?): refusing to mount it");
  record_fd(ws.get(), st, kContainerWorkspace);
  for (const auto& bind : spec.workspace_binds) {
    auto at = file::open_path_nofollow(ws.get(), bind.relative);
    if (!at || ::fstat(at->get(), &st) != 0)
      throw UserError("launch: --workspace: " + (spec.workspace / bind.relative).string() +
                      ": changed while the launch was being prepared: refusing to mount it");
    record_fd(at->get(), st, std::string(kContainerWorkspace) + "/" + bind.relative);
  }
  return out;
}

// After the container is gone: what the agent left in the user's workspace for git to run
// unfenced (a repository of its own with a gitlink in the project's index, a commondir pointing
// git elsewhere: sandbox/git_settings.hpp). A warning, since git itself cannot be stopped from
// reading them.
// The inventory in launch.json, so `launch stop` of a detached launch judges the workspace's git
// directories as the end of a foreground one does: [[path, dev, ino], ...]; absent (a launch of an
// earlier version, or one without --workspace): not taken.
json inventory_json(const sandbox::GitInventory& inventory) {
  if (!inventory.taken) return nullptr;
  json out = json::array();
  for (const auto& [path, dev, ino] : inventory.git_dirs)
    out.push_back(json::array({path, static_cast<std::uint64_t>(dev), static_cast<std::uint64_t>(ino)}));
  return out;
}

sandbox::GitInventory inventory_from_json(const json& stored) {
  sandbox::GitInventory inventory;
  if (!stored.is_array()) return inventory;
  for (const auto& e : stored) {
    if (!e.is_array() || e.size() != 3 || !e[0].is_string() || !e[1].is_number_unsigned() || !e[2].is_number_unsigned())
      return {};  // damaged: judge by entries only, as without one
    inventory.git_dirs.insert({e[0].get<std::string>(), static_cast<dev_t>(e[1].get<std::uint64_t>()),
                               static_cast<ino_t>(e[2].get<std::uint64_t>())});
  }
  inventory.taken = true;
  return inventory;
}

void warn_git_left_behind(const fs::path& workspace, const timespec& since, const sandbox::GitInventory& before) {
  if (workspace.empty()) return;
  std::cerr << sandbox::git_audit_warning(sandbox::audit_git_changes(workspace.string(), since, before),
                                          workspace.string(), "launch");
}

// ---------------------------------------------------------------------------------------------
// The container's ids when we are root (docs/LAUNCH.md "Which user the container runs as")

// The account name of `uid`, if the host has one.
std::optional<std::string> account_name(unsigned uid) {
  passwd pw{}, *found = nullptr;
  std::vector<char> buffer(16384);
  if (::getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) == 0 && found) return std::string(found->pw_name);
  return std::nullopt;
}

// 0 = no such entry; 1 = there is one; -1 = the lookup failed (NSS error, buffer...).
int id_entry(unsigned id, bool group) {
  std::vector<char> buffer(1 << 16);
  int rc = 0;
  bool found = false;
  if (group) {
    struct group gr{}, *out = nullptr;
    rc = ::getgrgid_r(id, &gr, buffer.data(), buffer.size(), &out);
    found = out != nullptr;
  } else {
    passwd pw{}, *out = nullptr;
    rc = ::getpwuid_r(id, &pw, buffer.data(), buffer.size(), &out);
    found = out != nullptr;
  }
  if (found) return 1;
  // getpwuid_r(3): ENOENT, ESRCH, EBADF and EPERM all mean "not found" with some NSS modules.
  return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM ? 0 : -1;
}

// /etc/subuid and /etc/subgid, both: a missing file has no ranges; one we cannot read stops the
// launch (fail closed: we would not know which ids rootless containers use).
std::vector<std::pair<std::uint64_t, std::uint64_t>> host_subordinate_ranges() {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (const char* path : {"/etc/subuid", "/etc/subgid"}) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) continue;
    if (fd < 0) throw UserError(std::string("launch: cannot read ") + path + ": " + std::strerror(errno) +
                                ": cannot pick a container uid no one uses: pass --user UID:GID");
    std::string text;
    char chunk[4096];
    for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0 && text.size() < (16u << 20);) text.append(chunk, n);
    ::close(fd);
    auto ranges = subordinate_ranges(text);
    out.insert(out.end(), ranges.begin(), ranges.end());
  }
  return out;
}

// The uids (real, effective, saved set, file system: /proc/<pid>/status) of the processes in our
// own PID namespace. An id a process runs as is in use even when no account names it: a systemd
// DynamicUser= service's (nss-systemd knows it only while the service runs), a daemon's that
// setuid() to a bare number. Processes in other PID namespaces (the containers of launches,
// which share the id on purpose: see docs/LAUNCH.md) are not counted, so the choice stays the
// same from one launch to the next. Bounded: at most kMaxScanned processes, one read each.
std::set<unsigned> process_uids() {
  constexpr int kMaxScanned = 1 << 17;
  std::set<unsigned> out;
  auto pid_namespace = [](const std::string& proc_dir) {
    char link[64];
    const ssize_t n = ::readlink((proc_dir + "/ns/pid").c_str(), link, sizeof link);
    return n > 0 ? std::string(link, static_cast<std::size_t>(n)) : std::string();
  };
  const std::string own = pid_namespace("/proc/self");
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  int scanned = 0;
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (++scanned > kMaxScanned) break;
    const std::string dir = std::string("/proc/") + e->d_name;
    if (!own.empty() && pid_namespace(dir) != own) continue;
    const int fd = ::open((dir + "/status").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char text[4096];  // "Uid:" is the ninth line or so
    const ssize_t n = ::read(fd, text, sizeof text);
    ::close(fd);
    if (n > 0)
      for (unsigned uid : status_uids(std::string_view(text, static_cast<std::size_t>(n)))) out.insert(uid);
  }
  ::closedir(proc);
  return out;
}

// As root with no --user: the first id of kDedicatedIdPreferred..kDedicatedIdLast, then of
// kDedicatedIdFirst.. (config.hpp: why that range, why that order) that is no host user's and no
// host group's id, in no subordinate range (the rootless containers of other users run as those)
// and no running process's uid. Not 1000:1000, which earlier versions used: that is the first
// login account on most machines, and a host user sharing the container's uid can read the
// session token and spend the vault keys through /proc/<pid>/root (review 12b F7).
// `kept_home`: the launch's state home, kept between launches; when its owner is an id of the
// range that is still free, that id is taken again, so the home keeps working (homes of earlier
// versions belong to 65000, and the preferred id may be a process's at the next launch).
unsigned dedicated_container_id(const fs::path& kept_home) {
  const auto ranges = host_subordinate_ranges();
  const auto running = process_uids();
  bool lookup_failed = false;
  auto taken = [&](unsigned id) {
    for (const auto& [first, end] : ranges)
      if (id >= first && id < end) return true;
    if (running.count(id)) return true;
    for (bool group : {false, true}) {
      int entry = id_entry(id, group);
      if (entry < 0) lookup_failed = true;
      if (entry != 0) return true;
    }
    return false;
  };
  struct stat home {};
  if (::lstat(kept_home.c_str(), &home) == 0 && S_ISDIR(home.st_mode) && home.st_uid >= kDedicatedIdFirst &&
      home.st_uid <= kDedicatedIdLast && !taken(home.st_uid))
    return home.st_uid;
  if (auto id = first_free_dedicated_id(taken)) return *id;
  throw UserError("launch: no free container uid: every id in " + std::to_string(kDedicatedIdFirst) + ".." +
                  std::to_string(kDedicatedIdLast) +
                  " is a host user's or group's or a running process's, or in /etc/subuid or /etc/subgid" +
                  (lookup_failed ? std::string(" (or its user/group lookup failed)") : std::string()) +
                  ": pass --user UID:GID with ids no host account or other container uses");
}

// An existing state home or workspace (kept between launches) must be ours or already the
// container user's. One owned by another uid is typically 1000's, from a version that ran
// containers as 1000:1000: refused with what to do, never chowned, since the agent could write
// that tree (a recursive chown by name would follow its links).
void check_kept_dir_owner(const fs::path& dir, const std::pair<unsigned, unsigned>& ids) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || st.st_uid == ::geteuid() || st.st_uid == ids.first) return;
  const std::string owner = std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
  auto account = account_name(st.st_uid);
  throw UserError("launch: " + dir.string() + " belongs to uid " + std::to_string(st.st_uid) +
                  (account ? " (the host account '" + *account + "')" : std::string()) + ", not to the container user " +
                  std::to_string(ids.first) + ":" + std::to_string(ids.second) +
                  " (earlier versions ran the container as 1000:1000 when tokfence ran as root). Either move it aside (mv " +
                  dir.string() + " " + dir.string() + ".uid" + std::to_string(st.st_uid) +
                  ") to start with a fresh one, or pass --user " + owner +
                  " to keep using it as that uid, knowing that this uid then shares the agent's processes and session token. "
                  "tokfence does not chown a directory the agent could write");
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
  Result<void> pull_image();
  bool image_is_openclaw() const;
  void validate_config();
  void check_name();
  std::pair<unsigned, unsigned> container_user_ids();
  std::vector<std::string> command_for(const ImageInfo& image) const;
  void print_started();
  void prepare_socket_dirs();
  void write_container_accounts(ContainerSpecInput& spec);
  void open_browser();
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
  // The bound secrets this launch is given: --secret VAR=NAME and --telegram-secret NAME.
  std::vector<std::string> granted_secrets() const {
    std::vector<std::string> names;
    for (const auto& [var, name] : options_.secrets) names.push_back(name);
    if (!options_.telegram.secret.empty()) names.push_back(options_.telegram.secret);
    return names;
  }
  // The specs of providers_ (the session's scope: session_request).
  std::vector<ProviderSpec> provider_specs() const {
    std::vector<ProviderSpec> out;
    for (const auto& p : providers_) {
      auto spec = config_.provider(p.name);
      if (!spec) throw UserError("launch: provider '" + p.name + "' is not configured: nothing was started");
      out.push_back(std::move(*spec));
    }
    return out;
  }
  RenderedConfig rendered_;
  std::string token_;
  AgentSession session_;  // the token is OpenClaw's apiKey; the socket's close ends the session
  std::optional<proxy::DaemonInfo> daemon_;
  DashboardRelay dashboard_;
  std::string dashboard_url_;
  std::string container_id_;
  bool created_host_resources_ = false;
  bool keep_ = false;  // detached and started: leave everything in place
  file::Fd ui_dir_;    // sockets/launch-<name>/ui, the container-writable one: only used through this
  uid_t container_uid_ = 0;
  gid_t container_gid_ = 0;
  bool keep_host_ids_ = false;  // rootless Podman: UsernsMode keep-id (container_user_ids)
  std::vector<ContainerSpecInput::WorkspaceBind> workspace_binds_;
  fs::path workspace_;  // what /workspace is: --workspace as checked, or the launch's own
  std::optional<file::FenceDir> workspace_checked_;  // --workspace: its identity when it was checked
  timespec started_{};  // sandbox::git_audit_clock() at the start: what changed after it is the agent's
  sandbox::GitInventory git_before_;  // --workspace's git directories before the container started
};

std::pair<unsigned, unsigned> Launch::container_user_ids() {
  if (options_.user.empty()) {
    // As root, an id no host account has (dedicated_container_id); otherwise the caller's own ids,
    // so files in the state home and workspace stay the caller's.
    if (::geteuid() == 0) {
      const unsigned id = dedicated_container_id(paths_.state_home);
      user_ = std::to_string(id) + ":" + std::to_string(id);
    } else {
      user_ = std::to_string(::geteuid()) + ":" + std::to_string(::getegid());
    }
  } else {
    user_ = options_.user;
  }
  auto ids = numeric_user(user_);
  if (!ids) throw UserError("launch: --user: expected UID[:GID] (numeric): " + user_);
  if (ids->first == 0) throw UserError("launch: --user: refusing to run the container as root: " + user_);
  if (!options_.user.empty() && ::geteuid() == 0)
    if (auto account = account_name(ids->first))
      std::cerr << "launch: warning: --user " << user_ << ": uid " << ids->first << " is the host account '" << *account
                << "': that account can read this launch's session token and act as the agent (/proc/<pid>/root); "
                   "leave out --user for an id no account has\n";
  switch (engine_->id_mapping()) {
    case ContainerEngine::IdMapping::same: break;
    case ContainerEngine::IdMapping::podman_rootless:
      // Our uid and gid are the container user's too (keep-id), so the socket directory the
      // container writes and the files in the state home and workspace stay ours.
      keep_host_ids_ = true;
      break;
    case ContainerEngine::IdMapping::docker_rootless:
      throw UserError("launch: rootless Docker is not supported yet (" + engine_->engine_description() +
                      "): its container users map to subordinate uids that cannot use the launch's socket directory; "
                      "use rootless Podman (DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock) or a rootful engine");
  }
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
  if (found) {
    image_ = *found;
    return;
  }
  // tokfence's own tag is built, never pulled: the same name in a registry could be anyone's image.
  std::string why;
  if (is_local_build_tag(options_.image)) {
    why = "tokfence builds it from npm; it is never pulled";
  } else if (!options_.pull) {
    if (!options_.build_image)
      throw UserError("launch: image " + options_.image + " not present and --no-pull given: pull it or build it first");
    why = "--no-pull given";
  } else if (auto pulled = pull_image(); !pulled) {
    why = "cannot be pulled: " + pulled.error().message;
  } else {
    found = value_or_throw(engine_->inspect_image(options_.image));
    if (!found) throw UserError("launch: image " + options_.image + " still missing after the pull");
    image_ = *found;
    return;
  }
  // The pinned default is tokfence's own image: built when absent, so `scripts/tokfence launch`
  // on a fresh machine ends in a running OpenClaw. Anything else is built in its place only when
  // asked (--build-image).
  const bool pinned_default = options_.image == default_image_tag();
  if (!options_.build_image && !pinned_default) {
    if (is_local_build_tag(options_.image))
      throw UserError("launch: image " + options_.image + " is not built yet (" + why +
                      "): run 'tokfence launch --build-image' to build it now (debootstrap + npm, a few minutes, cached), "
                      "or 'tokfence launch image build' first");
    throw UserError("launch: image " + options_.image + " is not present (" + why +
                    "): load it into the engine, or leave out --image and pass --build-image to build the pinned OpenClaw " +
                    kOpenClawVersion + " from npm");
  }
  std::cerr << "launch: image " << options_.image << " is not present (" << why << "): building it from npm\n";
  ImageBuildOptions build;
  build.tag = options_.image;
  build.cache = options_.image_cache;
  if (is_local_build_tag(options_.image)) build.openclaw_version = options_.image.substr(options_.image.rfind(':') + 1);
  build_openclaw_image(*engine_, build, std::cerr);
  check_interrupted();
  found = value_or_throw(engine_->inspect_image(options_.image));
  if (!found) throw UserError("launch: image " + options_.image + " still missing after the build");
  image_ = *found;
}

// Pulls options_.image with a progress bar (one line every 2 s when stderr is not a terminal).
Result<void> Launch::pull_image() {
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
  check_interrupted();
  return pulled;
}

bool Launch::image_is_openclaw() const {
  if (image_.labels.count("org.tokfence.openclaw-version")) return true;
  auto command = command_for(image_);
  return !command.empty() && fs::path(command.front()).filename() == "openclaw";
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// OpenClaw's validation is strict (an unknown key stops it) and its schema changes between
// releases: before the gateway starts, `openclaw config validate` runs in the chosen image on the
// rendered config, in a one-shot container with no network, and its verdict is reported verbatim.
// A config already accepted by the same image (same image id, same text but for the per-launch
// gateway token) is not checked again: TOKFENCE_HOME/openclaw/validated lists those.
void Launch::validate_config() {
  std::string masked = rendered_.text;
  for (std::size_t at; !token_.empty() && (at = masked.find(token_)) != std::string::npos;)
    masked.replace(at, token_.size(), "{{gateway_token}}");
  // The session token differs per launch too (and must not reach the record, even hashed with
  // the rest).
  for (std::size_t at; !session_.token.empty() && (at = masked.find(session_.token)) != std::string::npos;)
    masked.replace(at, session_.token.size(), "{{api_key}}");
  std::string key = image_.id + " " + sha256_hex(masked);
  fs::path record = home_.openclaw_dir() / "validated";
  std::vector<std::string> known;
  {
    std::ifstream in(record);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) known.push_back(line);
  }
  if (std::find(known.begin(), known.end(), key) != known.end()) return;

  if (!options_.json) std::cerr << "launch: checking the config with 'openclaw config validate' in " << options_.image << "\n";
  json spec = {
      {"Image", options_.image},
      {"Cmd", json::array({"openclaw", "--log-level", "error", "config", "validate"})},
      {"User", user_},
      {"Env", json::array({std::string("OPENCLAW_CONFIG_PATH=") + kContainerConfig, "HOME=/tmp", "TMPDIR=/tmp", "NO_COLOR=1"})},
      {"Tty", false},
      {"Labels", {{"org.tokfence.validate", options_.name}, {"org.tokfence.home", home_.root().string()}}},
      {"HostConfig",
       {{"NetworkMode", "none"},
        {"Binds", json::array({paths_.config.string() + ":" + kContainerConfig + ":ro"})},
        {"CapDrop", json::array({"ALL"})},
        {"SecurityOpt", json::array({"no-new-privileges"})},
        {"ReadonlyRootfs", true},
        {"Tmpfs", {{"/tmp", "rw,nosuid,nodev,size=256m"}}},
        {"PidsLimit", options_.pids_limit},
        {"Memory", memory_},
        {"MemorySwap", memory_}}},
  };
  if (keep_host_ids_) spec["HostConfig"]["UsernsMode"] = "keep-id";
  std::string id = value_or_throw(engine_->create_container("", spec));
  struct Remove {
    ContainerEngine& engine;
    std::string id;
    ~Remove() { (void)engine.remove_container(id, true); }
  } remove{*engine_, id};
  value_or_throw(engine_->start_container(id));
  std::optional<ContainerInfo> info;
  for (int i = 0; i < 600; ++i) {  // up to 120 s
    check_interrupted();
    info = value_or_throw(engine_->inspect_container(id));
    if (!info || (!info->running && info->state != "created")) break;
    std::this_thread::sleep_for(200ms);
  }
  if (info && (info->running || info->state == "created"))
    throw UserError("launch: 'openclaw config validate' in " + options_.image + " did not finish within 120 s");
  std::string output;
  (void)engine_->stream_logs(id, false, -1, [&](LogStream, std::string_view bytes) {
    if (output.size() < 64 * 1024) output.append(bytes);
    return true;
  });
  while (!output.empty() && output.back() == '\n') output.pop_back();
  int code = info ? info->exit_code : -1;
  if (code != 0)
    throw UserError("launch: OpenClaw in " + options_.image + " rejects the config tokfence rendered ('openclaw config validate' exited " +
                    std::to_string(code) + "; a template from TOKFENCE_TEMPLATES_DIR or an OpenClaw other than " +
                    kOpenClawVersion + "?):\n" + output);
  known.push_back(key);
  if (known.size() > 50) known.erase(known.begin(), known.end() - 50);
  std::string text;
  for (const auto& line : known) text += line + "\n";
  write_private_file(record, text, std::nullopt);
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
  started_ = sandbox::git_audit_clock();
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
  providers_ = providers_with_keys(home_, config_, options_.model, granted_secrets(), options_.telegram.secret);
  if (options_.model) {
    std::string provider = options_.model->substr(0, options_.model->find('/'));
    bool keyed = std::any_of(providers_.begin(), providers_.end(), [&](const auto& p) { return p.name == provider; });
    if (!keyed) throw UserError("launch: --model: provider '" + provider + "' has no key: run 'tokfence vault add " + provider + " -'");
  }
  fs::path relay = find_relay();
  auto ids = container_user_ids();
  container_uid_ = ids.first;
  container_gid_ = ids.second;
  if (owner_) {
    // Before anything is created: a kept directory of another uid stops the launch here.
    check_kept_dir_owner(paths_.state_home, ids);
    if (!options_.workspace) check_kept_dir_owner(paths_.workspace, ids);
  }
  prepare_image();
  if (command_for(image_).empty())
    throw UserError("launch: image " + options_.image + " has no entrypoint or command: pass one after --");
  check_interrupted();
  clean_leftovers(home_, *engine_);
  check_name();

  daemon_ = value_or_throw(proxy::ensure_daemon(home_));
  check_interrupted();

  // From here on, everything created is removed by cleanup() unless the launch is detached.
  if (options_.workspace)
    workspace_checked_ = value_or_throw(file::fence_dir_as_named("launch: --workspace", *options_.workspace, home_.root()));
  fs::path workspace = workspace_checked_ ? workspace_checked_->path : paths_.workspace;
  workspace_ = workspace;
  if (options_.workspace) {
    workspace_binds_ = guard_workspace_git(workspace);
    git_before_ = sandbox::git_inventory(workspace.string());
  }

  created_host_resources_ = true;
  value_or_throw(ensure_private_dir(home_.openclaw_dir()));
  value_or_throw(ensure_private_dir(home_.sockets_dir()));
  value_or_throw(ensure_private_dir(paths_.dir));
  // Marks the launch as in progress, so a concurrent launch's leftover sweep leaves it alone.
  write_private_file(paths_.state_file,
                     json{{"name", options_.name}, {"launcher_pid", ::getpid()}, {"mode", options_.detach ? "detach" : "foreground"}}.dump() + "\n",
                     std::nullopt);
  {
    file::Fd dir = open_own_dir(paths_.dir);
    make_dir_at(dir.get(), paths_.state_home.filename(), 0700, owner_);
    if (!options_.workspace) make_dir_at(dir.get(), paths_.workspace.filename(), 0700, owner_);
  }
  prepare_socket_dirs();

  json open_request = {{"op", "open_proxy_socket"},
                       {"path", paths_.proxy_sock.string()},
                       {"caller", caller_label(options_.name)},
                       {"mode", 0666},
                       {"persist", options_.detach},
                       {"session", session_request(caller_label(options_.name), "launch", provider_specs())}};
  if (!options_.egress.is_null()) open_request["egress"] = options_.egress;
  if (auto granted = granted_secrets(); !granted.empty()) {
    // The grant: only these placeholders are ever substituted for this launch (policy.hpp).
    if (!open_request.contains("egress")) open_request["egress"] = json::object();
    open_request["egress"]["secrets"] = std::move(granted);
  }
  auto opened = proxy::control_call(home_, open_request);
  if (!opened) throw UserError("launch: the daemon could not open the launch's proxy socket: " + opened.error().message);
  // Fail closed: without a session OpenClaw would hold no key the socket accepts, and no decoy.
  // (cleanup() closes the socket again.)
  auto session = session_from_reply(*opened);
  if (!session) throw UserError("launch: the daemon opened no usable " + session.error().message + ": nothing was started");
  session_ = std::move(*session);

  token_ = random_token();
  RenderRequest request{providers_, options_.model, token_, kGatewayPort, kContainerWorkspace};
  request.api_key = session_.token;
  request.telegram = options_.telegram;
  rendered_ = value_or_throw(render_openclaw_config(value_or_throw(read_template("openclaw/openclaw.json.tmpl")), request));
  write_private_file(paths_.config, rendered_.text, owner_);
  check_interrupted();
  if (options_.validate_config && image_is_openclaw()) validate_config();

  if (options_.dashboard) {
    dashboard_ = start_dashboard_relay(relay, paths_, ui_dir_.get(), container_uid_, options_.port, options_.detach);
    dashboard_url_ = "http://127.0.0.1:" + std::to_string(dashboard_.port) + "/#token=" + token_;
  }

  ContainerSpecInput spec{options_.name,    options_.image,     command_for(image_),
                          user_,            memory_,            options_.pids_limit,
                          options_.detach,  static_cast<int>(::getpid()), home_.root().string(),
                          relay,            paths_.proxy_dir,   paths_.ui_dir,
                          paths_.config,    paths_.state_home,  workspace,
                          workspace_binds_};
  spec.keep_host_ids = keep_host_ids_;
  write_container_accounts(spec);
  // A decoy variable the user named in --secret (GH_TOKEN...) gives way to the placeholder.
  for (const auto& [var, value] : session_.decoys.env)
    if (std::none_of(options_.secrets.begin(), options_.secrets.end(), [&](const auto& s) { return s.first == var; }))
      spec.decoy_env.emplace_back(var, value);
  for (const auto& [var, name] : options_.secrets) spec.secret_env.emplace_back(var, secret_placeholder(name));
  spec.expected_mounts = mount_identities(spec, workspace_checked_);
  container_id_ = value_or_throw(engine_->create_container(options_.name, container_spec(spec)));
  std::vector<ArchiveFile> decoy_files;
  json decoy_paths = json::array();
  for (const auto& f : session_.decoys.files) {
    decoy_files.push_back({f.path, f.content});
    decoy_paths.push_back(f.path);
  }

  json state = {{"name", options_.name},
                {"container_id", container_id_},
                {"image", options_.image},
                {"mode", options_.detach ? "detach" : "foreground"},
                {"launcher_pid", ::getpid()},
                {"dashboard_url", dashboard_url_.empty() ? json(nullptr) : json(dashboard_url_)},
                {"dashboard_port", dashboard_.port},
                {"dashboard_relay_pid", dashboard_.pid},
                {"socket_dir", paths_.sockets.string()},
                {"socket_layout", kSocketLayout},
                {"fence_layout", kFenceLayout},
                {"user_workspace", options_.workspace ? workspace.string() : std::string()},
                // What changed in it after this is the agent's (launch stop's git audit).
                {"started_clock", json::array({started_.tv_sec, started_.tv_nsec})},
                {"git_inventory", inventory_json(git_before_)},
                {"container_uid", container_uid_},
                {"config_path", paths_.config.string()},
                {"primary_model", rendered_.primary_model},
                {"egress", options_.egress},
                {"session_id", session_.session_id},
                {"decoy_files", decoy_paths},
                {"providers", json::array()}};
  for (const auto& p : providers_) state["providers"].push_back(p.name);
  write_private_file(paths_.state_file, state.dump(2) + "\n", std::nullopt);
  check_interrupted();

  // The decoy files go into $HOME before the container starts, through the engine (PUT archive):
  // the state home is the container's to write and kept between launches, so the host never
  // writes there by name; the engine replaces a planted link instead of following it. After the
  // state file names them, so a failure here still has them removed.
  if (!decoy_files.empty()) {
    auto archive = value_or_throw(home_archive(decoy_files, ids.first, ids.second));
    if (auto put = engine_->put_archive(container_id_, kContainerHome, archive); !put)
      throw UserError("launch: cannot plant the session's decoy files in " + std::string(kContainerHome) + ": " +
                      put.error().message);
  }
  check_interrupted();

  value_or_throw(engine_->start_container(container_id_));
  if (options_.detach) return wait_detached_start();
  return supervise();
}

// sockets/launch-<name>/ afresh (a leftover, of either layout, is removed by a no-follow walk):
// ours 0700, with proxy/ ours 0755 (read-only in the container; 0755 so the container user can
// reach proxy.sock through the mount) and ui/ handed to the container user, kept open as ui_dir_.
void Launch::prepare_socket_dirs() {
  file::Fd sockets = open_own_dir(home_.sockets_dir());
  if (auto removed = file::remove_tree_at(sockets.get(), paths_.sockets_name); !removed)
    throw UserError("launch: cannot remove an earlier socket directory: " + removed.error().message);
  file::Fd launch_dir = make_dir_at(sockets.get(), paths_.sockets_name, 0700, std::nullopt);
  file::Fd proxy_dir = make_dir_at(launch_dir.get(), kProxyDirName, 0755, std::nullopt);
  ui_dir_ = make_dir_at(launch_dir.get(), kUiDirName, 0700, owner_);
  // The local CA the daemon made at its start (ensure_daemon ran before this): without it the
  // container does not start (fail closed).
  auto ca = read_egress_ca_certificate(home_.root());
  if (!ca) throw UserError("launch: " + ca.error().message + ": nothing was started");
  const file::WriteOptions readable{0644, std::nullopt};
  value_or_throw(file::write_atomic_at(proxy_dir.get(), kFenceCaFile, *ca, readable));
  value_or_throw(file::write_atomic_at(proxy_dir.get(), kFenceCaBundleFile, egress_ca_bundle(*ca), readable));
}

// The container's /etc/passwd and /etc/group, in the launch's own directory (the container cannot
// write it), world-readable because the container user reads them through the read-only bind.
void Launch::write_container_accounts(ContainerSpecInput& spec) {
  auto accounts = container_accounts(container_uid_, container_gid_);
  const file::WriteOptions readable{0644, std::nullopt};
  for (const auto& [path, text] : {std::pair{paths_.passwd, accounts.passwd}, std::pair{paths_.group, accounts.group}})
    if (auto ok = file::write_atomic(path, text, readable); !ok) throw UserError("launch: cannot write: " + ok.error().message);
  spec.passwd_file = paths_.passwd;
  spec.group_file = paths_.group;
}

std::string Launch::last_log_lines(int lines) {
  std::string text;
  TerminalText masked;
  (void)engine_->stream_logs(container_id_, false, lines, [&](LogStream, std::string_view bytes) {
    if (text.size() < 64 * 1024) text.append(masked.feed(bytes));
    return true;
  });
  text.append(masked.finish());
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
    if (options_.open_browser && !dashboard_url_.empty()) open_browser();
    return;
  }
  std::ostream& os = options_.detach ? std::cout : std::cerr;
  os << "launch: " << options_.name << " running (container " << short_id(container_id_) << ", image " << options_.image
     << ")\n";
  std::string names;
  for (const auto& p : providers_) names += (names.empty() ? "" : ", ") + p.name;
  os << "  providers: " << names << "; primary model: " << rendered_.primary_model << "\n";
  os << "  config:    " << paths_.config.string() << "\n";
  std::string egress;
  for (const char* key : {"allow", "presets"})
    if (options_.egress.is_object() && options_.egress.contains(key))
      for (const auto& entry : options_.egress[key])
        egress += (egress.empty() ? "" : ", ") + std::string(key[0] == 'p' ? "preset " : "") + entry.get<std::string>();
  os << "  egress:    " << (egress.empty() ? "none (add hosts with 'tokfence egress allow HOST --launch " + options_.name + "')" : egress)
     << "\n";
  if (!dashboard_url_.empty()) os << "  dashboard: " << dashboard_url_ << "\n";
  os << (options_.detach ? "  stop with: tokfence launch stop --name " + options_.name + "\n"
                         : "  Ctrl-C stops and removes it.\n");
  os.flush();
  if (options_.open_browser && !dashboard_url_.empty()) open_browser();
}

// --open: the URL carries the gateway token, and a command line is readable by every local user
// (/proc/<pid>/cmdline) and ends up in logs. So the browser gets the path of a 0600 page in the
// launch's private directory that redirects to the URL; the token never is in any argv.
void Launch::open_browser() {
  const std::string opener = find_program("xdg-open").value_or("");
  if (opener.empty()) {
    std::cerr << "launch: --open: no xdg-open on PATH: open the dashboard URL above yourself\n";
    return;
  }
  // The URL is http://127.0.0.1:<port>/#token=<hex>: nothing in it needs escaping in HTML or JS.
  std::string page = "<!doctype html>\n<meta charset=\"utf-8\">\n<title>tokfence: OpenClaw dashboard</title>\n"
                     "<meta http-equiv=\"refresh\" content=\"0;url=" + dashboard_url_ + "\">\n"
                     "<script>location.replace(\"" + dashboard_url_ + "\");</script>\n"
                     "<p><a href=\"" + dashboard_url_ + "\">Open the OpenClaw dashboard</a></p>\n";
  write_private_file(paths_.dashboard_page, page, std::nullopt);
  std::string page_path = paths_.dashboard_page.string();
  if (pid_t pid = ::fork(); pid == 0) {
    ::setsid();
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, 0), ::dup2(null_fd, 1), ::dup2(null_fd, 2);
    ::execl(opener.c_str(), "xdg-open", page_path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
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
    if (info->running && ui_socket_present(ui_dir_.get(), container_uid_)) {
      if (!options_.dashboard || gateway_answers(ui_dir_.get(), container_uid_)) break;
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
    ContainerOutput output(false);
    (void)(*engine)->stream_logs(container_id_, true, -1, [&](LogStream stream, std::string_view bytes) {
      output.write(stream, bytes);
      return true;
    });
    output.finish();
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
    if (options_.workspace) warn_git_left_behind(workspace_, started_, git_before_);
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
  json state = read_state(paths_for(home, target.name));
  std::string workspace = state.value("user_workspace", "");
  remove_host_resources(home, target.name);
  // A launch of an earlier version recorded no start: nothing to tell its changes by.
  if (const json started = state.value("started_clock", json()); !workspace.empty() && started.is_array() && started.size() == 2)
    warn_git_left_behind(workspace, timespec{started[0].get<time_t>(), started[1].get<long>()},
                         inventory_from_json(state.value("git_inventory", json())));
  if (target.json) {
    std::cout << json{{"name", target.name}, {"stopped", info.has_value()}}.dump() << "\n";
  } else {
    std::cout << target.name << (info ? ": stopped and removed\n" : ": was not running (cleaned up)\n");
  }
  return 0;
}

int launch_logs(const Home& home, const LaunchTarget& target, bool follow, int tail, bool raw) {
  value_or_throw(check_launch_name(target.name));
  auto engine = engine_or_throw();
  auto info = find_launch(*engine, home, target.name);
  if (!info) throw UserError("launch: '" + target.name + "' is not running: start it with 'tokfence launch'");
  ContainerOutput output(raw);
  auto streamed = engine->stream_logs(info->id, follow, tail, [&](LogStream stream, std::string_view bytes) {
    return output.write(stream, bytes);
  });
  output.finish();
  value_or_throw(std::move(streamed));
  return 0;
}

int launch_restart(const Home& home, const LaunchTarget& target, int timeout_seconds) {
  value_or_throw(check_launch_name(target.name));
  auto engine = engine_or_throw();
  auto info = find_launch(*engine, home, target.name);
  if (!info) throw UserError("launch: '" + target.name + "' is not running: start it with 'tokfence launch'");
  Paths paths = paths_for(home, target.name);
  json state = read_state(paths);
  // The engine restarts the container with the config it was created with: one made by an older
  // tokfence would come back without today's fence. Starting it again is `stop` and `launch`.
  const std::string again = ": stop it ('tokfence launch stop --name " + target.name + "') and launch it again";
  if (state.empty())
    throw UserError("launch: '" + target.name + "' has no readable " + paths.state_file.string() +
                    ", so what its container was made with is unknown" + again);
  if (state.value("socket_layout", 0) != kSocketLayout)
    throw UserError("launch: '" + target.name + "' was started by an older tokfence whose socket directory the container "
                    "can tamper with" + again);
  if (state.value("fence_layout", 0) != kFenceLayout)
    throw UserError("launch: '" + target.name + "' was started by an older tokfence: its container lacks protections "
                    "this one adds (its own user account, the workspace's git settings and the directories on the way "
                    "to them bound, every mount checked at each start)" + again);
  if (state.value("mode", "") == "detach") {
    // The daemon must be serving the launch's socket again (it restores persisted ones).
    value_or_throw(proxy::ensure_daemon(home));
  }
  value_or_throw(engine->restart_container(info->id, timeout_seconds));
  // The relay refuses to start a container whose bind sources were replaced since it was made
  // (--expect-mount); say so here rather than "restarted".
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = engine->inspect_container(info->id);
    if (!now) continue;  // the engine did not answer this time: ask again
    if (*now && (*now)->running && (*now)->state == "running") continue;  // not "restarting"
    throw UserError("launch: '" + target.name + "' did not stay up after the restart (" +
                    (*now ? (*now)->state : std::string("gone")) + "): see 'tokfence launch logs --name " + target.name +
                    "'; if its relay refused a replaced mount, 'tokfence launch stop --name " + target.name +
                    "' and launch it again");
  }
  // A detached launch's dashboard relay may be gone (e.g. after a reboot): start it again.
  if (state.value("mode", "") == "detach" && state.value("dashboard_port", 0) > 0 &&
      !process_alive(state.value("dashboard_relay_pid", 0))) {
    uid_t container_uid = state.value("container_uid", 0u);
    auto ui_dir = open_ui_dir(home, paths, container_uid);
    if (!ui_dir) throw UserError("launch: cannot restart the dashboard relay: " + ui_dir.error().message);
    auto relay = start_dashboard_relay(find_relay(), paths, ui_dir->get(), container_uid, state.value("dashboard_port", 0), true);
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
  // The providers' apiKey is the launch's session token: a credential, not shown.
  json config = json::parse(text.str(), nullptr, false, /*ignore_comments=*/true);
  if (config.is_object() && config.contains("models") && config["models"].is_object() &&
      config["models"].contains("providers") && config["models"]["providers"].is_object())
    for (auto& [_, provider] : config["models"]["providers"].items())
      if (provider.is_object() && provider.contains("apiKey") && provider["apiKey"].is_string() &&
          plausible_token(provider["apiKey"].get<std::string>()))
        provider["apiKey"] = "(the launch's session token, not shown)";
  if (config.is_object()) text.str(config.dump(2) + "\n");
  if (target.json) {
    std::cout << json{{"name", target.name}, {"config_path", paths.config.string()}, {"config", config}}.dump()
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
      for (const auto& k : *keys)
        if (k.hosts.empty()) keyed.push_back(k.provider);  // a secret bound to hosts is no provider key
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
