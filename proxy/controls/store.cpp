#include "proxy/controls/store.hpp"

#include "core/names.hpp"

namespace tokfence::proxy {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS controls_kill(
  id INTEGER PRIMARY KEY CHECK (id = 1), killed INTEGER NOT NULL, changed_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS controls_revoked(provider TEXT PRIMARY KEY, revoked_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS controls_budgets(
  scope TEXT PRIMARY KEY, period TEXT NOT NULL CHECK (period IN ('daily', 'monthly')),
  limit_pico INTEGER NOT NULL CHECK (limit_pico > 0), set_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS controls_ratelimits(
  provider TEXT PRIMARY KEY, rpm INTEGER NOT NULL CHECK (rpm BETWEEN 1 AND 100000), set_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS controls_warnings(
  scope TEXT NOT NULL, period TEXT NOT NULL, window_start_ms INTEGER NOT NULL, percent INTEGER NOT NULL,
  spent_pico INTEGER NOT NULL, limit_pico INTEGER NOT NULL, fired_ms INTEGER NOT NULL,
  PRIMARY KEY (scope, period, window_start_ms));
)sql";

bool valid_scope(const std::string& scope) { return scope == "global" || is_valid_provider_name(scope); }

}  // namespace

Result<std::unique_ptr<ControlsStore>> ControlsStore::open(const std::filesystem::path& path) {
  auto db = sqlite::Database::open(path, sqlite::Create::yes);
  if (!db) return std::unexpected(db.error());
  if (auto ok = db->exec(kSchema); !ok) return std::unexpected(ok.error());
  return std::unique_ptr<ControlsStore>(new ControlsStore(std::move(*db)));
}

Result<StoredControls> ControlsStore::load() {
  std::lock_guard lock(mutex_);
  StoredControls out;
  {
    auto st = db_.prepare("SELECT killed FROM controls_kill WHERE id = 1");
    if (!st) return std::unexpected(st.error());
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    out.killed = *row && st->column_int64(0) != 0;
  }
  {
    auto st = db_.prepare("SELECT provider FROM controls_revoked");
    if (!st) return std::unexpected(st.error());
    auto done = st->for_each_row([&](const sqlite::Statement& row) {
      std::string p = row.column_text(0);
      if (is_valid_provider_name(p)) out.revoked.insert(p);
    });
    if (!done) return std::unexpected(done.error());
  }
  {
    auto st = db_.prepare("SELECT scope, period, limit_pico, set_ms FROM controls_budgets");
    if (!st) return std::unexpected(st.error());
    auto done = st->for_each_row([&](const sqlite::Statement& row) {
      StoredBudget b;
      b.scope = row.column_text(0);
      auto period = parse_budget_period(row.column_text(1));
      b.limit = row.column_int64(2);
      b.set_ms = row.column_int64(3);
      if (!valid_scope(b.scope) || !period || b.limit <= 0) return;
      b.period = *period;
      out.budgets[b.scope] = b;
    });
    if (!done) return std::unexpected(done.error());
  }
  {
    auto st = db_.prepare("SELECT provider, rpm FROM controls_ratelimits");
    if (!st) return std::unexpected(st.error());
    auto done = st->for_each_row([&](const sqlite::Statement& row) {
      std::string p = row.column_text(0);
      std::int64_t rpm = row.column_int64(1);
      if (is_valid_provider_name(p) && rpm >= 1 && rpm <= 100000) out.ratelimits[p] = static_cast<int>(rpm);
    });
    if (!done) return std::unexpected(done.error());
  }
  return out;
}

Result<void> ControlsStore::set_killed(bool killed, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare(
      "INSERT INTO controls_kill(id, killed, changed_ms) VALUES (1, ?1, ?2) "
      "ON CONFLICT(id) DO UPDATE SET killed = excluded.killed, changed_ms = excluded.changed_ms");
  if (!st) return std::unexpected(st.error());
  st->bind(1, killed ? 1 : 0).bind(2, now_ms);
  return st->run();
}

Result<bool> ControlsStore::set_revoked(const std::string& provider, bool revoked, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto st = revoked ? db_.prepare("INSERT OR IGNORE INTO controls_revoked(provider, revoked_ms) VALUES (?1, ?2)")
                    : db_.prepare("DELETE FROM controls_revoked WHERE provider = ?1");
  if (!st) return std::unexpected(st.error());
  st->bind(1, provider);
  if (revoked) st->bind(2, now_ms);
  if (auto ok = st->run(); !ok) return std::unexpected(ok.error());
  return db_.changes() > 0;
}

Result<void> ControlsStore::put_budget(const StoredBudget& b) {
  std::lock_guard lock(mutex_);
  auto tx = sqlite::Transaction::begin(db_);
  if (!tx) return std::unexpected(tx.error());
  {
    auto st = db_.prepare(
        "INSERT INTO controls_budgets(scope, period, limit_pico, set_ms) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT(scope) DO UPDATE SET period = excluded.period, limit_pico = excluded.limit_pico, "
        "set_ms = excluded.set_ms");
    if (!st) return std::unexpected(st.error());
    st->bind(1, b.scope).bind(2, std::string(to_string(b.period))).bind(3, b.limit).bind(4, b.set_ms);
    if (auto ok = st->run(); !ok) return ok;
  }
  {
    auto st = db_.prepare("DELETE FROM controls_warnings WHERE scope = ?1");
    if (!st) return std::unexpected(st.error());
    st->bind(1, b.scope);
    if (auto ok = st->run(); !ok) return ok;
  }
  return tx->commit();
}

Result<bool> ControlsStore::clear_budget(const std::string& scope) {
  std::lock_guard lock(mutex_);
  auto tx = sqlite::Transaction::begin(db_);
  if (!tx) return std::unexpected(tx.error());
  std::int64_t changed = 0;
  {
    auto st = db_.prepare("DELETE FROM controls_budgets WHERE scope = ?1");
    if (!st) return std::unexpected(st.error());
    st->bind(1, scope);
    if (auto ok = st->run(); !ok) return std::unexpected(ok.error());
    changed = db_.changes();
  }
  {
    auto st = db_.prepare("DELETE FROM controls_warnings WHERE scope = ?1");
    if (!st) return std::unexpected(st.error());
    st->bind(1, scope);
    if (auto ok = st->run(); !ok) return std::unexpected(ok.error());
  }
  if (auto ok = tx->commit(); !ok) return std::unexpected(ok.error());
  return changed > 0;
}

Result<void> ControlsStore::put_ratelimit(const std::string& provider, int rpm, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare(
      "INSERT INTO controls_ratelimits(provider, rpm, set_ms) VALUES (?1, ?2, ?3) "
      "ON CONFLICT(provider) DO UPDATE SET rpm = excluded.rpm, set_ms = excluded.set_ms");
  if (!st) return std::unexpected(st.error());
  st->bind(1, provider).bind(2, rpm).bind(3, now_ms);
  return st->run();
}

Result<bool> ControlsStore::clear_ratelimit(const std::string& provider) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare("DELETE FROM controls_ratelimits WHERE provider = ?1");
  if (!st) return std::unexpected(st.error());
  st->bind(1, provider);
  if (auto ok = st->run(); !ok) return std::unexpected(ok.error());
  return db_.changes() > 0;
}

Result<bool> ControlsStore::warning_fired(const std::string& scope, BudgetPeriod period, std::int64_t window_start_ms) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare("SELECT 1 FROM controls_warnings WHERE scope = ?1 AND period = ?2 AND window_start_ms = ?3");
  if (!st) return std::unexpected(st.error());
  st->bind(1, scope).bind(2, std::string(to_string(period))).bind(3, window_start_ms);
  return st->step();
}

Result<void> ControlsStore::record_warning(const std::string& scope, BudgetPeriod period, std::int64_t window_start_ms,
                                           int percent, Picodollars spent, Picodollars limit, std::int64_t fired_ms) {
  std::lock_guard lock(mutex_);
  auto st = db_.prepare(
      "INSERT OR IGNORE INTO controls_warnings(scope, period, window_start_ms, percent, spent_pico, limit_pico, "
      "fired_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (!st) return std::unexpected(st.error());
  st->bind(1, scope).bind(2, std::string(to_string(period))).bind(3, window_start_ms).bind(4, percent);
  st->bind(5, spent).bind(6, limit).bind(7, fired_ms);
  return st->run();
}

Result<std::map<std::string, SpentTally>> ControlsStore::spent_between(std::int64_t from_ms, std::int64_t to_ms) {
  std::lock_guard lock(mutex_);
  std::map<std::string, SpentTally> out;
  auto has = db_.has_table("requests");
  if (!has) return std::unexpected(has.error());
  if (!*has) return out;
  // The rows of the window come in ts_ms order from its index and are summed here: a GROUP BY
  // made SQLite sort them all first, seconds at daemon start for a month of a busy log.
  // A request with no tokens and no price (refused, failed before any usage) spent nothing and is
  // not an "unknown cost" request.
  auto st = db_.prepare(R"sql(
    SELECT provider, cost_pico,
           COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) + COALESCE(cache_read_tokens, 0) +
           COALESCE(cache_write_tokens, 0)
    FROM requests WHERE ts_ms >= ?1 AND ts_ms < ?2)sql");
  if (!st) return std::unexpected(st.error());
  st->bind(1, from_ms).bind(2, to_ms);
  std::string provider;
  SpentTally* tally = nullptr;
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    std::string_view p = row.column_text_view(0);
    if (!tally || p != provider) {  // rows of one provider tend to come in runs
      provider.assign(p);
      tally = &out[provider];
    }
    const std::int64_t tokens = row.column_int64(2);
    if (!row.column_is_null(1)) {
      tally->cost = add_saturating(tally->cost, row.column_int64(1));
    } else {
      if (tokens > 0) tally->unknown_cost_requests += 1;
      tally->unknown_cost_tokens = add_saturating(tally->unknown_cost_tokens, tokens);
    }
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

// Bounds the work of max_cost_by_model at daemon start, whatever the size of the log.
constexpr int kMaxRowsForLearnedCosts = 20'000;

Result<std::map<std::string, Picodollars>> ControlsStore::max_cost_by_model(std::int64_t since_ms, int limit) {
  std::lock_guard lock(mutex_);
  std::map<std::string, Picodollars> out;
  auto has = db_.has_table("requests");
  if (!has) return std::unexpected(has.error());
  if (!*has) return out;
  // The newest priced rows, newest first, through the ts_ms index: a bounded read at daemon start
  // (a GROUP BY over 30 days sorted every row of them), and the recent costs are the ones that
  // predict the next request's.
  auto st = db_.prepare(
      "SELECT provider, model, cost_pico FROM requests WHERE ts_ms >= ?1 AND cost_pico IS NOT NULL "
      "AND provider IS NOT NULL AND model IS NOT NULL ORDER BY ts_ms DESC LIMIT ?2");
  if (!st) return std::unexpected(st.error());
  st->bind(1, since_ms).bind(2, kMaxRowsForLearnedCosts);
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    std::string key = row.column_text(0) + '\n' + row.column_text(1);
    auto it = out.find(key);
    if (it == out.end()) {
      if (out.size() >= static_cast<std::size_t>(limit)) return;  // the `limit` most recent models
      out.emplace(std::move(key), row.column_int64(2));
    } else {
      it->second = std::max(it->second, row.column_int64(2));
    }
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

}  // namespace tokfence::proxy
