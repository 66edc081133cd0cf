// Transactional enqueue (porter::enqueue_in_transaction): the store's insert
// run on the application's own connection, inside its open transaction,
// behind a savepoint so a rejected batch leaves nothing behind.
#include "porter/postgres_store.h"

#include "rules/rules.h"
#include "stores/postgres/pg_schema.h"
#include "stores/postgres/pg_session.h"
#include "stores/postgres/pg_store.h"

namespace porter {

namespace {

using detail::Conn;
using detail::Params;

// Undoes the batch (and the search_path it set) unless released.
struct Savepoint {
  Conn& conn;
  bool open = true;
  ~Savepoint() {
    if (open) {
      PQclear(PQexec(conn.handle(), "ROLLBACK TO SAVEPOINT porter_enqueue"));
      PQclear(PQexec(conn.handle(), "RELEASE SAVEPOINT porter_enqueue"));
    }
  }
};

Result<std::vector<InsertResult>> insert_here(Conn& c, std::span<const NewJob> jobs, const std::string& schema) {
  auto version = detail::schema_version(c, schema);
  if (!version) return version.error();
  if (*version != detail::kPgSchemaVersion) {
    return make_error(ErrorCode::not_found, "schema '" + schema + "' has no Porter tables of this version (" +
                                                std::to_string(*version) + "); open the store once to create them");
  }
  auto old_path = c.exec_dynamic("SELECT current_setting('search_path')::bytea").bytes(0, 0);
  c.exec_dynamic("SELECT set_config('search_path', $1, true)", Params().text(detail::quote_ident(schema)));
  auto now = detail::tp(c.exec_dynamic("SELECT (extract(epoch from now()) * 1000000)::int8").i64(0, 0));
  detail::Session s(c, now, schema);
  if (auto st = rules::check_dependencies_exist(s, jobs); !st) return st.error();
  auto out = s.insert_all(jobs, std::nullopt);
  if (!out) return out;
  rules::run_effects(s);
  // Sent by the server when (and only when) the host's transaction commits.
  s.notify_others(detail::PgStore::channel_for(schema));
  c.exec_dynamic("SELECT set_config('search_path', $1, true)", Params().text(old_path));
  return out;
}

}  // namespace

Result<std::vector<InsertResult>> enqueue_in_transaction(PGconn* conn, std::span<const NewJob> jobs,
                                                         const std::string& schema) {
  if (!conn) return make_error(ErrorCode::invalid_argument, "the connection is null");
  if (auto s = detail::check_schema_name(schema); !s) return s.error();
  if (auto s = rules::validate_batch(jobs); !s) return s.error();
  switch (PQtransactionStatus(conn)) {
    case PQTRANS_INTRANS: break;
    case PQTRANS_IDLE:
      return make_error(ErrorCode::invalid_argument,
                        "the connection has no open transaction: BEGIN first, so the jobs commit with your changes");
    case PQTRANS_INERROR:
      return make_error(ErrorCode::wrong_state, "the connection's transaction has already failed; roll it back");
    default:
      return make_error(ErrorCode::unavailable, "the connection is busy or broken");
  }
  if (jobs.empty()) return std::vector<InsertResult>{};
  Conn c(conn, false, false);
  try {
    c.simple("SAVEPOINT porter_enqueue");
    Savepoint sp{c};
    auto out = insert_here(c, jobs, schema);
    if (!out) return out;  // the savepoint rolls the batch back
    c.simple("RELEASE SAVEPOINT porter_enqueue");
    sp.open = false;
    return out;
  } catch (const detail::PgError& e) {
    return detail::to_error(e, "enqueue_in_transaction");
  }
}

}  // namespace porter
