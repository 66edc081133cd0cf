// Conformance: the transition rules every store shares (src/rules/), pinned
// where two stores once drifted apart: counts after a failed workflow is
// retried, dependency counts after retry_job, cycles through children,
// dependencies inside one batch, progress over 100%.
#include "conformance/conformance.h"

using namespace porter;
using namespace porter::test;

TEST_CASE("a parent failed by its child keeps exact counts - retried, it spawns again and completes",
          "[rules][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  auto kids = spawn_ids(*store, p, {new_job("child", "k"), new_job("child", "k"), new_job("child", "k")});
  REQUIRE(finish_ok(*store, p, OutcomeKind::wait_children) == JobState::waiting);
  Job first = claim_one(*store, "k");
  REQUIRE(finish_ok(*store, first, OutcomeKind::fail, "broken") == JobState::failed);
  // The siblings were cancelled after the parent failed: still subtracted.
  Job failed = get(*store, pid);
  REQUIRE(failed.state == JobState::failed);
  CHECK(failed.children_unfinished == 0);
  CHECK(failed.children_total == 3);

  REQUIRE(store->retry_job(pid).has_value());
  Job again = claim_one(*store, "p");
  REQUIRE(again.id == pid);
  CHECK_FALSE(again.callback_pending);
  spawn_ids(*store, again, {new_job("child", "k")});
  REQUIRE(finish_ok(*store, again, OutcomeKind::wait_children) == JobState::waiting);
  CHECK(get(*store, pid).children_unfinished == 1);
  finish_ok(*store, claim_one(*store, "k"), OutcomeKind::complete);
  Job woken = get(*store, pid);
  CHECK(woken.state == JobState::pending);
  CHECK(woken.callback_pending);
  CHECK(finish_ok(*store, claim_one(*store, "p"), OutcomeKind::complete) == JobState::completed);
}

TEST_CASE("a running sibling cancelled after its parent failed is subtracted when it ends", "[rules][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  spawn_ids(*store, p, {new_job("child", "k"), new_job("child", "k")});
  finish_ok(*store, p, OutcomeKind::wait_children);
  auto running = claim(*store, "k", 2);
  REQUIRE(running.size() == 2);
  finish_ok(*store, running[0], OutcomeKind::fail, "broken");
  CHECK(get(*store, pid).children_unfinished == 1);  // the other one still runs, asked to stop
  CHECK(finish_ok(*store, running[1], OutcomeKind::complete) == JobState::cancelled);
  CHECK(get(*store, pid).children_unfinished == 0);
  CHECK(get(*store, pid).state == JobState::failed);
}

TEST_CASE("retry_job of a job cancelled while waiting on a dependency waits for it again", "[rules][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId dep = add(*store, new_job("dep", "d"));
  NewJob jn = new_job("job", "j");
  jn.depends_on = {dep};
  JobId jid = add(*store, jn);
  REQUIRE(store->cancel(jid, "not now").has_value());
  REQUIRE(store->retry_job(jid).has_value());
  Job retried = get(*store, jid);
  CHECK(retried.state == JobState::waiting);
  CHECK(retried.dependencies_unfinished == 1);
  CHECK(claim(*store, "j", 10).empty());  // must not run before its dependency

  // The dependency completes: the job runs its first phase, once.
  finish_ok(*store, claim_one(*store, "d"), OutcomeKind::complete);
  Job j = claim_one(*store, "j");
  REQUIRE(j.id == jid);
  CHECK_FALSE(j.callback_pending);
  spawn_ids(*store, j, {new_job("child", "k")});
  REQUIRE(finish_ok(*store, j, OutcomeKind::wait_children) == JobState::waiting);
  CHECK(claim(*store, "j", 10).empty());
  finish_ok(*store, claim_one(*store, "k"), OutcomeKind::complete);
  Job cb = claim_one(*store, "j");
  CHECK(cb.callback_pending);
  CHECK(finish_ok(*store, cb, OutcomeKind::complete) == JobState::completed);
  CHECK(get(*store, jid).children_total == 1);  // spawned once
}

