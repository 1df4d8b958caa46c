// widget render|install|uninstall: tokfence in a menu bar (SwiftBar, xbar, BitBar, GNOME's Argos)
// and the snapshot desktop apps read (docs/WIDGET.md).
//
// `render --json` prints the snapshot: a running daemon builds it (the same function that keeps
// desktop_snapshot.json current, after committing every request row it has); with none running it
// is built here from the database and the vault. `render` prints the plugin text format.
// `install` writes a small script into the plugin folder that runs `render`.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <regex>
#include <sstream>

#include <dirent.h>

#include "core/error.hpp"
#include "core/file.hpp"
#include "core/text_format.hpp"
#include "core/time.hpp"
#include "launcher/cli/cli.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/controls/controls.hpp"
#include "proxy/snapshot/snapshot.hpp"

namespace tokfence::cli {
namespace {

namespace fs = std::filesystem;
using proxy::json;

// ---- the snapshot ----

json collect_snapshot(Context& ctx) {
  auto reply = proxy::control_call(ctx.home, {{"op", "widget_snapshot"}}, 10000);
  if (reply) {
    reply->erase("ok");
    return *reply;
  }
  proxy::SnapshotSources in;
  if (!reply.error().message.starts_with("daemon: not running")) in.warnings.push_back(reply.error().message);
  const Config& config = ctx.config();
  value_or_throw(ctx.home.ensure());
  if (auto controls = proxy::apply_control_offline(config, {{"op", "controls_status"}}))
    in.controls = *controls;
  else
    in.warnings.push_back("controls: " + controls.error().message);
  if (auto keys = providers_with_keys(ctx))
    in.vault_providers = std::vector<std::string>(keys->begin(), keys->end());
  else
    in.warnings.push_back("vault: the key list needs the vault passphrase: start the daemon or set "
                          "TOKFENCE_VAULT_PASSPHRASE");
  in.version = TOKFENCE_VERSION;
  return proxy::build_snapshot(config, in, now_ms());
}

// ---- the plugin text format ----
// One line per menu item: "text | key=value ...". A '|' in text would start the parameters and a
// line starting with '-' would become a separator or a submenu, so text from the snapshot (provider
// names, warnings) goes through item_text().

std::string item_text(const std::string& raw) {
  std::string s = printable(raw);
  for (auto& c : s)
    if (c == '|') c = '/';
  while (!s.empty() && s[0] == '-') s.erase(0, 1);
  return s;
}

std::string usd_cents(std::int64_t cents) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "$%lld.%02lld", static_cast<long long>(cents / 100),
                static_cast<long long>(cents % 100));
  return buf;
}

