// Where the tests' PostgreSQL cluster is: the CTest fixture (postgres:start,
// tests/postgres/pg_cluster.sh) starts it and CTest hands its folder to every
// test in PORTER_TEST_PG_DIR. Without it the PostgreSQL cases fail loudly.
#pragma once

#include <libpq-fe.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace porter::test {

inline std::string test_pg_dir() {
  const char* dir = std::getenv("PORTER_TEST_PG_DIR");
  if (!dir || !*dir) {
    throw std::runtime_error(
        "PORTER_TEST_PG_DIR is not set: run the PostgreSQL tests through ctest, whose fixture starts the server");
  }
  return dir;
}

// The conninfo of the cluster in `dir` (default: the fixture's).
inline std::string test_pg_conninfo(const std::string& dir = test_pg_dir(), const std::string& db = "postgres") {
  return "host=" + dir + "/cluster/run user=postgres dbname=" + db;
}

// Runs SQL outside Porter; returns the error message ("" when it worked).
inline std::string raw_pg(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  std::string err;
  if (PQstatus(c) != CONNECTION_OK) {
    err = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) err = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(c);
  return err;
}

// A schema for one conformance store, reused across cases: creating
// Porter's tables costs ~0.4 s of DDL on this machine, emptying them a few
// ms. A slot is held by a session advisory lock (on a connection of its own)
// for the store's life, so concurrent test processes never share one; it is
// emptied (ids start at 1 again) when taken.
class SchemaSlot {
 public:
  explicit SchemaSlot(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string err = PQerrorMessage(conn_);
      PQfinish(conn_);
      throw std::runtime_error("the tests' PostgreSQL server is not reachable: " + err);
    }
    for (int i = 0; i < 256 && schema_.empty(); ++i) {
      if (query("SELECT pg_try_advisory_lock(1347375710, " + std::to_string(i) + ")") == "t") {
        schema_ = "conf_" + std::to_string(i);
      }
    }
    if (schema_.empty()) throw std::runtime_error("no free test schema slot");
    if (query("SELECT to_regclass('" + schema_ + ".meta') IS NOT NULL") == "t") {
      const std::string s = schema_ + ".";
      query("SET client_min_messages = warning; BEGIN; DELETE FROM " + s + "jobs; DELETE FROM " + s +
            "attempt_errors; DELETE FROM " + s + "item_errors; DELETE FROM " + s + "dependencies; DELETE FROM " + s +
            "queues; DELETE FROM " + s + "workers; DELETE FROM " + s + "worker_kinds; SELECT setval('" + s +
            "jobs_id_seq', 1, false); COMMIT");
    }
  }
  ~SchemaSlot() { PQfinish(conn_); }  // ends the session: the slot is free again
  SchemaSlot(const SchemaSlot&) = delete;
  SchemaSlot& operator=(const SchemaSlot&) = delete;
  const std::string& schema() const { return schema_; }

 private:
  std::string query(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    auto st = PQresultStatus(r);
    std::string out = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    std::string err = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : PQresultErrorMessage(r);
    PQclear(r);
    if (!err.empty()) throw std::runtime_error("preparing a test schema: " + err);
    return out;
  }
  PGconn* conn_;
  std::string schema_;
};

inline void drop_test_schema(const std::string& conninfo, const std::string& schema) {
  raw_pg(conninfo, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
}

}  // namespace porter::test
