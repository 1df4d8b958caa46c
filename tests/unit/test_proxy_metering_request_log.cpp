#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <thread>

#include "proxy/metering/request_log.hpp"
#include "core/sqlite.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
using namespace tokfence::proxy;

namespace {

// A private temporary directory, removed with everything in it.
// The request log's database in a private directory of the test's.
struct TempDir : test::TempDir {
  std::filesystem::path db() const { return path / "tokfence.db"; }
};

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

RequestRecord make_row(std::string id, std::int64_t ts_ms, std::string provider = "openai", std::string model = "gpt-4o") {
  RequestRecord r;
  r.id = std::move(id);
  r.ts_ms = ts_ms;
  r.provider = std::move(provider);
  r.model = std::move(model);
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.status = 200;
  r.usage.input_tokens = 100;
  r.usage.output_tokens = 20;
  r.usage.found = true;
  r.cost = 450'000'000;  // $0.00045
  r.latency_ms = 12.5;
  r.ttfb_ms = 3.25;
  r.caller_pid = 4242;
  r.caller_name = "python3";
  return r;
}

std::unique_ptr<RequestLog> open_log(const std::filesystem::path& db, int retention_days = 90) {
  auto log = RequestLog::open(db, retention_days);
  REQUIRE(log);
  return std::move(*log);
}

std::vector<LoggedRequest> all_rows(const std::filesystem::path& db) {
  RequestQuery q;
  q.limit = 0;
  auto rows = query_requests(db, q);
  REQUIRE(rows);
  return *rows;
}

std::string hex_id(int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "req_%016x", n);
  return buf;
}

}  // namespace

TEST_CASE("proxy::RequestLog writes rows that read back field by field") {
  TempDir dir;
  auto log = open_log(dir.db());
  const std::int64_t t0 = now_ms();
  RequestRecord a = make_row("req_00000000000000a1", t0 - 1000);
  a.usage.cache_read_tokens = 7;
  a.usage.cache_write_tokens = 9;
  RequestRecord b = make_row("req_00000000000000b2", t0, "anthropic", "claude-sonnet-4-5");
  b.streaming = true;
  b.status = 502;
  b.cost.reset();
  b.error = "upstream reset mid-stream";
  log->record(a);
  log->record(b);
  log->flush();

  auto rows = all_rows(dir.db());
  REQUIRE(rows.size() == 2);
  const RequestRecord& ra = rows[0].record;
  CHECK(ra.id == a.id);
  CHECK(ra.ts_ms == a.ts_ms);
  CHECK(ra.provider == "openai");
  CHECK(ra.model == "gpt-4o");
  CHECK(ra.method == "POST");
  CHECK(ra.path == "/v1/chat/completions");
  CHECK(ra.status == 200);
  CHECK_FALSE(ra.streaming);
  CHECK(ra.usage.input_tokens == 100);
  CHECK(ra.usage.output_tokens == 20);
  CHECK(ra.usage.cache_read_tokens == 7);
  CHECK(ra.usage.cache_write_tokens == 9);
  REQUIRE(ra.cost.has_value());
  CHECK(*ra.cost == 450'000'000);
  CHECK(ra.latency_ms == Approx(12.5));
  CHECK(ra.ttfb_ms == Approx(3.25));
  CHECK(ra.caller_pid == 4242);
  CHECK(ra.caller_name == "python3");
  CHECK(ra.error.empty());

  const RequestRecord& rb = rows[1].record;
  CHECK(rb.id == b.id);
  CHECK(rb.provider == "anthropic");
  CHECK(rb.streaming);
  CHECK(rb.status == 502);
  CHECK_FALSE(rb.cost.has_value());  // unknown price stays unknown, not $0
  CHECK(rb.error == "upstream reset mid-stream");
  CHECK(rows[0].rowid < rows[1].rowid);
}

