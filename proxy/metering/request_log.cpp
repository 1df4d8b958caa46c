// The request log's writer: I/O threads hand rows to record(), which only appends to a queue under a
// mutex; one background thread takes whatever has accumulated and commits it in one transaction.
// The writer lingers up to kLinger after the oldest queued row arrived, so rows arrive in batches
// even at a modest rate (a commit costs about as much as a hundred inserts: one commit per request
// would cost more CPU than proxying it), and the request path never waits for the disk. Because
// the linger counts from that row's arrival, a row is committed at most kLinger after record()
// plus the commit running then and its own. Under heavy load the batches grow by themselves.
// flush() waits for a sequence number: every row recorded before the call is committed (or, after
// repeated write failures, reported on stderr and given up) when it returns.
#include "proxy/metering/request_log.hpp"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <iostream>
#include <limits>
#include <mutex>
#include <thread>

#include "core/sqlite.hpp"
#include "core/time.hpp"

namespace tokfence::proxy {

namespace {

constexpr std::size_t kMaxQueuedRows = 100'000;    // about 50 MB of rows: only a dead disk gets here
// How long record() waits for room in a full queue before it drops the row: back-pressure that
// slows the I/O thread (and so the traffic) while the writer catches up, bounded so that a dead
// disk cannot stop the proxy.
constexpr auto kBackPressureWait = std::chrono::milliseconds(100);
constexpr std::size_t kMaxRowsPerCommit = 10'000;  // keeps one transaction (and the WAL) modest
// How long a row may wait for company before it is committed, and the batch size that ends the
// wait early. 50 ms is invisible to `tokfence log -f` and to anyone reading the log.
constexpr auto kLinger = std::chrono::milliseconds(50);
constexpr std::size_t kLingerRows = 512;
constexpr int kWriteAttempts = 3;
constexpr auto kPruneInterval = std::chrono::hours(1);
constexpr std::int64_t kDayMs = 86'400'000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS requests(
  id TEXT PRIMARY KEY,
  ts_ms INTEGER NOT NULL,
  provider TEXT,
  model TEXT,
  method TEXT,
  path TEXT,
  status INTEGER,
  streaming INTEGER,
  input_tokens INTEGER,
  output_tokens INTEGER,
  cache_read_tokens INTEGER,
  cache_write_tokens INTEGER,
  cost_pico INTEGER,
  latency_ms REAL,
  ttfb_ms REAL,
  caller_pid INTEGER,
  caller_name TEXT,
  error TEXT,
  cost_source TEXT,
  session TEXT);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts_ms);
DROP INDEX IF EXISTS requests_provider_ts;
CREATE TABLE IF NOT EXISTS egress(
  id INTEGER PRIMARY KEY,
  ts_ms INTEGER NOT NULL,
  caller TEXT,
  caller_pid INTEGER,
  kind TEXT,
  host TEXT,
  port INTEGER,
  address TEXT,
  decision TEXT,
  rule TEXT,
  bytes_up INTEGER,
  bytes_down INTEGER,
  duration_ms REAL,
  error TEXT);
CREATE INDEX IF NOT EXISTS egress_ts ON egress(ts_ms);
)sql";

constexpr const char* kEgressInsert =
    "INSERT INTO egress(ts_ms, caller, caller_pid, kind, host, port, address, decision, rule, bytes_up, bytes_down, "
    "duration_ms, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";
// requests_provider_ts (provider, ts_ms) was dropped: it cost a third of each row's insert, on the
// daemon's busiest thread after the I/O threads, for queries that read a provider's rows over a
// time window, which the ts_ms index serves nearly as well (a window holds few providers).

constexpr int kInsertColumns = 20;
// Rows per INSERT statement when a batch has that many: one statement execution (VDBE set-up,
// cursor opens, statement journal) serves them all. Measured ~20 % less writer time per row than
// one statement per row.
constexpr std::size_t kRowsPerInsert = 16;

