#include "proxy/egress/policy.hpp"

#include <algorithm>
#include <cctype>

#include "core/glob.hpp"
#include "core/names.hpp"
#include "proxy/egress/address.hpp"

namespace tokfence::proxy::egress {
namespace {

using nlohmann::json;

// Entries quoted in messages: at most 100 bytes, anything unprintable as '?'.
std::string shown(std::string_view text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < 100; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return out + (text.size() > 100 ? "...'" : "'");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A DNS name: labels of letters, digits, '-' and '_' (1-63 bytes, no leading or trailing '-'),
// at most 253 bytes in all.
bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    auto dot = name.find('.', start);
    auto label = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

Result<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail("port must be a number between 1 and 65535");
  unsigned v = 0;
  for (char c : text) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v == 0 || v > 65535) return fail("port must be a number between 1 and 65535");
  return static_cast<std::uint16_t>(v);
}

struct HostPort {
  std::string host;  // as written, brackets removed
  bool bracketed = false;
  std::optional<std::uint16_t> port;
};

// "host", "host:port", "[v6]", "[v6]:port".
Result<HostPort> split_host_port(std::string_view text) {
  HostPort out;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return fail("'[' without ']'");
    out.host = std::string(text.substr(1, close - 1));
    out.bracketed = true;
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail("unexpected text after ']'");
      auto port = parse_port(rest.substr(1));
      if (!port) return std::unexpected(port.error());
      out.port = *port;
    }
    return out;
  }
  auto colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    if (text.find(':') != colon) return fail("an IPv6 address must be in brackets, e.g. [2001:db8::1]:443");
    auto port = parse_port(text.substr(colon + 1));
    if (!port) return std::unexpected(port.error());
    out.port = *port;
    text = text.substr(0, colon);
  }
  out.host = std::string(text);
  return out;
}

// The host part, normalised: lower case, one trailing dot dropped; an IP literal in its canonical
// text. Sets `ip`.
Result<std::string> normalise_host(const HostPort& hp, bool allow_wildcard, bool& ip, bool& wildcard) {
  std::string host = lower(hp.host);
  ip = wildcard = false;
  if (host.empty()) return fail("no host");
  // The root's dot first: "127.0.0.1." is the address 127.0.0.1 to every resolver, so it must be
  // one here too (else it would pass as a name, outside the IP-literal rules).
  if (!hp.bracketed && host.size() > 1 && host.back() == '.') host.pop_back();
  if (auto a = parse_ip(host)) {
    if (a->is_v6() && !hp.bracketed) return fail("an IPv6 address must be in brackets, e.g. [2001:db8::1]:443");
    if (a->is_v4() && hp.bracketed) return fail("only IPv6 addresses go in brackets");
    ip = true;
    return a->to_string();
  }
  if (hp.bracketed) return fail("not an IPv6 address in brackets");
  // An all-numeric last label is no DNS name (RFC 3696 section 2), and resolvers read such forms
  // ("127.1", "0x7f.0x1", "2130706433") as addresses: refused rather than guessed at.
  const std::string_view last = std::string_view(host).substr(host.rfind('.') == std::string::npos ? 0 : host.rfind('.') + 1);
  const bool hex = last.size() > 2 && last.starts_with("0x") &&
                   std::all_of(last.begin() + 2, last.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (hex || (!last.empty() && std::all_of(last.begin(), last.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })))
    return fail("not a host name or IP address (an all-numeric last label reads as an address: write the address itself)");
  if (allow_wildcard && host.rfind("*.", 0) == 0) {
    wildcard = true;
    if (!valid_name(host.substr(2)) || host.substr(2).find('.') == std::string::npos)
      return fail("a wildcard needs a domain with a dot after '*.', e.g. *.example.com");
    return host;
  }
  if (host.find('*') != std::string::npos) return fail("'*' only as the whole first label, e.g. *.example.com");
  if (!valid_name(host)) return fail("not a host name or IP address");
  return host;
}