TEST_CASE("proxy::RequestLog writes a batch of many rows (multi-row inserts and the rest) in order") {
  TempDir dir;
  auto log = open_log(dir.db());
  const std::int64_t t0 = now_ms();
  constexpr int kRows = 37;  // two inserts of 16 rows and five single ones, if in one batch
  for (int i = 0; i < kRows; ++i) {
    RequestRecord r = make_row(hex_id(1000 + i), t0 + i, i % 2 ? "anthropic" : "openai", "model-" + std::to_string(i));
    r.usage.input_tokens = i;
    r.usage.output_tokens = 2 * i;
    r.caller_name = "caller-" + std::to_string(i);
    r.error = i % 3 ? "" : "error " + std::to_string(i);
    if (i % 5 == 0) r.cost.reset();
    log->record(std::move(r));
  }
  log->flush();
  auto rows = all_rows(dir.db());
  REQUIRE(rows.size() == kRows);
  for (int i = 0; i < kRows; ++i) {
    const RequestRecord& r = rows[i].record;
    INFO("row " << i);
    CHECK(r.id == hex_id(1000 + i));
    CHECK(r.ts_ms == t0 + i);
    CHECK(r.provider == (i % 2 ? "anthropic" : "openai"));
    CHECK(r.model == "model-" + std::to_string(i));
    CHECK(r.usage.input_tokens == i);
    CHECK(r.usage.output_tokens == 2 * i);
    CHECK(r.caller_name == "caller-" + std::to_string(i));
    CHECK(r.error == (i % 3 ? "" : "error " + std::to_string(i)));
    CHECK(r.cost.has_value() == (i % 5 != 0));
    if (i > 0) CHECK(rows[i - 1].rowid < rows[i].rowid);
  }
}

TEST_CASE("proxy::RequestLog creates the database and its WAL files with mode 0600") {
  TempDir dir;
  auto log = open_log(dir.db());
  log->record(make_row("req_0000000000000001", now_ms()));
  log->flush();
  struct stat st {};
  REQUIRE(::stat(dir.db().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  for (const char* suffix : {"-wal", "-shm"}) {
    auto p = dir.db().string() + suffix;
    REQUIRE(::stat(p.c_str(), &st) == 0);  // WAL mode: the files exist while the log is open
    CHECK((st.st_mode & 0777) == 0600);
  }
  auto db = sqlite::Database::open(dir.db(), sqlite::Create::no);
  REQUIRE(db);
  auto mode = db->prepare("PRAGMA journal_mode");
  REQUIRE(mode);
  REQUIRE(mode->step().value());
  CHECK(mode->column_text(0) == "wal");
}

TEST_CASE("proxy::RequestLog tightens an existing database file to 0600") {
  TempDir dir;
  { auto log = open_log(dir.db()); }
  REQUIRE(::chmod(dir.db().c_str(), 0644) == 0);
  auto log = open_log(dir.db());
  struct stat st {};
  REQUIRE(::stat(dir.db().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("proxy::RequestLog prunes rows older than retention_days when opened") {
  TempDir dir;
  const std::int64_t day = 86'400'000;
  {
    auto log = open_log(dir.db(), 7);
    log->record(make_row(hex_id(1), now_ms() - 10 * day));  // past retention
    log->record(make_row(hex_id(2), now_ms() - 6 * day));   // inside it
    log->record(make_row(hex_id(3), now_ms()));
  }
  REQUIRE(all_rows(dir.db()).size() == 3);  // nothing pruned until the next open
  { auto log = open_log(dir.db(), 7); }
  auto rows = all_rows(dir.db());
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].record.id == hex_id(2));
  CHECK(rows[1].record.id == hex_id(3));
  { auto log = open_log(dir.db(), 0); }  // 0 keeps everything
  CHECK(all_rows(dir.db()).size() == 2);
}

TEST_CASE("proxy::RequestLog keeps every row recorded by concurrent threads") {
  TempDir dir;
  auto log = open_log(dir.db());
  constexpr int kThreads = 8, kPerThread = 2500;
  std::vector<std::thread> threads;
  const std::int64_t t0 = now_ms();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        RequestRecord r = make_row(hex_id(t * kPerThread + i), t0 + i, t % 2 ? "anthropic" : "openai");
        r.usage.input_tokens = 1;
        r.usage.output_tokens = 2;
        r.cost = 1000;
        log->record(std::move(r));
      }
    });
  }
  for (auto& th : threads) th.join();
  log->flush();
  auto totals = totals_since(dir.db(), 0);
  REQUIRE(totals);
  CHECK(totals->requests == kThreads * kPerThread);
  CHECK(totals->input_tokens == kThreads * kPerThread);
  CHECK(totals->output_tokens == 2 * kThreads * kPerThread);
  CHECK(totals->cost == 1000LL * kThreads * kPerThread);
  auto anthropic = totals_since(dir.db(), 0, "anthropic");
  REQUIRE(anthropic);
  CHECK(anthropic->requests == kThreads / 2 * kPerThread);
}

