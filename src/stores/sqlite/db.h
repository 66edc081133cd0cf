// A thin RAII layer over the SQLite C API for the SQLite store: one
// connection (Db), its cache of prepared statements, and a scoped use of one
// statement (Query) that binds parameters and resets itself when done.
//
// Failures of SQLite itself (busy, I/O, corruption) are thrown as SqliteError
// inside the store and turned into Result errors at the Store boundary, where
// the transaction is rolled back; domain errors (stale lease, bad input) never
// travel as exceptions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include <sqlite3.h>

#include "porter/status.h"

namespace porter::detail {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const noexcept { return code_; }            // extended result code
  int primary() const noexcept { return code_ & 0xff; }  // SQLITE_BUSY, SQLITE_CORRUPT, ...
  bool busy() const noexcept { return primary() == SQLITE_BUSY || primary() == SQLITE_LOCKED; }

 private:
  int code_;
};

// The Porter error for a SQLite failure: busy, read-only, I/O and full disks
// are `unavailable` (safe to retry later), damaged files `corruption`.
Error to_error(const SqliteError& e, std::string_view context);

class Db;

// One use of a prepared statement: bind, step, read columns. Resets the
// statement (and clears its bindings) when it goes out of scope, so the cached
// statement is ready for the next use. Columns and parameters are 0-based
// here (SQLite binds from 1; the offset is added inside).
class Query {
 public:
  // `in_use` is the cache entry's flag (nullptr for a one-off statement).
  Query(Db& db, sqlite3_stmt* stmt, bool* in_use);
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int i, std::int64_t v);
  Query& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Query& bind(int i, bool v) { return bind(i, static_cast<std::int64_t>(v ? 1 : 0)); }
  // The text must outlive the step() calls (it is bound without copying).
  Query& bind(int i, std::string_view v);
  Query& bind_null(int i);
  Query& bind_text_or_null(int i, std::string_view v) { return v.empty() ? bind_null(i) : bind(i, v); }
  Query& bind(int i, const std::optional<std::int64_t>& v) { return v ? bind(i, *v) : bind_null(i); }

  // True when a row is available, false when done. Throws SqliteError.
  bool step();
  // Runs a statement that returns no rows (or ignores them).
  void run();

  std::int64_t i64(int col) const;
  int i32(int col) const { return static_cast<int>(i64(col)); }
  bool flag(int col) const { return i64(col) != 0; }
  bool is_null(int col) const;
  std::string text(int col) const;
  std::optional<std::int64_t> opt_i64(int col) const {
    return is_null(col) ? std::nullopt : std::optional<std::int64_t>(i64(col));
  }

 private:
  Db& db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
};

// One connection. Not thread-safe: the owner serializes access (the store
// holds its mutex around every use).
class Db {
 public:
  // Opens without creating schema; throws SqliteError on failure.
  Db(const std::string& path, int flags);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* handle() const noexcept { return db_; }

  // Runs one or more statements without parameters (schema, pragmas, BEGIN).
  void exec(const char* sql);
  // A cached prepared statement for `sql`, which must be a string with static
  // storage (a literal): the pointer is the cache key.
  Query query(const char* sql);
  // A one-off statement (dynamic filters): prepared now, finalized after use.
  Query prepare_once(const std::string& sql);
  std::int64_t changes() const noexcept;
  std::int64_t last_insert_rowid() const noexcept;

  [[noreturn]] void fail(int rc, std::string_view what) const;

 private:
  friend class Query;
  sqlite3* db_ = nullptr;
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;  // a Query holds it now: a nested use would clobber it
  };
  std::unordered_map<const char*, Cached> cache_;
};

// One transaction, rolled back on every exit path unless committed: an
// exception of any type (not only SqliteError) never leaves it open holding
// the database's write lock.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) {}
  ~Transaction() { abandon(); }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void begin(const char* sql) {  // "BEGIN" or "BEGIN IMMEDIATE"
    db_.exec(sql);
    open_ = true;
  }
  void commit() {
    db_.exec("COMMIT");  // a failed COMMIT leaves the transaction open: abandon() rolls it back
    open_ = false;
  }
  // Rolls back if still open; never throws.
  void abandon() noexcept {
    if (open_ && !sqlite3_get_autocommit(db_.handle())) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    open_ = false;
  }

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace porter::detail
