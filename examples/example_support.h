// What every Porter example shares: opening the store (a fresh SQLite file,
// the embedded default, the in-memory store with --memory, or a fresh schema
// on a PostgreSQL server with --postgres) in a work
// directory of its own, a log that
// prints one timestamped line at a time from any thread, and a tally of the
// example's claims, so the example exits non-zero if something it says
// happened did not.
#pragma once

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "porter/porter.h"
#ifdef PORTER_WITH_SQLITE
#include "porter/sqlite_store.h"
#endif
#ifdef PORTER_WITH_POSTGRES
#include "porter/postgres_store.h"
#endif

namespace porter::examples {

// Prints lines prefixed with the seconds since the example started. One
// mutex keeps lines from different worker threads whole.
class Log {
 public:
  template <class... Args>
  void line(fmt::format_string<Args...> format, Args&&... args) {
    std::string text = fmt::format(format, std::forward<Args>(args)...);
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::lock_guard lock(mutex_);  // guards stdout
    fmt::print("[{:6.3f}s] {}\n", t, text);
    std::fflush(stdout);
  }
  template <class... Args>
  void heading(fmt::format_string<Args...> format, Args&&... args) {
    std::string text = fmt::format(format, std::forward<Args>(args)...);
    std::lock_guard lock(mutex_);
    fmt::print("\n== {} ==\n", text);
    std::fflush(stdout);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::mutex mutex_;
};

// The example's claims, checked: each prints "ok" or "FAILED".
class Checks {
 public:
  explicit Checks(Log& log) : log_(log) {}
  bool expect(bool ok, std::string_view claim) {
    log_.line("{} {}", ok ? "ok     " : "FAILED ", claim);
    if (!ok) failures_.emplace_back(claim);
    return ok;
  }
  // Prints the verdict; the process exit code.
  int verdict(std::string_view example) const {
    if (failures_.empty()) {
      fmt::print("\n{}: every claim above held.\n", example);
      return 0;
    }
    fmt::print("\n{}: {} claim(s) did not hold:\n", example, failures_.size());
    for (const auto& f : failures_) fmt::print("  - {}\n", f);
    return 1;
  }

 private:
  Log& log_;
  std::vector<std::string> failures_;  // touched only by the main thread
};

// A directory of this run's files (the SQLite database, generated input),
// unique per process so parallel runs never share one. Removed at exit
// unless --keep is given, so a reader can open the database afterwards.
class WorkDir {
 public:
  WorkDir(std::filesystem::path path, bool keep) : path_(std::move(path)), keep_(keep) {}
  ~WorkDir() {
    std::error_code ec;
    if (!keep_) std::filesystem::remove_all(path_, ec);
  }
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  bool keep() const { return keep_; }

 private:
  std::filesystem::path path_;
  bool keep_;
};

struct ExampleStore {
  std::shared_ptr<WorkDir> dir;  // declared first: outlives the store
  std::shared_ptr<Store> store;
  std::string description;  // for the reader: which store, and where
};

inline bool has_flag(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == flag) return true;
  }
  return false;
}