TEST_CASE("proxy::RequestLog commits everything still queued when destroyed") {
  TempDir dir;
  constexpr int kRows = 20'000;
  {
    auto log = open_log(dir.db());
    for (int i = 0; i < kRows; ++i) log->record(make_row(hex_id(i), now_ms()));
    // no flush(): the destructor must write the rest
  }
  auto totals = totals_since(dir.db(), 0);
  REQUIRE(totals);
  CHECK(totals->requests == kRows);
}

TEST_CASE("proxy::RequestLog commits a row on its own, without flush(), and counts it") {
  TempDir dir;
  auto log = open_log(dir.db());
  log->record(make_row("req_alone", now_ms()));
  // Read by another connection, as `tokfence log -f` or a crash's survivor would. Bounded wait:
  // the writer's linger is 50 ms; this allows 10 s on a loaded machine.
  bool seen = false;
  for (int i = 0; i < 1000 && !seen; ++i) {
    auto totals = totals_since(dir.db(), 0);
    REQUIRE(totals);
    // The count is updated just after the commit: wait for both.
    seen = totals->requests == 1 && log->stats().committed == 1;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(seen);
  auto stats = log->stats();
  CHECK(stats.recorded == 1);
  CHECK(stats.committed == 1);
  CHECK(stats.queued == 0);
  CHECK(stats.dropped == 0);
  CHECK(stats.lost == 0);
  // The batch's commit was timed: one observation, in one bucket.
  CHECK(stats.commits == 1);
  CHECK(stats.commit_seconds > 0);
  std::uint64_t in_buckets = 0;
  for (auto n : stats.commit_buckets) in_buckets += n;
  CHECK(in_buckets == 1);
}

TEST_CASE("proxy::RequestLog flush() waits only for rows recorded before it, and can be repeated") {
  TempDir dir;
  auto log = open_log(dir.db());
  log->flush();  // nothing queued: returns
  for (int round = 1; round <= 5; ++round) {
    for (int i = 0; i < 100; ++i) log->record(make_row(hex_id(round * 1000 + i), now_ms()));
    log->flush();
    auto totals = totals_since(dir.db(), 0);
    REQUIRE(totals);
    CHECK(totals->requests == round * 100);
  }
}

TEST_CASE("proxy::RequestLog never stores a query string in the path") {
  TempDir dir;
  auto log = open_log(dir.db());
  RequestRecord r = make_row(hex_id(1), now_ms());
  r.path = "/v1beta/models/gemini-2.5-flash:generateContent?key=tfcanary-not-a-key";
  log->record(r);
  log->flush();
  auto rows = all_rows(dir.db());
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].record.path == "/v1beta/models/gemini-2.5-flash:generateContent");
}

