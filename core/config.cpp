#include "core/config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "core/names.hpp"

namespace tokfence {

namespace {

std::string where(const std::string& source, const toml::source_region& region) {
  return source + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

// Walks one table: each getter records the key as known and type-checks it; `finish` turns the
// keys nobody asked for into warnings.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string section, const std::string& source,
              std::vector<std::string>& warnings)
      : table_(table), section_(std::move(section)), source_(source), warnings_(warnings) {}

  Result<void> string(const char* key, std::string& out) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    if (!node) return {};
    if (!node->is_string()) return type_error(*node, key, "a string");
    out = node->as_string()->get();
    return {};
  }
  Result<void> path(const char* key, std::filesystem::path& out) {
    std::string s;
    if (auto r = string(key, s); !r) return r;
    if (!s.empty()) out = expand_home(s);
    return {};
  }
  Result<void> integer(const char* key, std::int64_t& out, std::int64_t min, std::int64_t max) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    if (!node) return {};
    if (!node->is_integer()) return type_error(*node, key, "an integer");
    std::int64_t v = node->as_integer()->get();
    if (v < min || v > max)
      return fail(where(source_, node->source()) + ": " + qualified(key) + " must be between " +
                  std::to_string(min) + " and " + std::to_string(max) + ", got " + std::to_string(v));
    out = v;
    return {};
  }
  template <class Int>
  Result<void> integer_as(const char* key, Int& out, std::int64_t min, std::int64_t max) {
    std::int64_t v = static_cast<std::int64_t>(out);
    if (auto r = integer(key, v, min, max); !r) return r;
    out = static_cast<Int>(v);
    return {};
  }
  Result<void> boolean(const char* key, bool& out) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    if (!node) return {};
    if (!node->is_boolean()) return type_error(*node, key, "true or false");
    out = node->as_boolean()->get();
    return {};
  }
  // USD per million tokens (integer or float) -> micro-dollars per million tokens.
  Result<void> price(const char* key, std::int64_t& out) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    if (!node) return {};
    double usd;
    if (node->is_integer()) usd = static_cast<double>(node->as_integer()->get());
    else if (node->is_floating_point()) usd = node->as_floating_point()->get();
    else return type_error(*node, key, "a number (USD per million tokens)");
    if (!(usd >= 0) || usd > 1e6)
      return fail(where(source_, node->source()) + ": " + qualified(key) + " must be a price between 0 and 1000000");
    out = static_cast<std::int64_t>(std::llround(usd * 1e6));
    return {};
  }
  // An array of strings; each element must be a non-empty string.
  Result<void> string_list(const char* key, std::vector<std::string>& out) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    if (!node) return {};
    const toml::array* array = node->as_array();
    if (!array) return type_error(*node, key, "an array of strings");
    std::vector<std::string> values;
    for (const toml::node& element : *array) {
      if (!element.is_string() || element.as_string()->get().empty())
        return type_error(element, key, "an array of non-empty strings");
      values.push_back(element.as_string()->get());
    }
    out = std::move(values);
    return {};
  }
  const toml::table* subtable(const char* key) {
    known_.insert(key);
    const toml::node* node = table_.get(key);
    return node ? node->as_table() : nullptr;
  }
  Result<void> expect_table(const char* key) {
    const toml::node* node = table_.get(key);
    if (node && !node->is_table()) return type_error(*node, key, "a table");
    return {};
  }
  void finish() {
    for (auto&& [k, v] : table_)
      if (!known_.count(std::string(k.str())))
        warnings_.push_back(where(source_, k.source()) + ": unknown key '" + std::string(k.str()) + "'" +
                            (section_.empty() ? "" : " in [" + section_ + "]"));
  }

 private:
  std::string qualified(const char* key) const { return section_.empty() ? key : section_ + "." + key; }
  std::unexpected<Error> type_error(const toml::node& node, const char* key, const char* expected) {
    return fail(where(source_, node.source()) + ": " + qualified(key) + " must be " + expected);
  }
  static std::filesystem::path expand_home(const std::string& s) {
    if (s.rfind("~/", 0) == 0) {
      const char* home = std::getenv("HOME");
      return std::filesystem::path(home ? home : "/") / s.substr(2);
    }
    return s;
  }

  const toml::table& table_;
  std::string section_;
  const std::string& source_;
  std::vector<std::string>& warnings_;
  std::set<std::string> known_;
};

