// Conformance: claiming, leases, fencing, heartbeats, rescue and expire_stuck.
#include "conformance/conformance.h"

#include <set>

using namespace porter;
using namespace porter::test;

TEST_CASE("claim orders by priority, then run_at, then id", "[claim]") {
  PORTER_STORE_UNDER_TEST();
  const TimePoint t0 = clock->now();
  auto make = [&](int priority, Duration run_at_offset) {
    NewJob j = new_job();
    j.priority = priority;
    j.run_at = t0 + run_at_offset;
    return add(*store, j);
  };
  JobId p5 = make(5, -1s);
  JobId p0_late = make(0, -1s);
  JobId p0_early = make(0, -10s);
  JobId neg = make(-3, 0s);
  JobId p0_same_a = make(0, -1s);  // same priority and run_at as p0_late: by id
  auto jobs = claim(*store, "default", 10);
  CHECK(ids_of(jobs) == std::vector<JobId>{neg, p0_early, p0_late, p0_same_a, p5});
}

TEST_CASE("claim leases: running, attempt incremented, fresh token, expiry, worker", "[claim][lease]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  auto jobs = claim(*store, "default", 1, 45s, "host:1:engine");
  REQUIRE(jobs.size() == 1);
  const Job& j = jobs[0];
  CHECK(j.id == id);
  CHECK(j.state == JobState::running);
  CHECK(j.attempt == 1);
  REQUIRE(j.lease.has_value());
  CHECK(j.lease->worker == "host:1:engine");
  CHECK(j.lease->expires_at == clock->now() + 45s);
  CHECK(j.lease->token > 0);
  CHECK(j.started_at == std::optional<TimePoint>(clock->now()));
  Job stored = get(*store, id);
  CHECK(stored.state == JobState::running);
  CHECK(stored.lease_ref() == j.lease_ref());

  // Released and claimed again: a larger token.
  finish_ok(*store, j, OutcomeKind::release);
  Job again = claim_one(*store);
  CHECK(again.lease->token > j.lease->token);
}

TEST_CASE("claim honours the limit, the queue and pauses - rejects a bad request", "[claim]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch(5, new_job());
  batch.push_back(new_job("x", "other"));
  REQUIRE(store->insert(batch).has_value());
  CHECK(claim(*store, "default", 2).size() == 2);
  CHECK(claim(*store, "nope", 10).empty());

  REQUIRE(store->set_queue_paused("default", true).has_value());
  CHECK(claim(*store, "default", 10).empty());
  CHECK(claim(*store, "other", 10).size() == 1);  // other queues are not affected
  REQUIRE(store->set_queue_paused("default", false).has_value());
  CHECK(claim(*store, "default", 10).size() == 3);

  auto bad = store->claim(ClaimRequest{"default", "w", 0, 30s});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == ErrorCode::invalid_argument);
  CHECK_FALSE(store->set_queue_paused("", true).has_value());
}

TEST_CASE("two claims never return the same job", "[claim]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch(50, new_job());
  REQUIRE(store->insert(batch).has_value());
  std::set<JobId> seen;
  for (;;) {
    auto jobs = claim(*store, "default", 7);
    if (jobs.empty()) break;
    for (const auto& j : jobs) CHECK(seen.insert(j.id).second);
  }
  CHECK(seen.size() == 50);
}

TEST_CASE("heartbeat extends held leases and reports cancellation", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job());
  add(*store, new_job());
  auto jobs = claim(*store, "default", 2, 30s);
  REQUIRE(jobs.size() == 2);
  clock->advance(20s);
  REQUIRE(store->cancel(jobs[1].id, "stop").value() == CancelResult::requested);
  std::vector<LeaseRef> refs{jobs[0].lease_ref(), jobs[1].lease_ref(), LeaseRef{jobs[0].id, 999999}};
  auto hb = store->heartbeat(refs, 60s);
  REQUIRE(hb.has_value());
  REQUIRE(hb->size() == 3);
  CHECK((*hb)[0].held);
  CHECK_FALSE((*hb)[0].cancel_requested);
  CHECK((*hb)[1].held);
  CHECK((*hb)[1].cancel_requested);
  CHECK_FALSE((*hb)[2].held);
  CHECK(get(*store, jobs[0].id).lease->expires_at == clock->now() + 60s);

  // Past the original expiry but within the extension: nothing is rescued.
  clock->advance(30s);
  auto rescued = store->rescue_expired();
  REQUIRE(rescued.has_value());
  CHECK(rescued->empty());
}

TEST_CASE("a lease nobody rescued yet stays live after its expiry", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job());
  Job j = claim_one(*store, "default", 10s);
  clock->advance(15s);
  auto hb = store->heartbeat(std::vector<LeaseRef>{j.lease_ref()}, 10s);
  REQUIRE(hb.has_value());
  CHECK((*hb)[0].held);
  clock->advance(15s);
  CHECK(finish_ok(*store, j, OutcomeKind::complete) == JobState::completed);
}

