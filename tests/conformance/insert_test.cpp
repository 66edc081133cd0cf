// Conformance: insert (validation, atomic batches, scheduling, dependencies at
// enqueue) and unique keys.
#include "conformance/conformance.h"

using namespace porter;
using namespace porter::test;

TEST_CASE("insert stores a job with every field and defaults filled in", "[insert]") {
  PORTER_STORE_UNDER_TEST();
  NewJob j = new_job("send_email", "mail");
  j.args = R"({"to":"a@b.c"})";
  j.priority = 5;
  j.owner = "alice";
  j.description = "Welcome mail";
  JobId id = add(*store, j);
  CHECK(id >= 1);
  Job got = get(*store, id);
  CHECK(got.id == id);
  CHECK(got.kind == "send_email");
  CHECK(got.args == R"({"to":"a@b.c"})");
  CHECK(got.queue == "mail");
  CHECK(got.priority == 5);
  CHECK(got.owner == "alice");
  CHECK(got.description == "Welcome mail");
  CHECK(got.state == JobState::pending);
  CHECK(got.attempt == 0);
  CHECK(got.max_attempts == kDefaultMaxAttempts);  // 0 asks for the default
  CHECK(got.created_at == clock->now());
  CHECK(got.run_at == clock->now());
  CHECK_FALSE(got.parent_id.has_value());
  CHECK_FALSE(got.started_at.has_value());
  CHECK_FALSE(got.finished_at.has_value());
  CHECK_FALSE(got.lease.has_value());
  CHECK(got.errors.empty());

  NewJob k = new_job();
  k.max_attempts = 3;
  CHECK(get(*store, add(*store, k)).max_attempts == 3);
}

TEST_CASE("ids are increasing, starting at 1", "[insert]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch(5, new_job());
  auto r = store->insert(batch);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 5);
  CHECK((*r)[0].id == 1);
  for (std::size_t i = 1; i < r->size(); ++i) CHECK((*r)[i].id > (*r)[i - 1].id);
  for (const auto& ins : *r) CHECK_FALSE(ins.duplicate);
  CHECK(add(*store, new_job()) > (*r)[4].id);
}

TEST_CASE("a batch with one invalid job inserts nothing and names the index", "[insert]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch(4, new_job());
  batch[2].args = "{broken";
  auto r = store->insert(batch);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::invalid_argument);
  CHECK_THAT(r.error().message(), Catch::Contains("2"));
  CHECK_THAT(r.error().message(), Catch::Contains("JSON"));
  CHECK_FALSE(store->get(1).has_value());
  auto page = store->list({}, std::nullopt, 100);
  REQUIRE(page.has_value());
  CHECK(page->jobs.empty());

  batch[2] = new_job("");
  r = store->insert(batch);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::invalid_argument);
  CHECK_THAT(r.error().message(), Catch::Contains("kind"));

  // The store still works and hands out ids from 1 after the rejected batches.
  CHECK(add(*store, new_job()) == 1);
}

TEST_CASE("a missing dependency is not_found and the batch inserts nothing", "[insert]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job());
  std::vector<NewJob> batch(2, new_job());
  batch[1].depends_on = {a, 999};
  auto r = store->insert(batch);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::not_found);
  CHECK_THAT(r.error().message(), Catch::Contains("999"));
  auto page = store->list({}, std::nullopt, 100);
  REQUIRE(page.has_value());
  CHECK(page->jobs.size() == 1);
}

TEST_CASE("run_at and delay schedule a job - it is invisible to claim until due", "[insert][claim]") {
  PORTER_STORE_UNDER_TEST();
  const TimePoint t0 = clock->now();
  NewJob delayed = new_job("delayed");
  delayed.delay = 10s;
  NewJob at = new_job("at");
  at.run_at = t0 + 5s;
  JobId d = add(*store, delayed);
  JobId a = add(*store, at);
  CHECK(get(*store, d).run_at == t0 + 10s);
  CHECK(get(*store, a).run_at == t0 + 5s);
  CHECK(get(*store, d).state == JobState::pending);

  CHECK(claim(*store, "default", 10).empty());
  auto next = store->next_run_at("default");
  REQUIRE(next.has_value());
  CHECK(*next == std::optional<TimePoint>(t0 + 5s));

  clock->advance(5s);
  auto got = claim(*store, "default", 10);
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == a);
  CHECK(claim(*store, "default", 10).empty());
  clock->advance(4s);
  CHECK(claim(*store, "default", 10).empty());
  clock->advance(1s);
  got = claim(*store, "default", 10);
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == d);
  next = store->next_run_at("default");
  REQUIRE(next.has_value());
  CHECK_FALSE(next->has_value());
}

