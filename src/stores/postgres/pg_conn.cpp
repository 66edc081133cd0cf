// libpq wrapper of pg_conn.h: parameters, binary results, prepared
// statements, and the mapping of SQLSTATEs to Porter errors.
#include "stores/postgres/pg_conn.h"

#include <endian.h>

#include <cstring>

namespace porter::detail {

namespace {

// Type oids of the columns Porter reads (pg_type.h is a server header).
constexpr Oid kBoolOid = 16;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;

const char* hex = "0123456789abcdef";

}  // namespace

Error to_error(const PgError& e, std::string_view context) {
  std::string msg = std::string(context) + ": " + e.what();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  const std::string& s = e.sqlstate();
  if (e.connection_lost() || s.rfind("08", 0) == 0 || s.rfind("57P", 0) == 0 || s.rfind("53", 0) == 0) {
    return make_error(ErrorCode::unavailable, msg + " (the server could not be reached)");
  }
  if (e.retryable()) return make_error(ErrorCode::unavailable, msg + " (conflicting transactions; retried)");
  if (s.rfind("28", 0) == 0) return make_error(ErrorCode::permission_denied, msg);
  if (s == "3D000") return make_error(ErrorCode::unavailable, msg);
  if (s == "25006") return make_error(ErrorCode::unavailable, msg + " (the server is read-only)");
  return make_error(ErrorCode::internal, msg + (s.empty() ? "" : " (SQLSTATE " + s + ")"));
}

Params& Params::ids(const std::vector<std::int64_t>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return add(s + "}", 0);
}

Params& Params::byte_array(const std::vector<std::string>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += "\"\\\\x";  // "\\x..." in the array literal is the bytea input \x...
    for (unsigned char c : v[i]) {
      s += hex[c >> 4];
      s += hex[c & 0xf];
    }
    s += '"';
  }
  return add(s + "}", 0);
}

std::int64_t Rows::i64(int row, int col) const {
  const char* v = PQgetvalue(r_, row, col);
  if (PQfformat(r_, col) == 0) {
    if (*v == 't') return 1;
    if (*v == 'f') return 0;
    return std::strtoll(v, nullptr, 10);
  }
  switch (PQftype(r_, col)) {
    case kInt8Oid: {
      std::uint64_t x;
      std::memcpy(&x, v, 8);
      return static_cast<std::int64_t>(be64toh(x));
    }
    case kInt4Oid: {
      std::uint32_t x;
      std::memcpy(&x, v, 4);
      return static_cast<std::int32_t>(be32toh(x));
    }
    case kInt2Oid: {
      std::uint16_t x;
      std::memcpy(&x, v, 2);
      return static_cast<std::int16_t>(be16toh(x));
    }
    case kBoolOid:
      return *v != 0;
    default:
      throw PgError("", "column " + std::to_string(col) + " has an unexpected type (oid " +
                            std::to_string(PQftype(r_, col)) + ")", false);
  }
}

std::string Rows::bytes(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
}

std::int64_t Rows::affected() const {
  const char* n = PQcmdTuples(r_);
  return *n ? std::strtoll(n, nullptr, 10) : 0;
}

Rows Conn::check(PGresult* r, std::string_view what) {
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Rows(r);
  std::string sqlstate;
  std::string message;
  if (r) {
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) sqlstate = s;
    message = PQresultErrorMessage(r);
    PQclear(r);
  }
  if (message.empty()) message = PQerrorMessage(conn_);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  (void)what;
  throw PgError(std::move(sqlstate), message, PQstatus(conn_) == CONNECTION_BAD);
}

Rows Conn::exec(const char* sql, const Params& p) {
  if (!prepare_) return exec_dynamic(sql, p);
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "porter_" + std::to_string(prepared_.size());
    check(PQprepare(conn_, name.c_str(), sql, 0, nullptr), sql);
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values(p.values_.size());
  std::vector<int> lengths(p.values_.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = p.nulls_[i] ? nullptr : p.values_[i].data();
    lengths[i] = static_cast<int>(p.values_[i].size());
  }
  return check(PQexecPrepared(conn_, it->second.c_str(), p.size(), values.data(), lengths.data(), p.formats_.data(), 1),
               sql);
}

Rows Conn::exec_dynamic(const std::string& sql, const Params& p) {
  std::vector<const char*> values(p.values_.size());
  std::vector<int> lengths(p.values_.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = p.nulls_[i] ? nullptr : p.values_[i].data();
    lengths[i] = static_cast<int>(p.values_[i].size());
  }
  return check(PQexecParams(conn_, sql.c_str(), p.size(), nullptr, values.data(), lengths.data(), p.formats_.data(), 1),
               sql);
}

Rows Conn::simple(const char* sql) { return check(PQexec(conn_, sql), sql); }

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace porter::detail
