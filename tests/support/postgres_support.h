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

inline void drop_test_schema(const std::string& conninfo, const std::string& schema) {
  raw_pg(conninfo, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
}

}  // namespace porter::test