#define TRY(expr)                    \
  do {                               \
    if (auto r_ = (expr); !r_) return std::unexpected(r_.error()); \
  } while (0)

// What a provider lets through to its upstream (docs/PROXY.md "Who may use the keys"): methods,
// forced_headers, allow_insecure; and the check that its key never travels in clear text.
Result<void> read_provider_access(const std::string& name, const toml::table& t, const std::string& source,
                                  TableReader& r, ProviderSpec& spec) {
  const std::string prefix = "providers." + name + ".";
  auto at = [&](const char* key) { return where(source, t.get(key) ? t.get(key)->source() : t.source()); };
  TRY(r.string_list("methods", spec.methods));
  if (const toml::array* methods = t.get("methods") ? t.get("methods")->as_array() : nullptr) {
    if (methods->empty()) return fail(at("methods") + ": " + prefix + "methods must name at least one method");
    const auto& allowed = default_methods();
    for (const toml::node& m : *methods)
      if (std::find(allowed.begin(), allowed.end(), m.as_string()->get()) == allowed.end())
        return fail(where(source, m.source()) + ": " + prefix + "methods: \"" + m.as_string()->get() +
                    "\" is never forwarded: choose from GET, HEAD, POST, PUT, PATCH, DELETE (upper case)");
  }
  TRY(r.expect_table("forced_headers"));
  if (const toml::table* forced = r.subtable("forced_headers")) {
    for (auto&& [k, v] : *forced) {
      std::string header(k.str());
      if (!v.is_string()) return fail(where(source, v.source()) + ": " + prefix + "forced_headers." + header + " must be a string");
      if (auto problem = forced_header_problem(header, v.as_string()->get()); !problem.empty())
        return fail(where(source, k.source()) + ": " + prefix + "forced_headers: '" + header + "' " + std::string(problem));
      spec.forced_headers[header] = v.as_string()->get();
    }
  }
  TRY(r.boolean("allow_insecure", spec.allow_insecure));
  if (auto problem = insecure_upstream_problem(spec); !problem.empty())
    return fail(at("upstream") + ": providers." + name + ": " + problem);
  return {};
}

