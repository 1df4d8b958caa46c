#include "core/sqlite.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <system_error>

namespace tokfence::sqlite {

namespace {

constexpr int kBusyTimeoutMs = 5000;

std::string describe(const std::filesystem::path& path, std::string_view what, sqlite3* db) {
  std::string message = "sqlite: " + path.string() + ": " + std::string(what);
  if (db) message += std::string(": ") + sqlite3_errmsg(db);
  return message;
}

// Creates the file with mode 0600 (or tightens an existing one) so that SQLite, which copies the
// database file's mode onto its -wal and -shm files, never makes a world-readable log.
//
// An existing file is never opened here: SQLite's locks are POSIX advisory locks, which belong to
// the process, and close() on *any* descriptor of the file drops all of them, including those of
// other connections this process already has open (e.g. the request log's, when the controls store
// opens the same file). A reader elsewhere would then see no locks, checkpoint, and delete the WAL
// that the writer is still appending to. So: an existing file is tightened by path; a new one is
// created with O_EXCL (no connection can hold a lock on a file that did not exist a moment ago).
Result<void> prepare_private_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (path.has_parent_path() && !std::filesystem::exists(path.parent_path(), ec)) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) return fail("sqlite: " + path.string() + ": cannot create the directory: " + ec.message());
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISREG(st.st_mode)) return fail("sqlite: " + path.string() + ": not a regular file (a directory or a symlink?)");
      if ((st.st_mode & 0777) != 0600 && ::chmod(path.c_str(), 0600) != 0)
        return fail("sqlite: " + path.string() + ": cannot make it private (0600): " + std::strerror(errno));
      return {};
    }
    if (errno != ENOENT) return fail("sqlite: " + path.string() + ": " + std::strerror(errno));
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      // The umask may have narrowed 0600 further (harmless) but never widened it.
      ::close(fd);
      return {};
    }
    if (errno != EEXIST) return fail("sqlite: " + path.string() + ": cannot create: " + std::strerror(errno));
    // Someone created it between lstat and open: go round once more and treat it as existing.
  }
  return fail("sqlite: " + path.string() + ": cannot create: it keeps changing");
}

}  // namespace

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), context_(std::move(other.context_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_) sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    context_ = std::move(other.context_);
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::bind(int index, double value) {
  sqlite3_bind_double(stmt_, index, value);
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

Statement& Statement::bind_static(int index, std::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
  return *this;
}

Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(stmt_);
  std::string message = "sqlite: " + context_ + ": " + sqlite3_errmsg(db);
  sqlite3_reset(stmt_);  // leave the statement reusable after an error
  return fail(std::move(message));
}

Result<void> Statement::run() {
  for (;;) {
    auto row = step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return {};
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::column_is_null(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }
std::int64_t Statement::column_int64(int index) const { return sqlite3_column_int64(stmt_, index); }
double Statement::column_double(int index) const { return sqlite3_column_double(stmt_, index); }

std::string Statement::column_text(int index) const {
  const unsigned char* text = sqlite3_column_text(stmt_, index);
  if (!text) return {};
  return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index)));
}

std::string_view Statement::column_text_view(int index) const {
  const unsigned char* text = sqlite3_column_text(stmt_, index);
  if (!text) return {};
  return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index))};
}

// ---- Database ----

Result<Database> Database::open(const std::filesystem::path& path, Create create) {
  if (create == Create::yes) {
    if (auto ok = prepare_private_file(path); !ok) return std::unexpected(ok.error());
  } else if (std::error_code ec; !std::filesystem::exists(path, ec)) {
    return fail("sqlite: " + path.string() + ": no such file");
  }
  // SQLite's memory statistics take a global mutex around every allocation it makes (a dozen per
  // inserted row); nothing here reads them. Only possible before SQLite initialises itself, so
  // on the first open; a later call would be refused harmlessly.
  static std::once_flag no_memstatus;
  std::call_once(no_memstatus, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  Database db;
  db.path_ = path;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db.db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    auto message = describe(path, "cannot open", db.db_);
    return fail(std::move(message));  // ~Database closes the handle SQLite allocated anyway
  }
  sqlite3_extended_result_codes(db.db_, 1);
  sqlite3_busy_timeout(db.db_, kBusyTimeoutMs);
  if (create == Create::yes) {
    // journal_mode answers with a row; WAL is persistent, so readers opened later inherit it.
    auto st = db.prepare("PRAGMA journal_mode=WAL");
    if (!st) return std::unexpected(st.error());
    auto row = st->step();
    if (!row) return std::unexpected(row.error());
    std::string mode = *row ? st->column_text(0) : "";
    if (mode != "wal") return fail(describe(path, "cannot switch to WAL mode (got '" + mode + "')", nullptr));
  }
  // NORMAL is durable against a crash of the process in WAL mode; only power loss can drop the
  // last commits, which is an acceptable trade for a log written in the background.
  if (auto ok = db.exec("PRAGMA synchronous=NORMAL"); !ok) return std::unexpected(ok.error());
  return db;
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

Database::~Database() {
  if (db_) sqlite3_close_v2(db_);
}

Result<void> Database::exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = "sqlite: " + path_.string() + ": " + (err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return fail(std::move(message));
  }
  return {};
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return fail(describe(path_, "cannot prepare statement", db_));
  return Statement(stmt, path_.string());
}

Result<bool> Database::has_table(std::string_view name) {
  auto st = prepare("SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name = ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, name);
  return st->step();
}

std::int64_t Database::changes() const { return sqlite3_changes64(db_); }

// ---- Transaction ----

Result<Transaction> Transaction::begin(Database& db) {
  if (auto ok = db.exec("BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_) (void)db_->exec("ROLLBACK");
}

Result<void> Transaction::commit() {
  if (!db_) return fail("sqlite: commit without an open transaction");
  auto ok = db_->exec("COMMIT");
  if (ok) db_ = nullptr;
  return ok;
}

}  // namespace tokfence::sqlite
