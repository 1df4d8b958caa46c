// The SQLite side of `tokfence watch`: reading the request log, and the watch_alerts table.
#include <ctime>
#include <memory>
#include <system_error>

#include "core/text_format.hpp"
#include "launcher/watch/watch.hpp"
#include "core/sqlite.hpp"
#include "core/time.hpp"

namespace tokfence::watch {

namespace {

using sqlite::Create;
using sqlite::Database;

// nullopt (not an error) when reading a database that does not exist yet: nothing logged.
Result<std::optional<Database>> open_for_reading(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<Database>{};
  auto db = Database::open(path, Create::no);
  if (!db) return std::unexpected(db.error());
  return std::optional<Database>{std::move(*db)};
}

constexpr const char* kAlertsSchema =
    "CREATE TABLE IF NOT EXISTS watch_alerts("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, provider TEXT NOT NULL,"
    " kind TEXT NOT NULL, metric TEXT NOT NULL, remote INTEGER NOT NULL, local INTEGER NOT NULL,"
    " threshold INTEGER NOT NULL, window_start_ms INTEGER NOT NULL, window_end_ms INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS watch_alerts_ts ON watch_alerts(ts_ms);";

// A request "reached the provider" when it got a 2xx, or the client left before the end (0):
// tokfence's own refusals (403 revoked, 429 budget, ...) and upstream errors are not billed usage.
constexpr const char* kReached = "((status >= 200 AND status < 300) OR status = 0)";

}  // namespace

Result<LocalUsage> local_usage(const std::filesystem::path& path, const std::string& provider, const Window& window) {
  LocalUsage out;
  out.amounts.requests = 0;
  out.amounts.tokens = 0;
  out.amounts.cost = 0;
  auto db = open_for_reading(path);
  if (!db) return std::unexpected(db.error());
  if (!*db) return out;
  auto has = (*db)->has_table("requests");
  if (!has) return std::unexpected(has.error());
  if (!*has) return out;
  std::string sql = std::string("SELECT COALESCE(SUM(CASE WHEN ") + kReached +
                    " THEN 1 ELSE 0 END), 0),"
                    " COALESCE(SUM(COALESCE(input_tokens,0)+COALESCE(output_tokens,0)+COALESCE(cache_read_tokens,0)+"
                    "COALESCE(cache_write_tokens,0)), 0),"
                    " COALESCE(SUM(cost_pico), 0),"
                    " COALESCE(SUM(CASE WHEN cost_pico IS NULL AND COALESCE(input_tokens,0)+COALESCE(output_tokens,0)+"
                    "COALESCE(cache_read_tokens,0)+COALESCE(cache_write_tokens,0) > 0 THEN 1 ELSE 0 END), 0)"
                    " FROM requests WHERE provider = ? AND ts_ms >= ? AND ts_ms < ?";
  auto st = (*db)->prepare(sql);
  if (!st) return std::unexpected(st.error());
  st->bind(1, provider).bind(2, window.start_ms).bind(3, window.end_ms);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail("database " + path.string() + ": no totals row");
  out.amounts.requests = st->column_int64(0);
  out.amounts.tokens = st->column_int64(1);
  out.amounts.cost = st->column_int64(2);
  out.unknown_cost_requests = st->column_int64(3);
  return out;
}

Result<std::optional<std::int64_t>> last_local_activity_ms(const std::filesystem::path& path, const std::string& provider) {
  auto db = open_for_reading(path);
  if (!db) return std::unexpected(db.error());
  if (!*db) return std::optional<std::int64_t>{};
  auto has = (*db)->has_table("requests");
  if (!has) return std::unexpected(has.error());
  if (!*has) return std::optional<std::int64_t>{};
  std::string sql = std::string("SELECT MAX(ts_ms + CAST(COALESCE(latency_ms,0) AS INTEGER)) FROM requests"
                                " WHERE provider = ? AND (") + kReached +
                    " OR COALESCE(input_tokens,0)+COALESCE(output_tokens,0) > 0)";
  auto st = (*db)->prepare(sql);
  if (!st) return std::unexpected(st.error());
  st->bind(1, provider);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  if (!*row || st->column_is_null(0)) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{st->column_int64(0)};
}

json Alert::to_json() const {
  json j = {{"id", id},
            {"ts_ms", ts_ms},
            {"time", utc_rfc3339(ts_ms)},
            {"provider", provider},
            {"kind", kind},
            {"metric", metric},
            {"window", {{"start_ms", window_start_ms}, {"end_ms", window_end_ms}}},
            {"revoked", revoked},
            {"message", message}};
  if (metric == "usd") {
    j["remote"] = static_cast<double>(remote) / 1e12;
    j["local"] = static_cast<double>(local) / 1e12;
    j["threshold"] = static_cast<double>(threshold) / 1e12;
  } else {
    j["remote"] = remote;
    j["local"] = local;
    j["threshold"] = threshold;
  }
  return j;
}

Result<void> store_alerts(const std::filesystem::path& path, const std::vector<Alert>& alerts) {
  if (alerts.empty()) return {};
  auto db = Database::open(path, Create::yes);
  if (!db) return std::unexpected(db.error());
  if (auto ok = db->exec(kAlertsSchema); !ok) return std::unexpected(ok.error());
  auto tx = sqlite::Transaction::begin(*db);
  if (!tx) return std::unexpected(tx.error());
  auto st = db->prepare(
      "INSERT INTO watch_alerts(ts_ms, provider, kind, metric, remote, local, threshold, window_start_ms,"
      " window_end_ms, revoked, message) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  if (!st) return std::unexpected(st.error());
  for (const Alert& a : alerts) {
    st->reset();
    st->bind(1, a.ts_ms).bind(2, a.provider).bind(3, a.kind).bind(4, a.metric).bind(5, a.remote).bind(6, a.local);
    st->bind(7, a.threshold).bind(8, a.window_start_ms).bind(9, a.window_end_ms).bind(10, a.revoked ? 1 : 0);
    st->bind(11, a.message);
    if (auto ok = st->run(); !ok) return std::unexpected(ok.error());
  }
  return tx->commit();
}

Result<std::vector<Alert>> recent_alerts(const std::filesystem::path& path, std::int64_t since_ms, int limit) {
  std::vector<Alert> out;
  auto db = open_for_reading(path);
  if (!db) return std::unexpected(db.error());
  if (!*db) return out;
  auto has = (*db)->has_table("watch_alerts");
  if (!has) return std::unexpected(has.error());
  if (!*has) return out;
  auto st = (*db)->prepare(
      "SELECT id, ts_ms, provider, kind, metric, remote, local, threshold, window_start_ms, window_end_ms,"
      " revoked, message FROM watch_alerts WHERE ts_ms >= ? ORDER BY ts_ms DESC, id DESC LIMIT ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, since_ms).bind(2, limit);
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    Alert a;
    a.id = row.column_int64(0);
    a.ts_ms = row.column_int64(1);
    a.provider = row.column_text(2);
    a.kind = row.column_text(3);
    a.metric = row.column_text(4);
    a.remote = row.column_int64(5);
    a.local = row.column_int64(6);
    a.threshold = row.column_int64(7);
    a.window_start_ms = row.column_int64(8);
    a.window_end_ms = row.column_int64(9);
    a.revoked = row.column_int64(10) != 0;
    a.message = row.column_text(11);
    out.push_back(std::move(a));
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

Result<json> alerts_summary(const std::filesystem::path& db, int hours, int limit) {
  std::int64_t since = (static_cast<std::int64_t>(std::time(nullptr)) - static_cast<std::int64_t>(hours) * 3600) * 1000;
  auto all = recent_alerts(db, since, 100000);
  if (!all) return std::unexpected(all.error());
  json recent = json::array();
  for (int i = 0; i < limit && i < static_cast<int>(all->size()); ++i) recent.push_back((*all)[i].to_json());
  return json{{"hours", hours}, {"count", all->size()}, {"recent", recent}};
}

}  // namespace tokfence::watch
