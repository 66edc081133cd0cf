// Conformance: hostile values at the seam. A bad result fails its own job
// only; durations up to Duration::max() saturate ("never", "forever")
// instead of overflowing; a lease taken away is announced; run-time stats use
// the handler's own run time and report queue latency.
#include "conformance/conformance.h"

#include <map>

using namespace porter;
using namespace porter::test;

TEST_CASE("a bad result fails its own job only - the rest of the batch applies", "[limits][lease]") {
  PORTER_STORE_UNDER_TEST();
  for (int i = 0; i < 4; ++i) add(*store, new_job());
  auto jobs = claim(*store, "default", 4);
  REQUIRE(jobs.size() == 4);
  std::vector<Outcome> outs;
  outs.push_back(outcome(jobs[0], OutcomeKind::complete));
  outs.back().result = "\"" + std::string(kMaxArgsBytes, 'x') + "\"";  // valid JSON, too big
  outs.push_back(outcome(jobs[1], OutcomeKind::complete));
  outs.back().result = "{not json";
  outs.push_back(outcome(jobs[2], OutcomeKind::complete));
  outs.back().result = R"({"ok":true})";
  outs.push_back(outcome(jobs[3], OutcomeKind::wait_children));
  outs.back().result = "[1,";
  auto r = store->finish(outs);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 4);
  for (const auto& f : *r) CHECK(f.status.has_value());
  CHECK((*r)[0].state == JobState::failed);
  CHECK((*r)[1].state == JobState::failed);
  CHECK((*r)[2].state == JobState::completed);
  CHECK((*r)[3].state == JobState::failed);
  Job big = get(*store, jobs[0].id);
  REQUIRE(big.errors.size() == 1);
  CHECK(big.errors[0].permanent);
  CHECK_THAT(big.errors[0].message, Catch::Contains("result") && Catch::Contains(std::to_string(kMaxArgsBytes)));
  CHECK(big.result.empty());
  Job bad = get(*store, jobs[1].id);
  REQUIRE(bad.errors.size() == 1);
  CHECK_THAT(bad.errors[0].message, Catch::Contains("JSON"));
  CHECK(bad.result.empty());
  CHECK(get(*store, jobs[2].id).result == R"({"ok":true})");
  CHECK(get(*store, jobs[3].id).result.empty());
}

TEST_CASE("delay, retry and snooze of Duration::max() mean never - not now", "[limits]") {
  PORTER_STORE_UNDER_TEST();
  NewJob never = new_job("never");
  never.delay = Duration::max();
  JobId nid = add(*store, never);
  CHECK(get(*store, nid).run_at == TimePoint::max());
  add(*store, new_job("r"));
  add(*store, new_job("s"));
  auto jobs = claim(*store, "default", 10);
  REQUIRE(jobs.size() == 2);
  CHECK(finish_ok(*store, jobs[0], OutcomeKind::retry, "later", Duration::max()) == JobState::pending);
  CHECK(finish_ok(*store, jobs[1], OutcomeKind::snooze, {}, Duration::max()) == JobState::pending);
  CHECK(get(*store, jobs[0].id).run_at == TimePoint::max());
  CHECK(get(*store, jobs[1].id).run_at == TimePoint::max());
  clock->advance(24h * 365 * 100);
  CHECK(claim(*store, "default", 10).empty());
}

TEST_CASE("a lease of Duration::max() is never expired - not at claim, not after a heartbeat", "[limits][lease]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job());
  add(*store, new_job());
  Job j = claim_one(*store, "default", Duration::max());
  CHECK(j.lease->expires_at == TimePoint::max());
  CHECK(store->rescue_expired().value().empty());
  Job k = claim_one(*store);
  auto hb = store->heartbeat(std::vector<LeaseRef>{k.lease_ref()}, Duration::max());
  REQUIRE(hb.has_value());
  CHECK((*hb)[0].held);
  clock->advance(24h * 365 * 100);
  CHECK(store->rescue_expired().value().empty());
  CHECK(finish_ok(*store, j, OutcomeKind::complete) == JobState::completed);
}

