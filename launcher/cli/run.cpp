// `tokfence run codex|claude|opencode` and the shorthands `tokfence codex|claude|opencode`:
// run a coding agent whose only key is its run's session token, its native config pointing at the
// proxy, its requests tagged with its name, inside a sandbox whose only way out is the proxy.
//
// The flow, each step with its reason:
//  1. the daemon runs and the provider has a key: otherwise the agent would start and fail late;
//  2. the daemon opens a proxy-only socket for this run, tagged with the program's name (the
//     request log's caller), in a fresh directory that the sandbox mounts at a fixed path, and a
//     session for it (ImmuneFence): the capability token every request on that socket must carry
//     as its key, and decoy credentials. No session, no run (fail closed);
//  3. the program's config is written under TOKFENCE_HOME/harness/<program>/ from templates/,
//     with the token as its key;
//  4. the child environment is built from an allow-list plus the harness's variables and the
//     decoy variables; the decoy files are planted in the sandbox's view of $HOME only;
//  5. the child runs sandboxed (Linux: sandbox/linux_sandbox.hpp; macOS: sandbox-exec), supervised
//     (PTY, signals, exit status); afterwards the token is scrubbed from the harness home and the
//     socket closed, which ends the session.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/egress_env.hpp"
#include "core/text_format.hpp"
#include "core/file.hpp"
#include "core/process.hpp"
#include "launcher/openclaw/session.hpp"
#include "launcher/cli/cli.hpp"
#include "sandbox/harness/harness.hpp"
#include "proxy/control/protocol.hpp"
#include "sandbox/environment.hpp"
#include "sandbox/git_settings.hpp"
#include "sandbox/linux_sandbox.hpp"
#include "sandbox/macos_profile.hpp"
#include "sandbox/supervisor.hpp"
#include "vault/vault.hpp"

