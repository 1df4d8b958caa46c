#pragma once
// A small RAII layer over the SQLite C API, shared by everything that keeps state in tokfence's
// database (request log, controls, watch). It exists so that every connection is opened the same
// way:
//  - Database::open(path, Create::yes) creates a missing file with mode 0600 *before* SQLite touches
//    it (SQLite gives the -wal/-shm files the database file's mode, so they are 0600 too), tightens
//    an existing file to 0600, and switches to WAL with synchronous=NORMAL: readers in other
//    processes (the CLI) never block the daemon's writer, and a crash of the process loses nothing
//    committed.
//  - Every connection gets busy_timeout = 5000 ms, so two processes writing at once wait for each
//    other instead of failing with SQLITE_BUSY.
//  - Errors come back as Result with `sqlite: <db file>: <what>: <sqlite message>`; nothing throws.
//  - Never open() and close() the database file (or its -wal/-shm) by other means in a process
//    that has a connection to it: SQLite's locks are POSIX advisory locks, and closing *any*
//    descriptor of the file drops all of the process's locks, after which another process may
//    checkpoint and delete the WAL under a live writer. Database::open itself only creates a
//    missing file (O_EXCL) and tightens an existing one by path.
//
// Usage:
//   auto db = sqlite::Database::open(path, sqlite::Create::yes);
//   if (!db) return std::unexpected(db.error());
//   auto st = db->prepare("SELECT provider, count(*) FROM requests WHERE ts_ms >= ? GROUP BY provider");
//   st->bind(1, since_ms);
//   auto done = st->for_each_row([&](const sqlite::Statement& row) {
//     counts[row.column_text(0)] = row.column_int64(1);
//   });
//   if (!done) return std::unexpected(done.error());
//
// A Database, and the Statements prepared from it, belong to one thread at a time (the connection
// is opened with SQLITE_OPEN_NOMUTEX). Statements must be destroyed before their Database.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace tokfence::sqlite {

enum class Create { yes, no };

class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, like SQLite's. Text is copied (SQLITE_TRANSIENT).
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  // Text SQLite does not copy: the bytes must stay unchanged until the statement is reset.
  Statement& bind_static(int index, std::string_view value);
  Statement& bind_null(int index);
  template <class T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }

  // true = a row is ready to be read with column_*; false = done. Errors carry SQLite's message.
  Result<bool> step();
  // Steps until done (for statements that return no rows).
  Result<void> run();
  // Steps until done, calling fn(const Statement&) for each row to read it with column_*. Stops at
  // the first step error and returns it; rows read before it have been passed to fn.
  template <class Fn>
  Result<void> for_each_row(Fn&& fn) {
    for (;;) {
      auto row = step();
      if (!row) return std::unexpected(row.error());
      if (!*row) return {};
      fn(std::as_const(*this));
    }
  }
  // Makes the statement reusable; bindings are cleared too.
  void reset();

  // Columns are 0-based. NULL reads as 0 / 0.0 / "".
  bool column_is_null(int index) const;
  std::int64_t column_int64(int index) const;
  double column_double(int index) const;
  std::string column_text(int index) const;
  // Valid until the next step(), reset() or column read of the same column as another type.
  std::string_view column_text_view(int index) const;

 private:
  friend class Database;
  Statement(sqlite3_stmt* stmt, std::string context) : stmt_(stmt), context_(std::move(context)) {}
  sqlite3_stmt* stmt_ = nullptr;
  std::string context_;  // the database file, for error messages
};

class Database {
 public:
  // Opens `path`. Create::yes creates the file (0600) and its parent directory if missing and turns
  // on WAL; Create::no fails when the file does not exist (callers that treat "no database yet"
  // as "nothing logged yet" check std::filesystem::exists first).
  static Result<Database> open(const std::filesystem::path& path, Create create);

  Database() = default;
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // One or more statements without parameters (schema, pragmas).
  Result<void> exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);
  // Whether a table (or view) of that name exists; readers use it to treat a database that some
  // other part created first as "no rows yet".
  Result<bool> has_table(std::string_view name);
  // Rows changed by the last INSERT/UPDATE/DELETE.
  std::int64_t changes() const;
  const std::filesystem::path& path() const { return path_; }
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

// BEGIN IMMEDIATE on construction (takes the write lock up front, so busy_timeout applies to the
// whole transaction instead of failing midway on a lock upgrade); ROLLBACK on destruction unless
// commit() succeeded.
class Transaction {
 public:
  static Result<Transaction> begin(Database& db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Result<void> commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_ = nullptr;
};

}  // namespace tokfence::sqlite
