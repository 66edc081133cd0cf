// A thin RAII layer over libpq for the PostgreSQL store: parameters (Params),
// a result (Rows), and one connection with its prepared statements (Conn).
//
// Strings travel as binary bytea parameters and come back in binary, so any
// byte (NUL, invalid UTF-8, quotes, backslashes) round-trips untouched and no
// value is ever spliced into SQL text. Integers go as text parameters.
//
// Failures of the server or the connection are thrown as PgError inside the
// store and become Result errors at the Store boundary, where the transaction
// is rolled back; domain errors (stale lease, bad input) never travel as
// exceptions.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "porter/status.h"

namespace porter::detail {

class PgError : public std::runtime_error {
 public:
  PgError(std::string sqlstate, const std::string& message, bool connection_lost)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)), lost_(connection_lost) {}
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  bool connection_lost() const noexcept { return lost_; }
  // Serialization failure or deadlock: the whole transaction may be run again.
  bool retryable() const noexcept { return sqlstate_ == "40001" || sqlstate_ == "40P01"; }

 private:
  std::string sqlstate_;
  bool lost_;
};

// The Porter error for a PostgreSQL failure: a lost connection, a server
// shutting down or out of resources, and exhausted retries are `unavailable`
// (safe to retry later); failed authentication is `permission_denied`.
Error to_error(const PgError& e, std::string_view context);

// Parameters of one statement, $1 first.
class Params {
 public:
  Params& i64(std::int64_t v) { return add(std::to_string(v), 0); }
  Params& flag(bool v) { return add(v ? "t" : "f", 0); }
  Params& bytes(std::string_view v) { return add(std::string(v), 1); }  // a bytea, any bytes
  Params& text(std::string_view v) { return add(std::string(v), 0); }   // a value in text form (arrays, channel names)
  Params& null() {
    values_.emplace_back();
    formats_.push_back(0);
    nulls_.push_back(true);
    return *this;
  }
  Params& opt(const std::optional<std::int64_t>& v) { return v ? i64(*v) : null(); }
  // An int8[] in text form: {1,2,3}.
  Params& ids(const std::vector<std::int64_t>& v);
  // A bytea[] in text form, each element hex-encoded.
  Params& byte_array(const std::vector<std::string>& v);
  int size() const noexcept { return static_cast<int>(values_.size()); }

 private:
  friend class Conn;
  Params& add(std::string v, int format) {
    values_.push_back(std::move(v));
    formats_.push_back(format);
    nulls_.push_back(false);
    return *this;
  }
  std::vector<std::string> values_;
  std::vector<int> formats_;
  std::vector<bool> nulls_;
};

// A statement's result, read in binary (or text, for simple queries).
class Rows {
 public:
  explicit Rows(PGresult* r) : r_(r) {}
  ~Rows() { PQclear(r_); }
  Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  Rows& operator=(Rows&&) = delete;

  int size() const noexcept { return PQntuples(r_); }
  bool empty() const noexcept { return size() == 0; }
  bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::int64_t i64(int row, int col) const;
  int i32(int row, int col) const { return static_cast<int>(i64(row, col)); }
  bool flag(int row, int col) const { return i64(row, col) != 0; }
  std::string bytes(int row, int col) const;
  std::optional<std::int64_t> opt_i64(int row, int col) const {
    return is_null(row, col) ? std::nullopt : std::optional<std::int64_t>(i64(row, col));
  }
  // Rows changed by an INSERT/UPDATE/DELETE.
  std::int64_t affected() const;

 private:
  PGresult* r_;
};

// One connection. Not thread-safe: one user at a time (the pool hands it out).
class Conn {
 public:
  // `prepare`: cache prepared statements on this session (false for a host
  // application's connection, whose session Porter must not litter).
  Conn(PGconn* conn, bool owned, bool prepare) : conn_(conn), owned_(owned), prepare_(prepare) {}
  ~Conn() {
    if (owned_ && conn_) PQfinish(conn_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  PGconn* handle() const noexcept { return conn_; }
  bool broken() const noexcept { return PQstatus(conn_) == CONNECTION_BAD; }

  // `sql` must have static storage (a literal): the pointer keys the cache.
  Rows exec(const char* sql, const Params& p = {});
  // A statement built at run time (dynamic filters): never prepared.
  Rows exec_dynamic(const std::string& sql, const Params& p = {});
  // Statements without parameters (BEGIN, COMMIT, DDL); results in text form.
  Rows simple(const char* sql);

 private:
  Rows check(PGresult* r, std::string_view what);
  PGconn* conn_;
  bool owned_;
  bool prepare_;
  std::unordered_map<const char*, std::string> prepared_;  // sql -> statement name
};

// Quotes an identifier for SQL text ("my schema" -> "\"my schema\"").
std::string quote_ident(std::string_view name);

}  // namespace porter::detail
