// Schema creation and migration for the SQLite store (see schema.h).
//
// Why these indexes: claiming reads the head of one queue's pending jobs in
// (priority, run_at, id) order, so a partial index over pending jobs only
// keeps the claim O(log n) and small however many finished jobs are kept;
// the reaper scans running jobs by lease expiry; parents find children by
// parent_id; prune and stats look at finished_at; unique keys are looked up
// by (kind, unique_key) with the scope decided in the query. Version 2 adds
// jobs_next_run: next_run_at asks for a queue's earliest pending run_at,
// which the claim index (ordered by priority first) can only answer by
// scanning every pending job of the queue; with it the answer is one seek.
// Version 3 keeps, per job, its final run's own run time (the handler's, not
// started -> finished, which includes time in an engine's buffer) and queue
// latency (due -> started), for stats.
#include "stores/sqlite/schema.h"

#include <string>

namespace porter::detail {

namespace {

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE porter_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE jobs (
  id                      INTEGER PRIMARY KEY AUTOINCREMENT,
  kind                    TEXT    NOT NULL,
  args                    TEXT    NOT NULL,
  queue                   TEXT    NOT NULL,
  priority                INTEGER NOT NULL,
  state                   INTEGER NOT NULL,
  run_at                  INTEGER NOT NULL,
  attempt                 INTEGER NOT NULL DEFAULT 0,
  max_attempts            INTEGER NOT NULL,
  owner                   TEXT    NOT NULL DEFAULT '',
  unique_key              TEXT,             -- NULL: not unique
  description             TEXT    NOT NULL DEFAULT '',
  parent_id               INTEGER,
  on_failure              INTEGER NOT NULL DEFAULT 0,
  created_at              INTEGER NOT NULL,
  started_at              INTEGER,
  finished_at             INTEGER,
  lease_token             INTEGER NOT NULL DEFAULT 0,  -- the latest token; grows with every claim
  lease_worker            TEXT,             -- set while running
  lease_expires           INTEGER,          -- set while running
  cancel_requested        INTEGER NOT NULL DEFAULT 0,
  callback_pending        INTEGER NOT NULL DEFAULT 0,
  children_total          INTEGER NOT NULL DEFAULT 0,
  children_unfinished     INTEGER NOT NULL DEFAULT 0,
  dependencies_unfinished INTEGER NOT NULL DEFAULT 0,
  dependency_count        INTEGER NOT NULL DEFAULT 0,  -- rows in dependencies for this job
  dependent_count         INTEGER NOT NULL DEFAULT 0,  -- jobs that depend on this one
  progress_done           INTEGER NOT NULL DEFAULT 0,
  progress_total          INTEGER NOT NULL DEFAULT 0,
  progress_message        TEXT    NOT NULL DEFAULT '',
  error_count             INTEGER NOT NULL DEFAULT 0,  -- rows in attempt_errors
  item_error_count        INTEGER NOT NULL DEFAULT 0,  -- all reported; the first few are stored
  result                  TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX jobs_claim    ON jobs(queue, priority, run_at, id) WHERE state = 0;
CREATE INDEX jobs_leases   ON jobs(lease_expires) WHERE state = 1;
CREATE INDEX jobs_parent   ON jobs(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_unique   ON jobs(kind, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE attempt_errors (
  job_id    INTEGER NOT NULL,
  seq       INTEGER NOT NULL,
  attempt   INTEGER NOT NULL,
  at        INTEGER NOT NULL,
  message   TEXT    NOT NULL,
  permanent INTEGER NOT NULL,
  retried   INTEGER NOT NULL,  -- the job went back to pending after this error (for stats)
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE INDEX attempt_errors_at ON attempt_errors(at);

CREATE TABLE item_errors (
  job_id  INTEGER NOT NULL,
  seq     INTEGER NOT NULL,
  item    TEXT    NOT NULL,
  message TEXT    NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE dependencies (
  job_id     INTEGER NOT NULL,
  depends_on INTEGER NOT NULL,
  seq        INTEGER NOT NULL,  -- the order the job listed them in
  PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX dependencies_dependents ON dependencies(depends_on, job_id);

CREATE TABLE queues (
  name   TEXT PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO porter_meta(key, value) VALUES ('application', 'porter'), ('schema_version', '1');
PRAGMA application_id = 1347375700;
PRAGMA user_version = 1;
)sql";

constexpr const char* kMigrateV1ToV2 = R"sql(
CREATE INDEX jobs_next_run ON jobs(queue, run_at) WHERE state = 0;
UPDATE porter_meta SET value = '2' WHERE key = 'schema_version';
PRAGMA user_version = 2;
)sql";

constexpr const char* kMigrateV2ToV3 = R"sql(
ALTER TABLE jobs ADD COLUMN run_time INTEGER;       -- the final run's own run time; NULL: started -> finished
ALTER TABLE jobs ADD COLUMN queue_latency INTEGER;  -- the final run's due -> started; NULL: unknown
UPDATE porter_meta SET value = '3' WHERE key = 'schema_version';
PRAGMA user_version = 3;
)sql";

// Version 4 (the read side): admin reads that do not slow the workers, and
// the worker registry.
//  - job_counts: stored jobs per (queue, kind, state), kept by triggers in
//    the same transaction as every insert, state change and delete, so stats
//    reads a few rows instead of grouping the whole jobs table. Triggers, not
//    the store's statements: no transition can forget to count. Pending and
//    running share one count (state 0): the claim, the hottest write, then
//    fires no trigger at all; stats splits them with the running jobs, which
//    jobs_leases indexes and which are few (at most the busy workers).
//  - jobs_owner: an owner's listing (every non-admin listing) is an index
//    range, newest first; partial, so unowned jobs pay nothing for it.
//  - jobs_failed / jobs_cancelled: the admin page's "failed jobs" listing
//    reads only those, newest first (a scan from the newest job would read
//    every job when few failed); partial, so only jobs entering or leaving
//    those states pay for them.
//  - jobs_claim gains `kind` as its last column: a claim limited to some
//    kinds (ClaimRequest::kinds) filters in the index, without reading rows.
//  - jobs_finished covers (finished_at, state, kind, started_at, run_time,
//    queue_latency): prune finds its oldest batch and stats its window
//    without reading rows.
//  - workers / worker_kinds: the registry behind Stats::unhandled.
constexpr const char* kMigrateV3ToV4 = R"sql(
CREATE TABLE job_counts (
  queue TEXT    NOT NULL,
  kind  TEXT    NOT NULL,
  state INTEGER NOT NULL,  -- 0: pending or running (see above); otherwise the JobState
  n     INTEGER NOT NULL,
  PRIMARY KEY (queue, kind, state)
) WITHOUT ROWID;
INSERT INTO job_counts(queue, kind, state, n)
  SELECT queue, kind, CASE WHEN state = 1 THEN 0 ELSE state END, count(*) FROM jobs GROUP BY 1, 2, 3;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
  INSERT INTO job_counts(queue, kind, state, n) VALUES (new.queue, new.kind, CASE WHEN new.state = 1 THEN 0 ELSE new.state END, 1)
    ON CONFLICT(queue, kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
  UPDATE job_counts SET n = n - 1
  WHERE queue = old.queue AND kind = old.kind AND state = CASE WHEN old.state = 1 THEN 0 ELSE old.state END;
END;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue, kind ON jobs
WHEN (CASE WHEN old.state = 1 THEN 0 ELSE old.state END) <> (CASE WHEN new.state = 1 THEN 0 ELSE new.state END)
  OR old.queue <> new.queue OR old.kind <> new.kind BEGIN
  UPDATE job_counts SET n = n - 1
  WHERE queue = old.queue AND kind = old.kind AND state = CASE WHEN old.state = 1 THEN 0 ELSE old.state END;
  INSERT INTO job_counts(queue, kind, state, n) VALUES (new.queue, new.kind, CASE WHEN new.state = 1 THEN 0 ELSE new.state END, 1)
    ON CONFLICT(queue, kind, state) DO UPDATE SET n = n + 1;
END;

CREATE INDEX jobs_owner ON jobs(owner, id) WHERE owner <> '';
CREATE INDEX jobs_failed ON jobs(id) WHERE state = 4;
CREATE INDEX jobs_cancelled ON jobs(id) WHERE state = 5;
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs(queue, priority, run_at, id, kind) WHERE state = 0;
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs(finished_at, state, kind, started_at, run_time, queue_latency)
  WHERE finished_at IS NOT NULL;

CREATE TABLE workers (
  id      TEXT PRIMARY KEY,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE worker_kinds (
  queue  TEXT NOT NULL,
  kind   TEXT NOT NULL,
  worker TEXT NOT NULL,
  PRIMARY KEY (queue, kind, worker)
) WITHOUT ROWID;
CREATE INDEX worker_kinds_worker ON worker_kinds(worker);

UPDATE porter_meta SET value = '4' WHERE key = 'schema_version';
PRAGMA user_version = 4;
)sql";

// v5: when a job with dependencies runs (DependencyMode; 0: all_completed).
constexpr const char* kMigrateV4ToV5 = R"sql(
ALTER TABLE jobs ADD COLUMN dependency_mode INTEGER NOT NULL DEFAULT 0;
UPDATE porter_meta SET value = '5' WHERE key = 'schema_version';
PRAGMA user_version = 5;
)sql";

static_assert(kPorterApplicationId == 1347375700, "kSchemaV1 spells the application id in decimal");

std::int64_t pragma_int(Db& db, const char* sql) {
  auto q = db.query(sql);
  return q.step() ? q.i64(0) : 0;
}

}  // namespace

Status check_database(Db& db, const std::string& path) {
  // Reading the schema is the first access to the file: a file that is not a
  // SQLite database fails here with SQLITE_NOTADB, before anything is written.
  std::int64_t objects = 0;
  {
    auto q = db.query("SELECT count(*) FROM sqlite_schema");
    if (q.step()) objects = q.i64(0);
  }
  auto app_id = pragma_int(db, "PRAGMA application_id");
  auto version = pragma_int(db, "PRAGMA user_version");
  if (objects == 0 && app_id == 0 && version == 0) return {};  // a new, empty database
  if (app_id != kPorterApplicationId) {
    return make_error(ErrorCode::corruption, "'" + path + "' is a SQLite database but not Porter's (application_id " +
                                                 std::to_string(app_id) + "); refusing to touch it");
  }
  if (version > kSqliteSchemaVersion) {
    return make_error(ErrorCode::unsupported, "'" + path + "' has Porter schema version " + std::to_string(version) +
                                                  ", newer than this Porter understands (" +
                                                  std::to_string(kSqliteSchemaVersion) + "); upgrade Porter");
  }
  if (version < 1) {
    return make_error(ErrorCode::corruption, "'" + path + "' is marked as Porter's but has no schema version");
  }
  // Touch every table's root page and the marker row: a truncated or damaged
  // file fails here with SQLITE_CORRUPT instead of in the middle of a claim.
  {
    auto q = db.query("SELECT value FROM porter_meta WHERE key = 'application'");
    if (!q.step() || q.text(0) != "porter") {
      return make_error(ErrorCode::corruption, "'" + path + "' lacks Porter's porter_meta marker");
    }
  }
  for (const char* sql : {"SELECT max(id) FROM jobs", "SELECT count(*) FROM attempt_errors",
                          "SELECT count(*) FROM item_errors", "SELECT count(*) FROM dependencies",
                          "SELECT count(*) FROM queues"}) {
    auto q = db.query(sql);
    q.run();
  }
  return {};
}

bool needs_migration(Db& db) { return pragma_int(db, "PRAGMA user_version") < kSqliteSchemaVersion; }

Status migrate(Db& db) {
  // Re-read the version under the write lock: another process may have
  // created the schema since check_database looked.
  auto version = pragma_int(db, "PRAGMA user_version");
  if (version > kSqliteSchemaVersion) {
    return make_error(ErrorCode::unsupported, "the database was upgraded by a newer Porter while opening");
  }
  if (version == 0) db.exec(kSchemaV1);
  if (version < 2) db.exec(kMigrateV1ToV2);
  if (version < 3) db.exec(kMigrateV2ToV3);
  if (version < 4) db.exec(kMigrateV3ToV4);
  if (version < 5) db.exec(kMigrateV4ToV5);
  // Future versions: `if (version < 6) db.exec(kMigrateV5ToV6);` and so on, each bumping user_version.
  return {};
}

}  // namespace porter::detail