// "INSERT OR REPLACE INTO requests(...) VALUES (?,...),(?,...)" for `rows` rows.
std::string insert_sql(std::size_t rows) {
  std::string sql =
      "INSERT OR REPLACE INTO requests(id, ts_ms, provider, model, method, path, status, streaming, input_tokens, "
      "output_tokens, cache_read_tokens, cache_write_tokens, cost_pico, latency_ms, ttfb_ms, caller_pid, caller_name, "
      "error, cost_source, session) VALUES ";
  for (std::size_t r = 0; r < rows; ++r) {
    sql += r == 0 ? "(" : ",(";
    for (int c = 0; c < kInsertColumns; ++c) sql += c == 0 ? "?" : ",?";
    sql += ")";
  }
  return sql;
}

bool has_column(sqlite::Database& db, const char* column) {
  return static_cast<bool>(db.prepare(std::string("SELECT ") + column + " FROM requests LIMIT 0"));
}

// The columns read_row() reads. A log written before cost_source or session existed, read by a
// CLI before any daemon added them, reads NULL in their place.
std::string row_columns(sqlite::Database& db) {
  return std::string(
             "rowid, id, ts_ms, provider, model, method, path, status, streaming, input_tokens, output_tokens, "
             "cache_read_tokens, cache_write_tokens, cost_pico, latency_ms, ttfb_ms, caller_pid, caller_name, error, ") +
         (has_column(db, "cost_source") ? "cost_source, " : "NULL, ") + (has_column(db, "session") ? "session" : "NULL");
}

void warn(const std::string& message) { std::cerr << "tokfence: request log: " << message << std::endl; }

