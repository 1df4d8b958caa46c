// dashboard [--print-url | --open]: the daemon's local web dashboard (docs/DASHBOARD.md).
//
// The daemon hands out a one-time login URL over the control socket (op `dashboard_login`; only
// the daemon's own user in its own namespaces gets one). Opening it sets the session cookie; the
// URL is spent then, and it expires after 120 s unused.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "launcher/cli/cli.hpp"
#include "proxy/control/protocol.hpp"

extern char** environ;

namespace tokfence::cli {
namespace {

std::string login_url(Context& ctx) {
  auto reply = proxy::control_call(ctx.home, {{"op", "dashboard_login"}}, 10000);
  if (!reply) throw UserError(reply.error());
  if (!reply->contains("url") || !(*reply)["url"].is_string())
    throw UserError("dashboard: the daemon sent no login URL: is it older than this tokfence? restart it");
  return (*reply)["url"].get<std::string>();
}

// The first `name` on PATH that is executable, or "".
std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t at = 0; at <= dirs.size();) {
    const std::size_t colon = std::min(dirs.find(':', at), dirs.size());
    const std::string dir = dirs.substr(at, colon - at);
    at = colon + 1;
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// Runs the desktop's opener with the URL as one argument (no shell); false when there is none or
// it fails.
bool open_in_browser(const std::string& url) {
  const std::string opener = on_path("xdg-open");
  if (opener.empty()) return false;
  std::string arg = url;
  char* argv[] = {const_cast<char*>(opener.c_str()), arg.data(), nullptr};
  pid_t pid = 0;
  if (::posix_spawn(&pid, opener.c_str(), nullptr, nullptr, argv, environ) != 0) return false;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

void register_dashboard_commands(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "dashboard",
      "The running daemon's local web dashboard ([dashboard] enabled = true in config.toml):\n"
      "today's spend, budgets, live requests, agents, the vault's providers and the kill switch.\n"
      "Prints or opens a one-time login URL (valid 120 s, usable once); the browser keeps a\n"
      "session cookie, never a token in a URL.\n"
      "Example:\n  tokfence dashboard --open");
  auto print_only = std::make_shared<bool>(false);
  auto open = std::make_shared<bool>(false);
  auto* print_flag = cmd->add_flag("--print-url", *print_only, "print the one-time login URL to stdout, nothing else");
  cmd->add_flag("--open", *open, "open the URL with xdg-open (printed when there is none)")->excludes(print_flag);
  cmd->callback([&ctx, print_only, open] {
    const std::string url = login_url(ctx);
    if (*print_only) {
      std::cout << url << "\n";
      return;
    }
    if (*open && open_in_browser(url)) {
      std::cerr << "tokfence: dashboard opened in your browser (the login link works once, within 120 s)\n";
      return;
    }
    if (*open) std::cerr << "tokfence: no xdg-open (or it failed): open this URL yourself\n";
    std::cerr << "tokfence: the dashboard's one-time login URL (works once, within 120 s):\n";
    std::cout << url << "\n";
  });
}

}  // namespace tokfence::cli
