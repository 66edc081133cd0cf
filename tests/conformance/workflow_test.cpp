// Conformance: parent/child workflows (spawn, wait_children, callback phase,
// both child failure policies).
#include "conformance/conformance.h"

#include <map>

using namespace porter;
using namespace porter::test;

namespace {

std::vector<NewJob> children_of(int n, std::string queue = "kids",
                                ChildFailurePolicy policy = ChildFailurePolicy::fail_parent) {
  std::vector<NewJob> out;
  for (int i = 0; i < n; ++i) {
    NewJob c = new_job("child", queue);
    c.args = R"({"n":)" + std::to_string(i) + "}";
    c.on_failure = policy;
    out.push_back(c);
  }
  return out;
}

}  // namespace

TEST_CASE("spawn inserts children under the parent's lease - the parent counts them", "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent"));
  Job p = claim_one(*store);
  auto ids = spawn_ids(*store, p, children_of(3));
  REQUIRE(ids.size() == 3);
  for (JobId id : ids) {
    Job c = get(*store, id);
    CHECK(c.parent_id == std::optional<JobId>(pid));
    CHECK(c.state == JobState::pending);
    CHECK(c.queue == "kids");
  }
  Job got = get(*store, pid);
  CHECK(got.children_total == 3);
  CHECK(got.children_unfinished == 3);

  // Atomic: one invalid child, nothing inserted.
  auto kids = children_of(2);
  kids[1].priority = kMaxPriority + 1;
  auto bad = store->spawn(p.lease_ref(), kids);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == ErrorCode::invalid_argument);
  CHECK_THAT(bad.error().message(), Catch::Contains("1"));
  CHECK(get(*store, pid).children_total == 3);

  // A duplicate (unique) child is not counted again.
  NewJob u = new_job("child", "kids");
  u.unique_key = "only-once";
  auto first = spawn_ids(*store, p, {u});
  auto second = store->spawn(p.lease_ref(), std::vector<NewJob>{u});
  REQUIRE(second.has_value());
  CHECK((*second)[0].duplicate);
  CHECK((*second)[0].id == first[0]);
  CHECK(get(*store, pid).children_total == 4);
}

TEST_CASE("a child may not depend on its parent or an ancestor - it would never run", "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId root = add(*store, new_job("root"));
  Job r = claim_one(*store);
  JobId mid = spawn_ids(*store, r, {new_job("mid", "kids")})[0];
  Job m = claim_one(*store, "kids");
  REQUIRE(m.id == mid);
  for (JobId ancestor : {mid, root}) {
    NewJob child = new_job("leaf", "kids");
    child.depends_on = {ancestor};
    auto bad = store->spawn(m.lease_ref(), std::vector<NewJob>{child});
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().code() == ErrorCode::invalid_argument);
    CHECK_THAT(bad.error().message(), Catch::Contains("ancestor"));
  }
  CHECK(get(*store, mid).children_total == 0);
  // A sibling is fine.
  JobId sibling = spawn_ids(*store, r, {new_job("sibling", "kids")})[0];
  NewJob child = new_job("leaf", "kids");
  child.depends_on = {sibling};
  CHECK(spawn_ids(*store, m, {child}).size() == 1);
}