Result<std::int64_t> prune(sqlite::Database& db, int retention_days) {
  if (retention_days <= 0) return 0;
  auto st = db.prepare("DELETE FROM requests WHERE ts_ms < ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, now_ms() - static_cast<std::int64_t>(retention_days) * kDayMs);
  if (auto ok = st->run(); !ok) return std::unexpected(ok.error());
  const std::int64_t pruned = db.changes();
  auto egress = db.prepare("DELETE FROM egress WHERE ts_ms < ?");
  if (!egress) return std::unexpected(egress.error());
  egress->bind(1, now_ms() - static_cast<std::int64_t>(retention_days) * kDayMs);
  if (auto ok = egress->run(); !ok) return std::unexpected(ok.error());
  return pruned + db.changes();
}

class SqliteRequestLog final : public RequestLog {
 public:
  SqliteRequestLog(sqlite::Database db, sqlite::Statement insert, sqlite::Statement insert_many,
                   sqlite::Statement insert_egress, int retention_days)
      : db_(std::move(db)),
        insert_(std::move(insert)),
        insert_many_(std::move(insert_many)),
        insert_egress_(std::move(insert_egress)),
        retention_days_(retention_days) {
    thread_ = std::thread([this] { run(); });
  }

  ~SqliteRequestLog() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_.notify_one();
    room_.notify_all();
    thread_.join();
    // Statements before their connection.
    insert_ = sqlite::Statement();
    insert_many_ = sqlite::Statement();
    insert_egress_ = sqlite::Statement();
  }

  void record_egress(EgressRecord record) override {
    try {
      for (std::string* field : {&record.caller, &record.host, &record.address, &record.rule, &record.error})
        truncate_for_log(*field);
      enqueue(egress_queue_, std::move(record));
    } catch (...) {
      // Out of memory while queueing: losing one row beats taking the connection down.
    }
  }

  void record(RequestRecord record) override {
    try {
      // The path must never carry a query string (it may hold a key); the proxy strips it, and
      // this is the last place to make sure.
      if (auto q = record.path.find('?'); q != std::string::npos) record.path.resize(q);
      for (std::string* field : {&record.provider, &record.model, &record.method, &record.path, &record.caller_name,
                                 &record.error})
        truncate_for_log(*field);
      enqueue(queue_, std::move(record));
    } catch (...) {
      // Out of memory while queueing: losing one log row beats taking the request down.
    }
  }

  Stats stats() const override {
    std::lock_guard lock(mutex_);
    Stats s{enqueued_, committed_, pending(), dropped_, lost_};
    s.commits = commits_;
    s.commit_seconds = commit_seconds_;
    s.commit_buckets = commit_buckets_;
    return s;
  }

  void flush() override {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = enqueued_;
    flush_target_ = std::max(flush_target_, target);
    work_.notify_one();
    done_.wait(lock, [&] { return processed_ >= target; });
  }

 private:
  void run() {
    auto next_prune = std::chrono::steady_clock::now() + kPruneInterval;
    std::vector<RequestRecord> batch;
    std::vector<EgressRecord> egress_batch;
    std::unique_lock lock(mutex_);
    for (;;) {
      work_.wait_until(lock, next_prune, [&] { return stopping_ || pending() > 0; });
      if (pending() > 0) {
        // The linger counts from the oldest queued row's arrival, not from this wake-up: rows
        // that came while the last batch was being committed have waited already.
        auto hurry = [&] { return stopping_ || flush_target_ > processed_ || pending() >= kLingerRows; };
        if (!hurry()) work_.wait_until(lock, first_queued_ + kLinger, hurry);
        std::size_t n = std::min(queue_.size(), kMaxRowsPerCommit);
        if (n == queue_.size()) {
          // The usual case: the whole queue is the batch. Swapped, so both vectors keep their
          // capacity and queueing a row allocates nothing (a deque allocated a block per row:
          // rows are larger than its blocks).
          batch.swap(queue_);
        } else {
          batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
          queue_.erase(queue_.begin(), queue_.begin() + n);
        }
        // Egress rows are few (one per connection): all of them go with this batch.
        egress_batch.swap(egress_queue_);
        n += egress_batch.size();
        lock.unlock();
        const auto write_started = std::chrono::steady_clock::now();
        const bool ok = write(batch, egress_batch);
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - write_started).count();
        batch.clear();
        egress_batch.clear();
        lock.lock();
        processed_ += n;
        (ok ? committed_ : lost_) += n;
        observe_commit(took);
        done_.notify_all();
        room_.notify_all();
      }
      if (std::chrono::steady_clock::now() >= next_prune) {
        lock.unlock();
        if (auto pruned = prune(db_, retention_days_); !pruned) warn("pruning old rows failed: " + pruned.error().message);
        next_prune = std::chrono::steady_clock::now() + kPruneInterval;
        lock.lock();
      }
      if (stopping_ && pending() == 0) break;
    }
    if (dropped_ > 0) warn("closed; " + std::to_string(dropped_) + " rows were dropped because the write queue was full");
  }

  // A failed commit is retried (the database may be locked by a long reader or the disk briefly
  // full); after the last attempt the rows are given up and the loss is reported.
  bool write(const std::vector<RequestRecord>& batch, const std::vector<EgressRecord>& egress) {
    std::string last_error;
    for (int attempt = 1; attempt <= kWriteAttempts; ++attempt) {
      auto ok = write_once(batch, egress);
      if (ok) return true;
      last_error = ok.error().message;
      if (attempt < kWriteAttempts) std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
    }
    warn("lost " + std::to_string(batch.size() + egress.size()) + " rows after " + std::to_string(kWriteAttempts) +
         " attempts: " + last_error);
    return false;
  }

  Result<void> write_once(const std::vector<RequestRecord>& batch, const std::vector<EgressRecord>& egress) {
    auto tx = sqlite::Transaction::begin(db_);
    if (!tx) return std::unexpected(tx.error());
    std::size_t i = 0;
    for (; i + kRowsPerInsert <= batch.size(); i += kRowsPerInsert) {
      insert_many_.reset();
      for (std::size_t r = 0; r < kRowsPerInsert; ++r) bind_row(insert_many_, static_cast<int>(r) * kInsertColumns, batch[i + r]);
      if (auto ok = insert_many_.run(); !ok) return ok;
    }
    for (; i < batch.size(); ++i) {
      insert_.reset();
      bind_row(insert_, 0, batch[i]);
      if (auto ok = insert_.run(); !ok) return ok;
    }
    for (const auto& e : egress) {
      insert_egress_.reset();
      insert_egress_.bind(1, e.ts_ms)
          .bind_static(2, e.caller)
          .bind(3, e.caller_pid)
          .bind_static(4, e.kind)
          .bind_static(5, e.host)
          .bind(6, e.port)
          .bind_static(7, e.address)
          .bind_static(8, e.decision)
          .bind_static(9, e.rule)
          .bind(10, static_cast<std::int64_t>(e.bytes_up))
          .bind(11, static_cast<std::int64_t>(e.bytes_down))
          .bind(12, e.duration_ms)
          .bind_static(13, e.error);
      if (auto ok = insert_egress_.run(); !ok) return ok;
    }
    insert_.reset();
    insert_many_.reset();
    insert_egress_.reset();
    return tx->commit();
  }

  // Binds one row's values at parameters offset+1 .. offset+19. The batch outlives the insert:
  // its strings are bound without a copy.
  static void bind_row(sqlite::Statement& st, int offset, const RequestRecord& r) {
    st.bind_static(offset + 1, r.id)
        .bind(offset + 2, r.ts_ms)
        .bind_static(offset + 3, r.provider)
        .bind_static(offset + 4, r.model)
        .bind_static(offset + 5, r.method)
        .bind_static(offset + 6, r.path)
        .bind(offset + 7, r.status)
        .bind(offset + 8, r.streaming ? 1 : 0)
        .bind(offset + 9, r.usage.input_tokens)
        .bind(offset + 10, r.usage.output_tokens)
        .bind(offset + 11, r.usage.cache_read_tokens)
        .bind(offset + 12, r.usage.cache_write_tokens)
        .bind(offset + 13, r.cost)
        .bind(offset + 14, r.latency_ms)
        .bind(offset + 15, r.ttfb_ms)
        .bind(offset + 16, r.caller_pid)
        .bind_static(offset + 17, r.caller_name)
        .bind_static(offset + 18, r.error);
    if (r.cost_source.empty())
      st.bind_null(offset + 19);
    else
      st.bind_static(offset + 19, r.cost_source);
    if (r.session.empty())
      st.bind_null(offset + 20);
    else
      st.bind_static(offset + 20, r.session);
  }

  sqlite::Database db_;
  sqlite::Statement insert_;       // one row
  sqlite::Statement insert_many_;  // kRowsPerInsert rows
  sqlite::Statement insert_egress_;
  const int retention_days_;

  std::size_t pending() const { return queue_.size() + egress_queue_.size(); }

  // Queues a row of either kind. A full queue (kMaxQueuedRows) wakes the writer and waits up to
  // kBackPressureWait for room, then drops the row and counts it. The writer sleeps until a first
  // row comes, then lingers until kLingerRows have come: no other row needs to wake it (a wake-up
  // is a syscall on the request path).
  template <class Row>
  void enqueue(std::vector<Row>& queue, Row&& row) {
    std::uint64_t dropped = 0;
    bool wake = false;
    {
      std::unique_lock lock(mutex_);
      if (pending() >= kMaxQueuedRows) {
        work_.notify_one();
        room_.wait_for(lock, kBackPressureWait, [&] { return pending() < kMaxQueuedRows || stopping_; });
      }
      if (pending() >= kMaxQueuedRows) {
        dropped = ++dropped_;
      } else {
        if (pending() == 0) first_queued_ = std::chrono::steady_clock::now();
        queue.push_back(std::move(row));
        ++enqueued_;
        wake = pending() == 1 || pending() == kLingerRows;
      }
    }
    if (wake) {
      work_.notify_one();
    } else if (dropped > 0 && (dropped == 1 || dropped % 10'000 == 0)) {
      warn("the write queue is full (" + std::to_string(kMaxQueuedRows) + " rows waiting for the disk): dropped " +
           std::to_string(dropped) + " rows so far");
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable work_;  // rows queued, or stopping
  std::condition_variable done_;  // processed_ advanced
  std::condition_variable room_;  // the queue shrank (record() waiting on a full queue)
  std::chrono::steady_clock::time_point first_queued_{};  // when the oldest queued row came
  std::vector<RequestRecord> queue_;
  std::vector<EgressRecord> egress_queue_;
  std::uint64_t enqueued_ = 0;    // rows accepted by record()
  std::uint64_t processed_ = 0;   // rows committed or given up, in queue order
  std::uint64_t dropped_ = 0;     // rows refused because the queue was full
  std::uint64_t committed_ = 0;   // rows committed
  std::uint64_t lost_ = 0;        // rows given up after kWriteAttempts failed commits
  // Commit times of the batches written (Stats::commits and friends).
  std::uint64_t commits_ = 0;
  double commit_seconds_ = 0;
  std::array<std::uint64_t, kCommitSecondsBuckets.size() + 1> commit_buckets_{};
  void observe_commit(double seconds) {
    std::size_t i = 0;
    while (i < kCommitSecondsBuckets.size() && seconds > kCommitSecondsBuckets[i]) ++i;
    ++commit_buckets_[i];
    ++commits_;
    commit_seconds_ += seconds;
  }
  std::uint64_t flush_target_ = 0;  // flush() waits for processed_ to reach this: no lingering
  bool stopping_ = false;
  std::thread thread_;
};

// Opens an existing log for reading. nullopt: no database or no requests table yet.
Result<std::optional<sqlite::Database>> open_for_reading(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<sqlite::Database>();
  auto db = sqlite::Database::open(path, sqlite::Create::no);
  if (!db) return std::unexpected(db.error());
  auto has = db->has_table("requests");
  if (!has) return std::unexpected(has.error());
  if (!*has) return std::optional<sqlite::Database>();
  return std::optional<sqlite::Database>(std::move(*db));
}

LoggedRequest read_row(const sqlite::Statement& st) {
  LoggedRequest row;
  row.rowid = st.column_int64(0);
  RequestRecord& r = row.record;
  r.id = st.column_text(1);
  r.ts_ms = st.column_int64(2);
  r.provider = st.column_text(3);
  r.model = st.column_text(4);
  r.method = st.column_text(5);
  r.path = st.column_text(6);
  r.status = static_cast<int>(st.column_int64(7));
  r.streaming = st.column_int64(8) != 0;
  r.usage.input_tokens = st.column_int64(9);
  r.usage.output_tokens = st.column_int64(10);
  r.usage.cache_read_tokens = st.column_int64(11);
  r.usage.cache_write_tokens = st.column_int64(12);
  r.usage.found = r.usage.total() > 0;
  if (!st.column_is_null(13)) r.cost = st.column_int64(13);
  r.latency_ms = st.column_double(14);
  r.ttfb_ms = st.column_double(15);
  r.caller_pid = static_cast<int>(st.column_int64(16));
  r.caller_name = st.column_text(17);
  r.error = st.column_text(18);
  r.cost_source = st.column_text(19);
  r.session = st.column_text(20);
  return row;
}

// The aggregate columns shared by totals_since and totals_by, read from column `first` on.
constexpr const char* kTotalsColumns =
    "count(*), total(input_tokens), total(output_tokens), total(cache_read_tokens), total(cache_write_tokens), "
    "sum(cost_pico), sum(cost_pico IS NULL)";

Totals read_totals(const sqlite::Statement& st, int first) {
  Totals t;
  t.requests = st.column_int64(first);
  // total() is a REAL (it never overflows); token counts stay far below 2^53.
  t.input_tokens = static_cast<std::int64_t>(st.column_double(first + 1));
  t.output_tokens = static_cast<std::int64_t>(st.column_double(first + 2));
  t.cache_read_tokens = static_cast<std::int64_t>(st.column_double(first + 3));
  t.cache_write_tokens = static_cast<std::int64_t>(st.column_double(first + 4));
  t.cost = st.column_int64(first + 5);  // sum() stays an exact integer; NULL (no known cost) reads 0
  t.unknown_cost_requests = st.column_int64(first + 6);
  return t;
}

}  // namespace

Result<std::unique_ptr<RequestLog>> RequestLog::open(const std::filesystem::path& db_path, int retention_days) {
  auto db = sqlite::Database::open(db_path, sqlite::Create::yes);
  if (!db) return std::unexpected(db.error());
  if (auto ok = db->exec(kSchema); !ok) return std::unexpected(ok.error());
  // A log from before a column: added in place (older readers ignore it).
  for (const char* column : {"cost_source", "session"})
    if (!has_column(*db, column))
      if (auto ok = db->exec(std::string("ALTER TABLE requests ADD COLUMN ") + column + " TEXT"); !ok)
        return std::unexpected(ok.error());
  if (auto pruned = prune(*db, retention_days); !pruned) return std::unexpected(pruned.error());
  auto insert = db->prepare(insert_sql(1));
  if (!insert) return std::unexpected(insert.error());
  auto insert_many = db->prepare(insert_sql(kRowsPerInsert));
  if (!insert_many) return std::unexpected(insert_many.error());
  auto insert_egress = db->prepare(kEgressInsert);
  if (!insert_egress) return std::unexpected(insert_egress.error());
  return std::unique_ptr<RequestLog>(new SqliteRequestLog(std::move(*db), std::move(*insert), std::move(*insert_many),
                                                          std::move(*insert_egress), retention_days));
}

Result<Totals> totals_since(const std::filesystem::path& db_path, std::int64_t since_ms, const std::string& provider) {
  auto db = open_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  if (!*db) return Totals{};
  auto st = (*db)->prepare(std::string("SELECT ") + kTotalsColumns +
                           " FROM requests WHERE ts_ms >= ?1 AND (?2 = '' OR provider = ?2)");
  if (!st) return std::unexpected(st.error());
  st->bind(1, since_ms).bind(2, provider);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  return *row ? read_totals(*st, 0) : Totals{};
}

Result<SessionSpend> session_spend_since(const std::filesystem::path& db_path, const std::string& session,
                                         std::int64_t since_ms) {
  auto db = open_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  if (!*db || !has_column(**db, "session")) return SessionSpend{};
  // total(): a REAL, never an overflow error (amounts saturate at the largest picodollar amount,
  // and two of those would overflow sum()); exact below 2^53 picodollars ($9,007).
  auto st = (*db)->prepare("SELECT min(ts_ms), total(cost_pico) FROM requests WHERE session = ?1 AND ts_ms >= ?2");
  if (!st) return std::unexpected(st.error());
  st->bind(1, session).bind(2, since_ms);
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  SessionSpend out;
  if (*row && !st->column_is_null(0)) {
    out.first_ms = st->column_int64(0);
    const double cost = st->column_double(1);
    out.cost = cost >= 9.2e18 ? std::numeric_limits<std::int64_t>::max() : static_cast<std::int64_t>(std::llround(cost));
  }
  return out;
}

Result<std::vector<GroupTotals>> totals_by(const std::filesystem::path& db_path, std::int64_t since_ms, GroupBy by,
                                           const std::string& provider) {
  auto db = open_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  std::vector<GroupTotals> groups;
  if (!*db) return groups;
  const char* column = by == GroupBy::model      ? "model"
                       : by == GroupBy::provider ? "provider"
                       : by == GroupBy::caller   ? "caller_name"
                       : has_column(**db, "session") ? "session"
                                                     : "NULL";
  std::string key = std::string("CASE WHEN ") + column + " IS NULL OR " + column + " = '' THEN '(unknown)' ELSE " +
                    column + " END";
  auto st = (*db)->prepare("SELECT " + key + " AS k, " + kTotalsColumns +
                           " FROM requests WHERE ts_ms >= ?1 AND (?2 = '' OR provider = ?2)"
                           " GROUP BY k ORDER BY sum(cost_pico) DESC, count(*) DESC, k");
  if (!st) return std::unexpected(st.error());
  st->bind(1, since_ms).bind(2, provider);
  auto done = st->for_each_row(
      [&](const sqlite::Statement& row) { groups.push_back(GroupTotals{row.column_text(0), read_totals(row, 1)}); });
  if (!done) return std::unexpected(done.error());
  return groups;
}

Result<std::vector<LoggedRequest>> query_requests(const std::filesystem::path& db_path, const RequestQuery& query) {
  auto db = open_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  std::vector<LoggedRequest> rows;
  if (!*db) return rows;
  std::string where = " WHERE ts_ms >= ?1 AND (?2 = '' OR provider = ?2) AND (?3 = '' OR id = ?3) AND rowid > ?4";
  std::string sql;
  const std::string columns = row_columns(**db);
  // The newest N by time, shown oldest first; a follower reads in commit order instead.
  if (query.after_rowid)
    sql = std::string("SELECT ") + columns + " FROM requests" + where + " ORDER BY rowid LIMIT ?5";
  else
    sql = std::string("SELECT * FROM (SELECT ") + columns + " FROM requests" + where +
          " ORDER BY ts_ms DESC, rowid DESC LIMIT ?5) ORDER BY ts_ms, rowid";
  auto st = (*db)->prepare(sql);
  if (!st) return std::unexpected(st.error());
  st->bind(1, query.since_ms)
      .bind(2, query.provider)
      .bind(3, query.id)
      .bind(4, query.after_rowid.value_or(0))
      .bind(5, static_cast<std::int64_t>(query.limit > 0 ? query.limit : -1));
  auto done = st->for_each_row([&](const sqlite::Statement& row) { rows.push_back(read_row(row)); });
  if (!done) return std::unexpected(done.error());
  return rows;
}

Result<std::int64_t> last_rowid(const std::filesystem::path& db_path) {
  auto db = open_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  if (!*db) return 0;
  auto st = (*db)->prepare("SELECT coalesce(max(rowid), 0) FROM requests");
  if (!st) return std::unexpected(st.error());
  auto row = st->step();
  if (!row) return std::unexpected(row.error());
  return *row ? st->column_int64(0) : 0;
}

Result<std::vector<SeenModel>> models_seen(const std::filesystem::path& db_path) {
  auto db = open_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  std::vector<SeenModel> out;
  if (!*db) return out;
  // Bounded: a log holds few distinct models, but a hostile client could invent many names.
  auto st = (*db)->prepare(
      "SELECT coalesce(provider, ''), model, count(*), max(ts_ms) FROM requests WHERE model IS NOT NULL AND model != '' "
      "GROUP BY provider, model ORDER BY max(ts_ms) DESC LIMIT 100000");
  if (!st) return std::unexpected(st.error());
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    out.push_back(SeenModel{row.column_text(0), row.column_text(1), row.column_int64(2), row.column_int64(3)});
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

// Opens the log for reading egress rows. nullopt: no database or no egress table yet.
Result<std::optional<sqlite::Database>> open_egress_for_reading(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<sqlite::Database>();
  auto db = sqlite::Database::open(path, sqlite::Create::no);
  if (!db) return std::unexpected(db.error());
  auto has = db->has_table("egress");
  if (!has) return std::unexpected(has.error());
  if (!*has) return std::optional<sqlite::Database>();
  return std::optional<sqlite::Database>(std::move(*db));
}

Result<std::vector<LoggedEgress>> query_egress(const std::filesystem::path& db_path, const EgressQuery& query) {
  auto db = open_egress_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  std::vector<LoggedEgress> rows;
  if (!*db) return rows;
  auto st = (*db)->prepare(
      "SELECT * FROM (SELECT id, ts_ms, caller, caller_pid, kind, host, port, address, decision, rule, bytes_up, "
      "bytes_down, duration_ms, error FROM egress WHERE ts_ms >= ?1 AND (?2 = '' OR caller = ?2) "
      "ORDER BY ts_ms DESC, id DESC LIMIT ?3) ORDER BY ts_ms, id");
  if (!st) return std::unexpected(st.error());
  st->bind(1, query.since_ms).bind(2, query.caller).bind(3, static_cast<std::int64_t>(query.limit > 0 ? query.limit : -1));
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    LoggedEgress e;
    e.id = row.column_int64(0);
    EgressRecord& r = e.record;
    r.ts_ms = row.column_int64(1);
    r.caller = row.column_text(2);
    r.caller_pid = static_cast<int>(row.column_int64(3));
    r.kind = row.column_text(4);
    r.host = row.column_text(5);
    r.port = static_cast<int>(row.column_int64(6));
    r.address = row.column_text(7);
    r.decision = row.column_text(8);
    r.rule = row.column_text(9);
    r.bytes_up = static_cast<std::uint64_t>(row.column_int64(10));
    r.bytes_down = static_cast<std::uint64_t>(row.column_int64(11));
    r.duration_ms = row.column_double(12);
    r.error = row.column_text(13);
    rows.push_back(std::move(e));
  });
  if (!done) return std::unexpected(done.error());
  return rows;
}