Result<void> read_provider(const std::string& name, const toml::table& t, const std::string& source,
                           Config& config, std::vector<std::string>& warnings) {
  if (auto ok = check_provider_name(name); !ok)
    return fail(where(source, t.source()) + ": [providers." + name + "]: " + ok.error().message);
  ProviderSpec spec;
  if (auto builtin = config.provider(name)) spec = *builtin;
  else spec.name = name, spec.client_base_suffix = "/v1";
  spec.builtin = false;
  TableReader r(t, "providers." + name, source, warnings);
  std::string upstream = spec.upstream, auth, api;
  TRY(r.string("upstream", upstream));
  TRY(r.string("auth", auth));
  TRY(r.string("api", api));
  TRY(r.string("client_base_suffix", spec.client_base_suffix));
  Config::Metering metering = config.metering(name);
  TRY(r.integer("default_max_output_tokens", metering.default_max_output_tokens, 1, 10'000'000));
  TRY(r.string_list("budget_allowed_paths", metering.budget_allowed_paths));
  for (const auto& p : metering.budget_allowed_paths)
    if (p.front() != '/' || p.find('?') != std::string::npos)
      return fail(where(source, t.source()) + ": providers." + name +
                  ".budget_allowed_paths: each entry must be a path starting with '/' and without '?', got \"" + p + "\"");
  config.provider_metering[name] = std::move(metering);
  if (upstream.empty())
    return fail(where(source, t.source()) + ": providers." + name + ".upstream is required for a new provider");
  if (upstream.rfind("http://", 0) != 0 && upstream.rfind("https://", 0) != 0)
    return fail(where(source, t.source()) + ": providers." + name + ".upstream must start with http:// or https://");
  while (!upstream.empty() && upstream.back() == '/') upstream.pop_back();
  spec.upstream = upstream;
  if (!auth.empty()) {
    auto a = parse_auth_scheme(auth);
    if (!a) return fail(where(source, t.source()) + ": providers." + name + ".auth must be bearer, x-api-key or x-goog-api-key");
    spec.auth = *a;
  }
  if (!api.empty()) {
    auto s = parse_api_style(api);
    if (!s) return fail(where(source, t.source()) + ": providers." + name + ".api must be openai, anthropic or gemini");
    spec.style = *s;
  }
  TRY(r.expect_table("headers"));
  if (const toml::table* headers = r.subtable("headers")) {
    for (auto&& [k, v] : *headers) {
      if (!v.is_string())
        return fail(where(source, v.source()) + ": providers." + name + ".headers." + std::string(k.str()) + " must be a string");
      spec.default_headers[std::string(k.str())] = v.as_string()->get();
    }
  }
  TRY(read_provider_access(name, t, source, r, spec));
  r.finish();
  config.provider_overrides[name] = std::move(spec);
  return {};
}

// [daemon] allowed_origins: each a serialized web origin as browsers send it in Origin:
// scheme://host[:port], no path, lower case. "null" (every sandboxed page and file:// shares it)
// and "*" are refused.
Result<void> read_allowed_origins(const toml::table& t, const std::string& source, TableReader& r,
                                  std::vector<std::string>& out) {
  TRY(r.string_list("allowed_origins", out));
  const toml::array* origins = t.get("allowed_origins") ? t.get("allowed_origins")->as_array() : nullptr;
  if (!origins) return {};
  for (const toml::node& node : *origins) {
    const std::string& origin = node.as_string()->get();
    auto scheme = origin.find("://");
    bool ok = scheme != std::string::npos && scheme > 0 && scheme + 3 < origin.size() &&
              origin.find_first_of("/?#@ \t", scheme + 3) == std::string::npos &&
              std::all_of(origin.begin(), origin.begin() + static_cast<std::ptrdiff_t>(scheme),
                          [](char ch) { return std::islower(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)) || ch == '+' || ch == '-' || ch == '.'; }) &&
              std::none_of(origin.begin(), origin.end(), [](char ch) { return std::isupper(static_cast<unsigned char>(ch)) || static_cast<unsigned char>(ch) < 0x21 || static_cast<unsigned char>(ch) > 0x7e; });
    if (!ok)
      return fail(where(source, node.source()) + ": daemon.allowed_origins: \"" + origin +
                  "\" is not a web origin: write scheme://host[:port] in lower case, no path, e.g. \"https://app.example.com\"");
  }
  return {};
}

