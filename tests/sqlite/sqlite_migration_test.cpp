// Schema migration in place: a database written by Porter at schema version
// 4 (fixtures/schema_v4.sql, a dump of one) opens, upgrades and reads as it
// did, and its scheduled jobs move out of the claim index (stored state 6)
// without any reader noticing.
#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "porter/sqlite_store.h"
#include "sqlite/sqlite_test_support.h"

using namespace porter;
using namespace std::chrono_literals;
using porter::test::raw_sql;
using porter::test::read_bytes;
using porter::test::TempFile;

namespace {

constexpr TimePoint kWrittenAt{Duration(1'700'000'000'000'000)};  // the fixture's clock

// One integer from a query on the file, through the plain SQLite API.
std::int64_t raw_int(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK);
  std::int64_t v = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return v;
}

std::shared_ptr<Store> open_at(const std::string& path, std::shared_ptr<ManualClock> clock) {
  SqliteOptions options;
  options.durability = Durability::process_crash;
  options.clock = std::move(clock);
  auto store = open_sqlite_store(path, options);
  if (!store) FAIL("open failed: " << store.error().to_string());
  return *store;
}

const QueueInfo& queue(const Stats& st, const std::string& name) {
  for (const auto& q : st.queues) {
    if (q.name == name) return q;
  }
  FAIL("no queue " << name);
  throw;
}

}  // namespace

TEST_CASE("sqlite a version 4 database upgrades in place and reads as before", "[sqlite][migration]") {
  TempFile f;
  std::string dump = read_bytes(PORTER_SQLITE_FIXTURES "/schema_v4.sql");
  REQUIRE_FALSE(dump.empty());
  raw_sql(f.path, dump.c_str());
  REQUIRE(raw_int(f.path, "PRAGMA user_version") == 4);

  auto clock = std::make_shared<ManualClock>(kWrittenAt);
  auto store = open_at(f.path, clock);
  CHECK(raw_int(f.path, "PRAGMA user_version") == 6);
  // Job 3 is due in 2096: stored as scheduled now. Job 2 was due an hour
  // after 2023 by the wall clock: left as it was (either is correct).
  CHECK(raw_int(f.path, "SELECT state FROM jobs WHERE id = 3") == 6);
  CHECK(raw_int(f.path, "SELECT state FROM jobs WHERE id = 2") == 0);

  for (JobId id : {1, 2, 3}) CHECK(store->get(id)->state == JobState::pending);
  CHECK(store->get(5)->state == JobState::running);
  CHECK(store->get(7)->state == JobState::waiting);
  auto st = store->stats(1h);
  REQUIRE(st.has_value());
  const QueueInfo& q = queue(*st, "q");
  CHECK(q.pending == 1);
  CHECK(q.scheduled == 1);
  CHECK(q.running == 1);
  CHECK(q.waiting == 1);
  CHECK(q.completed == 1);
  CHECK(q.failed == 1);
  const QueueInfo& r = queue(*st, "r");
  CHECK(r.pending == 0);
  CHECK(r.scheduled == 1);
  CHECK(store->next_run_at("r")->value() == TimePoint(Duration(4'000'000'000'000'000)));
  CHECK(store->next_run_at("q")->value() == kWrittenAt);
  JobFilter pending;
  pending.states = {JobState::pending};
  auto page = store->list(pending, std::nullopt, 10);
  REQUIRE(page.has_value());
  CHECK(page->jobs.size() == 3);

  // Claims: the due job first although job 2 has the better priority; then
  // job 2 when due; job 3 only in 2096.
  auto first = store->claim(ClaimRequest{"q", "w", 5, 30s});
  REQUIRE(first.has_value());
  REQUIRE(first->size() == 1);
  CHECK((*first)[0].id == 1);
  clock->advance(1h);
  auto second = store->claim(ClaimRequest{"q", "w", 5, 30s});
  REQUIRE(second.has_value());
  REQUIRE(second->size() == 1);
  CHECK((*second)[0].id == 2);
  CHECK(store->claim(ClaimRequest{"r", "w", 5, 30s})->empty());
  clock->set(TimePoint(Duration(4'000'000'000'000'000)));
  auto third = store->claim(ClaimRequest{"r", "w", 5, 30s});
  REQUIRE(third.has_value());
  REQUIRE(third->size() == 1);
  CHECK((*third)[0].id == 3);
  st = store->stats(1h);
  REQUIRE(st.has_value());
  CHECK(queue(*st, "r").running == 1);
  CHECK(queue(*st, "r").scheduled == 0);
}

TEST_CASE("sqlite scheduled jobs stay out of the claim index until a claim finds them due", "[sqlite][migration]") {
  TempFile f;
  auto clock = std::make_shared<ManualClock>(kWrittenAt);
  auto store = open_at(f.path, clock);
  std::vector<NewJob> jobs;
  for (int i = 0; i < 50; ++i) {
    NewJob later{.kind = "later", .priority = -10};
    later.delay = 10min;
    jobs.push_back(later);
  }
  jobs.push_back(NewJob{.kind = "now", .priority = 10});
  auto ids = store->insert(jobs);
  REQUIRE(ids.has_value());
  CHECK(raw_int(f.path, "SELECT count(*) FROM jobs WHERE state = 6") == 50);
  auto st = store->stats(1h);
  REQUIRE(st.has_value());
  CHECK(st->queues[0].pending == 1);
  CHECK(st->queues[0].scheduled == 50);
  auto got = store->claim(ClaimRequest{"default", "w", 1, 30s});
  REQUIRE(got.has_value());
  REQUIRE(got->size() == 1);
  CHECK((*got)[0].kind == "now");
  // A retry with backoff is stored scheduled too, and comes back when due.
  Outcome retry{.lease = (*got)[0].lease_ref(), .kind = OutcomeKind::retry, .error = "later", .delay = 1min};
  REQUIRE(store->finish(std::span<const Outcome>(&retry, 1)).has_value());
  CHECK(raw_int(f.path, "SELECT count(*) FROM jobs WHERE state = 6") == 51);
  CHECK(store->claim(ClaimRequest{"default", "w", 1, 30s})->empty());
  clock->advance(1min);
  got = store->claim(ClaimRequest{"default", "w", 5, 30s});
  REQUIRE(got.has_value());
  REQUIRE(got->size() == 1);
  CHECK((*got)[0].kind == "now");
  clock->advance(10min);
  got = store->claim(ClaimRequest{"default", "w", 100, 30s});
  REQUIRE(got.has_value());
  CHECK(got->size() == 50);
  CHECK(raw_int(f.path, "SELECT count(*) FROM jobs WHERE state = 6") == 0);
}