Result<std::vector<HostTotals>> egress_totals_by_host(const std::filesystem::path& db_path, std::int64_t since_ms) {
  auto db = open_egress_for_reading(db_path);
  if (!db) return std::unexpected(db.error());
  std::vector<HostTotals> out;
  if (!*db) return out;
  auto st = (*db)->prepare(
      "SELECT host, sum(decision = 'allowed'), sum(decision != 'allowed'), total(bytes_up), total(bytes_down) "
      "FROM egress WHERE ts_ms >= ?1 GROUP BY host ORDER BY count(*) DESC, host LIMIT 100000");
  if (!st) return std::unexpected(st.error());
  st->bind(1, since_ms);
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    out.push_back(HostTotals{row.column_text(0), row.column_int64(1), row.column_int64(2),
                             static_cast<std::int64_t>(row.column_double(3)),
                             static_cast<std::int64_t>(row.column_double(4))});
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

void truncate_for_log(std::string& text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return;
  std::size_t cut = max_bytes;
  // Back off to the start of the character the cut would split (continuation bytes are 10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  text.append(kTruncatedMarker);
}

namespace {

class ObservedLog final : public RequestLog {
 public:
  ObservedLog(std::shared_ptr<RequestLog> inner, std::function<void(const RequestRecord&)> on_record)
      : inner_(std::move(inner)), on_record_(std::move(on_record)) {}
  void record(RequestRecord record) override {
    on_record_(record);
    inner_->record(std::move(record));
  }
  void record_egress(EgressRecord record) override { inner_->record_egress(std::move(record)); }
  void flush() override { inner_->flush(); }
  Stats stats() const override { return inner_->stats(); }

 private:
  std::shared_ptr<RequestLog> inner_;
  std::function<void(const RequestRecord&)> on_record_;
};

}  // namespace

std::shared_ptr<RequestLog> observe_records(std::shared_ptr<RequestLog> inner,
                                            std::function<void(const RequestRecord&)> on_record) {
  return std::make_shared<ObservedLog>(std::move(inner), std::move(on_record));
}

}  // namespace tokfence::proxy