std::string token_count(std::int64_t n) {
  char buf[32];
  if (n >= 1'000'000)
    std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  else if (n >= 1'000)
    std::snprintf(buf, sizeof buf, "%.1fk", static_cast<double>(n) / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

std::string progress_bar(double percent) {
  percent = std::max(0.0, std::min(100.0, percent));
  const int filled = static_cast<int>((percent + 9.99) / 10.0);
  std::string out;
  for (int i = 0; i < 10; ++i) out += i < filled ? "\u2588" : "\u2591";
  return out;
}

enum class Style { swiftbar, argos };

// An action: SwiftBar/xbar run `bash` with param1..N; Argos runs `bash` as a shell command line.
// `exe` is the absolute path of this binary; a path with a quote cannot be written safely in
// either form, and the action is left out.
std::string action(Style style, const std::string& label, const std::string& exe, const std::vector<std::string>& args,
                   bool terminal) {
  if (exe.find_first_of("\"'\\\n\r") != std::string::npos) return "";
  std::string line = label + " | ";
  if (style == Style::argos) {
    line += "bash=\"'" + exe + "'";
    for (const auto& a : args) line += " " + a;
    line += "\"";
  } else {
    line += "bash=\"" + exe + "\"";
    for (std::size_t i = 0; i < args.size(); ++i) line += " param" + std::to_string(i + 1) + "=" + args[i];
  }
  line += std::string(" terminal=") + (terminal ? "true" : "false") + " refresh=" + (terminal ? "false" : "true");
  return line + "\n";
}

// `s[key]`, or null when absent (const operator[] must not be used on a missing key).
const json& field(const json& s, const char* key) {
  static const json null;
  auto it = s.find(key);
  return it == s.end() ? null : *it;
}

std::string render_plugin(const json& s, Style style, const std::string& exe) {
  std::ostringstream out;
  const bool running = s.value("running", false);
  const bool killed = s.value("kill_switch_active", false);
  const auto requests = s.value("today_requests", std::int64_t{0});
  const auto cents = s.value("today_cost_cents", std::int64_t{0});
  // The status line.
  if (!running)
    out << "Tokfence offline | color=#ef4444\n";
  else if (killed)
    out << "Tokfence KILLED \u00b7 " << usd_cents(cents) << " | color=#ef4444\n";
  else
    out << "Tokfence " << usd_cents(cents) << " \u00b7 " << requests << " req | color=#16a34a\n";
  out << "---\n";
  if (running) {
    out << "Status: running (PID " << s.value("pid", 0) << ")\n";
    if (field(s, "addr").is_string()) out << "Address: " << item_text(field(s, "addr").get<std::string>()) << "\n";
  } else {
    out << "Status: offline\n";
  }
  if (field(s, "last_request_at").is_string()) out << "Last request: " << item_text(field(s, "last_request_at").get<std::string>()) << "\n";
  out << "---\nToday | color=#6b7280\n";
  out << "Requests: " << requests << "\n";
  out << "Cost: " << item_text(s.value("today_cost_usd", usd_cents(cents)));
  if (auto unknown = s.value("today_unknown_cost_requests", std::int64_t{0})) out << " + " << unknown << " unpriced";
  out << "\n";
  out << "Input tokens: " << token_count(s.value("today_input_tokens", std::int64_t{0})) << "\n";
  out << "Output tokens: " << token_count(s.value("today_output_tokens", std::int64_t{0})) << "\n";
  const auto cache_r = s.value("today_cache_read_tokens", std::int64_t{0}), cache_w = s.value("today_cache_write_tokens", std::int64_t{0});
  if (cache_r || cache_w) out << "Cache tokens: read " << token_count(cache_r) << ", write " << token_count(cache_w) << "\n";
  if (field(s, "top_provider").is_string())
    out << "Top provider: " << item_text(field(s, "top_provider").get<std::string>()) << " ("
        << usd_cents(s.value("top_provider_cost_cents", std::int64_t{0})) << ")\n";

  out << "---\nBudgets | color=#6b7280\n";
  const json budgets = s.value("budgets", json::array());
  if (budgets.empty()) out << "No budgets set\n";
  for (const auto& b : budgets) {
    const auto limit = b.value("limit_cents", std::int64_t{0}), spent = b.value("current_spend_cents", std::int64_t{0});
    const double pct = b.contains("percent") ? b.value("percent", 0.0)
                                             : (limit > 0 ? 100.0 * static_cast<double>(spent) / static_cast<double>(limit) : 0.0);
    char pct_text[16];
    std::snprintf(pct_text, sizeof pct_text, "%.0f%%", pct);
    out << item_text(b.value("provider", "") + " (" + b.value("period", "") + ")") << ": " << usd_cents(spent) << " / "
        << usd_cents(limit) << " (" << pct_text << ") " << progress_bar(pct)
        << (pct >= 100 ? " | color=#ef4444" : pct >= 80 ? " | color=#f59e0b" : "") << "\n";
  }

  out << "---\nAccess | color=#6b7280\n";
  out << "Kill switch: " << (s.value("kill_switch", killed) ? "ON (every request refused)" : "off") << "\n";
  out << "Vault keys: " << s.value("vault_providers", json::array()).size() << " provider(s)\n";
  std::string revoked;
  for (const auto& p : s.value("revoked_providers", json::array()))
    if (p.is_string()) revoked += (revoked.empty() ? "" : ", ") + p.get<std::string>();
  out << "Revoked: " << (revoked.empty() ? "none" : item_text(revoked)) << "\n";
  const json sessions = s.value("sessions", json::array());
  if (!sessions.empty()) {
    out << "Sessions: " << sessions.size() << "\n";
    for (const auto& x : sessions) out << "--" << item_text(x.value("caller", "?")) << "\n";
  }
  const json warnings = s.value("warnings", json::array());
  if (!warnings.empty()) {
    out << "---\nWarnings | color=#f59e0b\n";
    for (const auto& w : warnings)
      if (w.is_string()) out << item_text(w.get<std::string>()) << "\n";
  }

  out << "---\nActions | color=#6b7280\n";
  if (running) {
    out << action(style, "Stop daemon", exe, {"stop"}, false);
  } else {
    out << action(style, "Start daemon", exe, {"start", "-d"}, false);
  }
  if (s.value("kill_switch", false))
    out << action(style, "Unkill (let requests through again)", exe, {"unkill"}, false);
  else
    out << action(style, "Kill (refuse every request)", exe, {"kill"}, false);
  out << action(style, "Open live log", exe, {"log", "-f"}, true);
  out << action(style, "Open stats", exe, {"stats", "--period", "24h", "--by", "provider"}, true);
  out << "Refresh | refresh=true\n";
  return out.str();
}

// ---- install / uninstall ----

struct PluginFolder {
  fs::path path;
  const char* app;
  Style style;
};

std::vector<PluginFolder> known_folders() {
  const char* home = std::getenv("HOME");
  if (!home || !*home) return {};
  const fs::path h(home);
  return {{h / "Library/Application Support/SwiftBar/Plugins", "SwiftBar", Style::swiftbar},
          {h / "Library/Application Support/xbar/plugins", "xbar", Style::swiftbar},
          {h / ".config/argos", "Argos", Style::argos}};
}

bool is_dir(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The folder to write to: --dir, else the first known plugin folder that exists.
PluginFolder pick_folder(const std::string& dir) {
  if (!dir.empty()) {
    if (!is_dir(dir)) throw UserError("widget: --dir " + dir + ": not a directory: create it first or fix the path");
    // Argos runs `bash=` as a command line; SwiftBar and xbar as a program with params.
    const bool argos = fs::path(dir).filename() == "argos";
    return {dir, argos ? "Argos" : "SwiftBar/xbar", argos ? Style::argos : Style::swiftbar};
  }
  std::string looked;
  for (const auto& f : known_folders()) {
    if (is_dir(f.path)) return f;
    looked += "\n  " + f.path.string() + " (" + f.app + ")";
  }
  throw UserError("widget: no menu-bar plugin folder found; looked in:" + looked +
                  "\ninstall SwiftBar or xbar (macOS) or Argos (GNOME) first, or name a folder with --dir DIR");
}

// Opens `dir` (resolved: the user may keep the plugin folder behind a link of their own) and checks
// through the descriptor that it is a directory the user owns.
file::Fd open_folder(const fs::path& dir) {
  std::error_code ec;
  fs::path real = fs::canonical(dir, ec);
  if (ec) throw UserError("widget: " + dir.string() + ": " + ec.message());
  auto fd = file::open_dir_nofollow(real);
  if (!fd) throw UserError("widget: " + dir.string() + ": " + fd.error().message);
  return std::move(*fd);
}

const std::regex& plugin_name() {
  static const std::regex name(R"(^tokfence(\.[0-9]+[smhd])?\.sh$)");
  return name;
}

// Removes every tokfence plugin script in the folder except `keep`. unlinkat never follows a link.
std::vector<std::string> remove_plugins(int dir_fd, const std::string& keep) {
  std::vector<std::string> removed;
  int copy = ::dup(dir_fd);
  if (copy < 0) return removed;
  DIR* d = ::fdopendir(copy);
  if (!d) {
    ::close(copy);
    return removed;
  }
  std::vector<std::string> names;
  for (int i = 0; i < 100000; ++i) {
    dirent* e = ::readdir(d);
    if (!e) break;
    std::string name = e->d_name;
    if (name != keep && std::regex_match(name, plugin_name())) names.push_back(name);
  }
  ::closedir(d);
  for (const auto& n : names)
    if (::unlinkat(dir_fd, n.c_str(), 0) == 0) removed.push_back(n);
  return removed;
}

std::string shell_single_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string plugin_script(const std::string& binary, Style style, const fs::path& tokfence_home) {
  std::string render = shell_single_quote(binary) + " widget render" + (style == Style::argos ? " --argos" : "");
  return "#!/usr/bin/env bash\n"
         "# <xbar.title>tokfence</xbar.title>\n"
         "# <xbar.desc>Today's AI spend, budgets and the kill switch of the tokfence proxy.</xbar.desc>\n"
         "# <swiftbar.hideRunInTerminal>true</swiftbar.hideRunInTerminal>\n"
         "# Written by 'tokfence widget install'; 'tokfence widget uninstall' removes it.\n"
         "export TOKFENCE_HOME=" + shell_single_quote(tokfence_home.string()) + "\n"
         "if ! " + render + "; then\n"
         "  echo 'Tokfence error | color=#ef4444'\n"
         "  echo '---'\n"
         "  echo 'tokfence widget render failed: run it in a terminal to see why'\n"
         "fi\n";
}

void run_install(Context& ctx, int refresh, std::string binary, const std::string& dir) {
  if (refresh < 5 || refresh > 86400)
    throw UserError("widget: --refresh " + std::to_string(refresh) + ": expected seconds from 5 to 86400");
  if (binary.empty()) binary = file::self_exe().string();
  if (binary.empty()) throw UserError("widget: cannot find the tokfence executable: name it with --binary PATH");
  if (!fs::path(binary).is_absolute()) throw UserError("widget: --binary " + binary + ": must be an absolute path");
  if (binary.find_first_of("\"'\\\n\r") != std::string::npos)
    throw UserError("widget: --binary " + printable(binary) + ": a path with quotes or backslashes cannot be used in "
                    "a plugin's actions: use a path without them");
  struct stat st {};
  if (::stat(binary.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::access(binary.c_str(), X_OK) != 0)
    throw UserError("widget: --binary " + binary + ": not an executable file");
  const PluginFolder folder = pick_folder(dir);
  file::Fd fd = open_folder(folder.path);
  const std::string name = "tokfence." + std::to_string(refresh) + "s.sh";
  // Renamed into place: a link planted at the name is replaced, never written through.
  auto ok = file::write_atomic_at(fd.get(), name, plugin_script(binary, folder.style, ctx.home.root()),
                                  {.mode = 0755, .owner = std::nullopt});
  if (!ok) throw UserError("widget: cannot write " + (folder.path / name).string() + ": " + ok.error().message);
  for (const auto& old : remove_plugins(fd.get(), name))
    std::cout << "widget: removed the previous plugin " << (folder.path / old).string() << "\n";
  std::cout << "widget: installed " << (folder.path / name).string() << " (" << folder.app << ", refresh every "
            << refresh << " s)\n";
}

void run_uninstall(const std::string& dir) {
  std::vector<fs::path> folders;
  if (!dir.empty()) {
    if (!is_dir(dir)) throw UserError("widget: --dir " + dir + ": not a directory");
    folders.push_back(dir);
  } else {
    for (const auto& f : known_folders())
      if (is_dir(f.path)) folders.push_back(f.path);
  }
  int removed = 0;
  for (const auto& f : folders) {
    file::Fd fd = open_folder(f);
    for (const auto& n : remove_plugins(fd.get(), "")) {
      std::cout << "widget: removed " << (f / n).string() << "\n";
      ++removed;
    }
  }
  if (removed == 0) std::cout << "widget: no tokfence plugin installed (nothing removed)\n";
}

}  // namespace

void register_widget_commands(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand(
      "widget",
      "tokfence in a menu bar: SwiftBar or xbar (macOS), Argos (GNOME). See docs/WIDGET.md.\n"
      "Examples:\n  tokfence widget install --refresh 20\n  tokfence widget render --json | jq .today_cost_cents");
  group->require_subcommand(1);

  struct RenderOptions {
    bool json = false, argos = false;
  };
  auto ropt = std::make_shared<RenderOptions>();
  auto* render = group->add_subcommand(
      "render",
      "Print the menu: a status line, '---', today's spend, budgets with progress bars, and actions\n"
      "(start, stop, kill, unkill) in the SwiftBar/xbar/Argos plugin format. --json prints the snapshot\n"
      "desktop apps read (the original Tokfence's keys plus tokfence's own; the running daemon keeps the\n"
      "same object in TOKFENCE_HOME/desktop_snapshot.json).");
  render->add_flag("--json", ropt->json, "the snapshot as JSON");
  render->add_flag("--argos", ropt->argos, "actions as Argos runs them (a command line in bash=)");
  render->callback([&ctx, ropt] {
    const json snapshot = collect_snapshot(ctx);
    if (ropt->json) {
      std::cout << escape_c1_in_json(snapshot.dump(2, ' ', false, json::error_handler_t::replace)) << "\n";
      return;
    }
    std::cout << render_plugin(snapshot, ropt->argos ? Style::argos : Style::swiftbar, file::self_exe().string());
  });

  struct InstallOptions {
    int refresh = 20;
    std::string binary, dir;
  };
  auto iopt = std::make_shared<InstallOptions>();
  auto* install = group->add_subcommand(
      "install",
      "Write the plugin script tokfence.<N>s.sh (mode 0755) into the first plugin folder that exists:\n"
      "  ~/Library/Application Support/SwiftBar/Plugins, ~/Library/Application Support/xbar/plugins,\n"
      "  ~/.config/argos, or --dir. A tokfence plugin with another refresh there is replaced.");
  install->add_option("--refresh", iopt->refresh, "seconds between refreshes (default 20, at least 5)");
  install->add_option("--binary", iopt->binary, "the tokfence executable the plugin runs (default: this one)");
  install->add_option("--dir", iopt->dir, "the plugin folder to write to");
  install->callback([&ctx, iopt] { run_install(ctx, iopt->refresh, iopt->binary, iopt->dir); });

  auto udir = std::make_shared<std::string>();
  auto* uninstall = group->add_subcommand(
      "uninstall", "Remove tokfence plugin scripts (tokfence.<N>s.sh) from the known plugin folders, or from --dir.");
  uninstall->add_option("--dir", *udir, "the plugin folder to clean");
  uninstall->callback([udir] { run_uninstall(*udir); });
}

}  // namespace tokfence::cli
