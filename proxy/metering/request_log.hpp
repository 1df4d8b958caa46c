#pragma once
// The request log: one SQLite row per proxied request (WAL mode, at config.logging.db_path).
// Rows are queued by the I/O threads and written by one background thread in batches, so the
// request path never waits on the disk; flush() (called by `stop`) writes everything queued.
// A row is committed at most kLinger (50 ms) after it was recorded plus the commit in progress
// then and its own: the audit trail and the budgets' memory after a crash (kill -9 loses no row
// committed; WAL with synchronous=NORMAL survives the process, not a power cut).
// Rows older than retention_days are pruned at open and then hourly.
//
// Schema (other parts read it; change it only by adding columns):
//   requests(id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, provider TEXT, model TEXT, method TEXT,
//            path TEXT, status INTEGER, streaming INTEGER, input_tokens INTEGER,
//            output_tokens INTEGER, cache_read_tokens INTEGER, cache_write_tokens INTEGER,
//            cost_pico INTEGER /* NULL = unknown price */, latency_ms REAL, ttfb_ms REAL,
//            caller_pid INTEGER, caller_name TEXT, error TEXT,
//            cost_source TEXT /* usage|estimate|none|free|unpriced, NULL in rows before it existed */,
//            session TEXT /* the ImmuneFence session named by the request's signed token; NULL = none */)
//   index on ts_ms (and the primary key's on id); no other: each index costs every insert.
//   egress(id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, caller TEXT, caller_pid INTEGER,
//          kind TEXT /* connect|http */, host TEXT, port INTEGER, address TEXT /* what was
//          connected to, "" when nothing was */, decision TEXT /* allowed|denied */, rule TEXT,
//          bytes_up INTEGER, bytes_down INTEGER, duration_ms REAL, error TEXT)
//   one row per CONNECT or absolute-form request on a forward proxy (proxy/egress), written by the
//   same writer, in the same transactions, as the requests rows (flush() covers both).
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "proxy/metering/pricing.hpp"
#include "proxy/metering/usage.hpp"

namespace tokfence::proxy {

struct RequestRecord {
  std::string id;            // "req_" + 16 hex digits, also sent to the client as X-Tokfence-Request-Id
  std::int64_t ts_ms = 0;    // request start, unix milliseconds
  std::string provider, model, method, path;  // path without the query string (it may hold a key)
  int status = 0;            // status sent to the client; 0 = no response (client gone first)
  bool streaming = false;
  Usage usage;
  std::optional<Picodollars> cost;  // nullopt = unknown price
  double latency_ms = 0;     // until the last byte was relayed
  double ttfb_ms = 0;        // until the first response byte from upstream
  int caller_pid = 0;
  std::string caller_name;
  std::string error;         // "" = none; e.g. "upstream reset mid-stream"
  // Where `cost` comes from (proxy/metering.hpp CostSource): "estimate" when the request ended
  // without usage and was charged its admission estimate. "" = not recorded (NULL).
  std::string cost_source;
  // The ImmuneFence session the request's token belongs to ("" = none): from the signed token,
  // so, unlike caller_name, it cannot be claimed by the client.
  std::string session;
};

// One connection attempt through the forward proxy, allowed or refused (docs/EGRESS.md).
struct EgressRecord {
  std::int64_t ts_ms = 0;     // when the request head was read, unix milliseconds
  std::string caller;         // the listener's label (openclaw:NAME, codex, ...)
  int caller_pid = 0;
  std::string kind;           // "connect" (a tunnel) or "http" (an absolute-form request)
  std::string host;           // as the client named it, normalised
  int port = 0;
  std::string address;        // the address connected to; "" when none was
  std::string decision;       // "allowed" | "denied"
  std::string rule;           // the rule that decided: allow:HOST:PORT, default-deny, private-address, ...
  std::uint64_t bytes_up = 0;    // client -> destination
  std::uint64_t bytes_down = 0;  // destination -> client
  double duration_ms = 0;
  std::string error;          // "" = none
};

// Text fields of a row come from clients (model, path, caller name, the provider segment, an error
// quoting them) and are stored at most this long: a client sending an 8 MiB model name must not
// grow the log by 8 MiB a request.
inline constexpr std::size_t kMaxLoggedFieldBytes = 256;
inline constexpr std::string_view kTruncatedMarker = "\u2026[truncated]";

// Cuts `text` to at most `max_bytes` at a UTF-8 character boundary and appends kTruncatedMarker;
// shorter text is left alone.
void truncate_for_log(std::string& text, std::size_t max_bytes = kMaxLoggedFieldBytes);

struct Totals {
  std::int64_t requests = 0;
  std::int64_t input_tokens = 0, output_tokens = 0, cache_read_tokens = 0, cache_write_tokens = 0;
  Picodollars cost = 0;           // sum over rows with a known cost
  std::int64_t unknown_cost_requests = 0;
};

class RequestLog {
 public:
  // Creates the file (mode 0600) and schema if needed, and prunes old rows before returning.
  // retention_days <= 0 keeps rows forever. At most 100,000 rows wait in memory; past that,
  // record() waits for room (back-pressure on the I/O thread, at most 100 ms per row), and only
  // then drops the row, counting it (stats(), `tokfence status`) and saying so on stderr (the
  // daemon log) with a running count.
  static Result<std::unique_ptr<RequestLog>> open(const std::filesystem::path& db, int retention_days);
  virtual ~RequestLog() = default;  // implementations flush on destruction
  // Never blocks on I/O; never throws.
  virtual void record(RequestRecord record) = 0;
  // An egress row: queued and committed like record()'s rows, counted in the same stats.
  virtual void record_egress(EgressRecord record) = 0;
  // Blocks until every row recorded so far is committed (or, after three failed attempts to
  // commit it, given up and reported on stderr: a broken disk must not hang `stop`).
  virtual void flush() = 0;

