// Schema version 1 of the PostgreSQL store (see pg_schema.h).
//
// Every string column is bytea: Porter's names and messages may hold any
// bytes (NUL, invalid UTF-8), which a text column in a UTF-8 database
// rejects. Times are int8 microseconds since the Unix epoch, as in SQLite.
//
// Why these indexes: a claim reads the head of one queue's runnable jobs in
// (priority, run_at, id) order. Pending jobs due in the future are marked
// `scheduled` and kept out of jobs_claim (in jobs_scheduled instead, by
// run_at), so a million jobs scheduled next week at a better priority are
// never stepped over by a claim: the claim first moves the few that became
// due (an index range of jobs_scheduled), then takes the head of jobs_claim.
// jobs_leases serves the reaper, jobs_parent the children, jobs_unique the
// unique keys, jobs_finished prune and stats, jobs_next_run next_run_at.
#include "stores/postgres/pg_schema.h"

namespace porter::detail {

namespace {

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta (
  key   text PRIMARY KEY,
  value text NOT NULL
);

CREATE TABLE jobs (
  id                      bigserial PRIMARY KEY,
  kind                    bytea   NOT NULL,
  args                    bytea   NOT NULL,
  queue                   bytea   NOT NULL,
  priority                int4    NOT NULL,
  state                   int4    NOT NULL,
  scheduled               bool    NOT NULL DEFAULT false,  -- pending with run_at in the future (see above)
  run_at                  int8    NOT NULL,
  attempt                 int4    NOT NULL DEFAULT 0,
  max_attempts            int4    NOT NULL,
  owner                   bytea   NOT NULL DEFAULT '',
  unique_key              bytea,
  description             bytea   NOT NULL DEFAULT '',
  parent_id               int8,
  on_failure              int4    NOT NULL DEFAULT 0,
  created_at              int8    NOT NULL,
  started_at              int8,
  finished_at             int8,
  lease_token             int8    NOT NULL DEFAULT 0,
  lease_worker            bytea,
  lease_expires           int8,
  cancel_requested        bool    NOT NULL DEFAULT false,
  callback_pending        bool    NOT NULL DEFAULT false,
  children_total          int4    NOT NULL DEFAULT 0,
  children_unfinished     int4    NOT NULL DEFAULT 0,
  dependencies_unfinished int4    NOT NULL DEFAULT 0,
  dependency_count        int4    NOT NULL DEFAULT 0,
  dependent_count         int4    NOT NULL DEFAULT 0,
  progress_done           int8    NOT NULL DEFAULT 0,
  progress_total          int8    NOT NULL DEFAULT 0,
  progress_message        bytea   NOT NULL DEFAULT '',
  error_count             int4    NOT NULL DEFAULT 0,
  item_error_count        int8    NOT NULL DEFAULT 0,
  result                  bytea   NOT NULL DEFAULT '',
  run_time                int8,
  queue_latency           int8
);

CREATE INDEX jobs_claim     ON jobs(queue, priority, run_at, id) WHERE state = 0 AND NOT scheduled;
CREATE INDEX jobs_scheduled ON jobs(queue, run_at) WHERE state = 0 AND scheduled;
CREATE INDEX jobs_next_run  ON jobs(queue, run_at) WHERE state = 0;
CREATE INDEX jobs_leases    ON jobs(lease_expires) WHERE state = 1;
CREATE INDEX jobs_parent    ON jobs(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_unique    ON jobs(kind, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_finished  ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_owner     ON jobs(owner, id) WHERE owner <> '';
CREATE INDEX jobs_state     ON jobs(state, id) WHERE state IN (2, 4, 5);

CREATE TABLE attempt_errors (
  job_id    int8  NOT NULL,
  seq       int4  NOT NULL,
  attempt   int4  NOT NULL,
  at        int8  NOT NULL,
  message   bytea NOT NULL,
  permanent bool  NOT NULL,
  retried   bool  NOT NULL,
  PRIMARY KEY (job_id, seq)
);
CREATE INDEX attempt_errors_at ON attempt_errors(at);

CREATE TABLE item_errors (
  job_id  int8  NOT NULL,
  seq     int8  NOT NULL,
  item    bytea NOT NULL,
  message bytea NOT NULL,
  PRIMARY KEY (job_id, seq)
);

CREATE TABLE dependencies (
  job_id     int8 NOT NULL,
  depends_on int8 NOT NULL,
  seq        int4 NOT NULL,
  PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX dependencies_dependents ON dependencies(depends_on, job_id);

CREATE TABLE queues (
  name   bytea PRIMARY KEY,
  paused bool NOT NULL DEFAULT false
);

CREATE TABLE workers (
  id      bytea PRIMARY KEY,
  expires int8 NOT NULL
);
CREATE TABLE worker_kinds (
  queue  bytea NOT NULL,
  kind   bytea NOT NULL,
  worker bytea NOT NULL,
  PRIMARY KEY (queue, kind, worker)
);
CREATE INDEX worker_kinds_worker ON worker_kinds(worker);

-- One claim, one round trip: moves the queue's scheduled jobs that became
-- due into the runnable set, then leases the head of the runnable set with
-- FOR UPDATE SKIP LOCKED (concurrent claimers take different rows, nobody
-- waits). p_now NULL: the server's clock.
CREATE FUNCTION claim(p_now int8, p_queue bytea, p_limit int4, p_worker bytea, p_lease int8, p_kinds bytea[])
RETURNS SETOF jobs LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now int8 := coalesce(p_now, (extract(epoch from now()) * 1000000)::int8);
BEGIN
  IF EXISTS (SELECT 1 FROM queues WHERE name = p_queue AND paused) THEN
    RETURN;
  END IF;
  UPDATE jobs SET scheduled = false WHERE id IN (
    SELECT id FROM jobs WHERE state = 0 AND scheduled AND queue = p_queue AND run_at <= v_now
    ORDER BY run_at, id FOR UPDATE SKIP LOCKED);
  RETURN QUERY
    UPDATE jobs j SET state = 1, attempt = j.attempt + 1, lease_token = j.lease_token + 1, lease_worker = p_worker,
      lease_expires = CASE WHEN p_lease >= 9223372036854775807 - v_now THEN 9223372036854775807 ELSE v_now + p_lease END,
      started_at = v_now
    FROM (SELECT id FROM jobs
          WHERE state = 0 AND NOT scheduled AND queue = p_queue AND run_at <= v_now
            AND (p_kinds IS NULL OR kind = ANY (p_kinds))
          ORDER BY priority, run_at, id LIMIT p_limit FOR UPDATE SKIP LOCKED) picked
    WHERE j.id = picked.id
    RETURNING j.*;
END $$;

INSERT INTO meta(key, value) VALUES ('application', 'porter'), ('schema_version', '1');
)sql";

// v2: when a job with dependencies runs (DependencyMode; 0: all_completed).
constexpr const char* kMigrateV1ToV2 = R"sql(
ALTER TABLE jobs ADD COLUMN dependency_mode int4 NOT NULL DEFAULT 0;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
)sql";

std::string in_schema(const std::string& schema) { return "SET LOCAL search_path TO " + quote_ident(schema); }

}  // namespace

Status check_schema_name(const std::string& schema) {
  bool ok = !schema.empty() && schema.size() <= 63 && !(schema[0] >= '0' && schema[0] <= '9');
  for (char c : schema) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
  }
  if (!ok) {
    return make_error(ErrorCode::invalid_argument,
                      "schema name must be 1..63 letters, digits or '_', not starting with a digit");
  }
  return {};
}

Result<int> schema_version(Conn& conn, const std::string& schema) {
  try {
    Params p;
    p.text(schema);
    auto ns = conn.exec_dynamic("SELECT count(*)::int8 FROM pg_namespace WHERE nspname = $1", p);
    if (ns.i64(0, 0) == 0) return 0;
    auto meta = conn.exec_dynamic(
        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))::int8, "
        "       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "        WHERE n.nspname = $1 AND c.relname = 'meta' AND c.relkind = 'r')::int8",
        p);
    const auto tables = meta.i64(0, 0);
    const auto has_meta = meta.i64(0, 1) > 0;
    if (tables == 0) return 0;  // an empty schema (made by an administrator for Porter)
    const std::string where = "schema '" + schema + "' ";
    if (!has_meta) {
      return make_error(ErrorCode::corruption, where + "holds " + std::to_string(tables) +
                                                   " tables that are not Porter's (no meta table); refusing to touch it");
    }
    auto rows = conn.exec_dynamic("SELECT key::bytea, value::bytea FROM " + quote_ident(schema) +
                                  ".meta WHERE key IN ('application', 'schema_version')");
    std::string app, version;
    for (int i = 0; i < rows.size(); ++i) (rows.bytes(i, 0) == "application" ? app : version) = rows.bytes(i, 1);
    if (app != "porter") {
      return make_error(ErrorCode::corruption, where + "has a meta table that is not Porter's; refusing to touch it");
    }
    char* end = nullptr;
    long v = std::strtol(version.c_str(), &end, 10);
    if (version.empty() || *end != '\0' || v < 1) {
      return make_error(ErrorCode::corruption, where + "is marked as Porter's but has no valid schema version");
    }
    if (v > kPgSchemaVersion) {
      return make_error(ErrorCode::unsupported, where + "has Porter schema version " + std::to_string(v) +
                                                    ", newer than this Porter understands (" +
                                                    std::to_string(kPgSchemaVersion) + "); upgrade Porter");
    }
    return static_cast<int>(v);
  } catch (const PgError& e) {
    return to_error(e, "reading schema '" + schema + "'");
  }
}