TEST_CASE("rescue_expired: back to pending with the attempt consumed and an error - failed on the last attempt",
          "[lease]") {
  PORTER_STORE_UNDER_TEST();
  NewJob n = new_job();
  n.max_attempts = 2;
  JobId id = add(*store, n);
  Job first = claim_one(*store, "default", 10s);
  clock->advance(9s);
  CHECK(store->rescue_expired()->empty());
  clock->advance(1s);
  auto rescued = store->rescue_expired();
  REQUIRE(rescued.has_value());
  CHECK(*rescued == std::vector<JobId>{id});
  Job got = get(*store, id);
  CHECK(got.state == JobState::pending);
  CHECK(got.attempt == 1);
  CHECK_FALSE(got.lease.has_value());
  REQUIRE(got.errors.size() == 1);
  CHECK(got.errors[0].message == "lease expired");
  CHECK(got.errors[0].attempt == 1);
  CHECK_FALSE(got.errors[0].permanent);
  CHECK(got.errors[0].at == clock->now());

  Job second = claim_one(*store, "default", 10s);
  CHECK(second.attempt == 2);
  clock->advance(11s);
  REQUIRE(store->rescue_expired().has_value());
  got = get(*store, id);
  CHECK(got.state == JobState::failed);
  CHECK(got.finished_at.has_value());
  REQUIRE(got.errors.size() == 2);
  CHECK(got.errors[1].message == "lease expired");
  CHECK(got.errors[1].attempt == 2);
}

TEST_CASE("a stale token after rescue and re-claim is rejected everywhere and changes nothing", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job old_run = claim_one(*store, "default", 10s);
  clock->advance(11s);
  REQUIRE(store->rescue_expired().has_value());
  Job new_run = claim_one(*store, "default", 30s);
  REQUIRE(new_run.id == id);
  REQUIRE(new_run.lease->token != old_run.lease->token);

  auto hb = store->heartbeat(std::vector<LeaseRef>{old_run.lease_ref()}, 60s);
  REQUIRE(hb.has_value());
  CHECK_FALSE((*hb)[0].held);
  for (auto kind : {OutcomeKind::complete, OutcomeKind::retry, OutcomeKind::fail, OutcomeKind::snooze,
                    OutcomeKind::wait_children, OutcomeKind::cancelled, OutcomeKind::release}) {
    auto r = finish(*store, outcome(old_run, kind, "old"));
    REQUIRE_FALSE(r.status.has_value());
    CHECK(r.status.error().code() == ErrorCode::stale_lease);
    CHECK(r.state == JobState::running);
  }
  auto sp = store->spawn(old_run.lease_ref(), std::vector<NewJob>{new_job("child")});
  REQUIRE_FALSE(sp.has_value());
  CHECK(sp.error().code() == ErrorCode::stale_lease);
  auto pr = store->report_progress(old_run.lease_ref(), Progress{5, 10, "old"});
  REQUIRE_FALSE(pr.has_value());
  CHECK(pr.error().code() == ErrorCode::stale_lease);
  auto ie = store->add_item_errors(old_run.lease_ref(), std::vector<ItemError>{{"row 1", "bad"}});
  REQUIRE_FALSE(ie.has_value());
  CHECK(ie.error().code() == ErrorCode::stale_lease);

  Job now = get(*store, id);
  CHECK(now.state == JobState::running);
  CHECK(now.lease_ref() == new_run.lease_ref());
  CHECK(now.lease->expires_at == new_run.lease->expires_at);
  CHECK(now.children_total == 0);
  CHECK(now.progress.done == 0);
  CHECK(now.item_error_count == 0);
  CHECK(now.errors.size() == 1);  // only the rescue's
  CHECK(finish_ok(*store, new_run, OutcomeKind::complete) == JobState::completed);
}

TEST_CASE("expire_stuck takes the lease of long-running jobs and treats them as rescued", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  JobId old_id = add(*store, new_job());
  Job old_run = claim_one(*store, "default", 24h);
  clock->advance(2h);
  JobId young_id = add(*store, new_job());
  Job young = claim_one(*store, "default", 24h);
  REQUIRE(young.id == young_id);
  clock->advance(1min);
  auto expired = store->expire_stuck(1h);
  REQUIRE(expired.has_value());
  CHECK(*expired == std::vector<JobId>{old_id});
  Job got = get(*store, old_id);
  CHECK(got.state == JobState::pending);
  REQUIRE(got.errors.size() == 1);
  CHECK_THAT(got.errors[0].message, Catch::StartsWith("expired as stuck after"));
  CHECK(get(*store, young_id).state == JobState::running);
  auto r = finish(*store, outcome(old_run, OutcomeKind::complete));
  CHECK_FALSE(r.status.has_value());
  CHECK(r.status.error().code() == ErrorCode::stale_lease);
}