std::string host_port_text(const std::string& host, bool ip, std::uint16_t port) {
  const bool v6 = ip && host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<std::vector<Rule>> parse_rules(const std::vector<std::string>& texts, const std::string& where) {
  std::vector<Rule> out;
  for (const auto& t : texts) {
    auto r = parse_rule(t);
    if (!r) return fail(where + ": " + r.error().message);
    out.push_back(*r);
  }
  return out;
}

}  // namespace

std::string Rule::text() const { return host_port_text(host, ip, port); }
std::string Destination::text() const { return host_port_text(host, ip, port); }

Result<Rule> parse_rule(std::string_view text) {
  auto bad = [&](const std::string& why) { return fail("egress: rule " + shown(text) + ": " + why); };
  if (text.empty() || text.size() > 300) return bad("must be HOST[:PORT], e.g. api.example.com or *.example.com:8443");
  if (text.find("://") != std::string_view::npos || text.find('/') != std::string_view::npos)
    return bad("a host, not a URL: write api.example.com[:PORT]");
  auto hp = split_host_port(text);
  if (!hp) return bad(hp.error().message);
  Rule r;
  auto host = normalise_host(*hp, true, r.ip, r.wildcard);
  if (!host) return bad(host.error().message);
  r.host = *host;
  r.port = hp->port.value_or(kDefaultPort);
  return r;
}

Result<Destination> parse_authority(std::string_view authority, std::uint16_t default_port) {
  auto bad = [&](const std::string& why) { return fail("egress: destination " + shown(authority) + ": " + why); };
  if (authority.empty() || authority.size() > 300) return bad("must be HOST:PORT");
  if (authority.find('@') != std::string_view::npos) return bad("user information is not allowed");
  auto hp = split_host_port(authority);
  if (!hp) return bad(hp.error().message);
  Destination d;
  bool wildcard = false;
  auto host = normalise_host(*hp, false, d.ip, wildcard);
  if (!host) return bad(host.error().message);
  d.host = *host;
  d.port = hp->port.value_or(default_port);
  return d;
}

bool matches(const Rule& rule, const Destination& to) {
  return rule.port == to.port && rule.ip == to.ip && host_pattern_matches(rule.host, to.host);
}

const std::map<std::string, std::vector<std::string>>& builtin_presets() {
  static const std::map<std::string, std::vector<std::string>> presets = {
      {"telegram", {"api.telegram.org"}},
      {"discord", {"discord.com", "gateway.discord.gg", "cdn.discordapp.com"}},
      {"slack", {"slack.com", "*.slack.com"}},
      {"whatsapp", {"web.whatsapp.com", "*.whatsapp.net"}},
      {"web-search", {"api.search.brave.com", "api.tavily.com"}},
      {"github",
       {"github.com", "api.github.com", "codeload.github.com", "objects.githubusercontent.com",
        "raw.githubusercontent.com"}},
      {"npm", {"registry.npmjs.org"}},
      {"pypi", {"pypi.org", "files.pythonhosted.org"}},
  };
  return presets;
}