Status open_schema(Conn& conn, const std::string& schema) {
  auto version = schema_version(conn, schema);
  if (!version) return version.error();
  if (*version == kPgSchemaVersion) return {};
  try {
    conn.simple("BEGIN");
    try {
      Params p;
      p.i64(kPgMigrationLock).text(schema);
      conn.exec_dynamic("SELECT pg_advisory_xact_lock($1::int4, hashtext($2))", p);
      // Re-read under the lock: another process may have migrated meanwhile.
      version = schema_version(conn, schema);
      if (!version) {
        conn.simple("ROLLBACK");
        return version.error();
      }
      const std::string set_path = in_schema(schema);
      conn.exec_dynamic("CREATE SCHEMA IF NOT EXISTS " + quote_ident(schema));
      conn.exec_dynamic(set_path);
      if (*version < 1) conn.simple(kSchemaV1);
      if (*version < 2) conn.simple(kMigrateV1ToV2);
      // Future versions: `if (*version < 3) conn.simple(kMigrateV2ToV3);`, each updating meta.
      conn.simple("COMMIT");
    } catch (...) {
      if (PQtransactionStatus(conn.handle()) != PQTRANS_IDLE) PQclear(PQexec(conn.handle(), "ROLLBACK"));
      throw;
    }
  } catch (const PgError& e) {
    return to_error(e, "creating schema '" + schema + "'");
  }
  return {};
}

}  // namespace porter::detail