TEST_CASE("a parent with 1,000 children is woken exactly once, for the callback phase", "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  EventLog log(*store);
  JobId pid = add(*store, new_job("parent", "parents"));
  Job p = claim_one(*store, "parents");
  auto ids = spawn_ids(*store, p, children_of(1000));
  REQUIRE(ids.size() == 1000);
  Outcome o = outcome(p, OutcomeKind::wait_children);
  o.result = R"({"phase":1})";
  REQUIRE(finish(*store, o).state == JobState::waiting);
  CHECK(get(*store, pid).state == JobState::waiting);

  int completed = 0;
  for (;;) {
    auto batch = claim(*store, "kids", 64);
    if (batch.empty()) break;
    std::vector<Outcome> outs;
    for (const auto& c : batch) outs.push_back(outcome(c, OutcomeKind::complete));
    auto r = store->finish(outs);
    REQUIRE(r.has_value());
    completed += static_cast<int>(batch.size());
    Job parent = get(*store, pid);
    if (completed < 1000) {
      CHECK(parent.state == JobState::waiting);
      CHECK(parent.children_unfinished == 1000 - completed);
      CHECK(claim(*store, "parents", 10).empty());
    }
  }
  CHECK(completed == 1000);
  Job parent = get(*store, pid);
  CHECK(parent.state == JobState::pending);
  CHECK(parent.callback_pending);
  CHECK(parent.attempt == 0);
  CHECK(parent.children_unfinished == 0);
  CHECK(parent.children_total == 1000);

  auto callbacks = claim(*store, "parents", 10);
  REQUIRE(callbacks.size() == 1);
  CHECK(callbacks[0].callback_pending);
  CHECK(callbacks[0].attempt == 1);
  CHECK(claim(*store, "parents", 10).empty());
  CHECK(finish_ok(*store, callbacks[0], OutcomeKind::complete) == JobState::completed);
  // Exactly one finished event for the parent, and one per child.
  CHECK(log.count(StoreEvent::Type::finished, pid) == 1);
  CHECK(log.count(StoreEvent::Type::finished) == 1001);
}

TEST_CASE("grandchildren finish before their parent's callback, which finishes before the root's", "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId root = add(*store, new_job("root", "q"));
  Job r = claim_one(*store, "q");
  auto kids = spawn_ids(*store, r, {new_job("child", "q")});
  REQUIRE(finish_ok(*store, r, OutcomeKind::wait_children) == JobState::waiting);
  Job child = claim_one(*store, "q");
  REQUIRE(child.id == kids[0]);
  auto grandkids = spawn_ids(*store, child, {new_job("grandchild", "q"), new_job("grandchild", "q")});
  REQUIRE(finish_ok(*store, child, OutcomeKind::wait_children) == JobState::waiting);

  std::vector<std::string> order;
  for (;;) {
    auto jobs = claim(*store, "q", 10);
    if (jobs.empty()) break;
    for (const auto& j : jobs) {
      order.push_back(j.kind + (j.callback_pending ? ":callback" : ""));
      finish_ok(*store, j, OutcomeKind::complete);
    }
  }
  CHECK(order == std::vector<std::string>{"grandchild", "grandchild", "child:callback", "root:callback"});
  CHECK(get(*store, root).state == JobState::completed);
}

TEST_CASE("wait_children with every child already final goes straight to the callback phase", "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  spawn_ids(*store, p, {new_job("child", "kids")});
  Job c = claim_one(*store, "kids");
  finish_ok(*store, c, OutcomeKind::complete);
  CHECK(get(*store, pid).state == JobState::running);  // not woken while it still runs
  CHECK(finish_ok(*store, p, OutcomeKind::wait_children) == JobState::pending);
  Job cb = claim_one(*store, "p");
  CHECK(cb.callback_pending);

  // No children at all: the same.
  JobId lone = add(*store, new_job("lonely", "p"));
  Job l = claim_one(*store, "p");
  REQUIRE(l.id == lone);
  CHECK(finish_ok(*store, l, OutcomeKind::wait_children) == JobState::pending);
  CHECK(get(*store, lone).callback_pending);
}

TEST_CASE("the callback phase restarts attempts at 0 and survives a retry", "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  NewJob pn = new_job("parent", "p");
  pn.max_attempts = 2;
  JobId pid = add(*store, pn);
  Job p = claim_one(*store, "p");
  finish_ok(*store, p, OutcomeKind::retry, "first try");  // attempt 1 used in the first phase
  clock->advance(1s);
  p = claim_one(*store, "p");
  REQUIRE(p.attempt == 2);
  spawn_ids(*store, p, {new_job("child", "kids")});
  finish_ok(*store, p, OutcomeKind::wait_children);
  finish_ok(*store, claim_one(*store, "kids"), OutcomeKind::complete);
  Job cb = claim_one(*store, "p");
  CHECK(cb.callback_pending);
  CHECK(cb.attempt == 1);
  CHECK(finish_ok(*store, cb, OutcomeKind::retry, "callback hiccup") == JobState::pending);
  cb = claim_one(*store, "p");
  CHECK(cb.callback_pending);
  CHECK(cb.attempt == 2);
  CHECK(finish_ok(*store, cb, OutcomeKind::complete) == JobState::completed);
  Job got = get(*store, pid);
  CHECK_FALSE(got.callback_pending);
  CHECK(got.errors.size() == 2);
}

