// `tokfence egress allow|deny|list`: the egress policy of running fences, changed live; and the
// checking of `run`/`launch --allow HOST[:PORT]` and `--egress-preset NAME` (docs/EGRESS.md).
//
// A fence's policy lives in the daemon, on the listener its launch or run opened (caller
// "openclaw:<name>" for a launch, the program's name for a run); a change applies from the next
// connection on. The flags are checked here with the daemon's own parser (proxy/egress) and
// config, so a typo stops the command before anything starts; the daemon checks them again.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "launcher/cli/cli.hpp"
#include "launcher/openclaw/config.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/egress/policy.hpp"

namespace tokfence::cli {

using proxy::json;

namespace {

// The parser's message, plus an example of the syntax unless it already shows one.
std::string with_example(const std::string& message) {
  if (message.find("e.g.") != std::string::npos || message.find("write ") != std::string::npos) return message;
  return message + " (expected HOST[:PORT], e.g. api.telegram.org, *.slack.com or registry.npmjs.org:443)";
}

}  // namespace

json egress_field(Context& ctx, const std::vector<std::string>& allow, const std::vector<std::string>& presets) {
  if (allow.empty() && presets.empty()) return json();
  for (const auto& rule : allow)
    if (auto parsed = proxy::egress::parse_rule(rule); !parsed)
      throw UserError("--allow: " + with_example(parsed.error().message));
  if (!presets.empty()) {
    auto settings = proxy::egress::compile_settings(ctx.config().egress);
    if (!settings) throw UserError(settings.error());
    for (const auto& name : presets) {
      if (settings->presets.count(name)) continue;
      std::string known;
      for (const auto& [n, rules] : settings->presets) known += (known.empty() ? "" : ", ") + n;
      std::string shown;
      for (char c : name.substr(0, 40)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
      throw UserError("--egress-preset: unknown preset '" + shown + "' (known: " + known +
                      "; define one as [egress.presets.<name>] in config.toml)");
    }
  }
  return json{{"allow", allow}, {"presets", presets}};
}

namespace {

struct Target {
  std::string launch;  // --launch NAME
  std::string agent;   // --agent PROGRAM
  bool json = false;
};

std::string caller_of(const Target& t) {
  if (!t.launch.empty()) return "openclaw:" + t.launch;
  return t.agent;
}

std::string describe(const std::string& caller) {
  if (caller.rfind("openclaw:", 0) == 0) return "launch '" + caller.substr(9) + "'";
  return "agent '" + caller + "'";
}

std::string flag_for(const std::string& caller) {
  if (caller.rfind("openclaw:", 0) == 0) return "--launch " + caller.substr(9);
  return "--agent " + caller;
}

// Every listener the daemon has with a policy: [{caller, allow, deny, presets}, ...].
json listeners(Context& ctx) {
  if (!proxy::running_daemon(ctx.home))
    throw UserError("egress: no daemon running, so no launch or agent either: egress rules belong to a running fence; "
                    "start one with 'tokfence run <agent> --allow HOST' or 'tokfence launch --allow HOST'");
  auto reply = proxy::control_call(ctx.home, {{"op", "egress"}, {"action", "list"}});
  if (!reply) throw UserError("egress: " + reply.error().message);
  json out = reply->value("listeners", json::array());
  return out.is_array() ? out : json::array();
}

bool has_caller(const json& list, const std::string& caller) {
  return std::any_of(list.begin(), list.end(), [&](const json& l) { return l.value("caller", "") == caller; });
}

// The caller a command acts on: --launch/--agent, which must be running; with neither, the one
// running fence, if there is exactly one.
std::string resolve_caller(const Target& t, const json& list, const std::string& command) {
  if (!t.launch.empty() && !t.agent.empty()) throw UserError("egress " + command + ": --launch and --agent exclude each other");
  if (!t.launch.empty()) {
    value_or_throw(launcher::check_launch_name(t.launch));
    if (!has_caller(list, caller_of(t)))
      throw UserError("egress: no running launch '" + t.launch + "': see 'tokfence launch status --name " + t.launch + "'");
    return caller_of(t);
  }
  if (!t.agent.empty()) {
    if (!has_caller(list, t.agent))
      throw UserError("egress: no running agent '" + t.agent + "': start it with 'tokfence run " + t.agent + "'");
    return t.agent;
  }
  std::vector<std::string> callers;
  for (const auto& l : list) {
    std::string c = l.value("caller", "");
    if (!c.empty() && std::find(callers.begin(), callers.end(), c) == callers.end()) callers.push_back(c);
  }
  if (callers.empty()) throw UserError("egress " + command + ": no launch or agent is running");
  if (callers.size() > 1) {
    std::string choices;
    for (const auto& c : callers) choices += (choices.empty() ? "" : ", ") + flag_for(c);
    throw UserError("egress " + command + ": several fences are running: name one with " + choices);
  }
  return callers.front();
}

std::string joined(const json& list) {
  std::string out;
  if (list.is_array())
    for (const auto& v : list)
      if (v.is_string()) out += (out.empty() ? "" : " ") + v.get<std::string>();
  return out.empty() ? "-" : out;
}

void change(Context& ctx, const Target& t, const std::string& action, const std::string& rule) {
  if (auto parsed = proxy::egress::parse_rule(rule); !parsed)
    throw UserError("egress " + action + ": " + with_example(parsed.error().message));
  json list = listeners(ctx);
  std::string caller = resolve_caller(t, list, action);
  auto reply =
      proxy::control_call(ctx.home, {{"op", "egress"}, {"caller", caller}, {"action", action}, {"rule", rule}});
  if (!reply) throw UserError("egress " + action + ": " + reply.error().message);
  std::cout << describe(caller) << ": " << (action == "allow" ? "allowed " : "denied ") << rule
            << " (from its next connection on)\n";
}

void list_policies(Context& ctx, const Target& t) {
  json list = listeners(ctx);
  json shown = json::array();
  if (!t.launch.empty() || !t.agent.empty()) {
    std::string caller = resolve_caller(t, list, "list");
    for (const auto& l : list)
      if (l.value("caller", "") == caller) shown.push_back(l);
  } else {
    shown = list;
  }
  if (t.json) {
    std::cout << json{{"listeners", shown}}.dump(2) << "\n";
    return;
  }
  if (shown.empty()) {
    std::cout << "no launch or agent is running\n";
    return;
  }
  for (const auto& l : shown) {
    const std::string caller = l.value("caller", "");
    std::cout << describe(caller) << (caller.rfind("openclaw:", 0) == 0 ? " (caller " + caller + ")" : "") << "\n"
              << "  allow:   " << joined(l.value("allow", json())) << "\n"
              << "  deny:    " << joined(l.value("deny", json())) << "\n"
              << "  presets: " << joined(l.value("presets", json())) << "\n"
              << "  secrets: " << joined(l.value("secrets", json())) << "\n";
  }
}

void add_target_flags(CLI::App* cmd, Target& t) {
  cmd->add_option("--launch", t.launch, "a running 'tokfence launch' by its --name");
  cmd->add_option("--agent", t.agent, "a running 'tokfence run' by its program (codex, claude, opencode)");
}

}  // namespace

void register_egress_commands(CLI::App& app, Context& ctx) {
  auto* egress = app.add_subcommand(
      "egress",
      "The hosts a running launch or agent may reach through tokfence's forward proxy (deny by default).\n"
      "Start with rules: 'tokfence run|launch --allow HOST[:PORT] --egress-preset NAME'; change them live\n"
      "here (from the fence's next connection on). With neither --launch nor --agent, the one running fence.\n"
      "Examples:\n  tokfence egress allow api.telegram.org --launch tokfence-openclaw\n"
      "  tokfence egress deny '*.slack.com' --agent codex\n  tokfence egress list --json");
  egress->require_subcommand(1);

  for (std::string action : {"allow", "deny"}) {
    auto target = std::make_shared<Target>();
    auto rule = std::make_shared<std::string>();
    auto* cmd = egress->add_subcommand(
        action, action == "allow" ? "Lets a running fence reach HOST[:PORT] (port 443 unless given; *.example.com for subdomains).\n"
                                    "Example:\n  tokfence egress allow registry.npmjs.org --agent codex"
                                  : "Refuses HOST[:PORT] to a running fence, over any allow rule or preset.\n"
                                    "Example:\n  tokfence egress deny api.telegram.org --launch tokfence-openclaw");
    cmd->add_option("rule", *rule, "HOST[:PORT]")->required();
    add_target_flags(cmd, *target);
    cmd->callback([&ctx, target, rule, action] { change(ctx, *target, action, *rule); });
  }

  auto list_target = std::make_shared<Target>();
  auto* list = egress->add_subcommand("list",
                                      "Shows each running fence's allow and deny rules and presets.\n"
                                      "Example:\n  tokfence egress list --launch tokfence-openclaw --json");
  add_target_flags(list, *list_target);
  list->add_flag("--json", list_target->json, "print JSON: {\"listeners\": [{caller, allow, deny, presets, secrets}, ...]}");
  list->callback([&ctx, list_target] { list_policies(ctx, *list_target); });
}

}  // namespace tokfence::cli