TEST_CASE("next_run_at is the earliest run_at among pending jobs of the queue", "[insert][claim]") {
  PORTER_STORE_UNDER_TEST();
  const TimePoint t0 = clock->now();
  auto none = store->next_run_at("nothing-here");
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());

  NewJob late = new_job();
  late.run_at = t0 + 1h;
  late.priority = -5;
  add(*store, late);
  NewJob past = new_job();
  past.run_at = t0 - 10s;
  past.priority = 7;
  add(*store, past);
  add(*store, new_job());  // now, priority 0
  NewJob other = new_job("x", "other");
  other.run_at = t0 - 1h;
  add(*store, other);

  auto next = store->next_run_at("default");
  REQUIRE(next.has_value());
  CHECK(*next == std::optional<TimePoint>(t0 - 10s));
  // Claiming the due ones leaves the scheduled one.
  CHECK(claim(*store, "default", 10).size() == 2);
  next = store->next_run_at("default");
  REQUIRE(next.has_value());
  CHECK(*next == std::optional<TimePoint>(t0 + 1h));
}

TEST_CASE("a job with unfinished dependencies waits - completed ones release it", "[insert][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job("a"));
  JobId b = add(*store, new_job("b"));
  JobId cid = add_after(*store, {a, b, a}, "c");  // a repeated dependency counts once
  Job got = get(*store, cid);
  CHECK(got.state == JobState::waiting);
  CHECK(got.dependencies_unfinished == 2);
  CHECK(got.depends_on == std::vector<JobId>{a, b});

  Job ja = claim_one(*store);
  CHECK(ja.id == a);
  CHECK(finish_ok(*store, ja, OutcomeKind::complete) == JobState::completed);
  CHECK(get(*store, cid).dependencies_unfinished == 1);
  CHECK(get(*store, cid).state == JobState::waiting);

  // A job whose dependency already completed starts pending.
  NewJob d = new_job("d");
  d.depends_on = {a};
  CHECK(get(*store, add(*store, d)).state == JobState::pending);

  Job jb = claim_one(*store);
  CHECK(jb.id == b);
  finish_ok(*store, jb, OutcomeKind::complete);
  got = get(*store, cid);
  CHECK(got.state == JobState::pending);
  CHECK(got.dependencies_unfinished == 0);
}

TEST_CASE("a dependency that failed or was cancelled cancels the dependent", "[insert][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job("a"));
  JobId cid = add_after(*store, {a}, "c");
  JobId eid = add_after(*store, {cid}, "e");  // a chain: a -> c -> e

  Job ja = claim_one(*store);
  finish_ok(*store, ja, OutcomeKind::fail, "boom");
  Job gc = get(*store, cid);
  CHECK(gc.state == JobState::cancelled);
  REQUIRE_FALSE(gc.errors.empty());
  CHECK_THAT(gc.errors.back().message, Catch::Contains(std::to_string(a)));
  CHECK(gc.finished_at.has_value());
  CHECK(get(*store, eid).state == JobState::cancelled);

  // Enqueued after the dependency failed: starts cancelled.
  NewJob late = new_job("late");
  late.depends_on = {a};
  Job gl = get(*store, add(*store, late));
  CHECK(gl.state == JobState::cancelled);
  REQUIRE_FALSE(gl.errors.empty());
  CHECK_THAT(gl.errors.back().message, Catch::Contains("dependency"));

  // A cancelled dependency does the same.
  JobId x = add(*store, new_job("x"));
  JobId yid = add_after(*store, {x}, "y");
  REQUIRE(store->cancel(x, "not needed").value() == CancelResult::cancelled);
  CHECK(get(*store, yid).state == JobState::cancelled);
}