TEST_CASE("unique_period of Duration::max() deduplicates forever", "[limits][unique]") {
  PORTER_STORE_UNDER_TEST();
  NewJob u = new_job();
  u.unique_key = "k";
  u.unique_scope = UniqueScope::period;
  u.unique_period = Duration::max();
  JobId first = add(*store, u);
  clock->advance(24h * 365);
  auto again = store->insert(std::vector<NewJob>{u});
  REQUIRE(again.has_value());
  CHECK((*again)[0].duplicate);
  CHECK((*again)[0].id == first);
}

TEST_CASE("expire_stuck and stats accept Duration::max()", "[limits][stats]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job("done"));
  finish_ok(*store, claim_one(*store), OutcomeKind::complete);
  add(*store, new_job("long"));
  claim_one(*store, "default", 24h);
  clock->advance(1h);
  auto expired = store->expire_stuck(Duration::max());
  REQUIRE(expired.has_value());
  CHECK(expired->empty());
  auto s = store->stats(Duration::max());
  REQUIRE(s.has_value());
  REQUIRE(s->kinds.size() == 1);
  CHECK(s->kinds[0].completed == 1);
  REQUIRE(s->oldest_lease_age.has_value());
  CHECK(*s->oldest_lease_age == 1h);
}

TEST_CASE("a lease taken away is announced - expire_stuck says the real age", "[limits][lease]") {
  PORTER_STORE_UNDER_TEST();
  EventLog log(*store);
  NewJob once = new_job();
  once.max_attempts = 1;  // failed when expired: the next claim gets the next job
  JobId stuck = add(*store, once);
  claim_one(*store, "default", 24h);
  clock->advance(std::chrono::milliseconds(600));
  auto expired = store->expire_stuck(std::chrono::milliseconds(500));
  REQUIRE(expired.has_value());
  REQUIRE(*expired == std::vector<JobId>{stuck});
  CHECK(log.count(StoreEvent::Type::lease_lost, stuck) == 1);
  Job got = get(*store, stuck);
  REQUIRE(got.errors.size() == 1);
  CHECK_THAT(got.errors[0].message, Catch::Contains("0.600s"));

  JobId lost = add(*store, new_job());
  Job j = claim_one(*store, "default", 1s);
  REQUIRE(j.id == lost);
  clock->advance(2s);
  auto rescued = store->rescue_expired();
  REQUIRE(rescued.has_value());
  CHECK(*rescued == std::vector<JobId>{lost});
  CHECK(log.count(StoreEvent::Type::lease_lost, lost) == 1);
  // The event names the lease taken away: a later claim of the job holds a greater token.
  for (const auto& e : log.events()) {
    if (e.type == StoreEvent::Type::lease_lost && e.job == lost) CHECK(e.token == j.lease->token);
  }
  Job again = claim_one(*store);
  REQUIRE(again.id == lost);
  CHECK(again.lease->token > j.lease->token);
}

TEST_CASE("stats use the handler's own run time and report queue latency", "[limits][stats]") {
  PORTER_STORE_UNDER_TEST();
  for (int i = 1; i <= 4; ++i) {
    add(*store, new_job("k"));
    clock->advance(std::chrono::milliseconds(100 * i));  // queued 100..400 ms
    Job j = claim_one(*store);
    clock->advance(200ms);                               // in the engine's buffer and handler
    Outcome o = outcome(j, OutcomeKind::complete);
    o.ran_for = std::chrono::milliseconds(10 * i);       // the handler itself: 10..40 ms
    REQUIRE(finish(*store, o).status.has_value());
  }
  // Unknown run time (0): started -> finished.
  add(*store, new_job("u"));
  Job u = claim_one(*store);
  clock->advance(50ms);
  finish_ok(*store, u, OutcomeKind::complete);

  auto s = store->stats(1h);
  REQUIRE(s.has_value());
  std::map<std::string, KindStats> k;
  for (const auto& ks : s->kinds) k[ks.kind] = ks;
  REQUIRE(k.count("k"));
  CHECK(k["k"].p50 == 20ms);
  CHECK(k["k"].p99 == 40ms);
  CHECK(k["k"].latency_p50 == 200ms);
  CHECK(k["k"].latency_p99 == 400ms);
  REQUIRE(k.count("u"));
  CHECK(k["u"].p50 == 50ms);
  CHECK(k["u"].latency_p50 == 0ms);
}
