// Conformance: retention. prune(PruneRequest) deletes final jobs in small
// batches (oldest finish first, only the states asked for), so no long
// transaction holds the store; apply_retention drives it per final state.
#include "conformance/conformance.h"

#include "porter/retention.h"

using namespace porter;
using namespace porter::test;

namespace {

// A job finished with `kind` now; returns its id.
JobId finished(Store& store, OutcomeKind kind, std::string queue = "default") {
  NewJob n = new_job("work", queue);
  n.max_attempts = 1;
  JobId id = add(store, n);
  Job j = claim_one(store, queue);
  REQUIRE(j.id == id);
  finish_ok(store, j, kind, kind == OutcomeKind::complete ? "" : "boom");
  return id;
}

bool exists(Store& store, JobId id) { return store.get(id).has_value(); }

Result<std::int64_t> prune(Store& store, TimePoint before, int limit, std::vector<JobState> states = {}) {
  PruneRequest r{.finished_before = before, .limit = limit};
  if (!states.empty()) r.states = std::move(states);
  return store.prune(r);
}

}  // namespace

TEST_CASE("prune deletes at most limit jobs per call, the oldest finishes first", "[retention]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<JobId> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(finished(*store, OutcomeKind::complete));
    clock->advance(1min);
  }
  const TimePoint later = clock->now();
  auto n = prune(*store, later, 2);
  REQUIRE(n.has_value());
  CHECK(*n == 2);
  CHECK_FALSE(exists(*store, ids[0]));
  CHECK_FALSE(exists(*store, ids[1]));
  CHECK(exists(*store, ids[2]));
  CHECK(*prune(*store, later, 2) == 2);
  CHECK(exists(*store, ids[4]));
  CHECK(*prune(*store, later, 2) == 1);  // fewer than the limit: done
  CHECK_FALSE(exists(*store, ids[4]));
  CHECK(*prune(*store, later, 2) == 0);
}

TEST_CASE("prune deletes only the final states asked for and only before the cutoff", "[retention]") {
  PORTER_STORE_UNDER_TEST();
  JobId done = finished(*store, OutcomeKind::complete);
  JobId failed = finished(*store, OutcomeKind::fail);
  JobId pending = add(*store, new_job("later", "idle"));
  JobId cancelled = add(*store, new_job("c", "other"));
  REQUIRE(store->cancel(cancelled, "no").has_value());
  clock->advance(1h);
  JobId recent_failure = finished(*store, OutcomeKind::fail);

  CHECK(*prune(*store, clock->now() - 30min, 100, {JobState::failed}) == 1);
  CHECK_FALSE(exists(*store, failed));
  CHECK(exists(*store, recent_failure));
  CHECK(exists(*store, done));
  CHECK(exists(*store, cancelled));
  CHECK(*prune(*store, clock->now() - 30min, 100, {JobState::cancelled, JobState::completed}) == 2);
  CHECK_FALSE(exists(*store, done));
  CHECK_FALSE(exists(*store, cancelled));
  CHECK(exists(*store, pending));
  CHECK(exists(*store, recent_failure));
}

TEST_CASE("prune rejects a state that is not final and a limit outside its bounds", "[retention]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = finished(*store, OutcomeKind::complete);
  clock->advance(1s);
  for (auto state : {JobState::pending, JobState::running, JobState::waiting}) {
    auto r = prune(*store, clock->now(), 10, {JobState::completed, state});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ErrorCode::invalid_argument);
  }
  for (int limit : {0, -1, kMaxPruneLimit + 1}) {
    auto r = prune(*store, clock->now(), limit);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ErrorCode::invalid_argument);
  }
  auto empty = store->prune(PruneRequest{.states = {}, .finished_before = clock->now()});
  REQUIRE_FALSE(empty.has_value());
  CHECK(exists(*store, id));
}

TEST_CASE("prune steps over a child whose parent is unfinished and still fills its batch", "[retention]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job("parent", "p"));
  Job parent = claim_one(*store, "p");
  auto kids = store->spawn(parent.lease_ref(), std::vector<NewJob>{new_job("child", "k")});
  REQUIRE(kids.has_value());
  Job child = claim_one(*store, "k");
  finish_ok(*store, child, OutcomeKind::complete);  // the oldest finish, but its parent runs
  clock->advance(1min);
  JobId other = finished(*store, OutcomeKind::complete);
  clock->advance(1min);

  CHECK(*prune(*store, clock->now(), 1) == 1);
  CHECK_FALSE(exists(*store, other));
  CHECK(exists(*store, child.id));
  CHECK(*prune(*store, clock->now(), 1) == 0);
  CHECK(exists(*store, child.id));
}

TEST_CASE("prune goes by the latest finish: a job retried and finished again is kept", "[retention]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = finished(*store, OutcomeKind::fail);
  const TimePoint first_finish = clock->now();
  clock->advance(1h);
  REQUIRE(store->retry_job(id).has_value());
  finish_ok(*store, claim_one(*store), OutcomeKind::complete);
  clock->advance(1min);
  CHECK(*prune(*store, first_finish + 1min, 10) == 0);
  CHECK(exists(*store, id));
  CHECK(*prune(*store, clock->now(), 10) == 1);
}

TEST_CASE("apply_retention keeps each final state for its own window", "[retention]") {
  PORTER_STORE_UNDER_TEST();
  JobId old_done = finished(*store, OutcomeKind::complete);
  JobId old_failure = finished(*store, OutcomeKind::fail);
  clock->advance(6 * 24h);
  JobId failure = finished(*store, OutcomeKind::fail);
  JobId done = finished(*store, OutcomeKind::complete);
  clock->advance(2 * 24h);  // old ones: 8 days; recent ones: 2 days

  Retention retention;  // defaults: completed 24 h, failed and cancelled 7 days
  retention.batch = 1;  // several batches per state
  auto n = apply_retention(*store, retention);
  REQUIRE(n.has_value());
  CHECK(*n == 3);
  CHECK_FALSE(exists(*store, old_done));
  CHECK_FALSE(exists(*store, old_failure));
  CHECK_FALSE(exists(*store, done));
  CHECK(exists(*store, failure));

  retention.enabled = false;
  clock->advance(30 * 24h);
  CHECK(*apply_retention(*store, retention) == 0);
  retention.enabled = true;
  retention.failed = Duration::max();  // forever
  CHECK(*apply_retention(*store, retention) == 0);
  CHECK(exists(*store, failure));
}

TEST_CASE("Retention options are checked", "[retention]") {
  Retention r;
  CHECK(check_retention(r).has_value());
  r.batch = 0;
  CHECK_FALSE(check_retention(r).has_value());
  r = Retention{};
  r.completed = -std::chrono::seconds(1);
  CHECK_FALSE(check_retention(r).has_value());
  r = Retention{};
  r.interval = Duration::zero();
  CHECK_FALSE(check_retention(r).has_value());
  r = Retention{};
  r.completed = Duration::max();
  CHECK(check_retention(r).has_value());
  CHECK(retention_requests(r, TimePoint{}).size() == 2);
  // A window longer than the clock's past saturates instead of wrapping.
  r.failed = Duration::max() - std::chrono::seconds(1);
  auto requests = retention_requests(r, TimePoint{} + std::chrono::hours(1));
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].finished_before < TimePoint{});
}
