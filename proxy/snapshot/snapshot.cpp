#include "proxy/snapshot/snapshot.hpp"

#include <pthread.h>

#include <algorithm>
#include <iostream>

#include "core/file.hpp"
#include "core/money.hpp"
#include "core/time.hpp"

namespace tokfence::proxy {

using nlohmann::json;

namespace {

std::int64_t rounded_div(Picodollars amount, std::int64_t unit) {
  if (amount >= 0) return (amount + unit / 2) / unit;
  return -((-amount + unit / 2) / unit);
}

std::int64_t i64(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

json totals_extra(const Totals& t) {
  return json{{"requests", t.requests},
              {"input_tokens", t.input_tokens},
              {"output_tokens", t.output_tokens},
              {"cache_read_tokens", t.cache_read_tokens},
              {"cache_write_tokens", t.cache_write_tokens},
              {"cost_cents", cents_of(t.cost)},
              {"cost_micro_usd", micro_usd_of(t.cost)},
              {"cost_usd", format_usd(t.cost)},
              {"unknown_cost_requests", t.unknown_cost_requests}};
}

// The original's budget object {provider, limit_cents, period, current_spend_cents, period_start,
// enabled}, from one entry of Controls::status()["budgets"], plus tokfence's exact figures.
json budget_entry(const json& b) {
  const Picodollars limit = i64(b, "limit_pico"), spent = i64(b, "spent_pico"), reserved = i64(b, "reserved_pico");
  return json{{"provider", b.value("scope", "")},
              {"limit_cents", cents_of(limit)},
              {"period", b.value("period", "")},
              {"current_spend_cents", cents_of(spent)},
              {"period_start", utc_rfc3339(i64(b, "window_start_ms"))},
              {"enabled", true},
              // tokfence's additions
              {"limit_micro_usd", micro_usd_of(limit)},
              {"current_spend_micro_usd", micro_usd_of(spent)},
              {"reserved_micro_usd", micro_usd_of(reserved)},
              {"percent", b.value("percent", 0.0)},
              {"resets_at", utc_rfc3339(i64(b, "resets_at_ms"))},
              {"warned", b.value("warned", false)},
              {"unknown_cost_requests", i64(b, "unknown_cost_requests")}};
}

// Today (from local midnight, as `status` counts it), by provider; the total is their sum.
struct Today {
  Totals total;
  json by_provider = json::array();
  std::string top_provider;
  std::int64_t top_cents = 0;
};

Today today_by_provider(const std::filesystem::path& db, std::int64_t now, std::vector<std::string>& warnings) {
  Today today;
  auto groups = totals_by(db, start_of_local_day(now), GroupBy::provider);
  if (!groups) {
    warnings.push_back("db: " + groups.error().message);
    return today;
  }
  Totals& total = today.total;
  for (const auto& g : *groups) {  // most expensive first
    const Totals& t = g.totals;
    total.requests += t.requests;
    total.input_tokens += t.input_tokens;
    total.output_tokens += t.output_tokens;
    total.cache_read_tokens += t.cache_read_tokens;
    total.cache_write_tokens += t.cache_write_tokens;
    total.cost += t.cost;
    total.unknown_cost_requests += t.unknown_cost_requests;
    // The original names a top provider only once one has cost at least a cent.
    if (cents_of(t.cost) > today.top_cents) today.top_provider = g.key, today.top_cents = cents_of(t.cost);
    json row = totals_extra(t);
    row["provider"] = g.key;
    today.by_provider.push_back(std::move(row));
  }
  return today;
}

std::optional<std::int64_t> last_request_ts(const std::filesystem::path& db, std::vector<std::string>& warnings) {
  RequestQuery newest;
  newest.limit = 1;
  auto rows = query_requests(db, newest);
  if (!rows) {
    warnings.push_back("last-request: " + rows.error().message);
    return std::nullopt;
  }
  if (rows->empty()) return std::nullopt;
  return rows->back().record.ts_ms;
}

// What Controls::status() said (nothing, when the daemon is not running), in the snapshot's shapes.
struct ControlsView {
  bool known = false;
  bool killed = false;
  json budgets = json::array(), revoked = json::array(), rate_limits = json::object(), rate_used = json::object();
};

ControlsView controls_view(const json& c, std::vector<std::string>& warnings) {
  ControlsView v;
  v.known = c.is_object();
  if (!v.known) return v;
  v.killed = c.value("killed", false);
  for (const auto& b : c.value("budgets", json::array())) v.budgets.push_back(budget_entry(b));
  for (const auto& p : c.value("revoked", json::array()))
    if (p.is_string()) v.revoked.push_back(p);
  for (const auto& r : c.value("ratelimits", json::array())) {
    v.rate_limits[r.value("provider", "")] = r.value("rpm", 0);
    v.rate_used[r.value("provider", "")] = r.value("used", 0);
  }
  for (const auto& w : c.value("warnings", json::array())) warnings.push_back("budget: " + w.value("message", ""));
  return v;
}

// The configured providers, sorted by name, with their upstreams, and how many are revoked.
struct ProviderList {
  json names = json::array(), upstreams = json::object();
  std::size_t count = 0, revoked = 0;
};

ProviderList provider_list(const Config& config, const json& revoked) {
  ProviderList out;
  auto specs = config.providers();
  std::sort(specs.begin(), specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  out.count = specs.size();
  for (const auto& p : specs) {
    out.names.push_back(p.name);
    out.upstreams[p.name] = p.upstream;
    if (std::find(revoked.begin(), revoked.end(), json(p.name)) != revoked.end()) ++out.revoked;
  }
  return out;
}

json sorted_names(const std::optional<std::vector<std::string>>& names) {
  json out = json::array();
  if (!names) return out;
  auto sorted = *names;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& n : sorted) out.push_back(n);
  return out;
}

}  // namespace

std::int64_t cents_of(Picodollars amount) { return rounded_div(amount, kPicoPerUsd / 100); }
std::int64_t micro_usd_of(Picodollars amount) { return rounded_div(amount, kPicoPerUsd / 1'000'000); }

json build_snapshot(const Config& config, const SnapshotSources& sources, std::int64_t now) {
  std::vector<std::string> warnings = sources.warnings;
  const auto& db = config.logging.db_path;
  const Today today = today_by_provider(db, now, warnings);
  const Totals& total = today.total;
  const std::optional<std::int64_t> last_ts = last_request_ts(db, warnings);
  const ControlsView controls = controls_view(sources.controls, warnings);
  const ProviderList providers = provider_list(config, controls.revoked);

  const json& log = sources.request_log;
  if (log.is_object() && (i64(log, "dropped") || i64(log, "lost")))
    warnings.push_back("log: " + std::to_string(i64(log, "dropped") + i64(log, "lost")) +
                       " request row(s) not written (see daemon.log)");

  json out;
  // ---- the original Tokfence's keys ----
  out["generated_at"] = utc_rfc3339(now);
  out["running"] = sources.running;
  out["pid"] = sources.running ? json(sources.pid) : json(nullptr);
  out["addr"] = sources.running && !sources.addr.empty() ? json(sources.addr) : json(nullptr);
  out["today_requests"] = total.requests;
  out["today_input_tokens"] = total.input_tokens;
  out["today_output_tokens"] = total.output_tokens;
  out["today_cost_cents"] = cents_of(total.cost);
  out["top_provider"] = today.top_provider.empty() ? json(nullptr) : json(today.top_provider);
  out["top_provider_cost_cents"] = today.top_provider.empty() ? json(nullptr) : json(today.top_cents);
  out["budgets"] = controls.budgets;
  out["revoked_providers"] = controls.revoked;
  out["vault_providers"] = sorted_names(sources.vault_providers);
  out["providers"] = providers.names;
  out["provider_upstreams"] = providers.upstreams;
  out["rate_limits"] = controls.rate_limits;
  // The original had no kill switch of its own: "every provider is cut off" was "all revoked".
  out["kill_switch_active"] = controls.killed || (providers.count != 0 && providers.revoked == providers.count);
  out["last_request_at"] = last_ts ? json(format_local(*last_ts, "%H:%M:%S")) : json(nullptr);
  for (const auto& session : sources.immunefence_sessions)
    if (session.value("risk_state", "") == "RED")
      warnings.push_back("immunefence: session " + session.value("name", std::string("?")) +
                         " is RED: tokfence session show " + session.value("name", std::string("?")));
  out["warnings"] = warnings;
  // ---- tokfence's additions ----
  out["snapshot_version"] = 1;
  out["version"] = sources.version;
  out["kill_switch"] = controls.killed;
  out["controls_known"] = controls.known;
  out["vault_known"] = sources.vault_providers.has_value();
  out["today_since"] = utc_rfc3339(start_of_local_day(now));
  out["today_cache_read_tokens"] = total.cache_read_tokens;
  out["today_cache_write_tokens"] = total.cache_write_tokens;
  out["today_cost_micro_usd"] = micro_usd_of(total.cost);
  out["today_cost_usd"] = format_usd(total.cost);
  out["today_unknown_cost_requests"] = total.unknown_cost_requests;
  out["today_by_provider"] = today.by_provider;
  out["last_request_at_utc"] = last_ts ? json(utc_rfc3339(*last_ts)) : json(nullptr);
  out["rate_limits_used"] = controls.rate_used;
  out["budget_timezone"] = controls.known ? sources.controls.value("timezone", "") : "";
  out["sessions"] = sources.sessions;
  out["immunefence_sessions"] = sources.immunefence_sessions;
  out["request_log"] = sources.request_log;
  return out;
}

// ---- SnapshotWriter ----

SnapshotWriter::SnapshotWriter(std::filesystem::path path, Builder build, std::chrono::milliseconds min_interval,
                               std::chrono::milliseconds max_interval)
    : path_(std::move(path)), build_(std::move(build)), min_interval_(min_interval), max_interval_(max_interval) {}

SnapshotWriter::~SnapshotWriter() { stop(); }

void SnapshotWriter::start() {
  dirty_.store(false, std::memory_order_relaxed);
  write(build_());
  thread_ = std::thread([this] { loop(); });
}

void SnapshotWriter::stop(const std::optional<json>& last) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (last) write(*last);
}

void SnapshotWriter::write(const json& snapshot) {
  auto ok = file::write_atomic(path_, snapshot.dump(2, ' ', false, json::error_handler_t::replace) + "\n",
                               {.mode = 0600, .owner = std::nullopt});
  if (ok) return;
  const auto now = std::chrono::steady_clock::now();
  if (last_warning_ != std::chrono::steady_clock::time_point{} && now - last_warning_ < std::chrono::minutes(1))
    return;
  last_warning_ = now;
  const std::string line = "warning: cannot write the widget snapshot: " + ok.error().message;
  if (warn)
    warn(line);
  else
    std::cerr << "tokfence: " << line << std::endl;
}

void SnapshotWriter::loop() {
  ::pthread_setname_np(::pthread_self(), "tf-snapshot");  // bench/widget_cost.sh reads its CPU time
  auto last_write = std::chrono::steady_clock::now();
  // Building reads today's rows of the request log (an aggregate over every row since midnight):
  // with hundreds of thousands of rows that takes a while, so the pause after a build is at least
  // kBusyFactor times the build's own time, keeping this thread under 1/kBusyFactor of a core.
  constexpr int kBusyFactor = 20;
  std::chrono::steady_clock::duration pause = min_interval_;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    // One check per pause (min_interval_ or longer): that is the rate limit while requests flow.
    if (wake_.wait_for(lock, pause, [this] { return stopping_; })) break;
    const auto now = std::chrono::steady_clock::now();
    const bool due = dirty_.exchange(false, std::memory_order_relaxed) || now - last_write >= max_interval_;
    if (!due) continue;
    lock.unlock();
    try {
      write(build_());
    } catch (const std::exception& e) {
      if (warn) warn(std::string("warning: cannot build the widget snapshot: ") + e.what());
    }
    lock.lock();
    last_write = std::chrono::steady_clock::now();
    pause = std::max<std::chrono::steady_clock::duration>(min_interval_, (last_write - now) * kBusyFactor);
  }
}

}  // namespace tokfence::proxy