  // Upper bounds (seconds) of the writer's commit-time buckets: a batch's write and commit,
  // retries included (a slow disk shows here before rows queue up).
  static constexpr std::array<double, 12> kCommitSecondsBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                                   0.05,   0.1,   0.25,   0.5,   1,    2.5};
  struct Stats {
    std::uint64_t recorded = 0;   // rows accepted by record()
    std::uint64_t committed = 0;  // rows committed to the database
    std::uint64_t queued = 0;     // rows waiting for the writer now
    std::uint64_t dropped = 0;    // rows refused because the queue stayed full
    std::uint64_t lost = 0;       // rows given up after failed commits (a broken disk)
    // The writer's batches (committed or given up) and how long each took, by
    // kCommitSecondsBuckets (not cumulative; the last count is for batches slower than the last
    // bound).
    std::uint64_t commits = 0;
    double commit_seconds = 0;
    std::array<std::uint64_t, kCommitSecondsBuckets.size() + 1> commit_buckets{};
  };
  virtual Stats stats() const = 0;
};

// A RequestLog that forwards everything to `inner` and hands each record to `on_record` first
// (on the recording I/O thread: keep it to a flag store or a counter update). The daemon's widget
// snapshot and metrics watch the traffic through it.
std::shared_ptr<RequestLog> observe_records(std::shared_ptr<RequestLog> inner,
                                            std::function<void(const RequestRecord&)> on_record);

// Read side (any process): totals over rows with ts_ms >= since_ms, optionally one provider.
Result<Totals> totals_since(const std::filesystem::path& db, std::int64_t since_ms, const std::string& provider = "");

// What the requests of the ImmuneFence session `session` (by name) cost from since_ms on, and when
// the first of them came (0 = none): a session's own daily budget is counted in memory, and the
// daemon restores it from here at start, so a restart does not start its day again.
struct SessionSpend {
  std::int64_t first_ms = 0;
  std::int64_t cost = 0;  // picodollars, rows with a known cost
};
Result<SessionSpend> session_spend_since(const std::filesystem::path& db, const std::string& session,
                                         std::int64_t since_ms);

// ---- More of the read side (the CLI's `log` and `stats`; any process, daemon running or not).
// A database file or table that does not exist yet reads as "no rows", not as an error.

struct LoggedRequest {
  std::int64_t rowid = 0;  // SQLite rowid: grows in commit order, so followers poll by it
  RequestRecord record;
};

struct RequestQuery {
  std::string id;                // exactly this request ("" = any)
  std::string provider;          // "" = any
  std::int64_t since_ms = 0;     // ts_ms >= since_ms
  // Set: only rows committed after this rowid (0 = from the first), in commit order (follow
  // mode). Unset: the newest rows by ts_ms.
  std::optional<std::int64_t> after_rowid;
  int limit = 20;                // at most this many rows; 0 = no limit
};

// Rows oldest first (by ts_ms, or by rowid when after_rowid is set).
Result<std::vector<LoggedRequest>> query_requests(const std::filesystem::path& db, const RequestQuery& query);
// Distinct (provider, model) pairs in the log, most recently seen first (at most 100,000).
struct SeenModel {
  std::string provider, model;
  std::int64_t requests = 0;
  std::int64_t last_ts_ms = 0;
};
Result<std::vector<SeenModel>> models_seen(const std::filesystem::path& db);
// The largest rowid in the log (0 when empty): where a follower starts.
Result<std::int64_t> last_rowid(const std::filesystem::path& db);

enum class GroupBy { model, provider, caller, session };

struct GroupTotals {
  std::string key;  // the model / provider / caller name; "(unknown)" when the row has none
  Totals totals;
};

// Totals per group over rows with ts_ms >= since_ms (optionally one provider), the most
// expensive group first.
Result<std::vector<GroupTotals>> totals_by(const std::filesystem::path& db, std::int64_t since_ms, GroupBy by,
                                           const std::string& provider = "");

// ---- Egress rows (`tokfence log --egress`, `stats --by host`).
struct LoggedEgress {
  std::int64_t id = 0;
  EgressRecord record;
};
struct EgressQuery {
  std::int64_t since_ms = 0;
  std::string caller;  // "" = any
  int limit = 20;      // the newest N, shown oldest first; 0 = no limit
};
Result<std::vector<LoggedEgress>> query_egress(const std::filesystem::path& db, const EgressQuery& query);

struct HostTotals {
  std::string host;
  std::int64_t allowed = 0, denied = 0;
  std::int64_t bytes_up = 0, bytes_down = 0;
};
// Per destination host over egress rows with ts_ms >= since_ms, most attempts first.
Result<std::vector<HostTotals>> egress_totals_by_host(const std::filesystem::path& db, std::int64_t since_ms);

}  // namespace tokfence::proxy