TEST_CASE("fail_parent: a failed child fails the parent at once and cancels its other unfinished descendants",
          "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  EventLog log(*store);
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  auto ids = spawn_ids(*store, p, children_of(3, "kids", ChildFailurePolicy::fail_parent));
  finish_ok(*store, p, OutcomeKind::wait_children);
  auto running = claim(*store, "kids", 2);  // ids[0] and ids[1] run; ids[2] pending
  REQUIRE(running.size() == 2);
  // ids[1] spawns a grandchild that is pending.
  auto grand = spawn_ids(*store, running[1], {new_job("grandchild", "g")});

  CHECK(finish_ok(*store, running[0], OutcomeKind::fail, "disk full") == JobState::failed);
  Job parent = get(*store, pid);
  CHECK(parent.state == JobState::failed);
  REQUIRE_FALSE(parent.errors.empty());
  CHECK_THAT(parent.errors.back().message, Catch::Contains(std::to_string(ids[0])));
  CHECK_THAT(parent.errors.back().message, Catch::Contains("disk full"));
  CHECK(parent.errors.back().permanent);
  CHECK(get(*store, ids[2]).state == JobState::cancelled);
  CHECK(get(*store, grand[0]).state == JobState::cancelled);
  Job still = get(*store, ids[1]);
  CHECK(still.state == JobState::running);  // a running sibling is asked to stop
  CHECK(still.cancel_requested);
  CHECK(log.count(StoreEvent::Type::cancel_requested, ids[1]) == 1);
  CHECK(finish_ok(*store, running[1], OutcomeKind::complete) == JobState::cancelled);
  CHECK(get(*store, pid).state == JobState::failed);
  CHECK(claim(*store, "p", 10).empty());  // no callback for a failed parent
}

TEST_CASE("callback policy: a failed child still wakes the parent, which can read every child", "[workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  auto ids = spawn_ids(*store, p, children_of(3, "kids", ChildFailurePolicy::callback));
  finish_ok(*store, p, OutcomeKind::wait_children);
  auto kids = claim(*store, "kids", 3);
  REQUIRE(kids.size() == 3);
  Outcome ok = outcome(kids[0], OutcomeKind::complete);
  ok.result = R"({"rows":10})";
  finish(*store, ok);
  finish_ok(*store, kids[1], OutcomeKind::fail, "bad input");
  CHECK(get(*store, pid).state == JobState::waiting);
  REQUIRE(store->cancel(kids[2].id, "skip").value() == CancelResult::requested);
  finish_ok(*store, kids[2], OutcomeKind::cancelled);

  Job cb = claim_one(*store, "p");
  CHECK(cb.id == pid);
  CHECK(cb.callback_pending);
  JobFilter f;
  f.parent_id = pid;
  auto page = store->list(f, std::nullopt, 100);
  REQUIRE(page.has_value());
  REQUIRE(page->jobs.size() == 3);
  std::map<JobId, Job> by_id;
  for (auto& j : page->jobs) by_id[j.id] = j;
  CHECK(by_id[ids[0]].state == JobState::completed);
  CHECK(by_id[ids[0]].result == R"({"rows":10})");
  CHECK(by_id[ids[1]].state == JobState::failed);
  CHECK(by_id[ids[2]].state == JobState::cancelled);
  CHECK(finish_ok(*store, cb, OutcomeKind::complete) == JobState::completed);
}
