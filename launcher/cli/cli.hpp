#pragma once
// The `tokfence` command line. Each part registers its own commands from its own file
// (cli_<part>.cpp), so commands stay next to nothing but their own flags and the call they make.
// Only commands that work are registered.
#include <CLI/CLI.hpp>
#include <optional>
#include <set>
#include <string>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/home.hpp"

namespace tokfence::cli {

class Context {
 public:
  Home home = Home::resolve();
  // Loaded on first use (so `--help` works with a broken config); throws UserError on errors.
  const Config& config();
  // Exit code for the process once the command's callback returns (default 0).
  int exit_code = 0;
  // The process's own argument strings, so that a secret given on the command line can be
  // overwritten in place (which is what /proc/<pid>/cmdline and ps show).
  int argc = 0;
  char** argv = nullptr;
  // Overwrites every argument equal to `secret` with '*' (same length: the kernel reads the
  // original memory). Narrows the window in which other processes can read it to start-up.
  void scrub_argument(std::string_view secret);

 private:
  std::optional<Config> config_;
};

void register_vault_commands(CLI::App& app, Context& ctx);     // vault.cpp
void register_daemon_commands(CLI::App& app, Context& ctx);    // daemon.cpp: start stop status
void register_log_commands(CLI::App& app, Context& ctx);       // log.cpp: log stats env provider pricing
// cli_pricing.cpp: `pricing update` (added to the `pricing` group) and `pricing list --unknown`.
void register_pricing_update(CLI::App& pricing, Context& ctx);
void print_unknown_models(Context& ctx, const std::string& provider, bool as_json);
// The daemon commits log rows in batches; a running one is asked to commit what it has (rows
// still waiting for their caller look-up included), so what a command reads from tokfence.db
// includes every request answered before it ran. No daemon, or one that does not answer within
// a second: the log as it is on disk.
void flush_running_daemon(Context& ctx);
// Which providers have a key in the vault, without ever prompting (log.cpp): the file backend needs
// the passphrase from TOKFENCE_VAULT_PASSPHRASE; anything that fails reads as "unknown" (nullopt).
std::optional<std::set<std::string>> providers_with_keys(Context& ctx);
void register_control_commands(CLI::App& app, Context& ctx);   // controls.cpp: budget revoke restore kill unkill ratelimit
void register_run_commands(CLI::App& app, Context& ctx);       // run.cpp: run, codex, claude, opencode
void register_launch_commands(CLI::App& app, Context& ctx);    // launch.cpp: launch, setup openclaw
void register_watch_commands(CLI::App& app, Context& ctx);     // watch.cpp: watch
void register_widget_commands(CLI::App& app, Context& ctx);    // widget.cpp: widget render|install|uninstall
void register_egress_commands(CLI::App& app, Context& ctx);    // egress.cpp: egress allow|deny|list
void register_session_commands(CLI::App& app, Context& ctx);   // session.cpp: session new|list|show|revoke|reset
void register_dashboard_commands(CLI::App& app, Context& ctx); // dashboard.cpp: dashboard [--open|--print-url]
// `--allow HOST[:PORT]` and `--egress-preset NAME` of run and launch, checked with the daemon's
// parser and config.toml's presets (UserError naming the flag and the entry); the "egress" field
// of open_proxy_socket, or null when both are empty (egress.cpp).
nlohmann::json egress_field(Context& ctx, const std::vector<std::string>& allow, const std::vector<std::string>& presets);

// Parses argv, runs the command, maps UserError to `tokfence: error: ...` and an exit code.
int run(int argc, char** argv);

}  // namespace tokfence::cli
