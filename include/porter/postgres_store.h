// PostgresStore: many engines on many machines sharing one queue through a
// PostgreSQL server (libpq). Porter's tables live in their own PostgreSQL
// schema, created and migrated on first open.
//
// Guarantees, beyond the Store contract (porter/store.h):
//  - Every Store call is one transaction, committed before it returns
//    (durable as the server's synchronous_commit makes it).
//  - Time is the database's: leases, run_at, backoff and the store's clock()
//    follow the server's now(), so engines on machines with skewed clocks
//    never steal each other's live leases.
//  - Claims take FOR UPDATE SKIP LOCKED batches: engines never wait for each
//    other and never lease the same job. Unique keys (and cron minutes) are
//    decided under an advisory lock: two machines racing get one job.
//  - Engines in other processes wake within milliseconds of a commit
//    (LISTEN/NOTIFY, with polling as the fallback).
//  - A lost server is `unavailable` (nothing waits forever); the store
//    reconnects when it is back. Serialization failures and deadlocks are
//    retried inside the store.
//  - enqueue_in_transaction: a job is enqueued inside the application's own
//    transaction and exists if and only if that transaction commits.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "porter/clock.h"
#include "porter/diagnostics.h"
#include "porter/job.h"
#include "porter/status.h"
#include "porter/store.h"

// libpq's connection type (libpq-fe.h declares it the same way).
typedef struct pg_conn PGconn;  // NOLINT: must match libpq's typedef

namespace porter {

struct PostgresOptions {
  // The PostgreSQL schema Porter's tables live in: letters, digits and '_'
  // (at most 63). Default: "porter".
  std::string schema = "porter";
  int pool_size = 8;                                // connections at most, 1..1000. Default: 8
  std::chrono::milliseconds pool_wait{5000};        // wait for a free connection, then unavailable. Default: 5 s
  std::chrono::seconds connect_timeout{5};          // unless the conninfo sets one. Default: 5 s
  bool listen = true;                               // LISTEN/NOTIFY wake-ups from other processes. Default: on
  // For tests only: statements read this clock's now instead of the
  // server's (so a ManualClock drives leases and schedules). Default: the server's clock.
  std::shared_ptr<Clock> clock;
  // Trouble the store handles on its own threads (a lost LISTEN connection,
  // a reconnect). Default: warnings and errors on stderr.
  DiagnosticSink diagnostics = stderr_sink();
};

// Connects with `conninfo` (a libpq connection string or URI), creates or
// migrates the schema, and returns the store. Errors: permission_denied for
// rejected credentials; unavailable when the server cannot be reached;
// corruption when the schema holds tables that are not Porter's;
// unsupported when it was written by a newer Porter; invalid_argument for bad
// options. Nothing is changed on error.
Result<std::shared_ptr<Store>> open_postgres_store(const std::string& conninfo, PostgresOptions options = {});

// Transactional enqueue: inserts `jobs` through the application's own
// connection, inside the transaction it has open (BEGIN first:
// invalid_argument otherwise), so the jobs exist if and only if that
// transaction commits. Checks as Engine::enqueue does (validate(), existing
// dependencies); on any error nothing of the batch is left in the
// transaction (a savepoint) and the application's own work is untouched.
// The schema must exist (open_postgres_store created it). Engines in every
// process are woken when the transaction commits.
Result<std::vector<InsertResult>> enqueue_in_transaction(PGconn* conn, std::span<const NewJob> jobs,
                                                         const std::string& schema = "porter");

}  // namespace porter
