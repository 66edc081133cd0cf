// Conformance: cancel in every state, cascading to descendants.
#include "conformance/conformance.h"

using namespace porter;
using namespace porter::test;

TEST_CASE("cancel a pending job: cancelled now, never claimed, reason kept", "[cancel]") {
  PORTER_STORE_UNDER_TEST();
  EventLog log(*store);
  JobId id = add(*store, new_job());
  NewJob later = new_job();
  later.delay = 1h;
  JobId sched = add(*store, later);
  auto r = store->cancel(id, "changed my mind");
  REQUIRE(r.has_value());
  CHECK(*r == CancelResult::cancelled);
  CHECK(store->cancel(sched, "").value() == CancelResult::cancelled);
  Job got = get(*store, id);
  CHECK(got.state == JobState::cancelled);
  CHECK(got.finished_at == std::optional<TimePoint>(clock->now()));
  REQUIRE_FALSE(got.errors.empty());
  CHECK_THAT(got.errors.back().message, Catch::Contains("changed my mind"));
  clock->advance(2h);
  CHECK(claim(*store, "default", 10).empty());
  CHECK(log.count(StoreEvent::Type::finished, id) == 1);
}

TEST_CASE("cancel a waiting job (dependencies or children)", "[cancel]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job("a"));
  JobId bid = add_after(*store, {a}, "b");
  CHECK(store->cancel(bid, "no").value() == CancelResult::cancelled);
  CHECK(get(*store, bid).state == JobState::cancelled);
  // Its dependency completing later does not revive it.
  Job ja = claim_one(*store);
  finish_ok(*store, ja, OutcomeKind::complete);
  CHECK(get(*store, bid).state == JobState::cancelled);
  CHECK(claim(*store, "default", 10).empty());
}

TEST_CASE("cancel a running job: requested - heartbeat and events tell the worker - it ends cancelled", "[cancel]") {
  PORTER_STORE_UNDER_TEST();
  EventLog log(*store);
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  CHECK(store->cancel(id, "stop").value() == CancelResult::requested);
  CHECK(store->cancel(id, "stop again").value() == CancelResult::requested);
  CHECK(log.count(StoreEvent::Type::cancel_requested, id) == 1);
  Job got = get(*store, id);
  CHECK(got.state == JobState::running);
  CHECK(got.cancel_requested);
  auto hb = store->heartbeat(std::vector<LeaseRef>{j.lease_ref()}, 30s);
  REQUIRE(hb.has_value());
  CHECK((*hb)[0].held);
  CHECK((*hb)[0].cancel_requested);
  CHECK(finish_ok(*store, j, OutcomeKind::complete) == JobState::cancelled);
  CHECK(log.count(StoreEvent::Type::finished, id) == 1);

  // A cancel-requested job whose lease expires is not retried.
  JobId id2 = add(*store, new_job());
  claim_one(*store, "default", 10s);
  REQUIRE(store->cancel(id2, "").value() == CancelResult::requested);
  clock->advance(11s);
  REQUIRE(store->rescue_expired().has_value());
  CHECK(get(*store, id2).state == JobState::cancelled);
}

TEST_CASE("cancel of a final job answers already_finished and changes nothing - unknown is not_found", "[cancel]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  finish_ok(*store, j, OutcomeKind::complete);
  Job before = get(*store, id);
  CHECK(store->cancel(id, "late").value() == CancelResult::already_finished);
  Job after = get(*store, id);
  CHECK(after.state == JobState::completed);
  CHECK(after.errors.size() == before.errors.size());
  CHECK(after.finished_at == before.finished_at);
  auto missing = store->cancel(12345, "x");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code() == ErrorCode::not_found);
}

TEST_CASE("cancel cascades to every unfinished descendant", "[cancel][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId root = add(*store, new_job("root", "r"));
  Job r = claim_one(*store, "r");
  auto kids = store->spawn(r.lease_ref(), std::vector<NewJob>{new_job("a", "k"), new_job("b", "k"), new_job("c", "k")});
  REQUIRE(kids.has_value());
  finish_ok(*store, r, OutcomeKind::wait_children);
  Job a = claim_one(*store, "k");  // a runs
  auto grand = store->spawn(a.lease_ref(), std::vector<NewJob>{new_job("ga", "g")});
  REQUIRE(grand.has_value());
  Job b = claim_one(*store, "k");
  finish_ok(*store, b, OutcomeKind::complete);  // b finished before the cancel

  CHECK(store->cancel(root, "abort").value() == CancelResult::cancelled);
  CHECK(get(*store, root).state == JobState::cancelled);
  Job ga = get(*store, a.id);
  CHECK(ga.state == JobState::running);
  CHECK(ga.cancel_requested);
  CHECK(get(*store, b.id).state == JobState::completed);
  CHECK(get(*store, (*kids)[2].id).state == JobState::cancelled);
  CHECK(get(*store, (*grand)[0].id).state == JobState::cancelled);
  CHECK(claim(*store, "k", 10).empty());
  CHECK(claim(*store, "g", 10).empty());
  CHECK(finish_ok(*store, a, OutcomeKind::complete) == JobState::cancelled);
}

TEST_CASE("cancelling a child with the fail_parent policy fails its waiting parent", "[cancel][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  auto kids = store->spawn(p.lease_ref(), std::vector<NewJob>{new_job("a", "k"), new_job("b", "k")});
  REQUIRE(kids.has_value());
  finish_ok(*store, p, OutcomeKind::wait_children);
  CHECK(store->cancel((*kids)[0].id, "").value() == CancelResult::cancelled);
  Job parent = get(*store, pid);
  CHECK(parent.state == JobState::failed);
  REQUIRE_FALSE(parent.errors.empty());
  CHECK_THAT(parent.errors.back().message, Catch::Contains(std::to_string((*kids)[0].id)));
  CHECK(get(*store, (*kids)[1].id).state == JobState::cancelled);
}
