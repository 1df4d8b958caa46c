// `tokfence watch`: compares each provider's own usage report with tokfence's request log and
// raises an alert when the provider saw more than went through tokfence (docs/WATCH.md).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "core/names.hpp"
#include "core/process.hpp"
#include "core/time.hpp"
#include "launcher/cli/cli.hpp"
#include "launcher/watch/watch.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/controls/controls.hpp"
#include "vault/vault.hpp"

extern char** environ;

namespace tokfence::cli {

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

// Sleeps in small steps so Ctrl-C ends the loop at once.
void sleep_interruptible(std::int64_t seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!g_stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

std::string utc(std::int64_t ms) { return format_utc(ms, "%Y-%m-%d %H:%M:%SZ"); }

std::int64_t duration_flag(const std::string& flag, const std::string& text) {
  auto d = watch::parse_duration_seconds(text);
  if (!d) throw UserError(flag + ": " + d.error().message);
  return *d;
}

struct WatchFlags {
  std::string period = "24h", interval = "15m", settle = "10m", idle_window = "30m";
  std::string threshold_usd = "0.50";
  std::int64_t threshold_tokens = 10000, threshold_requests = 10;
  bool once = false, json_out = false, auto_revoke = false, history = false, no_idle = false;
  std::vector<std::string> providers, endpoints;
  int max_iterations = 0;
  int history_limit = 50;
};

void print_history(Context& ctx, const WatchFlags& f) {
  auto alerts = watch::recent_alerts(ctx.config().logging.db_path, 0, f.history_limit);
  if (!alerts) throw UserError("watch --history: " + alerts.error().message);
  if (f.json_out) {
    watch::json out = watch::json::array();
    for (const auto& a : *alerts) out.push_back(a.to_json());
    std::cout << out.dump(2) << "\n";
    return;
  }
  if (alerts->empty()) {
    std::cout << "no watch alerts recorded\n";
    return;
  }
  for (const auto& a : *alerts)
    std::cout << utc(a.ts_ms) << "  " << std::left << std::setw(12) << a.provider << std::setw(14) << a.metric
              << (a.revoked ? "REVOKED  " : "         ") << a.message << "\n";
}

std::string amounts_text(const watch::Amounts& a) {
  std::string out;
  out += a.tokens ? watch::format_amount("tokens", *a.tokens) : "? tokens";
  out += ", ";
  out += a.requests ? watch::format_amount("requests", *a.requests) : "? requests";
  out += ", ";
  out += a.cost ? watch::format_amount("usd", *a.cost) : "$?";
  return out;
}

void run_watch(Context& ctx, WatchFlags& f) {
  if (f.history) return print_history(ctx, f);
  watch::Options opt;
  opt.period_s = duration_flag("--period", f.period);
  std::int64_t interval_s = duration_flag("--interval", f.interval);
  opt.settle_s = duration_flag("--settle", f.settle);
  opt.idle_window_s = duration_flag("--idle-window", f.idle_window);
  opt.idle_check = !f.no_idle;
  if (opt.period_s < 60) throw UserError("--period: must be at least 1m: " + f.period);
  if (opt.period_s > 31L * 86400) throw UserError("--period: at most 31d (the usage apis keep no more per query): " + f.period);
  if (interval_s < 1) throw UserError("--interval: must be at least 1s: " + f.interval);
  if (opt.settle_s >= opt.period_s) throw UserError("--settle (" + f.settle + ") must be shorter than --period (" + f.period + ")");
  if (opt.idle_check && opt.idle_window_s <= opt.settle_s + 60)
    throw UserError("--idle-window (" + f.idle_window + ") must be longer than --settle (" + f.settle +
                    ") plus a minute: the most recent --settle is not read");
  if (opt.idle_window_s > 86400) throw UserError("--idle-window: at most 24h: " + f.idle_window);
  auto usd = parse_decimal_scaled(f.threshold_usd, 12);
  if (!usd || *usd < 0) throw UserError("--threshold-usd: expected a dollar amount like 0.50: " + f.threshold_usd);
  opt.thresholds.usd = *usd;
  if (f.threshold_tokens < 0) throw UserError("--threshold-tokens: must not be negative");
  if (f.threshold_requests < 0) throw UserError("--threshold-requests: must not be negative");
  opt.thresholds.tokens = f.threshold_tokens;
  opt.thresholds.requests = f.threshold_requests;
  opt.auto_revoke = f.auto_revoke;
  if (f.max_iterations < 0) throw UserError("--max-iterations: must not be negative");

  const Config& config = ctx.config();
  for (const std::string& e : f.endpoints) {
    auto parsed = watch::parse_endpoint_override(e);
    if (!parsed) throw UserError("--usage-endpoint: " + parsed.error().message);
    if (!config.provider(parsed->first))
      throw UserError("--usage-endpoint: unknown provider '" + parsed->first + "': see 'tokfence provider list'");
    opt.endpoints[parsed->first] = parsed->second;
  }
  for (const std::string& p : f.providers) {
    value_or_throw(check_provider_name(p));
    if (!config.provider(p)) throw UserError("--provider: unknown provider '" + p + "': see 'tokfence provider list'");
  }

  auto vault = value_or_throw(vault::open_vault(config, ctx.home, vault::default_passphrase_source()));
  std::vector<std::string> providers = f.providers;
  if (providers.empty()) {
    // Every provider with a key (or an admin key) in the vault. Secrets bound to hosts (vault.hpp)
    // are no provider keys.
    auto keys = vault->list();
    if (!keys) throw UserError("vault: " + keys.error().message);
    std::set<std::string> names;
    for (const auto& k : *keys) {
      if (!k.hosts.empty()) continue;
      std::string name = k.provider;
      if (name.ends_with("-admin") && config.provider(name.substr(0, name.size() - 6))) name.resize(name.size() - 6);
      if (config.provider(name)) names.insert(name);
    }
    providers.assign(names.begin(), names.end());
    if (providers.empty())
      throw UserError("watch: no provider keys in the vault to watch: add one with 'tokfence vault add openai -' "
                      "(and its admin key with 'tokfence vault add openai-admin -')");
  }

  watch::Environment env;
  env.config = &config;
  env.db = config.logging.db_path;
  // A provider key by name, read afresh each time; a secret bound to hosts counts as none, so it is
  // never sent to a usage API.
  env.key = [&](const std::string& name) -> Result<std::optional<SecretString>> {
    auto records = vault->records();
    if (!records) return std::unexpected(records.error());
    for (auto& r : *records)
      if (r.provider == name && r.hosts.empty()) return std::optional<SecretString>{std::move(r.key)};
    return std::optional<SecretString>{};
  };
  env.http_get = watch::curl_http_get();
  env.now_ms = now_ms;
  if (config.notifications.desktop)
    env.notify = [](const std::string& title, const std::string& body) { desktop_notify(title, body, /*urgent=*/true); };
  const Home home = ctx.home;
  env.revoke = [&config, home](const std::string& provider) -> Result<std::string> {
    proxy::json op{{"op", "revoke"}, {"provider", provider}};
    if (proxy::running_daemon(home)) {
      auto r = proxy::control_call(home, op);
      if (r) return std::string("through the running daemon: its next request is refused");
      std::cerr << "tokfence: warning: the daemon did not take the revoke (" << r.error().message
                << "): writing it to the database\n";
    }
    auto r = proxy::apply_control_offline(config, op);
    if (!r) return std::unexpected(r.error());
    return std::string("in the database: no daemon runs, it applies at the next start");
  };

  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  bool any_alert = false, any_error = false;
  for (int iteration = 1; !g_stop; ++iteration) {
    std::int64_t started = now_ms();
    std::vector<watch::ProviderCheck> checks;
    for (const std::string& p : providers) {
      if (g_stop) break;
      checks.push_back(watch::check_provider(p, opt, env));
    }
    int alerts_now = 0, errors_now = 0;
    for (const auto& c : checks) {
      alerts_now += static_cast<int>(c.alerts.size());
      if (c.status == "error") ++errors_now;
    }
    any_alert = any_alert || alerts_now > 0;
    any_error = any_error || errors_now > 0;

    // Revocations are said loudly on stderr in every output mode.
    for (const auto& c : checks) {
      if (c.revoked)
        std::cerr << "tokfence: REVOKED provider '" << c.provider
                  << "' after a possible key leak: every request through tokfence is now refused (403); "
                     "rotate the key at the provider, then 'tokfence vault rotate "
                  << c.provider << " -' and 'tokfence restore " << c.provider << "'\n";
      else if (!c.revoke_error.empty())
        std::cerr << "tokfence: error: " << c.provider << ": --auto-revoke failed: " << c.revoke_error << "\n";
    }

    if (f.json_out) {
      watch::json out{{"schema", "tokfence.watch.v1"},
                      {"iteration", iteration},
                      {"checked_at_ms", started},
                      {"period_s", opt.period_s},
                      {"settle_s", opt.settle_s},
                      {"idle_window_s", opt.idle_window_s},
                      {"thresholds",
                       {{"usd", static_cast<double>(opt.thresholds.usd) / 1e12},
                        {"tokens", opt.thresholds.tokens},
                        {"requests", opt.thresholds.requests}}},
                      {"alerts", alerts_now},
                      {"errors", errors_now}};
      out["providers"] = watch::json::array();
      for (const auto& c : checks) {
        watch::json j = c.to_json();
        j["alert_messages"] = watch::json::array();
        for (const auto& a : c.alerts) j["alert_messages"].push_back(a.message);
        out["providers"].push_back(j);
      }
      std::cout << out.dump() << std::endl;
    } else {
      std::cout << "tokfence watch: " << utc(started) << ": " << checks.size() << " provider(s), last "
                << watch::format_duration(opt.period_s) << " up to " << watch::format_duration(opt.settle_s)
                << " ago\n";
      for (const auto& c : checks) {
        std::cout << "  " << std::left << std::setw(12) << c.provider << std::setw(8) << c.status;
        if (c.status == "ok" || c.status == "alert")
          std::cout << "provider: " << amounts_text(c.remote) << " | tokfence: " << amounts_text(c.local);
        else
          std::cout << "(reason on stderr)";
        std::cout << "\n";
        for (const auto& a : c.alerts) std::cout << "ALERT " << a.message << "\n";
        if (c.status == "alert" && c.alerts.empty())
          std::cout << "  (gap unchanged since the last alert; not raised again)\n";
      }
      std::cout.flush();
    }
    for (const auto& c : checks) {
      if (c.status == "error") std::cerr << "tokfence: watch: " << c.error << "\n";
      else if (c.status == "skipped") std::cerr << "tokfence: watch: skipped " << c.error << "\n";
      else if (!c.error.empty()) std::cerr << "tokfence: warning: " << c.error << "\n";
    }

    if (f.once || (f.max_iterations > 0 && iteration >= f.max_iterations)) break;
    sleep_interruptible(interval_s);
  }
  ctx.exit_code = any_alert ? 2 : any_error ? 3 : 0;
}

}  // namespace

void register_watch_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<WatchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "watch",
      "Key leak detector: compares each provider's own usage report with tokfence's log and alerts when the\n"
      "provider saw more than went through tokfence (a key used somewhere else). Needs the provider's admin\n"
      "key for its usage api: 'tokfence vault add openai-admin -', 'tokfence vault add anthropic-admin -'.\n"
      "Exit status: 0 no alert, 2 an alert was raised, 3 a provider could not be checked. See docs/WATCH.md.\n"
      "Examples:\n"
      "  tokfence watch --period 24h --interval 15m          # keep watching, check every 15 minutes\n"
      "  tokfence watch --once --json --provider openai       # one check, machine-readable\n"
      "  tokfence watch --once --usage-endpoint mistral=https://usage.example.com/v1/usage\n"
      "  tokfence watch --auto-revoke                         # revoke a provider the moment it alerts\n"
      "  tokfence watch --history                             # alerts raised so far");
  cmd->add_option("--period", f->period, "How far back each check looks (default 24h; at most 31d)");
  cmd->add_option("--interval", f->interval, "Time between checks in continuous mode (default 15m)");
  cmd->add_option("--settle", f->settle,
                  "Ignore the most recent stretch, which usage apis have not reported yet (default 10m)");
  cmd->add_option("--idle-window", f->idle_window,
                  "Alert on any provider usage after this long without tokfence traffic (default 30m)");
  cmd->add_flag("--no-idle", f->no_idle, "Do not run the idle-time check");
  cmd->add_option("--threshold-usd", f->threshold_usd, "Alert when the provider's cost exceeds tokfence's by more (default 0.50)");
  cmd->add_option("--threshold-tokens", f->threshold_tokens, "Alert when the provider's tokens exceed tokfence's by more (default 10000)");
  cmd->add_option("--threshold-requests", f->threshold_requests,
                  "Alert when the provider's request count exceeds tokfence's by more (default 10)");
  cmd->add_flag("--once", f->once, "Run one check and exit");
  cmd->add_option("--max-iterations", f->max_iterations, "Stop after N checks in continuous mode (0 = run until Ctrl-C)");
  cmd->add_flag("--json", f->json_out, "One JSON object per check on stdout (schema: docs/WATCH.md)");
  cmd->add_option("--provider", f->providers, "Check only this provider (repeatable; default: every provider in the vault)");
  cmd->add_option("--usage-endpoint", f->endpoints,
                  "P=URL: read provider P's usage from URL (prefix openai:, anthropic: or simple: to pick the shape)");
  cmd->add_flag("--auto-revoke", f->auto_revoke, "Revoke a provider as soon as it raises an alert (loudly)");
  cmd->add_flag("--history", f->history, "Print the alerts stored so far (newest first) and exit");
  cmd->add_option("--limit", f->history_limit, "With --history: how many alerts (default 50)");
  cmd->callback([&ctx, f] { run_watch(ctx, *f); });
}

}  // namespace tokfence::cli