// [egress], [egress.presets.<name>] and [egress.resolve]; the rules themselves are checked by
// proxy/egress when the daemon starts.
Result<void> read_egress(const toml::table& t, const std::string& source, Config::Egress& e, std::vector<std::string>& w) {
  TableReader r(t, "egress", source, w);
  TRY(r.string_list("allow", e.allow));
  TRY(r.string("extra_ca_file", e.extra_ca_file));
  TRY(r.expect_table("presets"));
  TRY(r.expect_table("resolve"));
  TRY(r.expect_table("domains"));
  if (const toml::table* domains = r.subtable("domains")) {
    for (auto&& [k, v] : *domains) {
      const std::string host(k.str());
      const std::string key = "egress.domains.\"" + host + "\"";
      if (!v.is_table()) return fail(where(source, v.source()) + ": " + key + " must be a table");
      TableReader d(*v.as_table(), key, source, w);
      Config::Egress::Domain domain;
      TRY(d.string("mode", domain.mode));
      if (!domain.mode.empty() && domain.mode != "inspect" && domain.mode != "tunnel")
        return fail(where(source, v.source()) + ": " + key + ".mode must be \"inspect\" or \"tunnel\", got \"" +
                    domain.mode + "\"");
      TRY(d.string_list("methods", domain.methods));
      TRY(d.string_list("allow_paths", domain.allow_paths));
      TRY(d.string_list("deny_paths", domain.deny_paths));
      d.finish();
      e.domains[host] = std::move(domain);
    }
  }
  if (const toml::table* presets = r.subtable("presets")) {
    for (auto&& [k, v] : *presets) {
      const std::string name(k.str());
      if (!v.is_table()) return fail(where(source, v.source()) + ": egress.presets." + name + " must be a table");
      TableReader p(*v.as_table(), "egress.presets." + name, source, w);
      std::vector<std::string> hosts;
      TRY(p.string_list("hosts", hosts));
      if (hosts.empty())
        return fail(where(source, v.source()) + ": egress.presets." + name + ".hosts must list at least one host");
      e.presets[name] = std::move(hosts);
      p.finish();
    }
  }
  if (const toml::table* resolve = r.subtable("resolve")) {
    for (auto&& [k, v] : *resolve) {
      if (!v.is_string() || v.as_string()->get().empty())
        return fail(where(source, v.source()) + ": egress.resolve.\"" + std::string(k.str()) +
                    "\" must be an address string, e.g. \"127.0.0.1:8443\"");
      e.resolve[std::string(k.str())] = v.as_string()->get();
    }
  }
  r.finish();
  return {};
}

