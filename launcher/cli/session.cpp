// tokfence session new|list|show|revoke|reset: ImmuneFence's agent sessions (docs/IMMUNEFENCE.md).
// Sessions live in the daemon (it signs their tokens and watches their traffic), so every command
// here asks the running daemon; without one it says how to start it and changes nothing.
#include <iostream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/money.hpp"
#include "core/text_format.hpp"
#include "launcher/cli/cli.hpp"
#include "proxy/control/protocol.hpp"

namespace tokfence::cli {
namespace {

using proxy::json;

json ask(Context& ctx, const json& request) {
  if (!proxy::running_daemon(ctx.home))
    throw UserError("session: the daemon is not running (sessions live in it): start it with 'tokfence start -d'");
  auto reply = proxy::control_call(ctx.home, request);
  if (!reply) throw UserError(reply.error());
  return *reply;
}

// "8h", "30m", "2d", "90s" -> seconds.
std::int64_t parse_ttl(const std::string& text) {
  if (text.size() < 2) throw UserError("--ttl '" + text + "': write a number and a unit, e.g. 8h, 30m, 2d");
  const char unit = text.back();
  const std::string digits = text.substr(0, text.size() - 1);
  if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos)
    throw UserError("--ttl '" + text + "': write a number and a unit, e.g. 8h, 30m, 2d");
  const std::int64_t n = std::stoll(digits);
  const std::int64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
  if (scale == 0) throw UserError("--ttl '" + text + "': the unit must be s, m, h or d");
  return n * scale;
}

void print_session(const json& s) {
  std::cout << "session " << printable(s.value("name", "")) << " (" << s.value("session_id", "") << ")\n";
  for (const char* key : {"kind", "client_id", "risk_state", "created_at", "expires_at", "listener"})
    if (s.contains(key) && s[key].is_string() && !s[key].get<std::string>().empty())
      std::cout << "  " << key << ": " << printable(s[key].get<std::string>()) << "\n";
  if (s.contains("limits")) std::cout << "  limits: " << printable(s["limits"].dump()) << "\n";
  if (s.contains("spent_today_pico")) std::cout << "  spent today: " << format_usd(s["spent_today_pico"].get<std::int64_t>()) << "\n";
  if (s.contains("transitions"))
    for (const auto& t : s["transitions"])
      std::cout << "  " << t.value("at", "") << "  " << t.value("from", "") << " -> " << t.value("to", "") << "  "
                << t.value("sensor", "") << ": " << printable(t.value("detail", ""))
                << (t.value("request_id", "").empty() ? "" : " (" + t.value("request_id", "") + ")") << "\n";
}

}  // namespace

