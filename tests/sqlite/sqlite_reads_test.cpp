// SQLite reads off the write path: a separate read connection, so get, list,
// stats and next_run_at never queue behind a write of this process that is
// waiting for another process's write lock; and the schema migration that
// adds the read side (counters, registry) keeps what the file already holds.
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include "porter/sqlite_store.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace porter;

#include "sqlite/sqlite_test_support.h"

using porter::test::raw_sql;
using porter::test::TempFile;
using porter::test::WriteLockHolder;

namespace {

std::shared_ptr<Store> open_ok(const std::string& path, Duration busy_timeout = 5s) {
  SqliteOptions options;
  options.durability = Durability::process_crash;
  options.busy_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(busy_timeout);
  auto store = open_sqlite_store(path, options);
  if (!store) FAIL("open failed: " << store.error().to_string());
  return *store;
}

}  // namespace

TEST_CASE("sqlite reads do not wait behind a write that waits for another process's lock", "[sqlite][reads]") {
  TempFile file;
  auto store = open_ok(file.path, 3s);
  NewJob job{.kind = "k", .delay = 1h};
  auto inserted = store->insert(std::span<const NewJob>(&job, 1));
  REQUIRE(inserted.has_value());
  const JobId id = (*inserted)[0].id;

  WriteLockHolder other(file.path);
  // This process's write now waits (busy_timeout, then retries) for the other's lock.
  std::atomic<bool> write_returned{false};
  auto writer = std::async(std::launch::async, [&] {
    auto r = store->insert(std::span<const NewJob>(&job, 1));
    write_returned = true;
    return r.has_value();
  });
  std::this_thread::sleep_for(200ms);  // let the write take the store's write path (not a timing assertion)

  auto got = store->get(id);
  REQUIRE(got.has_value());
  CHECK(got->kind == "k");
  auto page = store->list(JobFilter{}, std::nullopt, 10);
  REQUIRE(page.has_value());
  CHECK(page->jobs.size() == 1);
  auto stats = store->stats(5min);
  REQUIRE(stats.has_value());
  REQUIRE(stats->queues.size() == 1);
  CHECK(stats->queues[0].scheduled == 1);
  auto next = store->next_run_at("default");
  REQUIRE(next.has_value());
  CHECK(next->has_value());
  // Every read returned while the write was still waiting for the lock.
  CHECK_FALSE(write_returned.load());

  other.release();
  CHECK(writer.get());
  auto after = store->list(JobFilter{}, std::nullopt, 10);
  REQUIRE(after.has_value());
  CHECK(after->jobs.size() == 2);  // a write is visible to the very next read
}

TEST_CASE("sqlite migration to the read side counts the jobs a file already holds", "[sqlite][reads]") {
  TempFile file;
  {
    auto store = open_ok(file.path);
    std::vector<NewJob> jobs(5, NewJob{.kind = "a", .queue = "q"});
    jobs.push_back(NewJob{.kind = "b", .queue = "r", .owner = "alice"});
    REQUIRE(store->insert(jobs).has_value());
    auto claimed = store->claim({.queue = "q", .worker = "w", .limit = 2});
    REQUIRE(claimed.has_value());
    Outcome done{.lease = (*claimed)[0].lease_ref(), .kind = OutcomeKind::complete};
    REQUIRE(store->finish(std::span<const Outcome>(&done, 1)).has_value());
  }
  // Back to the previous version's shape: no counters, registry or owner index.
  raw_sql(file.path,
          "DROP TRIGGER jobs_count_insert; DROP TRIGGER jobs_count_delete; DROP TRIGGER jobs_count_update; "
          "DROP TABLE job_counts; DROP TABLE workers; DROP TABLE worker_kinds; DROP INDEX jobs_owner; "
          "DROP INDEX jobs_failed; DROP INDEX jobs_cancelled; ALTER TABLE jobs DROP COLUMN dependency_mode; "
          "PRAGMA user_version = 3;");
  auto store = open_ok(file.path);
  auto stats = store->stats(5min);
  REQUIRE(stats.has_value());
  REQUIRE(stats->queues.size() == 2);
  const QueueInfo& q = stats->queues[0];
  CHECK(q.name == "q");
  CHECK(q.pending == 3);
  CHECK(q.running == 1);
  CHECK(q.completed == 1);
  CHECK(stats->queues[1].pending == 1);
  CHECK(stats->unhandled.size() == 2);
  JobFilter mine;
  mine.owner = "alice";
  auto page = store->list(mine, std::nullopt, 10);
  REQUIRE(page.has_value());
  CHECK(page->jobs.size() == 1);
  // And the counters keep counting after the migration.
  auto more = store->claim({.queue = "q", .worker = "w", .limit = 10});
  REQUIRE(more.has_value());
  CHECK(more->size() == 3);
  stats = store->stats(5min);
  REQUIRE(stats.has_value());
  CHECK(stats->queues[0].running == 4);
  CHECK(stats->queues[0].pending == 0);
}

TEST_CASE("sqlite migration v4 to v5 keeps waiting dependents strict", "[sqlite][migration]") {
  TempFile file;
  JobId dep = 0, dependent = 0;
  {
    auto store = open_ok(file.path);
    auto first = store->insert(std::vector<NewJob>{NewJob{.kind = "a"}});
    REQUIRE(first.has_value());
    dep = (*first)[0].id;
    auto second = store->insert(std::vector<NewJob>{NewJob{.kind = "b", .depends_on = {dep}}});
    REQUIRE(second.has_value());
    dependent = (*second)[0].id;
  }
  // The v4 shape: no dependency_mode column.
  raw_sql(file.path, "ALTER TABLE jobs DROP COLUMN dependency_mode; PRAGMA user_version = 4;");
  auto store = open_ok(file.path);
  auto got = store->get(dependent);
  REQUIRE(got.has_value());
  CHECK(got->state == JobState::waiting);
  CHECK(got->dependency_mode == DependencyMode::all_completed);
  auto claimed = store->claim({.queue = "default", .worker = "w", .limit = 1});
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->size() == 1);
  Outcome failed{.lease = (*claimed)[0].lease_ref(), .kind = OutcomeKind::fail, .error = "x"};
  REQUIRE(store->finish(std::span<const Outcome>(&failed, 1)).has_value());
  got = store->get(dependent);
  REQUIRE(got.has_value());
  CHECK(got->state == JobState::cancelled);
}