TEST_CASE("proxy::RequestLog reports a database path it cannot create") {
  TempDir dir;
  std::filesystem::create_directory(dir.path / "a-directory");
  auto log = RequestLog::open(dir.path / "a-directory", 90);
  REQUIRE_FALSE(log);
  CHECK(log.error().message.find((dir.path / "a-directory").string()) != std::string::npos);
  CHECK(log.error().message.rfind("sqlite: ", 0) == 0);
}

TEST_CASE("proxy::RequestLog writes while another connection holds a read transaction") {
  TempDir dir;
  auto log = open_log(dir.db());
  log->record(make_row(hex_id(1), now_ms()));
  log->flush();
  auto reader = sqlite::Database::open(dir.db(), sqlite::Create::no);
  REQUIRE(reader);
  REQUIRE(reader->exec("BEGIN"));
  auto count = reader->prepare("SELECT count(*) FROM requests");
  REQUIRE(count);
  REQUIRE(count->step().value());
  CHECK(count->column_int64(0) == 1);
  log->record(make_row(hex_id(2), now_ms()));
  log->flush();  // WAL: the writer does not wait for the reader
  count->reset();
  REQUIRE(count->step().value());
  CHECK(count->column_int64(0) == 1);  // the reader's snapshot is stable
  count->reset();
  REQUIRE(reader->exec("COMMIT"));
  REQUIRE(count->step().value());
  CHECK(count->column_int64(0) == 2);
}

namespace {
// Counts the rows from a separate process (the sqlite3 CLI, as a user or `tokfence log` would),
// which closes its connection there: a last connection's close checkpoints and deletes the WAL, so
// this is where lost locks show. A fork of this process would not do: it inherits SQLite's
// in-process lock bookkeeping. -1 = the sqlite3 CLI is missing.
long count_in_other_process(const std::filesystem::path& db) {
  std::string cmd = "sqlite3 '" + db.string() + "' 'SELECT count(*) FROM requests' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[256] = {0};
  std::string out;
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int status = ::pclose(p);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return -1;
  INFO("sqlite3 said: " << out);
  REQUIRE(status == 0);
  return std::stol(out);
}
}  // namespace

TEST_CASE("proxy::RequestLog keeps its locks when the process opens the database again") {
  // Regression: opening a second connection used to open()/close() the file, which drops every
  // POSIX lock the process holds on it; another process then deleted the WAL under the writer.
  TempDir dir;
  auto log = open_log(dir.db());
  // e.g. the controls store, opening its tables and closing again
  REQUIRE(sqlite::Database::open(dir.db(), sqlite::Create::yes));
  log->record(make_row(hex_id(1), now_ms()));
  log->flush();
  long n = count_in_other_process(dir.db());
  if (n == -1) {
    WARN("sqlite3 CLI not installed (scripts/setup --test installs it): check skipped");
    return;
  }
  CHECK(n == 1);
  CHECK(std::filesystem::exists(dir.db().string() + "-wal"));  // still ours, not checkpointed away
  log->record(make_row(hex_id(2), now_ms()));
  log->flush();
  CHECK(count_in_other_process(dir.db()) == 2);
}

