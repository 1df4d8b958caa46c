// budget, revoke, restore, kill, unkill, ratelimit: the containment controls from the command line.
//
// Every command validates its arguments first (nothing is sent or stored on bad input), then sends
// the control op to the running daemon, which stores the change and applies it to the next request;
// with no daemon running it writes the database directly and the daemon loads it when it starts.
#include <cstdio>
#include <iostream>
#include <string>

#include "core/error.hpp"
#include "core/names.hpp"
#include "launcher/cli/cli.hpp"
#include "core/text_format.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/controls/controls.hpp"
#include "proxy/controls/time_zone.hpp"

namespace tokfence::cli {
namespace {

using proxy::json;

struct Applied {
  json result;
  bool live = false;  // reached a running daemon
};

Applied apply(Context& ctx, const json& request) {
  if (proxy::running_daemon(ctx.home)) {
    auto reply = proxy::control_call(ctx.home, request);
    if (!reply) throw UserError(reply.error());
    return {*reply, true};
  }
  value_or_throw(ctx.home.ensure());
  auto result = proxy::apply_control_offline(ctx.config(), request);
  if (!result) throw UserError(result.error());
  return {*result, false};
}

std::string where(const Applied& a) {
  return a.live ? "applied to the running daemon" : "stored; the daemon applies it when it starts";
}

void print_json(const json& j) { std::cout << j.dump(2) << "\n"; }

std::string duration_text(std::int64_t seconds) {
  if (seconds <= 0) return "now";
  const std::int64_t d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60;
  std::string out;
  if (d) out += std::to_string(d) + "d ";
  if (d || h) out += std::to_string(h) + "h ";
  out += std::to_string(m) + "m";
  return out;
}

std::string bar(double percent, int width = 20) {
  int filled = static_cast<int>(percent / 100.0 * width + 0.5);
  filled = std::max(0, std::min(width, filled));
  return "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '-') + "]";
}

void print_budgets(const json& status, bool live) {
  const json& budgets = status.value("budgets", json::array());
  if (budgets.empty()) {
    std::cout << "no budgets set (set one with 'tokfence budget set global 10 monthly')\n";
    return;
  }
  std::cout << pad("BUDGET", 12) << pad("PERIOD", 9) << pad("SPENT / LIMIT", 24) << pad("USED", 30) << "RESETS\n";
  for (const auto& b : budgets) {
    const double pct = b.value("percent", 0.0);
    char pct_text[32];
    std::snprintf(pct_text, sizeof pct_text, "%5.1f%%", pct);
    std::string line = pad(b.value("scope", ""), 12) + pad(b.value("period", ""), 9) +
                       pad(b.value("spent_text", "") + " / " + b.value("limit_text", ""), 24) +
                       pad(bar(pct) + " " + pct_text, 30) + b.value("resets_at", "") + " (in " +
                       duration_text(b.value("resets_in_seconds", std::int64_t{0})) + ")";
    if (pct >= 100)
      line += "  EXHAUSTED";
    else if (b.value("warned", false))
      line += "  WARNING (>= " + std::to_string(b.value("warning_percent", 0)) + "%)";
    std::cout << line << "\n";
    if (b.value("reserved_pico", std::int64_t{0}) > 0)
      std::cout << "            + " << b.value("reserved_text", "") << " reserved by requests in flight\n";
    if (auto unknown = b.value("unknown_cost_requests", std::int64_t{0}); unknown > 0)
      std::cout << "            ! " << unknown << " request(s) of unknown price (" << b.value("unknown_cost_tokens", std::int64_t{0})
                << " tokens) are not in the spent amount: add [pricing.\"<model>\"] to config.toml\n";
  }
  std::cout << "(time zone " << status.value("timezone", "") << "; "
            << (live ? "live from the running daemon" : "daemon not running: spent as logged") << ")\n";
}

void register_budget(CLI::App& app, Context& ctx) {
  auto* budget = app.add_subcommand(
      "budget",
      "Spending limits in US dollars per calendar day or month, per provider or for all together.\n"
      "Over a budget, requests get 429 tokfence_budget_exceeded until the window resets.\n"
      "Examples:\n  tokfence budget set openai 5 daily\n  tokfence budget set global 100 monthly\n"
      "  tokfence budget status\n  tokfence budget clear openai");
  budget->require_subcommand(1);

  struct SetArgs {
    std::string scope, amount, period;
  };
  auto set_args = std::make_shared<SetArgs>();
  auto* set = budget->add_subcommand(
      "set",
      "Sets (or replaces) the budget of a provider or of all providers together ('global').\n"
      "Windows are calendar days/months in [budget] timezone (default: the machine's zone).\n"
      "Example:\n  tokfence budget set anthropic 12.50 monthly");
  set->add_option("scope", set_args->scope, "a provider name, or 'global'")->required();
  set->add_option("amount_usd", set_args->amount, "US dollars, e.g. 5 or 12.50")->required();
  set->add_option("period", set_args->period, "daily or monthly")->required();
  set->callback([&ctx, set_args] {
    const Config& config = ctx.config();
    value_or_throw(proxy::check_budget_scope(config, set_args->scope));
    value_or_throw(proxy::parse_budget_amount(set_args->amount));
    if (!proxy::parse_budget_period(set_args->period)) {
      std::string shown;
      for (char c : set_args->period.substr(0, 40)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
      throw UserError("budget period: unknown: '" + shown + "': use daily or monthly");
    }
    auto a = apply(ctx, {{"op", "budget_set"},
                         {"scope", set_args->scope},
                         {"amount", set_args->amount},
                         {"period", set_args->period}});
    const json& b = a.result;
    std::cout << "budget " << b.value("scope", "") << ": " << b.value("limit_text", "") << " " << b.value("period", "")
              << ", spent " << b.value("spent_text", "") << " so far, resets at " << b.value("resets_at", "") << " ("
              << where(a) << ")\n";
  });

  auto as_json = std::make_shared<bool>(false);
  auto* status = budget->add_subcommand(
      "status",
      "Shows each budget: spent, limit, percent used, when the window resets, and requests of\n"
      "unknown price (not counted in spent).\nExamples:\n  tokfence budget status\n"
      "  tokfence budget status --json | jq '.budgets[] | {scope, percent}'");
  status->add_flag("--json", *as_json, "machine-readable output");
  status->callback([&ctx, as_json] {
    auto a = apply(ctx, {{"op", "budget_status"}});
    if (*as_json) {
      json out = a.result;
      out.erase("ok");
      out["daemon_running"] = a.live;
      print_json(out);
    } else {
      print_budgets(a.result, a.live);
    }
  });

  auto clear_scope = std::make_shared<std::string>();
  auto* clear = budget->add_subcommand("clear",
                                       "Removes the budget of a provider or the global one.\n"
                                       "Example:\n  tokfence budget clear global");
  clear->add_option("scope", *clear_scope, "a provider name, or 'global'")->required();
  clear->callback([&ctx, clear_scope] {
    if (*clear_scope != "global") value_or_throw(check_provider_name(*clear_scope));
    auto a = apply(ctx, {{"op", "budget_clear"}, {"scope", *clear_scope}});
    if (a.result.value("cleared", false))
      std::cout << "budget " << *clear_scope << ": cleared (" << where(a) << ")\n";
    else
      std::cout << "budget " << *clear_scope << ": none was set\n";
  });
}

void register_revoke(CLI::App& app, Context& ctx) {
  auto provider = std::make_shared<std::string>();
  auto* revoke = app.add_subcommand(
      "revoke",
      "Refuses every request to one provider (403 tokfence_provider_revoked) until 'tokfence restore'.\n"
      "The key stays in the vault.\nExample:\n  tokfence revoke openai");
  revoke->add_option("provider", *provider, "a configured provider")->required();
  revoke->callback([&ctx, provider] {
    value_or_throw(proxy::check_known_provider(ctx.config(), *provider));
    auto a = apply(ctx, {{"op", "revoke"}, {"provider", *provider}});
    std::cout << "provider " << *provider << ": revoked" << (a.result.value("changed", true) ? "" : " (already)")
              << "; its requests get 403 until 'tokfence restore " << *provider << "' (" << where(a) << ")\n";
  });

  auto restore_provider = std::make_shared<std::string>();
  auto* restore = app.add_subcommand("restore",
                                     "Lets requests to a revoked provider through again.\n"
                                     "Example:\n  tokfence restore openai");
  restore->add_option("provider", *restore_provider, "a revoked provider")->required();
  restore->callback([&ctx, restore_provider] {
    value_or_throw(check_provider_name(*restore_provider));
    auto a = apply(ctx, {{"op", "restore"}, {"provider", *restore_provider}});
    if (a.result.value("changed", false))
      std::cout << "provider " << *restore_provider << ": restored (" << where(a) << ")\n";
    else
      std::cout << "provider " << *restore_provider << ": was not revoked\n";
  });
}

void register_kill(CLI::App& app, Context& ctx) {
  auto* kill = app.add_subcommand(
      "kill",
      "Kill switch: refuses every request to every provider (503 tokfence_killed), including\n"
      "providers added later, until 'tokfence unkill'. Streams already running are not cut.\n"
      "Example:\n  tokfence kill");
  kill->callback([&ctx] {
    auto a = apply(ctx, {{"op", "kill"}});
    std::cout << "kill switch: ON" << (a.result.value("changed", true) ? "" : " (already)")
              << ": every request is refused until 'tokfence unkill' (" << where(a) << ")\n";
  });
  auto* unkill = app.add_subcommand("unkill", "Turns the kill switch off again.\nExample:\n  tokfence unkill");
  unkill->callback([&ctx] {
    auto a = apply(ctx, {{"op", "unkill"}});
    std::cout << "kill switch: off" << (a.result.value("changed", true) ? "" : " (it was not on)") << " (" << where(a)
              << ")\n";
  });
}

void register_ratelimit(CLI::App& app, Context& ctx) {
  auto* rl = app.add_subcommand(
      "ratelimit",
      "Requests-per-minute limits per provider: at most <rpm> requests in any 60 seconds; beyond\n"
      "that, 429 tokfence_rate_limited with Retry-After.\n"
      "Examples:\n  tokfence ratelimit set openai 60\n  tokfence ratelimit clear openai");
  rl->require_subcommand(1);
  struct SetArgs {
    std::string provider, rpm;
  };
  auto args = std::make_shared<SetArgs>();
  auto* set = rl->add_subcommand("set", "Sets a provider's limit (1 to 100000 requests per minute).\n"
                                        "Example:\n  tokfence ratelimit set anthropic 30");
  set->add_option("provider", args->provider, "a configured provider")->required();
  set->add_option("rpm", args->rpm, "requests per minute, 1 to 100000")->required();
  set->callback([&ctx, args] {
    value_or_throw(proxy::check_known_provider(ctx.config(), args->provider));
    value_or_throw(proxy::parse_rpm(args->rpm));
    auto a = apply(ctx, {{"op", "ratelimit_set"}, {"provider", args->provider}, {"rpm", args->rpm}});
    std::cout << "rate limit " << args->provider << ": " << a.result.value("rpm", 0) << " requests per minute ("
              << where(a) << ")\n";
  });
  auto clear_provider = std::make_shared<std::string>();
  auto* clear = rl->add_subcommand("clear", "Removes a provider's limit.\nExample:\n  tokfence ratelimit clear openai");
  clear->add_option("provider", *clear_provider, "a provider")->required();
  clear->callback([&ctx, clear_provider] {
    value_or_throw(check_provider_name(*clear_provider));
    auto a = apply(ctx, {{"op", "ratelimit_clear"}, {"provider", *clear_provider}});
    if (a.result.value("cleared", false))
      std::cout << "rate limit " << *clear_provider << ": cleared (" << where(a) << ")\n";
    else
      std::cout << "rate limit " << *clear_provider << ": none was set\n";
  });
}

}  // namespace

void register_control_commands(CLI::App& app, Context& ctx) {
  register_budget(app, ctx);
  register_revoke(app, ctx);
  register_kill(app, ctx);
  register_ratelimit(app, ctx);
}

}  // namespace tokfence::cli
