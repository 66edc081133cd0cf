// The SQLite wrapper of db.h: statement cache, binding, stepping, and the
// mapping of SQLite result codes to Porter errors.
#include "stores/sqlite/db.h"

namespace porter::detail {

Error to_error(const SqliteError& e, std::string_view context) {
  std::string msg = std::string(context) + ": " + e.what();
  switch (e.primary()) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return make_error(ErrorCode::unavailable, msg + " (the database stayed locked by another writer)");
    case SQLITE_READONLY:
      return make_error(ErrorCode::unavailable, msg + " (the database is read-only)");
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_PROTOCOL:
      return make_error(ErrorCode::unavailable, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return make_error(ErrorCode::corruption, msg);
    default:
      return make_error(ErrorCode::internal, msg);
  }
}

// --- Query -------------------------------------------------------------------

Query::Query(Db& db, sqlite3_stmt* stmt, bool* in_use) : db_(db), stmt_(stmt), in_use_(in_use) {
  if (in_use_) *in_use_ = true;
}

Query::~Query() {
  if (in_use_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *in_use_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
}

Query& Query::bind(int i, std::int64_t v) {
  if (int rc = sqlite3_bind_int64(stmt_, i + 1, v); rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

Query& Query::bind(int i, std::string_view v) {
  // SQLITE_STATIC: the caller's string lives until the statement is reset.
  // An empty view may have no data pointer, which SQLite would store as NULL.
  const char* data = v.data() ? v.data() : "";
  if (int rc = sqlite3_bind_text(stmt_, i + 1, data, static_cast<int>(v.size()), SQLITE_STATIC); rc != SQLITE_OK) {
    db_.fail(rc, "bind");
  }
  return *this;
}

Query& Query::bind_null(int i) {
  if (int rc = sqlite3_bind_null(stmt_, i + 1); rc != SQLITE_OK) db_.fail(rc, "bind");
  return *this;
}

bool Query::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail(rc, "step");
}

void Query::run() {
  while (step()) {
  }
}

std::int64_t Query::i64(int col) const { return sqlite3_column_int64(stmt_, col); }

bool Query::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

std::string Query::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (!p) return {};
  return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}

// --- Db ----------------------------------------------------------------------

Db::Db(const std::string& path, int flags) {
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    int code = db_ ? sqlite3_extended_errcode(db_) : rc;
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw SqliteError(code, "cannot open '" + path + "': " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
}

Db::~Db() {
  for (auto& [sql, entry] : cache_) sqlite3_finalize(entry.stmt);
  sqlite3_close_v2(db_);
}

void Db::fail(int rc, std::string_view what) const {
  int code = sqlite3_extended_errcode(db_);
  if ((code & 0xff) != (rc & 0xff)) code = rc;
  throw SqliteError(code, std::string(what) + " failed: " + sqlite3_errmsg(db_));
}

void Db::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw SqliteError(sqlite3_extended_errcode(db_), msg);
  }
}

Query Db::query(const char* sql) {
  Cached& entry = cache_[sql];
  if (!entry.stmt) {
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &entry.stmt, nullptr);
    if (rc != SQLITE_OK) fail(rc, std::string("prepare '") + sql + "'");
  }
  if (entry.in_use) throw SqliteError(SQLITE_MISUSE, std::string("statement used re-entrantly: ") + sql);
  return Query(*this, entry.stmt, &entry.in_use);
}

Query Db::prepare_once(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) fail(rc, "prepare '" + sql + "'");
  return Query(*this, stmt, nullptr);
}

std::int64_t Db::changes() const noexcept { return sqlite3_changes64(db_); }
std::int64_t Db::last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }

}  // namespace porter::detail