TEST_CASE("proxy::session_spend_since sums one session's known costs from a time on, and its first request") {
  TempDir dir;
  const std::int64_t t0 = now_ms();
  {
    auto log = open_log(dir.db());
    RequestRecord old = make_row(hex_id(1), t0 - 3'600'000);
    old.session = "capped";
    RequestRecord a = make_row(hex_id(2), t0 - 1000);
    a.session = "capped";
    RequestRecord unpriced = make_row(hex_id(3), t0);
    unpriced.session = "capped";
    unpriced.cost.reset();
    RequestRecord huge = make_row(hex_id(4), t0);  // two saturated amounts: no overflow error
    huge.session = "big";
    huge.cost = std::numeric_limits<std::int64_t>::max();
    RequestRecord huge2 = huge;
    huge2.id = hex_id(5);
    RequestRecord other = make_row(hex_id(6), t0);
    other.session = "other";
    for (auto& r : {old, a, unpriced, huge, huge2, other}) log->record(r);
  }
  auto spend = session_spend_since(dir.db(), "capped", t0 - 60'000);
  REQUIRE(spend);
  CHECK(spend->first_ms == t0 - 1000);
  CHECK(spend->cost == 450'000'000);
  auto big = session_spend_since(dir.db(), "big", 0);
  REQUIRE(big);
  CHECK(big->cost == std::numeric_limits<std::int64_t>::max());
  auto none = session_spend_since(dir.db(), "nobody", 0);
  REQUIRE(none);
  CHECK(none->first_ms == 0);
  CHECK(none->cost == 0);
  auto missing = session_spend_since(dir.path / "absent.db", "capped", 0);
  REQUIRE(missing);
  CHECK(missing->first_ms == 0);
}

TEST_CASE("proxy::totals_since sums tokens and known costs and counts unknown costs apart") {
  TempDir dir;
  const std::int64_t t0 = now_ms();
  {
    auto log = open_log(dir.db());
    RequestRecord a = make_row(hex_id(1), t0 - 3'600'000);  // an hour ago
    RequestRecord b = make_row(hex_id(2), t0);
    b.usage.cache_read_tokens = 50;
    b.usage.cache_write_tokens = 5;
    RequestRecord c = make_row(hex_id(3), t0, "openai", "some-unpriced-model");
    c.cost.reset();
    RequestRecord d = make_row(hex_id(4), t0, "anthropic", "claude-haiku-4-5");
    d.cost = 1;
    for (auto& r : {a, b, c, d}) log->record(r);
  }
  auto all = totals_since(dir.db(), 0);
  REQUIRE(all);
  CHECK(all->requests == 4);
  CHECK(all->input_tokens == 400);
  CHECK(all->output_tokens == 80);
  CHECK(all->cache_read_tokens == 50);
  CHECK(all->cache_write_tokens == 5);
  CHECK(all->cost == 450'000'000LL * 2 + 1);
  CHECK(all->unknown_cost_requests == 1);

  auto recent_openai = totals_since(dir.db(), t0 - 60'000, "openai");
  REQUIRE(recent_openai);
  CHECK(recent_openai->requests == 2);
  CHECK(recent_openai->cost == 450'000'000);
  CHECK(recent_openai->unknown_cost_requests == 1);
}

TEST_CASE("proxy::totals_by groups by model, provider and caller") {
  TempDir dir;
  const std::int64_t t0 = now_ms();
  {
    auto log = open_log(dir.db());
    RequestRecord a = make_row(hex_id(1), t0, "openai", "gpt-4o");
    RequestRecord b = make_row(hex_id(2), t0, "openai", "gpt-4o-mini");
    b.cost = 10;
    b.caller_name = "node";
    RequestRecord c = make_row(hex_id(3), t0, "anthropic", "claude-sonnet-4-5");
    c.cost.reset();
    c.caller_name = "";
    RequestRecord d = make_row(hex_id(4), t0, "openai", "gpt-4o");
    for (auto& r : {a, b, c, d}) log->record(r);
  }
  auto by_model = totals_by(dir.db(), 0, GroupBy::model);
  REQUIRE(by_model);
  REQUIRE(by_model->size() == 3);
  CHECK((*by_model)[0].key == "gpt-4o");  // most expensive first
  CHECK((*by_model)[0].totals.requests == 2);
  CHECK((*by_model)[0].totals.cost == 900'000'000);
  CHECK((*by_model)[1].key == "gpt-4o-mini");
  CHECK((*by_model)[2].key == "claude-sonnet-4-5");
  CHECK((*by_model)[2].totals.unknown_cost_requests == 1);
  CHECK((*by_model)[2].totals.cost == 0);

  auto by_provider = totals_by(dir.db(), 0, GroupBy::provider);
  REQUIRE(by_provider);
  REQUIRE(by_provider->size() == 2);
  CHECK((*by_provider)[0].key == "openai");
  CHECK((*by_provider)[0].totals.requests == 3);
  CHECK((*by_provider)[1].key == "anthropic");

  auto by_caller = totals_by(dir.db(), 0, GroupBy::caller);
  REQUIRE(by_caller);
  REQUIRE(by_caller->size() == 3);
  CHECK((*by_caller)[0].key == "python3");
  CHECK((*by_caller)[0].totals.requests == 2);
  CHECK((*by_caller)[2].key == "(unknown)");

  auto anthropic_only = totals_by(dir.db(), 0, GroupBy::model, "anthropic");
  REQUIRE(anthropic_only);
  REQUIRE(anthropic_only->size() == 1);
  CHECK((*anthropic_only)[0].key == "claude-sonnet-4-5");
}

TEST_CASE("proxy::query_requests returns the newest rows oldest first and follows by rowid") {
  TempDir dir;
  const std::int64_t t0 = now_ms();
  auto log = open_log(dir.db());
  for (int i = 0; i < 10; ++i) log->record(make_row(hex_id(i), t0 + i * 1000, i % 2 ? "anthropic" : "openai"));
  log->flush();

  RequestQuery newest;
  newest.limit = 3;
  auto rows = query_requests(dir.db(), newest);
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  CHECK((*rows)[0].record.id == hex_id(7));
  CHECK((*rows)[2].record.id == hex_id(9));

  RequestQuery filtered;
  filtered.provider = "anthropic";
  filtered.since_ms = t0 + 4000;
  rows = query_requests(dir.db(), filtered);
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);  // 5, 7, 9
  CHECK((*rows)[0].record.id == hex_id(5));

  RequestQuery one;
  one.id = hex_id(4);
  rows = query_requests(dir.db(), one);
  REQUIRE(rows);
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].record.provider == "openai");

  auto last = last_rowid(dir.db());
  REQUIRE(last);
  log->record(make_row(hex_id(100), t0 - 5000));  // an older request that finished late
  log->record(make_row(hex_id(101), t0 + 20000));
  log->flush();
  RequestQuery follow;
  follow.after_rowid = *last;
  follow.limit = 0;
  rows = query_requests(dir.db(), follow);
  REQUIRE(rows);
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].record.id == hex_id(100));  // commit order, not request time
  CHECK((*rows)[1].record.id == hex_id(101));

  RequestQuery from_start;  // a follower that started before the first row
  from_start.after_rowid = 0;
  from_start.limit = 0;
  rows = query_requests(dir.db(), from_start);
  REQUIRE(rows);
  REQUIRE(rows->size() == 12);
  CHECK((*rows)[0].record.id == hex_id(0));
  CHECK((*rows)[11].record.id == hex_id(101));
}

