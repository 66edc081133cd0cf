// SqliteStore: the embedded durable default. One database file in WAL mode,
// shared safely by several processes on one machine: every operation is one
// transaction, and claims take the write lock up front (BEGIN IMMEDIATE) so
// two processes never lease the same job.
#pragma once

#include <memory>
#include <string>

#include "porter/clock.h"
#include "porter/diagnostics.h"
#include "porter/status.h"
#include "porter/store.h"

namespace porter {

// What a commit survives (SQLite's synchronous setting in WAL mode).
enum class Durability : std::uint8_t {
  process_crash,  // synchronous=NORMAL: survives the process dying; a power loss may lose the last commits
  power_loss,     // synchronous=FULL: each commit is on disk before it returns
};

struct SqliteOptions {
  Durability durability = Durability::power_loss;  // Default: power_loss (the safe one)
  std::chrono::milliseconds busy_timeout{5000};    // wait for another process's write lock. Default: 5 s
  std::shared_ptr<Clock> clock;                    // Default: the system clock
  // Trouble the store handles on its own threads (a watcher or checkpointer
  // that stops, a failed checkpoint). Default: warnings and errors on stderr.
  DiagnosticSink diagnostics = stderr_sink();
};

// Opens (creating if missing) the database at `path` and migrates its schema.
// Errors: unavailable for a missing or read-only directory; corruption for a
// file that is not a SQLite database or not Porter's; unsupported for a
// database written by a newer Porter. Nothing is overwritten on error.
Result<std::shared_ptr<Store>> open_sqlite_store(const std::string& path, SqliteOptions options = {});

}  // namespace porter