Result<Settings> compile_settings(const Config::Egress& config) {
  Settings s;
  auto allow = parse_rules(config.allow, "config: [egress] allow");
  if (!allow) return std::unexpected(allow.error());
  s.allow = std::move(*allow);
  for (const auto& [name, hosts] : builtin_presets()) {
    auto rules = parse_rules(hosts, "egress: preset '" + name + "'");
    if (!rules) return std::unexpected(rules.error());
    s.presets[name] = std::move(*rules);
  }
  for (const auto& [name, hosts] : config.presets) {
    if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        }))
      return fail("config: [egress.presets." + name + "]: a preset name is letters, digits, '-' and '_'");
    auto rules = parse_rules(hosts, "config: [egress.presets." + name + "] hosts");
    if (!rules) return std::unexpected(rules.error());
    s.presets[name] = std::move(*rules);
  }
  for (const auto& [name, target] : config.resolve) {
    const std::string where = "config: [egress.resolve] " + shown(name);
    HostPort key{name, false, std::nullopt};
    bool ip = false, wildcard = false;
    auto host = normalise_host(key, false, ip, wildcard);
    if (!host || ip) return fail(where + ": the key must be a host name");
    auto hp = split_host_port(target);
    if (!hp) return fail(where + ": " + shown(target) + ": " + hp.error().message);
    auto a = parse_ip(hp->host);
    if (!a || (a->is_v6() != hp->bracketed))
      return fail(where + ": " + shown(target) + " must be an IP address with an optional port, e.g. 127.0.0.1:8443 or [::1]:8443");
    s.resolve[*host] = Mapped{a->to_string(), hp->port};
  }
  for (const auto& [name, domain] : config.domains) {
    const std::string where = "config: [egress.domains." + shown(name) + "]";
    HostPort key{name, false, std::nullopt};
    DomainRules d;
    bool ip = false;
    auto host = normalise_host(key, true, ip, d.wildcard);
    if (!host || ip) return fail(where + ": the key must be a host name or \"*.suffix\", e.g. \"api.github.com\"");
    d.host = *host;
    d.mode = domain.mode == "inspect" ? DomainRules::Mode::inspect
             : domain.mode == "tunnel" ? DomainRules::Mode::tunnel
                                       : DomainRules::Mode::automatic;
    for (std::string m : domain.methods) {
      if (m.empty() || m.size() > 32 || !std::all_of(m.begin(), m.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }))
        return fail(where + " methods: " + shown(m) + " is not an HTTP method (letters only, e.g. \"GET\")");
      std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      d.methods.push_back(std::move(m));
    }
    for (const auto* list : {&domain.allow_paths, &domain.deny_paths})
      for (const auto& p : *list)
        if (p.empty() || p.front() != '/' || p.find_first_of("?# \t\r\n") != std::string::npos)
          return fail(where + (list == &domain.allow_paths ? " allow_paths: " : " deny_paths: ") + shown(p) +
                      " must be a path starting with '/' (no query), e.g. \"/repos/\" or \"/repos/*/pulls\"");
    d.allow_paths = domain.allow_paths;
    d.deny_paths = domain.deny_paths;
    if (d.mode == DomainRules::Mode::tunnel && d.has_l7_rules())
      return fail(where + ": methods and paths need mode = \"inspect\" (a tunnel is opaque: nothing in it can be checked)");
    s.domains.push_back(std::move(d));
  }
  // Exact names before wildcards, longer wildcards before shorter: find_domain takes the first match.
  std::stable_sort(s.domains.begin(), s.domains.end(), [](const DomainRules& a, const DomainRules& b) {
    if (a.wildcard != b.wildcard) return !a.wildcard;
    return a.host.size() > b.host.size();
  });
  s.extra_ca_file = config.extra_ca_file;
  return s;
}

bool host_pattern_matches(std::string_view pattern, std::string_view host) {
  if (!pattern.starts_with("*.")) return pattern == host;
  // "*.example.com": a.example.com and a.b.example.com, never example.com itself.
  const std::string_view suffix = pattern.substr(1);  // ".example.com"
  return host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix;
}

const DomainRules* find_domain(const Settings& settings, std::string_view host) {
  for (const auto& d : settings.domains)
    if (host_pattern_matches(d.host, host)) return &d;
  return nullptr;
}

namespace {

bool path_entry_matches(std::string_view entry, std::string_view path) {
  if (entry.find('*') != std::string_view::npos) return glob_match(entry, path);
  if (!path.starts_with(entry)) return false;
  return path.size() == entry.size() || entry.back() == '/' || path[entry.size()] == '/';
}

}  // namespace

bool path_allowed(const DomainRules& rules, std::string_view path, std::string& why) {
  // deny_paths without regard to case ("/ADMIN" is "/admin" to case-insensitive servers);
  // allow_paths as written (a wrong case is refused: the safe side).
  auto lower = [](std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
  };
  const std::string lower_path = lower(path);
  for (const auto& d : rules.deny_paths)
    if (path_entry_matches(lower(d), lower_path)) {
      why = "deny_paths:" + d;
      return false;
    }
  if (rules.allow_paths.empty()) return true;
  for (const auto& a : rules.allow_paths)
    if (path_entry_matches(a, path)) return true;
  why = "allow_paths";
  return false;
}