void register_session_commands(CLI::App& app, Context& ctx) {
  auto* session = app.add_subcommand("session", "Agent sessions: capability tokens, limits and risk states (ImmuneFence)");
  session->require_subcommand(1);

  struct NewOptions {
    std::string name, ttl, budget;
    std::vector<std::string> providers, models, endpoints;
    int rpm = 0;
    bool json = false;
  };
  auto nopt = std::make_shared<NewOptions>();
  auto* add = session->add_subcommand("new", "Create a session and print its token (the API key an SDK sends)");
  add->add_option("--name", nopt->name, "Session name (letters, digits, - _ . :)")->required();
  add->add_option("--provider", nopt->providers, "Allowed provider (repeatable; default: all)");
  add->add_option("--model", nopt->models, "Allowed model, '*' globs (repeatable; default: all)");
  add->add_option("--endpoint", nopt->endpoints, "Allowed path after /<provider>, '*' globs (repeatable)");
  add->add_option("--budget", nopt->budget, "Daily budget of this session in USD, e.g. 5 or 0.50");
  add->add_option("--rpm", nopt->rpm, "Requests per minute of this session")->check(CLI::Range(1, 100000));
  add->add_option("--ttl", nopt->ttl, "Lifetime, e.g. 8h (default [immunefence] session_ttl_hours)");
  add->add_flag("--json", nopt->json, "Print {name, session_id, token, expires_at}");
  add->callback([&ctx, nopt] {
    json limits = {{"providers", nopt->providers}, {"models", nopt->models}, {"endpoints", nopt->endpoints},
                   {"rpm", nopt->rpm}};
    if (!nopt->budget.empty()) {
      auto pico = parse_usd(nopt->budget);
      if (!pico || *pico <= 0) throw UserError("--budget '" + nopt->budget + "': write a positive amount in USD, e.g. 5 or 0.50");
      limits["budget_daily_pico"] = *pico;
    }
    json request = {{"op", "session_new"}, {"name", nopt->name}, {"kind", "manual"}, {"limits", limits}};
    if (!nopt->ttl.empty()) request["ttl_seconds"] = parse_ttl(nopt->ttl);
    const json reply = ask(ctx, request);
    if (nopt->json) {
      std::cout << reply.dump(2) << "\n";
      return;
    }
    std::cout << "session " << printable(reply.value("name", "")) << " created, token valid until "
              << reply.value("expires_at", "") << ":\n"
              << reply.value("token", "") << "\n"
              << "Use it as the API key, or: eval \"$(tokfence env --session " << printable(reply.value("name", "")) << ")\"\n";
  });

  struct ListOptions {
    bool json = false, all = false;
  };
  auto lopt = std::make_shared<ListOptions>();
  auto* list = session->add_subcommand("list", "Live sessions (--all: ended ones too)");
  list->add_flag("--json", lopt->json, "Print JSON");
  list->add_flag("--all", lopt->all, "Include ended sessions (the last 200)");
  list->callback([&ctx, lopt] {
    const json reply = ask(ctx, {{"op", "session_list"}, {"all", lopt->all}});
    if (lopt->json) {
      std::cout << reply.dump(2) << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : reply["sessions"])
      rows.push_back({s.value("name", ""), s.value("kind", ""), s.value("risk_state", ""), s.value("expires_at", ""),
                      format_usd(s.value("spent_today_pico", std::int64_t{0}))});
    if (lopt->all && reply.contains("history"))
      for (const auto& s : reply["history"])
        if (s.contains("ended_at"))
          rows.push_back({s.value("name", ""), s.value("kind", ""), s.value("risk_state", ""),
                          "ended " + s.value("ended_at", "") + " (" + s.value("end_reason", "") + ")", "-"});
    if (rows.empty()) {
      std::cout << "no sessions (tokfence session new --name NAME)\n";
      return;
    }
    rows.insert(rows.begin(), {"NAME", "KIND", "RISK", "EXPIRES", "SPENT TODAY"});
    for (const auto& row : rows)
      std::cout << pad(printable(row[0]), 24) << " " << pad(row[1], 7) << " " << pad(row[2], 7) << " " << pad(row[3], 26)
                << " " << row[4] << "\n";
  });

  for (const auto& [verb, help] : std::vector<std::pair<std::string, std::string>>{
           {"show", "A session's limits, risk state and its transitions"},
           {"revoke", "End a session: its tokens stop working at once"},
           {"reset", "Back to GREEN (a manual session gets a new token; the old ones stop)"}}) {
    struct Options {
      std::string name;
      bool json = false;
    };
    auto opt = std::make_shared<Options>();
    auto* cmd = session->add_subcommand(verb, help);
    cmd->add_option("name", opt->name, "Session name or id")->required();
    cmd->add_flag("--json", opt->json, "Print JSON");
    cmd->callback([&ctx, opt, verb] {
      const json reply = ask(ctx, {{"op", "session_" + verb}, {"name", opt->name}});
      if (opt->json) {
        std::cout << reply.dump(2) << "\n";
      } else if (verb == "show") {
        print_session(reply);
      } else if (verb == "revoke") {
        std::cout << "session " << printable(reply.value("name", "")) << " revoked\n";
      } else {
        std::cout << "session " << printable(reply.value("name", "")) << " is " << reply.value("risk_state", "") << "\n";
        if (reply.contains("token")) std::cout << "new token: " << reply["token"].get<std::string>() << "\n";
      }
    });
  }
}

}  // namespace tokfence::cli
