// start, stop, status: the daemon's life cycle from the command line.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "core/error.hpp"
#include "core/file.hpp"
#include "core/secret.hpp"
#include "launcher/cli/cli.hpp"
#include "core/text_format.hpp"
#include "launcher/watch/watch.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/daemon.hpp"
#include "proxy/metering/pricing.hpp"
#include "vault/vault.hpp"

namespace tokfence::cli {
namespace {

namespace fs = std::filesystem;
using proxy::json;

struct StartArgs {
  bool detach = false;
  int ready_fd = -1;       // internal: the detached child reports readiness here
  int passphrase_fd = -1;  // internal: the parent hands over the passphrase it asked for
};

// Remembers the passphrase the first time the vault asks, so the daemon can re-open the file
// vault on `reload_keys` without a terminal.
struct CapturingSource {
  std::shared_ptr<SecretString> captured = std::make_shared<SecretString>();
  std::shared_ptr<bool> asked = std::make_shared<bool>(false);
  vault::PassphraseSource inner;
  vault::PassphraseSource source() const {
    auto captured_ = captured;
    auto asked_ = asked;
    auto inner_ = inner;
    return [captured_, asked_, inner_](const std::string& purpose, bool confirm) -> Result<SecretString> {
      if (*asked_ && !captured_->empty()) return *captured_;
      auto got = inner_(purpose, confirm);
      if (got) {
        *captured_ = *got;
        *asked_ = true;
      }
      return got;
    };
  }
};

std::string log_tail(const Home& home, std::size_t lines) {
  std::ifstream in(home.daemon_log());
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += "\n  " + all[i];
  return out;
}

std::string self_exe() {
  const fs::path p = file::self_exe();
  if (p.empty()) throw UserError("start: cannot find the tokfence executable (/proc/self/exe)");
  return p.string();
}

void refuse_if_running(const Home& home) {
  if (auto info = proxy::running_daemon(home))
    throw UserError("daemon: already running (pid " + std::to_string(info->pid) + ", " + info->base_url() +
                    "): stop it with 'tokfence stop' first");
}

// Foreground daemon (also the detached child).
void run_foreground(Context& ctx, const StartArgs& args) {
  const Config& config = ctx.config();
  CapturingSource capture;
  if (args.passphrase_fd >= 0) {
    std::string text;
    char buf[256];
    for (;;) {
      ssize_t n = ::read(args.passphrase_fd, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(args.passphrase_fd);
    *capture.captured = SecretString(text);
    *capture.asked = true;
    wipe(text);
    capture.inner = [](const std::string& purpose, bool) -> Result<SecretString> {
      return fail(purpose + " passphrase: the daemon cannot ask for it: restart with 'tokfence start -d'");
    };
  } else {
    capture.inner = vault::default_passphrase_source();
  }
  auto report = [&](const std::string& line) {
    if (args.ready_fd < 0) return;
    std::string l = line + "\n";
    [[maybe_unused]] auto n = ::write(args.ready_fd, l.data(), l.size());
    ::close(args.ready_fd);
  };
  auto opened = vault::open_vault(config, ctx.home, capture.source());
  if (!opened) {
    report("error " + opened.error().message);
    throw UserError(opened.error());
  }
  proxy::DaemonOptions options;
  options.home = ctx.home;
  options.config = config;
  options.vault = std::move(*opened);
  options.version = TOKFENCE_VERSION;
  options.on_ready = [&](int port) {
    if (args.ready_fd >= 0)
      report("ok " + std::to_string(port));
    else
      std::cerr << "tokfence: daemon listening on http://" << config.daemon.host << ":" << port
                << " (Ctrl-C stops it)" << std::endl;
  };
  auto result = proxy::run_daemon(std::move(options));
  if (!result) {
    report("error " + result.error().message);
    throw UserError(result.error());
  }
}

// `start -d`: asks for the passphrase here, on the user's terminal, then starts a new session
// running `tokfence start` in the background with its output in daemon.log, and waits until it
// listens (or says why it cannot).
void run_detached(Context& ctx) {
  const Config& config = ctx.config();
  value_or_throw(ctx.home.ensure());
  CapturingSource capture;
  capture.inner = vault::default_passphrase_source();
  {
    // Opening and reading the vault here reports a wrong passphrase on the terminal, not in a log.
    auto opened = value_or_throw(vault::open_vault(config, ctx.home, capture.source()));
    auto keys = opened->get_all();
    if (!keys) throw UserError(keys.error());
  }
  int ready[2], secret[2] = {-1, -1};
  if (::pipe2(ready, O_CLOEXEC) != 0) throw UserError("start: cannot create a pipe");
  if (*capture.asked) {
    if (::pipe2(secret, O_CLOEXEC) != 0) throw UserError("start: cannot create a pipe");
    auto text = capture.captured->reveal();
    if (::write(secret[1], text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      throw UserError("start: cannot hand the passphrase to the daemon");
    ::close(secret[1]);
  }
  std::string exe = self_exe();
  int log_fd = ::open(ctx.home.daemon_log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) throw UserError("start: cannot open " + ctx.home.daemon_log().string() + ": " + std::strerror(errno));
  ::fchmod(log_fd, 0600);
  std::string ready_arg = std::to_string(ready[1]);
  std::string secret_arg = std::to_string(secret[0]);
  pid_t child = ::fork();
  if (child < 0) throw UserError("start: fork failed");
  if (child == 0) {
    ::setsid();
    int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // The two pipe ends the child keeps must survive exec.
    ::fcntl(ready[1], F_SETFD, 0);
    if (secret[0] >= 0) ::fcntl(secret[0], F_SETFD, 0);
    ::setenv("TOKFENCE_HOME", ctx.home.root().c_str(), 1);
    std::vector<const char*> argv = {exe.c_str(), "start", "--ready-fd", ready_arg.c_str()};
    if (secret[0] >= 0) {
      argv.push_back("--passphrase-fd");
      argv.push_back(secret_arg.c_str());
    }
    argv.push_back(nullptr);
    ::execv(exe.c_str(), const_cast<char* const*>(argv.data()));
    ::_exit(127);
  }
  ::close(ready[1]);
  ::close(log_fd);
  if (secret[0] >= 0) ::close(secret[0]);
  std::string answer;
  char buf[512];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{ready[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::read(ready[0], buf, sizeof buf);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
    if (answer.find('\n') != std::string::npos) break;
  }
  ::close(ready[0]);
  if (answer.starts_with("ok ")) {
    int port = std::atoi(answer.c_str() + 3);
    std::cout << "tokfence: daemon started (pid " << child << "): http://" << config.daemon.host << ":" << port
              << ", log " << ctx.home.daemon_log().string() << "\n";
    return;
  }
  if (answer.starts_with("error ")) {
    answer = answer.substr(6);
    while (!answer.empty() && answer.back() == '\n') answer.pop_back();
    throw UserError(answer);
  }
  ::kill(child, SIGTERM);
  throw UserError("start: the daemon did not come up; last lines of " + ctx.home.daemon_log().string() + ":" +
                  log_tail(ctx.home, 10));
}

// The pid in daemon.pid when a daemon holds that file's lock and the process runs this very
// tokfence binary: who to signal when the control socket does not answer (its connections all
// taken by a runaway client of this user: review 15c C1). nullopt otherwise.
std::optional<pid_t> locked_daemon_pid(const Home& home) {
  file::Fd fd(::open(home.pid_file().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return std::nullopt;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) return std::nullopt;  // nobody holds it
  char buf[32] = {};
  if (::pread(fd.get(), buf, sizeof buf - 1, 0) <= 0) return std::nullopt;
  char* end = nullptr;
  const long pid = std::strtol(buf, &end, 10);
  if (pid <= 1 || (*end != '\n' && *end != '\0')) return std::nullopt;
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  // A binary replaced since the daemon started (an upgrade in place) reads "<path> (deleted)".
  const auto self = file::self_exe();
  if (ec || (exe != self && exe.string() != self.string() + " (deleted)")) return std::nullopt;
  return static_cast<pid_t>(pid);
}

// Waits until `pid` is gone, at most `seconds`.
void wait_stopped(const Home& home, pid_t pid, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      std::cout << "tokfence: daemon stopped (pid " << pid << ")\n";
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  throw UserError("daemon: pid " + std::to_string(pid) + " did not stop within " + std::to_string(seconds) +
                  " s: see " + home.daemon_log().string());
}

void run_stop(Context& ctx) {
  auto info = proxy::running_daemon(ctx.home);
  Result<json> reply = info ? proxy::control_call(ctx.home, {{"op", "shutdown"}})
                            : proxy::control_call(ctx.home, {{"op", "ping"}}, 3000);
  if (!info || !reply) {
    // No answer over the control socket: maybe refused (another namespace), not running, or its
    // connections all taken. A daemon of ours that holds its lock gets SIGTERM, which stops it
    // the same way (in-flight requests get their grace).
    if (auto pid = locked_daemon_pid(ctx.home)) {
      std::cerr << "tokfence: the daemon's control socket did not answer (" << (reply ? "no ping" : reply.error().message)
                << "): sending SIGTERM to pid " << *pid << "\n";
      if (::kill(*pid, SIGTERM) != 0) throw UserError("daemon: cannot signal pid " + std::to_string(*pid) + ": " + std::strerror(errno));
      wait_stopped(ctx.home, *pid, ctx.config().daemon.shutdown_grace_seconds + 20);
      return;
    }
    if (!reply) throw UserError(reply.error());
    throw UserError("daemon: not running");
  }
  wait_stopped(ctx.home, info->pid, reply->value("grace_seconds", 10) + 20);
}

void print_status(const json& s) {
  auto started = s.value("started_at", std::int64_t{0});
  std::int64_t up = started ? static_cast<std::int64_t>(std::time(nullptr)) - started : 0;
  std::cout << "tokfence daemon: running (pid " << s.value("pid", 0) << ", version " << s.value("version", "?")
            << ", up " << up / 3600 << "h" << (up / 60) % 60 << "m" << up % 60 << "s)\n";
  // Both names of localhost when the daemon holds the IPv6 twin (core/loopback_listen.hpp).
  const json tcp = s.value("tcp_listeners", json::array());
  if (tcp.empty()) std::cout << "  listening:  http://" << s.value("host", "") << ":" << s.value("port", 0) << "\n";
  for (std::size_t i = 0; i < tcp.size(); ++i)
    std::cout << (i == 0 ? "  listening:  http://" : "              http://") << tcp[i].get<std::string>() << "\n";
  std::cout << "              unix " << s.value("proxy_socket", "") << "\n";
  for (const auto& p : s.value("proxy_sockets", json::array()))
    std::cout << "              unix " << p.value("path", "") << " (caller " << p.value("caller", "") << ")\n";
  const json dash = s.value("dashboard_listeners", json::array());
  for (std::size_t i = 0; i < dash.size(); ++i)
    std::cout << (i == 0 ? "  dashboard:  http://" : "              http://") << dash[i].get<std::string>() << "\n";
  if (s.contains("immunefence")) {
    const json& f = s["immunefence"];
    std::string list;
    for (const auto& x : f.value("sessions", json::array()))
      list += (list.empty() ? "" : ", ") + printable(x.value("name", "")) + " " + x.value("risk_state", "");
    std::cout << "  sessions:   " << f.value("sessions", json::array()).size() << " live" << (list.empty() ? "" : ": " + list)
              << (f.value("require_token", true) ? "" : " (main listeners accept requests without a token)") << "\n";
  }
  std::string keys;
  for (const auto& k : s.value("keys", json::array())) keys += (keys.empty() ? "" : ", ") + k.get<std::string>();
  std::cout << "  vault:      " << s.value("vault_backend", "") << " (" << s.value("keys", json::array()).size()
            << " key(s)" << (keys.empty() ? "" : ": " + keys) << ")\n";
  const json& today = s.value("today", json::object());
  if (today.contains("error")) {
    std::cout << "  today:      unavailable: " << today.value("error", "") << "\n";
  } else {
    std::int64_t in = today.value("input_tokens", std::int64_t{0}), out = today.value("output_tokens", std::int64_t{0}),
                 cr = today.value("cache_read_tokens", std::int64_t{0}),
                 cw = today.value("cache_write_tokens", std::int64_t{0});
    std::cout << "  today:      " << with_commas(today.value("requests", std::int64_t{0})) << " requests, "
              << with_commas(in + out + cr + cw) << " tokens (in " << with_commas(in) << ", out " << with_commas(out)
              << ", cache read " << with_commas(cr) << ", cache write " << with_commas(cw) << "), "
              << today.value("cost_usd", "$0.00");
    auto unknown = today.value("unknown_cost_requests", std::int64_t{0});
    if (unknown) std::cout << " + " << unknown << " request(s) of unknown price";
    std::cout << "\n";
  }
  const json& rl = s.value("request_log", json::object());
  const auto dropped = rl.value("dropped", std::uint64_t{0}), lost = rl.value("lost", std::uint64_t{0});
  if (dropped || lost)
    std::cout << "  log:        " << with_commas(static_cast<std::int64_t>(dropped + lost))
              << " request row(s) not written (" << dropped << " dropped: write queue full, " << lost
              << " lost: commits failed; see daemon.log)\n";
  const json& c = s.value("controls", json::object());
  std::cout << "  kill:       " << (c.value("killed", false) ? "ON: every request is refused ('tokfence unkill')" : "off")
            << "\n";
  std::string revoked;
  for (const auto& p : c.value("revoked", json::array())) revoked += (revoked.empty() ? "" : ", ") + p.get<std::string>();
  std::cout << "  revoked:    " << (revoked.empty() ? "none" : revoked) << "\n";
  for (const auto& b : c.value("budgets", json::array()))
    std::cout << "  budget:     " << b.value("scope", "?") << " " << b.value("period", "?") << ": "
              << b.value("spent_text", "?") << " of " << b.value("limit_text", "?") << " ("
              << b.value("percent", 0.0) << " %), resets " << b.value("resets_at", "?") << "\n";
  for (const auto& r : c.value("ratelimits", json::array()))
    std::cout << "  ratelimit:  " << r.value("provider", "") << " " << r.value("rpm", 0) << "/min (used "
              << r.value("used", 0) << ")\n";
  for (const auto& w : c.value("warnings", json::array())) std::cout << "  warning:    " << w.value("message", "") << "\n";
  const json& alerts = s.value("watch_alerts", json::object());
  if (alerts.contains("error")) {
    std::cout << "  watch:      unavailable: " << alerts.value("error", "") << "\n";
  } else {
    std::cout << "  watch:      " << alerts.value("count", 0) << " leak alert(s) in the last 24 h"
              << (alerts.value("count", 0) ? " ('tokfence watch --history')" : "") << "\n";
    for (const auto& a : alerts.value("recent", json::array())) std::cout << "              " << a.value("message", "") << "\n";
  }
}

void run_status(Context& ctx, bool as_json) {
  auto reply = proxy::control_call(ctx.home, {{"op", "status"}}, 10000);
  if (!reply) {
    bool not_running = reply.error().message.starts_with("daemon: not running");
    if (!not_running) throw UserError(reply.error());
    if (as_json)
      std::cout << json{{"running", false}}.dump(2) << "\n";
    else
      std::cout << "tokfence daemon: not running (start it with 'tokfence start -d')\n";
    ctx.exit_code = 3;
    return;
  }
  json s = *reply;
  s.erase("ok");
  // Leak-detector alerts (tokfence watch) live in the same database; the daemon does not own them.
  if (auto alerts = watch::alerts_summary(ctx.config().logging.db_path, 24, 5))
    s["watch_alerts"] = *alerts;
  else
    s["watch_alerts"] = json{{"error", alerts.error().message}};
  if (as_json)
    std::cout << s.dump(2) << "\n";
  else
    print_status(s);
}

}  // namespace

void register_daemon_commands(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<StartArgs>();
  auto* start = app.add_subcommand(
      "start",
      "Run the metering proxy daemon (foreground; -d detaches).\n"
      "Listens on [daemon] host:port (default 127.0.0.1:9471) and on the Unix socket [daemon] socket_path.\n"
      "A file vault's passphrase is read first (TOKFENCE_VAULT_PASSPHRASE or a prompt).\n"
      "Examples:\n  tokfence start            # foreground, Ctrl-C stops\n"
      "  tokfence start -d         # background; output in ~/.tokfence/daemon.log");
  start->add_flag("-d,--detach", args->detach, "run in the background (pid in daemon.pid, output in daemon.log)");
  start->add_option("--ready-fd", args->ready_fd)->group("");
  start->add_option("--passphrase-fd", args->passphrase_fd)->group("");
  start->callback([&ctx, args] {
    if (args->ready_fd < 0) refuse_if_running(ctx.home);
    if (args->detach)
      run_detached(ctx);
    else
      run_foreground(ctx, *args);
  });

  auto* stop = app.add_subcommand(
      "stop",
      "Stop the daemon gracefully: no new connections, requests in flight finish (or are cut after\n"
      "[daemon] shutdown_grace_seconds), every request-log row is written. Returns once it has exited.\n"
      "Example:\n  tokfence stop");
  stop->callback([&ctx] { run_stop(ctx); });

  auto as_json = std::make_shared<bool>(false);
  auto* status = app.add_subcommand(
      "status",
      "Show whether the daemon runs, where it listens, the vault backend, today's requests, tokens and\n"
      "cost, and the controls in force (kill switch, revoked providers, budgets, rate limits).\n"
      "Exit code 3 when no daemon runs.\n"
      "Examples:\n  tokfence status\n  tokfence status --json | jq .today");
  status->add_flag("--json", *as_json, "machine-readable output");
  status->callback([&ctx, as_json] { run_status(ctx, *as_json); });
}

}  // namespace tokfence::cli
