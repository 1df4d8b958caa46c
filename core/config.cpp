#include "core/config.hpp"

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
  r.finish();
  config.provider_overrides[name] = std::move(spec);
  return {};
}

Result<void> read_all(const toml::table& root, const std::string& source, Config& c, std::vector<std::string>& w) {
  TableReader top(root, "", source, w);
  for (const char* section : {"daemon", "logging", "notifications", "vault", "proxy", "budget", "providers", "pricing"})
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
  if (const toml::table* t = top.subtable("proxy")) {
    TableReader r(*t, "proxy", source, w);
    TRY(r.boolean("inject_stream_usage", c.proxy.inject_stream_usage));
    r.finish();
  }
  if (const toml::table* t = top.subtable("budget")) {
    TableReader r(*t, "budget", source, w);
    TRY(r.string("timezone", c.budget.timezone));
    TRY(r.boolean("refuse_unknown_cost", c.budget.refuse_unknown_cost));
    r.finish();
  }
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