namespace tokfence::cli {
namespace {
namespace fs = std::filesystem;

struct RunOptions {
  std::string program;
  std::string command;
  std::string workdir;
  std::vector<std::string> allow_write;
  std::vector<std::string> allow_socket;
  std::vector<std::string> egress_allow;    // --allow HOST[:PORT]
  std::vector<std::string> egress_presets;  // --egress-preset NAME
  std::vector<std::string> secrets;         // --secret VAR=NAME
  std::string provider;
  std::string model;
  bool no_sandbox = false;
  int max_processes = 4096;
  bool max_processes_given = false;
  std::vector<std::string> args;
};

fs::path self_dir() { return file::self_exe().parent_path(); }

bool is_under(const fs::path& path, const fs::path& dir) { return file::is_same_or_under(path, dir); }

std::string npm_package(const std::string& program) {
  if (program == "codex") return "@openai/codex";
  if (program == "claude") return "@anthropic-ai/claude-code";
  return "opencode-ai";
}


// The proxy-only socket this run's requests go through: opened by the daemon with the program's
// name as caller and the run's egress policy (`egress`: open_proxy_socket's field, null = none),
// closed (and its directory removed) when the run ends, whatever way it ends. The same socket is
// the sandbox's forward proxy for every other host (docs/EGRESS.md).
class RunSocket {
 public:
  RunSocket(const Home& home, const std::string& caller, const ProviderSpec& provider, const proxy::json& egress)
      : home_(home) {
    remove_stale(home);
    std::random_device rd;
    dir_ = home.sockets_dir() / ("run-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000));
    value_or_throw(ensure_private_dir(dir_));
    path_ = dir_ / "proxy.sock";
    proxy::json request = {{"op", "open_proxy_socket"},
                           {"path", path_.string()},
                           {"caller", caller},
                           {"mode", 0666},
                           {"persist", false},
                           {"session", launcher::session_request(caller, "run", {provider})}};
    if (!egress.is_null()) request["egress"] = egress;
    auto reply = proxy::control_call(home, request);
    if (reply) {
      auto session = launcher::session_from_reply(*reply);
      if (!session) {
        close();
        throw UserError("run: the daemon opened no usable " + session.error().message + ": nothing was started");
      }
      session_ = std::move(*session);
      return;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    // A policy the daemon refuses (a preset only its config knows of...) is the user's to fix,
    // not a daemon to restart.
    if (!egress.is_null() && reply.error().message.find("egress") != std::string::npos)
      throw UserError("run: " + reply.error().message + ": nothing was started");
    throw UserError("run: the daemon did not open a proxy socket for " + caller + ": " + reply.error().message +
                    ": restart it with 'tokfence stop' and 'tokfence start -d'");
  }
  ~RunSocket() { close(); }
  const fs::path& path() const { return path_; }
  // The run's own directory (ours, 0700, in the hidden tokfence home): the sandbox sees it at
  // sandbox::kInnerProxyDir, read-only.
  const fs::path& dir() const { return dir_; }
  // The run's session: its token is the agent's key; closing the socket ends it.
  const launcher::AgentSession& session() const { return session_; }

 private:
  // A run killed with SIGKILL could not close its socket: close those whose tokfence is gone.
  static void remove_stale(const Home& home) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(home.sockets_dir(), ec)) {
      std::string name = entry.path().filename().string();
      if (name.rfind("run-", 0) != 0) continue;
      int pid = std::atoi(name.c_str() + 4);
      if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
      (void)proxy::control_call(home, {{"op", "close_proxy_socket"}, {"path", (entry.path() / "proxy.sock").string()}});
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }

  void close() {
    (void)proxy::control_call(home_, {{"op", "close_proxy_socket"}, {"path", path_.string()}});
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  const Home& home_;
  fs::path dir_, path_;
  launcher::AgentSession session_;
};

// After the run, whatever way it ends: the token leaves no trace in the harness home (the rendered
// configs hold it, and the program may have copied it into its own state).
class ScrubOnExit {
 public:
  ScrubOnExit(fs::path harness_home, const std::string& token) : home_(std::move(harness_home)), token_(token) {}
  ~ScrubOnExit() {
    auto scrubbed = harness::scrub_secret(home_, token_);
    if (!scrubbed)
      std::cerr << "tokfence: warning: run: " << scrubbed.error().message << "\n";
    else if (scrubbed->skipped > 0)
      std::cerr << "tokfence: warning: run: " << scrubbed->skipped << " entries in " << home_.string()
                << " were too large or too many to check for the run's token (it expires with the run)\n";
  }

 private:
  fs::path home_;
  const std::string& token_;
};

// For runs without the Linux sandbox: the relay listens on a free loopback port and carries the
// child's requests to the run's socket, so they are still tagged with the program's name.
// Its port comes back down a pipe (--ready-fd), not in a file: the obvious place for a file, the
// harness home, is writable by every sandboxed run of the program, and this relay runs unfenced.
class HostRelay {
 public:
  HostRelay(const fs::path& relay, const fs::path& socket) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw UserError("run: cannot start tokfence-relay: pipe failed");
    file::Fd ready_read(pipe_fds[0]), ready_write(pipe_fds[1]);
    std::string forward = "tcp:127.0.0.1:0=unix:" + socket.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      // The pipe's write end becomes descriptor 3 (dup2 clears close-on-exec; at 3 already, clear
      // it by hand); descriptors the user's shell left open stay with tokfence.
      if (pipe_fds[1] == 3 ? ::fcntl(3, F_SETFD, 0) != 0 : ::dup2(pipe_fds[1], 3) != 3) ::_exit(127);
      ::close_range(4, ~0U, 0);
      const char* argv[] = {"tokfence-relay", "--forward", forward.c_str(), "--ready-fd", "3", nullptr};
      ::execv(relay.c_str(), const_cast<char* const*>(argv));
      ::_exit(127);
    }
    if (pid_ < 0) throw UserError("run: cannot start tokfence-relay: fork failed");
    ready_write = file::Fd();  // only the relay holds it now: its exit is our end of file
    std::string line;
    char c;
    // Bounded: the relay writes one line once its listener is up, or exits (end of file).
    for (int polls = 0; polls < 100 && line.size() < 4096; ++polls) {
      pollfd p{ready_read.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n = ::read(ready_read.get(), &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || c == '\n') break;
      line += c;
    }
    // "tcp:127.0.0.1:PORT=unix:..."
    auto colon = line.find(':', 4);
    auto eq = line.find('=');
    if (line.starts_with("tcp:") && colon != std::string::npos && eq != std::string::npos && eq > colon)
      port_ = std::atoi(line.substr(colon + 1, eq - colon - 1).c_str());
    if (port_ <= 0 || port_ > 65535) {
      port_ = 0;
      stop();  // no destructor runs for a constructor that throws
      throw UserError("run: tokfence-relay did not start: " + relay.string());
    }
  }
  ~HostRelay() { stop(); }
  int port() const { return port_; }

 private:
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  pid_t pid_ = -1;
  int port_ = 0;
};

// The fence's trust in the local CA (core/egress_env.hpp): the daemon made the CA at its start,
// which happened before this (ensure_daemon); without its certificate the agent does not start.
// Both files go into the run's own directory, by descriptor (O_NOFOLLOW, atomic rename): only
// tokfence writes there, and the sandbox sees it read-only at kInnerProxyDir.
void place_ca_files(const Home& home, const fs::path& run_dir) {
  auto ca = read_egress_ca_certificate(home.root());
  if (!ca) throw UserError("run: " + ca.error().message + ": nothing was started");
  auto dir = value_or_throw(file::open_dir_nofollow(run_dir));
  const file::WriteOptions readable{0644, std::nullopt};
  value_or_throw(file::write_atomic_at(dir.get(), kFenceCaFile, *ca, readable));
  value_or_throw(file::write_atomic_at(dir.get(), kFenceCaBundleFile, egress_ca_bundle(*ca), readable));
}

// The provider's key, and for each --secret VAR=NAME a secret NAME bound to hosts: both in the
// vault, else nothing starts (a placeholder with nothing behind it would only fail later, inside
// the agent, as a refusal it cannot explain).
void require_key(Context& ctx, const std::string& provider,
                 const std::vector<std::pair<std::string, std::string>>& secrets) {
  auto v = vault::open_vault(ctx.config(), ctx.home, vault::default_passphrase_source());
  if (!v) throw UserError("run: cannot check the key for '" + provider + "': " + v.error().message);
  auto keys = (*v)->list();
  if (!keys) throw UserError("run: cannot check the key for '" + provider + "': " + keys.error().message);
  for (const auto& [var, name] : secrets)
    if (auto ok = vault::check_bound_secret(*keys, name); !ok)
      throw UserError("--secret " + var + "=" + name + ": " + ok.error().message + ": nothing was started");
  for (const auto& k : *keys) {
    if (k.provider != provider) continue;
    if (k.hosts.empty()) return;
    // A secret bound to hosts is never a provider key (vault.hpp).
    throw UserError("no key for provider '" + provider + "': '" + provider +
                    "' in the vault is a secret bound to hosts, not a provider key: store the provider's key under "
                    "another name, or remove the secret with 'tokfence vault remove " + provider + "'");
  }
  throw UserError("no key for provider '" + provider + "': run 'tokfence vault add " + provider + " -'");
}

// As root, /root is hidden (harness::sensitive_paths: root's own 0600 files would be the
// sandbox's to read). A workdir or --allow-write path at or above it keeps it whole (that is what
// the user chose to share); otherwise what the program needs comes back read-only: the directory
// just below /root that holds the program or a PATH entry (~/.local, ~/.nvm, ~/.cargo: its install
// and toolchains; credential stores inside them stay hidden) and git's own config (identity).
void show_needed_root_home(sandbox::Policy& policy, const fs::path& command, const sandbox::EnvMap& parent_env,
                           const std::vector<fs::path>& writable) {
  const fs::path root_home = "/root";
  auto hide = std::find(policy.hidden.begin(), policy.hidden.end(), root_home);
  if (hide == policy.hidden.end()) return;
  for (const auto& w : writable)
    if (is_under(root_home, w)) {
      policy.hidden.erase(hide);
      return;
    }
  std::error_code ec;
  std::vector<fs::path> paths = {command, fs::canonical(command, ec)};
  if (auto var = parent_env.find("PATH"); var != parent_env.end()) {
    std::stringstream list(var->second);
    for (std::string dir; std::getline(list, dir, ':') && paths.size() < 512;) {
      if (dir.empty() || dir[0] != '/') continue;
      paths.push_back(dir);
      paths.push_back(fs::canonical(dir, ec));
    }
  }
  std::set<fs::path> shown;
  for (const auto& p : paths) {
    fs::path n = p.lexically_normal();
    if (n != root_home && is_under(n, root_home)) shown.insert(root_home / *n.lexically_relative(root_home).begin());
  }
  for (const char* rel : {".gitconfig", ".config/git/config", ".config/git/ignore", ".config/git/attributes"})
    shown.insert(root_home / rel);
  for (const auto& p : shown) {
    // Real entries only (a symlink would come back as its target), never a hidden one itself.
    auto st = fs::symlink_status(p, ec);
    if (ec || !(fs::is_directory(st) || fs::is_regular_file(st))) continue;
    if (std::find(policy.hidden.begin(), policy.hidden.end(), p) == policy.hidden.end()) policy.readable.push_back(p);
  }
}

// The session's decoy files, planted in the sandbox's view of $HOME only (sandbox.hpp: a tmpfs,
// never the host's disk). A $HOME the program may write (the workdir or an --allow-write path at
// or above it) would put them on the disk: then none are planted, and a note says so.
void plant_decoy_files(sandbox::Policy& policy, const launcher::AgentSession& session, const sandbox::EnvMap& parent_env,
                       const fs::path& workdir, const std::vector<fs::path>& allow_write) {
  if (session.decoys.files.empty()) return;
  auto home_var = parent_env.find("HOME");
  std::error_code ec;
  fs::path home = home_var == parent_env.end() ? fs::path() : fs::canonical(home_var->second, ec);
  if (home.empty() || ec || home == "/") {
    std::cerr << "tokfence: note: run: decoy files not planted: HOME is not an existing directory\n";
    return;
  }
  std::vector<fs::path> writable = {workdir};
  writable.insert(writable.end(), allow_write.begin(), allow_write.end());
  for (const auto& w : writable)
    if (is_under(home, w)) {
      std::cerr << "tokfence: note: run: decoy files not planted: your home " << home.string()
                << " is writable in the sandbox (" << w.string() << ")\n";
      return;
    }
  policy.plant_home = home;
  for (const auto& f : session.decoys.files) policy.planted.push_back({f.path, f.content});
}

// After a sandboxed run: what the agent left for git to run unfenced (sandbox/git_settings.hpp). A
// warning only: nothing is changed, and the run's exit status stays the agent's.
struct GitBefore {
  fs::path root;
  sandbox::GitInventory inventory;
};

std::vector<GitBefore> take_git_inventories(const std::vector<fs::path>& roots) {
  std::vector<GitBefore> out;
  for (const auto& root : roots) out.push_back({root, sandbox::git_inventory(root.string())});
  return out;
}

void warn_git_left_behind(const std::vector<GitBefore>& before, const timespec& started) {
  std::string text;
  for (const auto& [root, inventory] : before)
    text += sandbox::git_audit_warning(sandbox::audit_git_changes(root.string(), started, inventory), root.string(),
                                       "tokfence");
  if (text.empty()) return;
  // The agent had the terminal until now (through our stdout or stderr, or its pty relayed to
  // them) and may have left it mid-sequence (core/text_format.hpp): reset each that is a terminal,
  // stdout first, since stderr may reach the same terminal through a pipe (a tee) and come later.
  if (::isatty(STDOUT_FILENO)) std::cout << kTerminalReset << std::flush;
  if (::isatty(STDERR_FILENO)) std::cerr << kTerminalReset;
  std::cerr << text;
}

void run_harness(Context& ctx, RunOptions& o) {
  const harness::Program* program = harness::find_program(o.program);
  if (!program) throw UserError("run: unknown program: '" + o.program + "' (use codex, claude or opencode)");
  std::string provider = o.provider.empty() ? program->default_provider : o.provider;
  if (std::find(program->providers.begin(), program->providers.end(), provider) == program->providers.end())
    throw UserError(program->name + ": provider not supported: " + provider);

  // --secret VAR=NAME: the placeholder goes into VAR, never the secret (checked before anything starts).
  std::vector<std::pair<std::string, std::string>> secrets;
  for (const auto& entry : o.secrets) {
    auto parsed = value_or_throw(parse_secret_flag(entry, "--secret"));
    for (const auto& [var, name] : secrets)
      if (var == parsed.first) throw UserError("--secret: '" + entry + "': " + var + " is given twice");
    secrets.push_back(std::move(parsed));
  }

  // What to run, where, and what it may write: checked before anything starts.
  std::string command = o.command.empty() ? tokfence::find_program(program->command).value_or("") : o.command;
  if (command.empty())
    throw UserError(program->name + ": command not found on PATH: install it ('npm install -g " +
                    npm_package(program->name) + "') or pass --command PATH");
  {
    std::error_code ec;
    fs::path c = fs::canonical(command, ec);
    if (ec || ::access(c.c_str(), X_OK) != 0 || fs::is_directory(c))
      throw UserError(program->name + ": --command is not an executable file: " + command);
    command = fs::absolute(command).lexically_normal().string();
  }
  value_or_throw(ctx.home.ensure());
  const fs::path tf_home = fs::canonical(ctx.home.root());
  const file::FenceDir checked_workdir =
      value_or_throw(file::fence_dir_as_named("--workdir", o.workdir.empty() ? fs::current_path() : fs::path(o.workdir), tf_home));
  const fs::path workdir = checked_workdir.path;
  std::vector<fs::path> allow_write;
  for (const auto& w : o.allow_write) {
    std::error_code ec;
    fs::path p = fs::canonical(w, ec);
    if (ec) throw UserError("--allow-write: path does not exist: " + w);
    if (is_under(p, tf_home) || is_under(tf_home, p))
      throw UserError("--allow-write: overlaps the tokfence home, which the agent must not see: " + w);
    if (p == "/") throw UserError("--allow-write: '/' would allow writing everything: " + w);
    allow_write.push_back(p);
  }

  // Unix sockets: none by default (the sandbox's seccomp filter refuses AF_UNIX sockets); with
  // --allow-socket exactly these, every other one the host has at the start being covered.
  std::vector<fs::path> allow_socket;
  for (const auto& a : o.allow_socket) {
    std::error_code ec;
    fs::path p = fs::canonical(a, ec);
    if (ec) throw UserError("--allow-socket: path does not exist: " + a);
    if (!fs::is_socket(fs::status(p, ec))) throw UserError("--allow-socket: not a socket: " + a);
    if (is_under(p, tf_home))
      throw UserError("--allow-socket: inside the tokfence home, which the agent must not reach: " + a);
    allow_socket.push_back(p);
  }
  if (!allow_socket.empty() && !o.no_sandbox)
    for (const auto& p : allow_socket)
      std::cerr << "tokfence: warning: --allow-socket: " << program->name << " can connect to " << p.string()
                << "; other path sockets are covered only if they exist now (see docs/SANDBOX.md)\n";

  fs::path relay = self_dir() / "tokfence-relay";
  if (::access(relay.c_str(), X_OK) != 0)
    throw UserError("run: tokfence-relay not found next to tokfence: " + relay.string());

#if defined(__linux__)
  if (!o.no_sandbox) {
    auto missing = sandbox::missing_linux_features();
    if (!missing.empty()) {
      std::string list;
      for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      throw UserError("sandbox: this system lacks " + list +
                      ": tokfence will not run the agent unconfined unless you pass --no-sandbox");
    }
  }
#endif
  // Checked before anything starts; unsandboxed, the program reaches the network directly anyway.
  proxy::json egress = egress_field(ctx, o.egress_allow, o.egress_presets);
  if (o.no_sandbox && !egress.is_null()) {
    std::cerr << "tokfence: warning: --allow/--egress-preset ignored with --no-sandbox: " << program->name
              << " is not fenced, nothing routes it through the egress proxy\n";
    egress = proxy::json();
  }
  if (o.no_sandbox && !o.secrets.empty())
    std::cerr << "tokfence: warning: --secret with --no-sandbox: " << program->name
              << " gets the placeholders, but no secret is substituted for an unfenced run\n";
  if (o.no_sandbox)
    std::cerr << "tokfence: WARNING: --no-sandbox: " << program->name
              << " runs UNCONFINED: it can reach the network, your files, sockets and keyring directly;\n"
                 "tokfence: WARNING: only its configured requests go through the proxy (with its session token)\n";

  auto daemon = value_or_throw(proxy::ensure_daemon(ctx.home));
  require_key(ctx, provider, secrets);

  if (!secrets.empty() && !o.no_sandbox) {
    // The grant: only these placeholders are ever substituted for this run (egress/policy.hpp).
    // An unfenced run gets none: nothing routes it through the egress proxy, and its host-side
    // relay would let any local user use them.
    if (egress.is_null()) egress = proxy::json::object();
    for (const auto& [var, name] : secrets) egress["secrets"].push_back(name);
  }
  const auto spec = ctx.config().provider(provider);
  if (!spec) throw UserError("run: unknown provider '" + provider + "': nothing was started");
  RunSocket socket(ctx.home, program->name, *spec, egress);
  const launcher::AgentSession& session = socket.session();
  place_ca_files(ctx.home, socket.dir());
  // --no-sandbox runs get a harness home of their own: the fenced runs' one is writable inside the
  // fence, and what an agent leaves there (git's core.fsmonitor in xdg/config/git/config, opencode
  // plugins, claude agents, codex rules) an unconfined run of the same program would load and run.
  const fs::path harness_home = ctx.home.harness_dir() / (o.no_sandbox ? program->name + "-unfenced" : program->name);
  value_or_throw(ensure_private_dir(harness_home));
  ScrubOnExit scrub(harness_home, session.token);

  const bool linux_sandbox =
#if defined(__linux__)
      !o.no_sandbox;
#else
      false;
#endif
  std::optional<HostRelay> host_relay;
  int port = daemon.port;
  fs::path tmpdir = "/tmp";
  if (!linux_sandbox) {
    host_relay.emplace(relay, socket.path());
    port = host_relay->port();
    tmpdir = harness_home / "tmp";
    value_or_throw(ensure_private_dir(tmpdir));
  }

  harness::RenderInput input;
  input.program = program;
  input.provider = provider;
  input.proxy_url = "http://127.0.0.1:" + std::to_string(port);
  if (!o.model.empty()) input.model = o.model;
  input.harness_home = harness_home;
  input.templates_dir = harness::templates_dir();
  input.tmpdir = tmpdir;
  input.running_as_root = ::geteuid() == 0;
  input.api_key = session.token;
  auto rendered = value_or_throw(harness::render(input));

  // The decoy variables (AWS_ACCESS_KEY_ID...) are names the allow-list forbids: they pass as the
  // harness's own, vouched for, never from the parent. The harness's variables win a clash.
  auto parent_env = sandbox::current_environment();
  sandbox::EnvMap own;
  std::vector<std::string> vouched = rendered.key_vars;
  for (const auto& [name, value] : session.decoys.env) {
    own[name] = value;
    vouched.push_back(name);
  }
  for (const auto& [name, value] : rendered.env) own[name] = value;
  auto env = sandbox::build_child_env(parent_env, own, vouched);
  env["PWD"] = workdir.string();
  // Fenced, every HTTP client is pointed at the run's listener as its forward proxy, rules or not
  // (core/egress_env.hpp). Set after build_child_env, which drops every *_PROXY: these are ours.
  if (!o.no_sandbox)
    for (const auto& [name, value] : egress_proxy_env(input.proxy_url)) env[name] = value;
  // The local CA, as the program sees its files: the sandbox's read-only view of the run's
  // directory, or (unsandboxed) the host's files themselves.
  const fs::path ca_dir = linux_sandbox ? sandbox::kInnerProxyDir : socket.dir();
  for (const auto& [name, value] :
       egress_ca_env((ca_dir / kFenceCaFile).string(), (ca_dir / kFenceCaBundleFile).string()))
    env[name] = value;
  for (const auto& [var, name] : secrets) {
    // A decoy variable of the same name (GH_TOKEN...) gives way: the user named it for a real secret.
    if (rendered.env.count(var))
      throw UserError("--secret: '" + var + "=" + name + "': " + var + " is set by tokfence for " + program->name +
                      ": pick another name");
    env[var] = secret_placeholder(name);
  }
  std::vector<std::string> argv = {command};
  argv.insert(argv.end(), o.args.begin(), o.args.end());

  sandbox::Spawner spawner;
  if (linux_sandbox) {
    sandbox::Policy policy;
    policy.argv = argv;
    policy.env = sandbox::to_envp(env);
    policy.workdir = workdir;
    policy.workdir_identity = std::pair{checked_workdir.dev, checked_workdir.ino};
    policy.writable = {harness_home};
    policy.writable.insert(policy.writable.end(), allow_write.begin(), allow_write.end());
    policy.hidden = harness::sensitive_paths(parent_env, tf_home, ::getuid());
    std::vector<fs::path> writable = {workdir};
    writable.insert(writable.end(), allow_write.begin(), allow_write.end());
    show_needed_root_home(policy, command, parent_env, writable);
    policy.proxy_socket = socket.path();
    policy.proxy_port = port;
    policy.relay = relay;
    policy.allowed_sockets = allow_socket;
    policy.max_processes = o.max_processes;
    // The kernel never applies RLIMIT_NPROC to the host's root, in any user namespace (fork.c
    // exempts INIT_USER): as root the limit is not there. Said when it was asked for.
    if (::geteuid() == 0 && o.max_processes > 0 && o.max_processes_given)
      std::cerr << "tokfence: note: run: --max-processes has no effect as root (the kernel exempts root from "
                   "process limits); run as your own user for it\n";
    plant_decoy_files(policy, session, parent_env, workdir, allow_write);
    spawner = [policy](const sandbox::TerminalSettings* tty) { return sandbox::spawn_sandboxed(policy, tty); };
  } else {
#if defined(__APPLE__)
    if (!o.no_sandbox) {
      std::ifstream t(harness::templates_dir() / "macos" / "tokfence.sb");
      std::stringstream text;
      text << t.rdbuf();
      sandbox::MacProfileInput mac;
      mac.program = program->name;
      mac.proxy_port = port;
      mac.proxy_socket = socket.path();
      mac.writable = {workdir, harness_home, tmpdir};
      mac.writable.insert(mac.writable.end(), allow_write.begin(), allow_write.end());
      mac.hidden = {tf_home};
      for (auto& k : sandbox::macos_keychain_paths(parent_env["HOME"])) mac.hidden.push_back(k);
      auto profile = value_or_throw(sandbox::render_macos_profile(text.str(), mac));
      // Beside the run's socket, in the run's private directory: not in the harness home, where an
      // earlier run's agent could leave a read-only profile of its own for this write to fail on.
      fs::path profile_path = socket.path().parent_path() / "sandbox.sb";
      value_or_throw(file::write_atomic(profile_path, profile));
      argv = sandbox::macos_sandbox_argv(profile_path, argv);
    }
#endif
    spawner = sandbox::plain_spawner(argv, sandbox::to_envp(env), workdir.string());
  }
  std::vector<fs::path> roots = {workdir};
  roots.insert(roots.end(), allow_write.begin(), allow_write.end());
  const auto git_before = linux_sandbox ? take_git_inventories(roots) : std::vector<GitBefore>{};
  const timespec started = sandbox::git_audit_clock();
  ctx.exit_code = value_or_throw(sandbox::supervise(spawner));
  if (linux_sandbox) warn_git_left_behind(git_before, started);
}

void add_run_options(CLI::App* sub, RunOptions& o) {
  sub->add_option("--command", o.command, "The program to run (default: found on PATH)");
  sub->add_option("--workdir", o.workdir, "Working directory, writable (default: the current one)");
  // allow_extra_args(false): one value per flag, so `--allow-write X -- -c cmd` ends the option at
  // X and `--` still starts the program's arguments (CLI11 otherwise swallows the `--`).
  sub->add_option("--allow-write", o.allow_write, "A further path the agent may write (repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("--allow-socket", o.allow_socket,
                  "A Unix socket the agent may connect to (repeatable; none by default)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("--max-processes", o.max_processes,
                  "Processes and threads the fenced agent may have at once (default 4096; 0 = no limit): a\n"
                  "fork bomb stops there")
      ->check(CLI::Range(0, 1 << 22))
      ->each([&o](const std::string&) { o.max_processes_given = true; });
  sub->add_option("--allow", o.egress_allow,
                  "A host the agent may reach through tokfence's forward proxy, HOST[:PORT] (port 443 unless\n"
                  "given; *.example.com for subdomains; repeatable; none by default)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("--egress-preset", o.egress_presets,
                  "A named set of hosts to allow: telegram, discord, slack, whatsapp, web-search, github, npm,\n"
                  "pypi, or [egress.presets.<name>] of config.toml (repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("--secret", o.secrets,
                  "VAR=NAME: put the placeholder of the vault secret NAME (tokfence-secret:NAME) in the agent's\n"
                  "variable VAR; the proxy swaps in the secret only towards the hosts NAME is bound to (repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub->add_option("--provider", o.provider, "Provider the agent talks to (opencode: openai or anthropic)");
  sub->add_option("--model", o.model, "Model to configure (default: the program's own)");
  sub->add_flag("--no-sandbox", o.no_sandbox, "Run without the sandbox (NOT recommended; prints a warning)");
  sub->add_option("args", o.args, "Arguments for the program, after --");
}

}  // namespace

void register_run_commands(CLI::App& app, Context& ctx) {
  static RunOptions options;
  auto* run = app.add_subcommand(
      "run",
      "Run a coding agent (codex, claude, opencode) with a per-run session key, talking only to the proxy, in a sandbox\n"
      "(Linux: own user/network/mount/PID namespaces + Landlock; writes only to the workdir, its harness home,\n"
      "a private /tmp and --allow-write paths; no Unix sockets unless --allow-socket; tokfence's home,\n"
      "keyring and credential stores hidden; .git/hooks and .git/config read-only). Other hosts only\n"
      "through tokfence's forward proxy (HTTPS_PROXY is set) and only those --allow/--egress-preset name.\n"
      "Examples:\n"
      "  tokfence run codex\n"
      "  tokfence run claude --workdir ~/src/app -- -p 'explain main.cpp'\n"
      "  tokfence run opencode --provider anthropic --allow-write ~/.cache/go-build\n"
      "  tokfence run codex --egress-preset npm --allow api.github.com");
  run->add_option("program", options.program, "codex, claude or opencode")->required();
  add_run_options(run, options);
  run->callback([&ctx] { run_harness(ctx, options); });

  for (const auto& p : harness::programs()) {
    auto* sub = app.add_subcommand(p.name, "Shorthand for 'tokfence run " + p.name +
                                               "' (see 'tokfence run --help').\nExample:\n  tokfence " + p.name +
                                               " -- " + (p.name == "codex" ? "exec 'fix the failing test'" : p.name == "claude" ? "-p 'summarise README.md'" : "run 'list the TODOs'"));
    add_run_options(sub, options);
    std::string name = p.name;
    sub->callback([&ctx, name] {
      options.program = name;
      run_harness(ctx, options);
    });
  }
}

}  // namespace tokfence::cli