TEST_CASE("proxy::request log read side treats a missing database or table as empty") {
  TempDir dir;
  auto totals = totals_since(dir.db(), 0);
  REQUIRE(totals);
  CHECK(totals->requests == 0);
  CHECK_FALSE(std::filesystem::exists(dir.db()));  // reading never creates the file
  {
    auto db = sqlite::Database::open(dir.db(), sqlite::Create::yes);  // e.g. made by another part first
    REQUIRE(db);
    REQUIRE(db->exec("CREATE TABLE other(x)"));
  }
  auto rows = query_requests(dir.db(), RequestQuery{});
  REQUIRE(rows);
  CHECK(rows->empty());
  auto groups = totals_by(dir.db(), 0, GroupBy::model);
  REQUIRE(groups);
  CHECK(groups->empty());
  auto last = last_rowid(dir.db());
  REQUIRE(last);
  CHECK(*last == 0);
}

TEST_CASE("sqlite::Transaction rolls back unless committed") {
  TempDir dir;
  auto db = sqlite::Database::open(dir.db(), sqlite::Create::yes);
  REQUIRE(db);
  REQUIRE(db->exec("CREATE TABLE t(x INTEGER)"));
  {
    auto tx = sqlite::Transaction::begin(*db);
    REQUIRE(tx);
    REQUIRE(db->exec("INSERT INTO t VALUES (1)"));
  }
  {
    auto tx = sqlite::Transaction::begin(*db);
    REQUIRE(tx);
    REQUIRE(db->exec("INSERT INTO t VALUES (2)"));
    REQUIRE(tx->commit());
  }
  auto st = db->prepare("SELECT group_concat(x) FROM t");
  REQUIRE(st);
  REQUIRE(st->step().value());
  CHECK(st->column_text(0) == "2");
  auto bad = db->prepare("SELECT nope FROM t");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("no such column: nope") != std::string::npos);
}