Result<Policy> policy_from_json(const json& field, const Settings& settings) {
  Policy p;
  if (field.is_null()) return p;
  if (!field.is_object()) return fail("egress: must be an object {\"allow\": [...], \"presets\": [...]}");
  for (const auto& [key, value] : field.items())
    if (key != "allow" && key != "presets" && key != "deny" && key != "secrets")
      return fail("egress: unknown field '" + key + "' (known: allow, deny, presets, secrets)");
  auto strings = [&](const char* key, std::vector<std::string>& out) -> Result<void> {
    if (!field.contains(key) || field[key].is_null()) return {};
    if (!field[key].is_array()) return fail(std::string("egress: '") + key + "' must be an array of strings");
    for (const auto& v : field[key]) {
      if (!v.is_string()) return fail(std::string("egress: '") + key + "' must be an array of strings");
      out.push_back(v.get<std::string>());
    }
    return {};
  };
  std::vector<std::string> allow_texts, deny_texts, presets;
  if (auto ok = strings("allow", allow_texts); !ok) return std::unexpected(ok.error());
  if (auto ok = strings("deny", deny_texts); !ok) return std::unexpected(ok.error());
  if (auto ok = strings("presets", presets); !ok) return std::unexpected(ok.error());
  if (auto ok = strings("secrets", p.secrets); !ok) return std::unexpected(ok.error());
  for (const auto& name : p.secrets)
    if (!is_valid_provider_name(name)) return fail("egress: 'secrets': not a vault name: " + shown(name));
  for (const auto& t : allow_texts) {
    auto r = parse_rule(t);
    if (!r) return std::unexpected(r.error());
    allow(p, *r);
  }
  for (const auto& t : deny_texts) {
    auto r = parse_rule(t);
    if (!r) return std::unexpected(r.error());
    deny(p, *r);
  }
  for (const auto& name : presets) {
    if (!settings.presets.count(name)) {
      std::string known;
      for (const auto& [n, rules] : settings.presets) known += (known.empty() ? "" : ", ") + n;
      return fail("egress: unknown preset " + shown(name) + " (known: " + known +
                  "; add one with [egress.presets." + "<name>] hosts = [...] in config.toml)");
    }
    if (std::find(p.presets.begin(), p.presets.end(), name) == p.presets.end()) p.presets.push_back(name);
  }
  return p;
}

json policy_json(const Policy& policy) {
  json allow = json::array(), deny = json::array();
  for (const auto& r : policy.allow) allow.push_back(r.text());
  for (const auto& r : policy.deny) deny.push_back(r.text());
  return json{{"allow", allow}, {"deny", deny}, {"presets", policy.presets}, {"secrets", policy.secrets}};
}

void allow(Policy& policy, const Rule& rule) {
  std::erase(policy.deny, rule);
  if (std::find(policy.allow.begin(), policy.allow.end(), rule) == policy.allow.end()) policy.allow.push_back(rule);
}

void deny(Policy& policy, const Rule& rule) {
  std::erase(policy.allow, rule);
  if (std::find(policy.deny.begin(), policy.deny.end(), rule) == policy.deny.end()) policy.deny.push_back(rule);
}

Decision decide(const Policy& policy, const Settings& settings, const Destination& to) {
  for (const auto& r : policy.deny)
    if (matches(r, to)) return {false, "deny:" + r.text()};
  for (const auto& r : policy.allow)
    if (matches(r, to)) return {true, "allow:" + r.text()};
  for (const auto& name : policy.presets) {
    auto it = settings.presets.find(name);
    if (it == settings.presets.end()) continue;
    for (const auto& r : it->second)
      if (matches(r, to)) return {true, "preset:" + name + ":" + r.text()};
  }
  for (const auto& r : settings.allow)
    if (matches(r, to)) return {true, "config:" + r.text()};
  return {false, "default-deny"};
}

}  // namespace tokfence::proxy::egress