Result<void> read_all(const toml::table& root, const std::string& source, Config& c, std::vector<std::string>& w) {
  TableReader top(root, "", source, w);
  for (const char* section : {"daemon", "logging", "notifications", "vault", "launch", "proxy", "budget", "providers", "pricing", "egress", "dashboard", "immunefence"})
    TRY(top.expect_table(section));

  if (const toml::table* t = top.subtable("daemon")) {
    TableReader r(*t, "daemon", source, w);
    TRY(r.string("host", c.daemon.host));
    TRY(r.integer_as("port", c.daemon.port, 0, 65535));
    TRY(r.path("socket_path", c.daemon.socket_path));
    TRY(r.integer_as("io_threads", c.daemon.io_threads, 0, 64));
    TRY(r.integer_as("max_header_bytes", c.daemon.max_header_bytes, 1024, 16 * 1024 * 1024));
    TRY(r.integer_as("max_body_bytes", c.daemon.max_body_bytes, 1024, std::int64_t(4) << 30));
    TRY(r.integer_as("connect_timeout_seconds", c.daemon.connect_timeout_seconds, 1, 600));
    TRY(r.integer_as("idle_timeout_seconds", c.daemon.idle_timeout_seconds, 1, 86400));
    TRY(r.integer_as("shutdown_grace_seconds", c.daemon.shutdown_grace_seconds, 0, 3600));
    TRY(r.integer_as("header_timeout_seconds", c.daemon.header_timeout_seconds, 1, 3600));
    TRY(r.integer_as("keepalive_timeout_seconds", c.daemon.keepalive_timeout_seconds, 1, 86400));
    TRY(r.integer_as("body_timeout_seconds", c.daemon.body_timeout_seconds, 1, 86400));
    TRY(r.integer_as("max_connections", c.daemon.max_connections, 1, 1'000'000));
    TRY(r.integer_as("max_connections_per_listener", c.daemon.max_connections_per_listener, 1, 1'000'000));
    TRY(r.integer_as("max_inflight_body_bytes", c.daemon.max_inflight_body_bytes, 1024, std::int64_t(64) << 30));
    TRY(read_allowed_origins(*t, source, r, c.daemon.allowed_origins));
    r.finish();
  }
  if (const toml::table* t = top.subtable("logging")) {
    TableReader r(*t, "logging", source, w);
    TRY(r.path("db_path", c.logging.db_path));
    TRY(r.integer_as("retention_days", c.logging.retention_days, 1, 36500));
    TRY(r.boolean("identify_tcp_callers", c.logging.identify_tcp_callers));
    r.finish();
  }
  if (const toml::table* t = top.subtable("notifications")) {
    TableReader r(*t, "notifications", source, w);
    TRY(r.integer_as("budget_warning_percent", c.notifications.budget_warning_percent, 1, 100));
    TRY(r.boolean("desktop", c.notifications.desktop));
    r.finish();
  }
  if (const toml::table* t = top.subtable("vault")) {
    TableReader r(*t, "vault", source, w);
    std::string backend;
    TRY(r.string("backend", backend));
    if (backend == "auto") c.vault.backend = VaultBackendChoice::automatic;
    else if (backend == "file") c.vault.backend = VaultBackendChoice::file;
    else if (backend == "secret-service") c.vault.backend = VaultBackendChoice::secret_service;
    else if (!backend.empty())
      return fail(where(source, t->get("backend")->source()) + ": vault.backend must be \"auto\", \"file\" or \"secret-service\", got \"" + backend + "\"");
    r.finish();
  }
  if (const toml::table* t = top.subtable("launch")) {
    TableReader r(*t, "launch", source, w);
    TRY(r.path("engine_socket", c.launch.engine_socket));
    if (!c.launch.engine_socket.empty() && !c.launch.engine_socket.is_absolute())
      return fail(where(source, t->get("engine_socket")->source()) +
                  ": launch.engine_socket must be an absolute path to a Unix socket, e.g. \"/run/podman/podman.sock\"");
    r.finish();
  }
  if (const toml::table* t = top.subtable("proxy")) {
    TableReader r(*t, "proxy", source, w);
    TRY(r.boolean("inject_stream_usage", c.proxy.inject_stream_usage));
    r.finish();
  }
  if (const toml::table* t = top.subtable("dashboard")) {
    TableReader r(*t, "dashboard", source, w);
    TRY(r.boolean("enabled", c.dashboard.enabled));
    TRY(r.integer_as("port", c.dashboard.port, 0, 65535));
    r.finish();
  }
  if (const toml::table* t = top.subtable("immunefence")) {
    TableReader r(*t, "immunefence", source, w);
    auto& f = c.immunefence;
    TRY(r.boolean("require_token", f.require_token));
    TRY(r.integer_as("session_ttl_hours", f.session_ttl_hours, 1, 24 * 366));
    TRY(r.integer_as("yellow_token_ttl_minutes", f.yellow_token_ttl_minutes, 1, 24 * 60));
    TRY(r.integer_as("scope_violations_to_orange", f.scope_violations_to_orange, 1, 1000));
    TRY(r.integer_as("egress_denials_per_minute", f.egress_denials_per_minute, 1, 100000));
    TRY(r.integer_as("yellow_rpm", f.yellow_rpm, 1, 100000));
    TRY(r.string_list("sensors", f.sensors));
    for (const auto& name : f.sensors)
      if (name != "honeytoken" && name != "secret_outbound" && name != "scope" && name != "egress_denials")
        return fail(where(source, t->get("sensors")->source()) + ": immunefence.sensors: unknown sensor \"" + name +
                    "\" (known: honeytoken, secret_outbound, scope, egress_denials)");
    r.finish();
  }
  if (const toml::table* t = top.subtable("budget")) {
    TableReader r(*t, "budget", source, w);
    TRY(r.string("timezone", c.budget.timezone));
    TRY(r.boolean("refuse_unknown_cost", c.budget.refuse_unknown_cost));
    r.finish();
  }
  if (const toml::table* t = top.subtable("egress")) TRY(read_egress(*t, source, c.egress, w));
  if (const toml::table* t = top.subtable("providers")) {
    for (auto&& [k, v] : *t) {
      if (!v.is_table())
        return fail(where(source, v.source()) + ": providers." + std::string(k.str()) + " must be a table");
      TRY(read_provider(std::string(k.str()), *v.as_table(), source, c, w));
    }
  }
  if (const toml::table* t = top.subtable("pricing")) {
    for (auto&& [k, v] : *t) {
      std::string model(k.str());
      if (!v.is_table()) return fail(where(source, v.source()) + ": pricing.\"" + model + "\" must be a table");
      if (model == "fallback") {
        // Not a model: the price of models missing from the table (input and output required).
        TableReader r(*v.as_table(), "pricing.fallback", source, w);
        ModelPrice p{-1, -1, -1, -1};
        TRY(r.price("input", p.input));
        TRY(r.price("output", p.output));
        TRY(r.price("cache_read", p.cache_read));
        TRY(r.price("cache_write", p.cache_write));
        r.finish();
        if (p.input < 0 || p.output < 0)
          return fail(where(source, v.source()) + ": pricing.fallback needs input and output (USD per million tokens)");
        if (p.cache_read < 0) p.cache_read = p.input;
        if (p.cache_write < 0) p.cache_write = p.input;
        c.pricing_fallback = p;
        continue;
      }
      TableReader r(*v.as_table(), "pricing.\"" + model + "\"", source, w);
      ModelPrice p;
      TRY(r.price("input", p.input));
      TRY(r.price("output", p.output));
      TRY(r.price("cache_read", p.cache_read));
      TRY(r.price("cache_write", p.cache_write));
      r.finish();
      c.pricing_overrides[model] = p;
    }
  }
  top.finish();
  return {};
}

}  // namespace