TEST_CASE("proxy::truncate_for_log cuts client text at a character boundary and marks it") {
  using tokfence::proxy::kTruncatedMarker;
  using tokfence::proxy::truncate_for_log;
  std::string short_text = "gpt-4o";
  truncate_for_log(short_text);
  CHECK(short_text == "gpt-4o");
  std::string exact(256, 'm');
  truncate_for_log(exact);
  CHECK(exact == std::string(256, 'm'));
  std::string huge(8 * 1024 * 1024, 'm');
  truncate_for_log(huge);
  CHECK(huge == std::string(256, 'm') + std::string(kTruncatedMarker));
  // A 3-byte character straddling byte 256 is dropped whole, never split.
  std::string split = std::string(255, 'a') + "\xe2\x80\xa6" + std::string(100, 'b');
  truncate_for_log(split);
  CHECK(split == std::string(255, 'a') + std::string(kTruncatedMarker));
}

TEST_CASE("proxy::RequestLog egress rows: flushed with request rows, read back newest N, summed by host") {
  TempDir dir;
  auto log = open_log(dir.db());
  const std::int64_t t = now_ms();
  auto egress_row = [&](std::string host, std::string decision, std::uint64_t up, std::int64_t at) {
    EgressRecord e;
    e.ts_ms = at;
    e.caller = "openclaw:demo";
    e.kind = "connect";
    e.host = std::move(host);
    e.port = 443;
    e.address = decision == "allowed" ? "203.0.113.7:443" : "";
    e.decision = std::move(decision);
    e.rule = e.decision == "allowed" ? "preset:telegram:api.telegram.org:443" : "default-deny";
    e.bytes_up = up;
    e.bytes_down = 2 * up;
    e.duration_ms = 1.5;
    return e;
  };
  log->record(make_row("req_1", t));
  log->record_egress(egress_row("api.telegram.org", "allowed", 100, t + 1));
  log->record_egress(egress_row("api.telegram.org", "allowed", 50, t + 2));
  log->record_egress(egress_row("evil.example", "denied", 0, t + 3));
  log->record_egress(egress_row(std::string(1000, 'h'), "denied", 0, t + 4));  // cut like other fields
  log->flush();  // no linger: every row recorded so far is committed
  CHECK(log->stats().committed == 5);
  auto rows = query_egress(dir.db(), EgressQuery{0, "", 3});
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);  // the newest 3, oldest first
  CHECK((*rows)[0].record.bytes_up == 50);
  CHECK((*rows)[1].record.host == "evil.example");
  CHECK((*rows)[1].record.rule == "default-deny");
  CHECK((*rows)[2].record.host.size() < 300);
  auto by_host = egress_totals_by_host(dir.db(), 0);
  REQUIRE(by_host);
  REQUIRE(by_host->size() == 3);
  CHECK((*by_host)[0].host == "api.telegram.org");
  CHECK((*by_host)[0].allowed == 2);
  CHECK((*by_host)[0].bytes_down == 300);
  auto other = query_egress(dir.db(), EgressQuery{0, "codex", 0});
  REQUIRE(other);
  CHECK(other->empty());
  // A log that has no egress table yet (an older daemon's) reads as no rows.
  CHECK(query_egress(dir.path / "missing.db", EgressQuery{})->empty());
}