TEST_CASE("retry_job recounts dependencies - completed ones while it was cancelled no longer count",
          "[rules][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job("a", "d"));
  JobId b = add(*store, new_job("b", "d"));
  NewJob jn = new_job("job", "j");
  jn.depends_on = {a, b};
  JobId jid = add(*store, jn);
  REQUIRE(store->cancel(jid, "").has_value());
  Job ja = claim_one(*store, "d");
  REQUIRE(ja.id == a);
  finish_ok(*store, ja, OutcomeKind::complete);
  REQUIRE(store->retry_job(jid).has_value());
  CHECK(get(*store, jid).dependencies_unfinished == 1);
  CHECK(get(*store, jid).state == JobState::waiting);
  finish_ok(*store, claim_one(*store, "d"), OutcomeKind::complete);
  CHECK(get(*store, jid).state == JobState::pending);
  CHECK(get(*store, jid).dependencies_unfinished == 0);

  // Every dependency done while it was cancelled: pending at once.
  JobId c = add(*store, new_job("c", "d"));
  NewJob kn = new_job("job2", "j");
  kn.depends_on = {c};
  JobId kid = add(*store, kn);
  REQUIRE(store->cancel(kid, "").has_value());
  finish_ok(*store, claim_one(*store, "d"), OutcomeKind::complete);
  REQUIRE(store->retry_job(kid).has_value());
  CHECK(get(*store, kid).state == JobState::pending);
  CHECK(get(*store, kid).dependencies_unfinished == 0);
}

TEST_CASE("a job retried after its failed dependency is retried waits for that dependency", "[rules][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId dep = add(*store, new_job("dep", "d"));
  finish_ok(*store, claim_one(*store, "d"), OutcomeKind::fail, "no");
  NewJob jn = new_job("job", "j");
  jn.depends_on = {dep};
  JobId jid = add(*store, jn);
  REQUIRE(get(*store, jid).state == JobState::cancelled);  // doomed at insert
  REQUIRE(store->retry_job(dep).has_value());
  REQUIRE(store->retry_job(jid).has_value());
  CHECK(get(*store, jid).state == JobState::waiting);
  finish_ok(*store, claim_one(*store, "d"), OutcomeKind::complete);
  CHECK(get(*store, jid).state == JobState::pending);
}

TEST_CASE("a dependency cycle through a child is rejected at spawn", "[rules][workflow]") {
  PORTER_STORE_UNDER_TEST();
  // X depends on P; P spawns C that depends on X: C waits for X, X for P, P for C.
  JobId pid = add(*store, new_job("p", "p"));
  JobId x = add_after(*store, {pid}, "x");
  Job p = claim_one(*store, "p");
  NewJob c = new_job("c", "k");
  c.depends_on = {x};
  auto bad = store->spawn(p.lease_ref(), std::vector<NewJob>{c});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == ErrorCode::invalid_argument);
  CHECK_THAT(bad.error().message(), Catch::Contains(std::to_string(x)));
  CHECK(get(*store, pid).children_total == 0);

  // Longer: Y depends on X, and a grandchild's parent... any job that waits for P.
  JobId y = add_after(*store, {x}, "y");
  JobId mid = spawn_ids(*store, p, {new_job("mid", "k")})[0];
  Job m = claim_one(*store, "k");
  REQUIRE(m.id == mid);
  NewJob g = new_job("g", "k");
  g.depends_on = {y};
  auto bad2 = store->spawn(m.lease_ref(), std::vector<NewJob>{g});
  REQUIRE_FALSE(bad2.has_value());
  CHECK(bad2.error().code() == ErrorCode::invalid_argument);

  // A job that does not wait for P is fine, and so is a finished one.
  JobId free_job = add(*store, new_job("free", "f"));
  NewJob ok = new_job("c", "k");
  ok.depends_on = {free_job};
  CHECK(spawn_ids(*store, m, {ok}).size() == 1);
}

TEST_CASE("every dependency must exist before the batch - one inserted earlier in the batch is not_found",
          "[rules][insert]") {
  PORTER_STORE_UNDER_TEST();
  JobId first = add(*store, new_job());
  std::vector<NewJob> batch{new_job(), new_job()};
  batch[1].depends_on = {first + 1};  // the id batch[0] would get
  auto r = store->insert(batch);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::not_found);
  CHECK_THAT(r.error().message(), Catch::Contains("job 1"));
  CHECK(store->get(first + 1).error().code() == ErrorCode::not_found);
}

TEST_CASE("progress may not exceed its total - percent never exceeds 100", "[rules][lease]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job());
  Job j = claim_one(*store);
  auto over = store->report_progress(j.lease_ref(), Progress{11, 10, "too far"});
  REQUIRE_FALSE(over.has_value());
  CHECK(over.error().code() == ErrorCode::invalid_argument);
  REQUIRE(store->report_progress(j.lease_ref(), Progress{10, 10, "done"}).has_value());
  REQUIRE(store->report_progress(j.lease_ref(), Progress{500, 0, "total unknown"}).has_value());
  CHECK(get(*store, j.id).progress.done == 500);
  CHECK(Progress{11, 10, {}}.percent() == std::optional<double>(100.0));
  CHECK(Progress{-1, 10, {}}.percent() == std::optional<double>(0.0));
}