std::vector<ProviderSpec> Config::providers() const {
  std::map<std::string, ProviderSpec> merged;
  for (const auto& p : builtin_providers()) merged[p.name] = p;
  for (const auto& [name, p] : provider_overrides) merged[name] = p;
  std::vector<ProviderSpec> out;
  for (auto& [_, p] : merged) out.push_back(p);
  return out;
}

const Config::Metering& Config::metering(std::string_view provider) const {
  static const Metering kDefaults;
  auto it = provider_metering.find(provider);
  return it == provider_metering.end() ? kDefaults : it->second;
}

std::optional<ProviderSpec> Config::provider(std::string_view name) const {
  if (auto it = provider_overrides.find(std::string(name)); it != provider_overrides.end()) return it->second;
  for (const auto& p : builtin_providers())
    if (p.name == name) return p;
  return std::nullopt;
}

Result<ConfigLoad> parse_config(std::string_view text, const std::string& source_name, const Home& home) {
  ConfigLoad load;
  load.config.daemon.socket_path = home.default_proxy_socket();
  load.config.logging.db_path = home.default_db();
  load.config.pricing_update_file = home.root() / "pricing-overrides.json";
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return fail(where(source_name, e.source()) + ": " + std::string(e.description()));
  }
  if (auto r = read_all(root, source_name, load.config, load.warnings); !r) return std::unexpected(r.error());
  return load;
}

Result<ConfigLoad> load_config(const std::filesystem::path& path, const Home& home) {
  std::ifstream in(path);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return parse_config("", path.string(), home);
    return fail(path.string() + ": cannot read config file");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path.string(), home);
}

Config load_config_or_throw(const Home& home) {
  auto load = value_or_throw(load_config(home.config_file(), home));
  for (const auto& warning : load.warnings) std::cerr << "tokfence: warning: " << warning << "\n";
  return std::move(load.config);
}

}  // namespace tokfence
