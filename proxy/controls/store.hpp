#pragma once
// Where the containment controls live on disk: tables in the tokfence SQLite database, next to the
// request log's `requests` table (which they read to know what was spent in a budget window).
//
//   controls_kill(id INTEGER PRIMARY KEY CHECK(id = 1), killed INTEGER NOT NULL, changed_ms INTEGER NOT NULL)
//   controls_revoked(provider TEXT PRIMARY KEY, revoked_ms INTEGER NOT NULL)
//   controls_budgets(scope TEXT PRIMARY KEY /* provider or 'global' */, period TEXT NOT NULL /* daily|monthly */,
//                    limit_pico INTEGER NOT NULL, set_ms INTEGER NOT NULL)
//   controls_ratelimits(provider TEXT PRIMARY KEY, rpm INTEGER NOT NULL, set_ms INTEGER NOT NULL)
//   controls_warnings(scope TEXT, period TEXT, window_start_ms INTEGER, percent INTEGER,
//                     spent_pico INTEGER, limit_pico INTEGER, fired_ms INTEGER,
//                     PRIMARY KEY(scope, period, window_start_ms))
//
// Every method is safe to call from any thread (one connection behind a mutex). Nothing here is
// called on the proxy's request path.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "core/error.hpp"
#include "proxy/controls/time_zone.hpp"
#include "proxy/metering/pricing.hpp"
#include "core/sqlite.hpp"

namespace tokfence::proxy {

struct StoredBudget {
  std::string scope;  // provider name or "global"
  BudgetPeriod period = BudgetPeriod::daily;
  Picodollars limit = 0;
  std::int64_t set_ms = 0;
};

struct StoredControls {
  bool killed = false;
  std::set<std::string> revoked;
  std::map<std::string, StoredBudget> budgets;  // by scope
  std::map<std::string, int> ratelimits;        // provider -> rpm
};

// What the request log says one provider spent in a time range.
struct SpentTally {
  Picodollars cost = 0;                     // requests with a known price
  std::int64_t unknown_cost_requests = 0;   // requests with tokens but no price
  std::int64_t unknown_cost_tokens = 0;
};

class ControlsStore {
 public:
  static Result<std::unique_ptr<ControlsStore>> open(const std::filesystem::path& db);

  // Rows that do not pass validation (hand-edited databases) are skipped.
  Result<StoredControls> load();
  Result<void> set_killed(bool killed, std::int64_t now_ms);
  // Returns whether anything changed.
  Result<bool> set_revoked(const std::string& provider, bool revoked, std::int64_t now_ms);
  // Replaces the scope's budget and forgets its warnings (a new limit may warn again).
  Result<void> put_budget(const StoredBudget& budget);
  Result<bool> clear_budget(const std::string& scope);
  Result<void> put_ratelimit(const std::string& provider, int rpm, std::int64_t now_ms);
  Result<bool> clear_ratelimit(const std::string& provider);

  Result<bool> warning_fired(const std::string& scope, BudgetPeriod period, std::int64_t window_start_ms);
  Result<void> record_warning(const std::string& scope, BudgetPeriod period, std::int64_t window_start_ms,
                              int percent, Picodollars spent, Picodollars limit, std::int64_t fired_ms);

  // Per provider, over `requests` rows with from_ms <= ts_ms < to_ms. No table yet = nothing spent.
  Result<std::map<std::string, SpentTally>> spent_between(std::int64_t from_ms, std::int64_t to_ms);
  // The highest known cost per provider + '\n' + model among the newest 20,000 priced rows with
  // ts_ms >= since_ms (at most `limit` models, the most recently used first).
  Result<std::map<std::string, Picodollars>> max_cost_by_model(std::int64_t since_ms, int limit);

 private:
  explicit ControlsStore(sqlite::Database db) : db_(std::move(db)) {}
  std::mutex mutex_;
  sqlite::Database db_;
};

}  // namespace tokfence::proxy
