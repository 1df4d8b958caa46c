// The SQLite side of `tokfence watch`: reading the request log, and the watch_alerts table.
#include <sqlite3.h>
#include <sys/stat.h>

#include <ctime>
#include <memory>
#include <system_error>

#include "launcher/watch.hpp"

namespace tokfence::watch {

namespace {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

enum class Mode { read, write };

// nullptr (not an error) when reading a database that does not exist yet.
Result<Db> open_db(const std::filesystem::path& path, Mode mode) {
  std::error_code ec;
  bool exists = std::filesystem::exists(path, ec);
  if (mode == Mode::read && !exists) return Db{};
  if (mode == Mode::write && !exists) {
    // Created 0600 before SQLite touches it: the log says which agents used which provider.
    std::filesystem::create_directories(path.parent_path(), ec);
    mode_t old = umask(077);
    sqlite3* tmp = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    umask(old);
    Db db(tmp);
    if (rc != SQLITE_OK) return fail("database " + path.string() + ": cannot create: " + sqlite3_errstr(rc));
  }
  sqlite3* raw = nullptr;
  // Read-write even for reading: a read-only handle cannot always join a WAL database.
  int flags = SQLITE_OPEN_READWRITE;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) return fail("database " + path.string() + ": cannot open: " + sqlite3_errstr(rc));
  sqlite3_busy_timeout(raw, 5000);
  if (mode == Mode::write) {
    char* err = nullptr;
    if (sqlite3_exec(raw, "PRAGMA journal_mode=WAL", nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return fail("database " + path.string() + ": cannot enable wal: " + msg);
    }
  }
  return db;
}

Result<Stmt> prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
    return fail(std::string("database: ") + sqlite3_errmsg(db));
  return Stmt(s);
}

Result<bool> has_table(sqlite3* db, const char* name) {
  auto st = prepare(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?");
  if (!st) return std::unexpected(st.error());
  sqlite3_bind_text(st->get(), 1, name, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st->get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return fail(std::string("database: ") + sqlite3_errmsg(db));
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

std::string iso_utc(std::int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Result<LocalUsage> local_usage(const std::filesystem::path& path, const std::string& provider, const Window& window) {
  LocalUsage out;
  out.amounts.requests = 0;
  out.amounts.tokens = 0;
  out.amounts.cost = 0;
  auto db = open_db(path, Mode::read);
  if (!db) return std::unexpected(db.error());
  if (!*db) return out;
  auto has = has_table(db->get(), "requests");
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
  auto st = prepare(db->get(), sql.c_str());
  if (!st) return std::unexpected(st.error());
  sqlite3_bind_text(st->get(), 1, provider.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st->get(), 2, window.start_ms);
  sqlite3_bind_int64(st->get(), 3, window.end_ms);
  if (sqlite3_step(st->get()) != SQLITE_ROW) return fail(std::string("database: ") + sqlite3_errmsg(db->get()));
  out.amounts.requests = sqlite3_column_int64(st->get(), 0);
  out.amounts.tokens = sqlite3_column_int64(st->get(), 1);
  out.amounts.cost = sqlite3_column_int64(st->get(), 2);
  out.unknown_cost_requests = sqlite3_column_int64(st->get(), 3);
  return out;
}

Result<std::optional<std::int64_t>> last_local_activity_ms(const std::filesystem::path& path, const std::string& provider) {
  auto db = open_db(path, Mode::read);
  if (!db) return std::unexpected(db.error());
  if (!*db) return std::optional<std::int64_t>{};
  auto has = has_table(db->get(), "requests");
  if (!has) return std::unexpected(has.error());
  if (!*has) return std::optional<std::int64_t>{};
  std::string sql = std::string("SELECT MAX(ts_ms + CAST(COALESCE(latency_ms,0) AS INTEGER)) FROM requests"
                                " WHERE provider = ? AND (") + kReached +
                    " OR COALESCE(input_tokens,0)+COALESCE(output_tokens,0) > 0)";
  auto st = prepare(db->get(), sql.c_str());
  if (!st) return std::unexpected(st.error());
  sqlite3_bind_text(st->get(), 1, provider.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st->get()) != SQLITE_ROW) return fail(std::string("database: ") + sqlite3_errmsg(db->get()));
  if (sqlite3_column_type(st->get(), 0) == SQLITE_NULL) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{sqlite3_column_int64(st->get(), 0)};
}

json Alert::to_json() const {
  json j = {{"id", id},
            {"ts_ms", ts_ms},
            {"time", iso_utc(ts_ms)},
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
  auto db = open_db(path, Mode::write);
  if (!db) return std::unexpected(db.error());
  char* err = nullptr;
  if (sqlite3_exec(db->get(), kAlertsSchema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return fail("database " + path.string() + ": cannot create watch_alerts: " + msg);
  }
  auto st = prepare(db->get(),
                    "INSERT INTO watch_alerts(ts_ms, provider, kind, metric, remote, local, threshold, window_start_ms,"
                    " window_end_ms, revoked, message) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  if (!st) return std::unexpected(st.error());
  sqlite3_exec(db->get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  for (const Alert& a : alerts) {
    sqlite3_stmt* s = st->get();
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, a.ts_ms);
    sqlite3_bind_text(s, 2, a.provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, a.kind.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, a.metric.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 5, a.remote);
    sqlite3_bind_int64(s, 6, a.local);
    sqlite3_bind_int64(s, 7, a.threshold);
    sqlite3_bind_int64(s, 8, a.window_start_ms);
    sqlite3_bind_int64(s, 9, a.window_end_ms);
    sqlite3_bind_int(s, 10, a.revoked ? 1 : 0);
    sqlite3_bind_text(s, 11, a.message.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) != SQLITE_DONE) {
      std::string msg = sqlite3_errmsg(db->get());
      sqlite3_exec(db->get(), "ROLLBACK", nullptr, nullptr, nullptr);
      return fail("database " + path.string() + ": cannot store alert: " + msg);
    }
  }
  if (sqlite3_exec(db->get(), "COMMIT", nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return fail("database " + path.string() + ": cannot commit alerts: " + msg);
  }
  return {};
}

Result<std::vector<Alert>> recent_alerts(const std::filesystem::path& path, std::int64_t since_ms, int limit) {
  std::vector<Alert> out;
  auto db = open_db(path, Mode::read);
  if (!db) return std::unexpected(db.error());
  if (!*db) return out;
  auto has = has_table(db->get(), "watch_alerts");
  if (!has) return std::unexpected(has.error());
  if (!*has) return out;
  auto st = prepare(db->get(),
                    "SELECT id, ts_ms, provider, kind, metric, remote, local, threshold, window_start_ms, window_end_ms,"
                    " revoked, message FROM watch_alerts WHERE ts_ms >= ? ORDER BY ts_ms DESC, id DESC LIMIT ?");
  if (!st) return std::unexpected(st.error());
  sqlite3_bind_int64(st->get(), 1, since_ms);
  sqlite3_bind_int(st->get(), 2, limit);
  auto text = [&](int col) {
    const unsigned char* t = sqlite3_column_text(st->get(), col);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  int rc;
  while ((rc = sqlite3_step(st->get())) == SQLITE_ROW) {
    Alert a;
    a.id = sqlite3_column_int64(st->get(), 0);
    a.ts_ms = sqlite3_column_int64(st->get(), 1);
    a.provider = text(2);
    a.kind = text(3);
    a.metric = text(4);
    a.remote = sqlite3_column_int64(st->get(), 5);
    a.local = sqlite3_column_int64(st->get(), 6);
    a.threshold = sqlite3_column_int64(st->get(), 7);
    a.window_start_ms = sqlite3_column_int64(st->get(), 8);
    a.window_end_ms = sqlite3_column_int64(st->get(), 9);
    a.revoked = sqlite3_column_int(st->get(), 10) != 0;
    a.message = text(11);
    out.push_back(std::move(a));
  }
  if (rc != SQLITE_DONE) return fail(std::string("database: ") + sqlite3_errmsg(db->get()));
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
