#pragma once
// Egress policy: which hosts an agent behind a per-launch or per-run socket may reach through the
// daemon's forward proxy (docs/EGRESS.md). Deny by default. A listener's policy is its explicit
// allow and deny rules and the presets it names; [egress] allow in config.toml applies to every
// labeled listener. A deny rule wins over every allow.
//
// Rules are "HOST[:PORT]": HOST a DNS name (lower-cased, a trailing dot dropped), "*.example.com"
// (subdomains only, never example.com itself), or an IP literal (IPv6 in brackets); PORT defaults
// to 443. An IP literal is matched only by a rule naming that literal; wildcards and presets match
// names only. Pure functions (tests/unit/test_proxy_egress_policy.cpp).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/error.hpp"

namespace tokfence::proxy::egress {

inline constexpr std::uint16_t kDefaultPort = 443;

struct Rule {
  std::string host;  // lower case; "*.example.com"; an IPv6 literal without brackets
  std::uint16_t port = kDefaultPort;
  bool wildcard = false;  // host is "*.<suffix>"
  bool ip = false;        // host is an IP literal
  // "host:port", "[v6]:port": the form rules are listed and logged in.
  std::string text() const;
  bool operator==(const Rule& o) const { return host == o.host && port == o.port; }
};

// A destination as a client named it: a host (normalised like a rule's) and a port.
struct Destination {
  std::string host;  // lower case, no trailing dot, IPv6 without brackets
  std::uint16_t port = 0;
  bool ip = false;
  std::string text() const;  // "host:port", "[v6]:port"
};

// "HOST[:PORT]" -> a rule. Errors name the entry: "egress: rule 'x y': ...".
Result<Rule> parse_rule(std::string_view text);
// A request's authority ("host:port", "[v6]:port", or "host" with `default_port`) -> a destination.
Result<Destination> parse_authority(std::string_view authority, std::uint16_t default_port);
// Whether `rule` matches `to` (case already normalised).
bool matches(const Rule& rule, const Destination& to);

// The built-in presets by name (telegram, discord, slack, whatsapp, web-search, github, npm, pypi).
const std::map<std::string, std::vector<std::string>>& builtin_presets();

// Where a name is connected instead of resolving it ([egress.resolve]): trusted as given.
struct Mapped {
  std::string address;  // an IP literal (IPv6 without brackets)
  std::optional<std::uint16_t> port;  // nullopt: the port the client asked for
};

// [egress.domains."<host>"], checked: what happens inside connections to a host (docs/EGRESS.md,
// "Inspected hosts"). Paths are matched against the request's path without its query: an entry
// with a '*' is a glob ('*' matches any run of characters, '/' included), any other entry a
// prefix that ends at a segment boundary ("/repos" matches "/repos" and "/repos/x", not
// "/reposx").
struct DomainRules {
  std::string host;       // lower case; "*.example.com" = subdomains only
  bool wildcard = false;
  enum class Mode { automatic, inspect, tunnel } mode = Mode::automatic;
  std::vector<std::string> methods;      // upper case; empty = any
  std::vector<std::string> allow_paths;  // empty = any
  std::vector<std::string> deny_paths;
  bool has_l7_rules() const { return !methods.empty() || !allow_paths.empty() || !deny_paths.empty(); }
};

// [egress] from config.toml, checked: the rules every labeled listener allows, the presets
// (built-ins merged with [egress.presets.<name>]), the resolve map and the per-host rules.
struct Settings {
  std::vector<Rule> allow;
  std::map<std::string, std::vector<Rule>> presets;
  std::map<std::string, Mapped> resolve;  // by normalised name
  std::vector<DomainRules> domains;       // exact names first, then wildcards, longest first
  std::string extra_ca_file;              // [egress] extra_ca_file, as given (checked readable)
};

// The rules for `host` (normalised): an exact entry, else the longest matching wildcard; null
// when none applies.
const DomainRules* find_domain(const Settings& settings, std::string_view host);
// Whether `host` (normalised) matches a host pattern ("name" or "*.suffix", subdomains only).
bool host_pattern_matches(std::string_view pattern, std::string_view host);
// Whether a request's path (query stripped) is allowed by `rules`; `why` names the rule that
// refused it: "deny_paths:<entry>" or "allow_paths".
bool path_allowed(const DomainRules& rules, std::string_view path, std::string& why);
// Errors name the bad entry (and the config key it came from).
Result<Settings> compile_settings(const Config::Egress& config);

// One listener's policy.
struct Policy {
  std::vector<Rule> allow;
  std::vector<Rule> deny;
  std::vector<std::string> presets;  // names known to Settings::presets
  // The vault secrets bound to hosts that this fence was given (`run --secret VAR=NAME`, `launch
  // --secret`, `--telegram-secret`): the only placeholders substituted in its requests. A grant,
  // not a lookup: without it any agent allowed to reach a bound host could use every secret bound
  // there by guessing its name.
  std::vector<std::string> secrets;
};

// The `egress` field of open_proxy_socket: {"allow": [...], "presets": [...], "secrets": [...]}.
// Absent/null: an empty policy (nothing but [egress] allow). An unknown preset, a malformed rule
// or secret name fails, naming it.
Result<Policy> policy_from_json(const nlohmann::json& field, const Settings& settings);
// {"allow": [...], "deny": [...], "presets": [...], "secrets": [...]}
nlohmann::json policy_json(const Policy& policy);

// Adds `rule` to the allow list (removing an equal deny), or denies it (removing an equal allow
// and adding an explicit deny, which wins over presets, wildcards and [egress] allow).
void allow(Policy& policy, const Rule& rule);
void deny(Policy& policy, const Rule& rule);

struct Decision {
  bool allowed = false;
  // Which rule decided: "allow:HOST:PORT", "preset:NAME:HOST:PORT", "config:HOST:PORT",
  // "deny:HOST:PORT" or "default-deny".
  std::string rule;
};
Decision decide(const Policy& policy, const Settings& settings, const Destination& to);

// A listener's policy, swapped as a whole: connections read a snapshot when they start, so a
// change applies from the next connection on.
class LivePolicy {
 public:
  explicit LivePolicy(Policy policy) : policy_(std::make_shared<const Policy>(std::move(policy))) {}
  std::shared_ptr<const Policy> snapshot() const {
    std::lock_guard lock(mutex_);
    return policy_;
  }
  template <class Fn>
  void update(Fn&& fn) {
    std::lock_guard lock(mutex_);
    Policy copy = *policy_;
    fn(copy);
    policy_ = std::make_shared<const Policy>(std::move(copy));
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Policy> policy_;
};

}  // namespace tokfence::proxy::egress