// SQLite (a fresh file in this run's work directory) unless --memory is
// given or Porter was built without SQLite. --keep keeps the work directory.
inline Result<ExampleStore> open_example_store(int argc, char** argv, std::string_view name) {
  const bool memory = has_flag(argc, argv, "--memory");
  std::error_code ec;
  auto path = std::filesystem::temp_directory_path(ec) / "porter-examples" /
              fmt::format("{}-{}", name, static_cast<long>(::getpid()));
  std::filesystem::remove_all(path, ec);  // a dead process's leftovers with our pid
  std::filesystem::create_directories(path, ec);
  if (ec) return make_error(ErrorCode::unavailable, "cannot create " + path.string() + ": " + ec.message());
  auto dir = std::make_shared<WorkDir>(path, has_flag(argc, argv, "--keep"));
  const std::string kept = dir->keep() ? "kept after exit" : "removed at exit; --keep keeps it";
#ifdef PORTER_WITH_POSTGRES
  if (has_flag(argc, argv, "--postgres")) {
    // The server libpq's environment names (PGHOST, PGDATABASE, PGUSER, ...; or
    // the conninfo in PORTER_POSTGRES), in a fresh schema of this run.
    const char* conninfo = std::getenv("PORTER_POSTGRES");
    const std::string schema = fmt::format("example_{}_{}", name, static_cast<long>(::getpid()));
    auto store = open_postgres_store(conninfo ? conninfo : "", {.schema = schema});
    if (!store) return store.error();
    return ExampleStore{dir, std::move(*store),
                        fmt::format("PostgreSQL schema {} (--postgres; DROP SCHEMA {} CASCADE when done)", schema, schema)};
  }
#endif
#ifdef PORTER_WITH_SQLITE
  if (!memory) {
    auto db = path / "jobs.db";
    // process_crash durability: commits survive this process dying, which is
    // what a demo needs, and each one skips the fsync.
    auto store = open_sqlite_store(db.string(), {.durability = Durability::process_crash});
    if (!store) return store.error();
    return ExampleStore{dir, std::move(*store), fmt::format("SQLite file {} ({})", db.string(), kept)};
  }
#endif
  return ExampleStore{dir, make_memory_store(),
                      memory ? "in-memory store (--memory)" : "in-memory store (built without SQLite)"};
}

// For setup steps an example cannot go on without (registering a handler,
// starting the engine, enqueueing): print the error and exit with status 2.
inline void or_exit(const Status& status, std::string_view what) {
  if (status) return;
  fmt::print(stderr, "{} failed: {}\n", what, status.error().to_string());
  std::exit(2);
}
template <class T>
T or_exit(Result<T> result, std::string_view what) {
  if (!result) {
    fmt::print(stderr, "{} failed: {}\n", what, result.error().to_string());
    std::exit(2);
  }
  return std::move(*result);
}

// register_handler, or exit: a kind registered twice is a bug in the example.
inline void register_or_exit(Engine& engine, std::string kind, Handler handler, KindOptions options = {}) {
  std::string what = "registering " + kind;
  or_exit(engine.register_handler(std::move(kind), std::move(handler), std::move(options)), what);
}

// A retry policy that waits the same short `delay` after every failed
// attempt, so an example's retries happen within its run.
inline RetryPolicy fixed_backoff(int max_attempts, Duration delay) {
  RetryPolicy policy;
  policy.max_attempts = max_attempts;
  policy.custom = [delay](int) { return delay; };
  return policy;
}

inline std::string format_duration(Duration d) {
  auto us = d.count();
  if (us < 1000) return fmt::format("{} us", us);
  if (us < 1'000'000) return fmt::format("{:.1f} ms", static_cast<double>(us) / 1e3);
  return fmt::format("{:.2f} s", static_cast<double>(us) / 1e6);
}

// The admin's metrics, as a small table per queue and per kind.
inline void print_stats(Log& log, const Stats& stats) {
  log.line("{:<14} {:>6} {:>7} {:>9} {:>7} {:>7} {:>9} {:>6} {:>9}", "queue", "paused", "pending", "scheduled",
           "running", "waiting", "completed", "failed", "cancelled");
  for (const auto& q : stats.queues) {
    log.line("{:<14} {:>6} {:>7} {:>9} {:>7} {:>7} {:>9} {:>6} {:>9}", q.name, q.paused ? "yes" : "no", q.pending,
             q.scheduled, q.running, q.waiting, q.completed, q.failed, q.cancelled);
  }
  log.line("{:<18} {:>9} {:>6} {:>7} {:>12} {:>10} {:>10} {:>10}", "kind", "completed", "failed", "retried",
           "failure rate", "p50", "p95", "p99");
  for (const auto& k : stats.kinds) {
    log.line("{:<18} {:>9} {:>6} {:>7} {:>11.0f}% {:>10} {:>10} {:>10}", k.kind, k.completed, k.failed, k.retried,
             100.0 * k.failure_rate, format_duration(k.p50), format_duration(k.p95), format_duration(k.p99));
  }
  log.line("oldest lease held: {}; expired leases: {}",
           stats.oldest_lease_age ? format_duration(*stats.oldest_lease_age) : std::string("none"),
           stats.expired_leases);
}

}  // namespace porter::examples