TEST_CASE("dependencies form a DAG: a diamond runs in order", "[insert][workflow]") {
  PORTER_STORE_UNDER_TEST();
  // A diamond: b and c depend on a; d depends on b and c.
  JobId a = add(*store, new_job("a"));
  JobId bid = add_after(*store, {a}, "b");
  JobId cid = add_after(*store, {a}, "c");
  JobId did = add_after(*store, {bid, cid}, "d");

  std::vector<JobId> order;
  for (;;) {
    auto jobs = claim(*store, "default", 10);
    if (jobs.empty()) break;
    for (const auto& j : jobs) {
      order.push_back(j.id);
      finish_ok(*store, j, OutcomeKind::complete);
    }
  }
  REQUIRE(order.size() == 4);
  CHECK(order[0] == a);
  CHECK(order[3] == did);
  CHECK(get(*store, did).state == JobState::completed);
}

TEST_CASE("unique scope active keeps duplicates out while a job is unfinished", "[insert][unique]") {
  PORTER_STORE_UNDER_TEST();
  NewJob u = new_job("sync");
  u.unique_key = "user-7";
  JobId first = add(*store, u);
  std::vector<NewJob> batch{u, u};
  auto r = store->insert(batch);
  REQUIRE(r.has_value());
  CHECK((*r)[0].id == first);
  CHECK((*r)[0].duplicate);
  CHECK((*r)[1].id == first);

  // Same key, other kind: not a duplicate.
  NewJob other = u;
  other.kind = "other";
  CHECK(add(*store, other) != first);

  // Still a duplicate while running; no longer once completed.
  Job j = claim_one(*store);
  REQUIRE(j.id == first);
  auto again = store->insert(std::span<const NewJob>(&u, 1));
  REQUIRE(again.has_value());
  CHECK((*again)[0].duplicate);
  finish_ok(*store, j, OutcomeKind::complete);
  again = store->insert(std::span<const NewJob>(&u, 1));
  REQUIRE(again.has_value());
  CHECK_FALSE((*again)[0].duplicate);
  CHECK((*again)[0].id != first);
  CHECK(get(*store, (*again)[0].id).unique_key == "user-7");
}

TEST_CASE("duplicates inside one batch resolve to the first job of the batch", "[insert][unique]") {
  PORTER_STORE_UNDER_TEST();
  NewJob u = new_job("sync");
  u.unique_key = "k";
  std::vector<NewJob> batch{u, new_job(), u};
  auto r = store->insert(batch);
  REQUIRE(r.has_value());
  CHECK_FALSE((*r)[0].duplicate);
  CHECK((*r)[2].duplicate);
  CHECK((*r)[2].id == (*r)[0].id);
}

TEST_CASE("unique scope period keeps duplicates out for the period after creation", "[insert][unique]") {
  PORTER_STORE_UNDER_TEST();
  NewJob u = new_job("report");
  u.unique_key = "daily";
  u.unique_scope = UniqueScope::period;
  u.unique_period = 1h;
  JobId first = add(*store, u);
  Job j = claim_one(*store);
  finish_ok(*store, j, OutcomeKind::complete);  // even when finished
  clock->advance(59min);
  auto r = store->insert(std::span<const NewJob>(&u, 1));
  REQUIRE(r.has_value());
  CHECK((*r)[0].duplicate);
  CHECK((*r)[0].id == first);
  clock->advance(1min);
  r = store->insert(std::span<const NewJob>(&u, 1));
  REQUIRE(r.has_value());
  CHECK_FALSE((*r)[0].duplicate);
}

TEST_CASE("unique scope always keeps duplicates out until the job is pruned", "[insert][unique]") {
  PORTER_STORE_UNDER_TEST();
  NewJob u = new_job("once");
  u.unique_key = "migration-42";
  u.unique_scope = UniqueScope::always;
  JobId first = add(*store, u);
  Job j = claim_one(*store);
  finish_ok(*store, j, OutcomeKind::fail, "no");
  clock->advance(24h * 30);
  auto r = store->insert(std::span<const NewJob>(&u, 1));
  REQUIRE(r.has_value());
  CHECK((*r)[0].duplicate);
  CHECK((*r)[0].id == first);
  REQUIRE(store->discard(first).has_value());
  r = store->insert(std::span<const NewJob>(&u, 1));
  REQUIRE(r.has_value());
  CHECK_FALSE((*r)[0].duplicate);
}
