// Conformance: administrator operations (retry_job, discard, prune, pause),
// reads (get, list with filters and cursor pagination), stats and listeners.
#include "conformance/conformance.h"

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace porter;
using namespace porter::test;

TEST_CASE("get of an unknown id is not_found", "[admin]") {
  PORTER_STORE_UNDER_TEST();
  auto r = store->get(42);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::not_found);
}

TEST_CASE("retry_job: a failed or cancelled job back to pending with one more attempt and its history",
          "[admin]") {
  PORTER_STORE_UNDER_TEST();
  NewJob n = new_job();
  n.max_attempts = 1;
  JobId id = add(*store, n);
  Job j = claim_one(*store);
  finish_ok(*store, j, OutcomeKind::retry, "flaky");
  REQUIRE(get(*store, id).state == JobState::failed);
  clock->advance(1h);
  REQUIRE(store->retry_job(id).has_value());
  Job got = get(*store, id);
  CHECK(got.state == JobState::pending);
  CHECK(got.run_at == clock->now());
  CHECK(got.max_attempts == 2);
  CHECK_FALSE(got.finished_at.has_value());
  REQUIRE(got.errors.size() == 1);
  j = claim_one(*store);
  CHECK(j.attempt == 2);
  finish_ok(*store, j, OutcomeKind::complete);

  auto wrong = store->retry_job(id);  // completed
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().code() == ErrorCode::wrong_state);
  JobId pending = add(*store, new_job());
  CHECK(store->retry_job(pending).error().code() == ErrorCode::wrong_state);
  CHECK(store->retry_job(9999).error().code() == ErrorCode::not_found);

  REQUIRE(store->cancel(pending, "").has_value());
  REQUIRE(store->retry_job(pending).has_value());
  CHECK(get(*store, pending).state == JobState::pending);
  CHECK(claim_one(*store).id == pending);
}

TEST_CASE("retry_job of a child makes its waiting parent wait for it again", "[admin][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  NewJob c = new_job("child", "k");
  c.on_failure = ChildFailurePolicy::callback;
  auto kids = store->spawn(p.lease_ref(), std::vector<NewJob>{c, c});
  REQUIRE(kids.has_value());
  finish_ok(*store, p, OutcomeKind::wait_children);
  Job k1 = claim_one(*store, "k");
  finish_ok(*store, k1, OutcomeKind::fail, "bad");
  REQUIRE(store->retry_job(k1.id).has_value());
  CHECK(get(*store, pid).children_unfinished == 2);
  Job k2 = claim_one(*store, "k");
  finish_ok(*store, k2, OutcomeKind::complete);
  CHECK(get(*store, pid).state == JobState::waiting);
  finish_ok(*store, claim_one(*store, "k"), OutcomeKind::complete);
  CHECK(get(*store, pid).state == JobState::pending);
  CHECK(get(*store, pid).callback_pending);
}

TEST_CASE("discard deletes a final job - wrong_state otherwise", "[admin]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  auto s = store->discard(id);
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().code() == ErrorCode::wrong_state);
  Job j = claim_one(*store);
  CHECK(store->discard(id).error().code() == ErrorCode::wrong_state);
  finish_ok(*store, j, OutcomeKind::fail, "x");
  REQUIRE(store->discard(id).has_value());
  CHECK(store->get(id).error().code() == ErrorCode::not_found);
  CHECK(store->discard(id).error().code() == ErrorCode::not_found);
  // Ids are never reused.
  CHECK(add(*store, new_job()) > id);
}

TEST_CASE("prune deletes final jobs finished before the cutoff, except children of unfinished parents",
          "[admin]") {
  PORTER_STORE_UNDER_TEST();
  const TimePoint t0 = clock->now();
  std::vector<NewJob> batch(3, new_job());
  REQUIRE(store->insert(batch).has_value());
  auto jobs = claim(*store, "default", 3);
  finish_ok(*store, jobs[0], OutcomeKind::complete);
  finish_ok(*store, jobs[1], OutcomeKind::fail, "x");
  // jobs[2] keeps running.
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  auto kids = store->spawn(p.lease_ref(), std::vector<NewJob>{new_job("child", "k"), new_job("child", "k")});
  REQUIRE(kids.has_value());
  Job k = claim_one(*store, "k");
  finish_ok(*store, k, OutcomeKind::complete);
  clock->advance(1h);
  JobId recent = add(*store, new_job("recent", "r"));
  finish_ok(*store, claim_one(*store, "r"), OutcomeKind::complete);

  auto n = store->prune(PruneRequest{.finished_before = t0 + 30min});
  REQUIRE(n.has_value());
  CHECK(*n == 2);
  CHECK_FALSE(store->get(jobs[0].id).has_value());
  CHECK_FALSE(store->get(jobs[1].id).has_value());
  CHECK(store->get(jobs[2].id).has_value());
  CHECK(store->get(k.id).has_value());  // its parent still runs
  CHECK(store->get(recent).has_value());
  CHECK(store->get(pid).has_value());
  CHECK(*store->prune(PruneRequest{.finished_before = clock->now() + 1s}) == 1);  // recent
  CHECK(store->get(k.id).has_value());
}

TEST_CASE("list filters by every field, newest first", "[admin]") {
  PORTER_STORE_UNDER_TEST();
  NewJob a = new_job("mail", "q1");
  a.owner = "alice";
  NewJob b = new_job("report", "q2");
  b.owner = "bob";
  JobId a1 = add(*store, a);
  clock->advance(1min);
  JobId b1 = add(*store, b);
  clock->advance(1min);
  JobId a2 = add(*store, a);
  Job running = claim_one(*store, "q1");
  REQUIRE(running.id == a1);

  auto ids_for = [&](const JobFilter& f) {
    auto page = store->list(f, std::nullopt, 100);
    REQUIRE(page.has_value());
    CHECK_FALSE(page->next.has_value());
    return ids_of(page->jobs);
  };
  CHECK(ids_for({}) == std::vector<JobId>{a2, b1, a1});
  JobFilter f;
  f.states = {JobState::running};
  CHECK(ids_for(f) == std::vector<JobId>{a1});
  f.states = {JobState::running, JobState::pending};
  CHECK(ids_for(f) == std::vector<JobId>{a2, b1, a1});
  f = {};
  f.queue = "q2";
  CHECK(ids_for(f) == std::vector<JobId>{b1});
  f = {};
  f.kind = "mail";
  CHECK(ids_for(f) == std::vector<JobId>{a2, a1});
  f = {};
  f.owner = "bob";
  CHECK(ids_for(f) == std::vector<JobId>{b1});
  f = {};
  f.created_after = ManualClock::kDefaultStart + 1min;  // inclusive
  CHECK(ids_for(f) == std::vector<JobId>{a2, b1});
  f = {};
  f.created_before = ManualClock::kDefaultStart + 1min;  // exclusive
  CHECK(ids_for(f) == std::vector<JobId>{a1});
  f = {};
  f.kind = "mail";
  f.states = {JobState::pending};
  CHECK(ids_for(f) == std::vector<JobId>{a2});
  f = {};
  f.parent_id = a1;
  CHECK(ids_for(f).empty());
  CHECK_FALSE(store->list({}, std::nullopt, 0).has_value());
}

TEST_CASE("list pages through every match exactly once with the cursor", "[admin]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch;
  for (int i = 0; i < 25; ++i) batch.push_back(new_job(i % 2 ? "odd" : "even"));
  REQUIRE(store->insert(batch).has_value());
  for (const char* kind : {"odd", "even"}) {
    JobFilter f;
    f.kind = kind;
    std::vector<JobId> all;
    std::optional<JobId> cursor;
    int pages = 0;
    do {
      auto page = store->list(f, cursor, 4);
      REQUIRE(page.has_value());
      CHECK(page->jobs.size() <= 4);
      for (const auto& j : page->jobs) {
        CHECK(j.kind == kind);
        all.push_back(j.id);
      }
      cursor = page->next;
      ++pages;
      REQUIRE(pages < 20);
    } while (cursor);
    const std::size_t expected = std::string(kind) == "odd" ? 12 : 13;
    CHECK(all.size() == expected);
    CHECK(std::is_sorted(all.rbegin(), all.rend()));
    CHECK(std::set<JobId>(all.begin(), all.end()).size() == all.size());
    CHECK(pages == static_cast<int>((expected + 3) / 4));
  }
}

TEST_CASE("stats: queue counts by state, pending vs scheduled, pauses", "[stats]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch(6, new_job("w", "q"));
  batch[4].delay = 1h;
  batch[5].delay = 2h;
  REQUIRE(store->insert(batch).has_value());
  auto jobs = claim(*store, "q", 3);
  finish_ok(*store, jobs[0], OutcomeKind::complete);
  finish_ok(*store, jobs[1], OutcomeKind::fail, "x");
  NewJob dep = new_job("w", "q");
  dep.depends_on = {jobs[2].id};
  add(*store, dep);
  REQUIRE(store->set_queue_paused("empty-but-paused", true).has_value());
  JobId c = add(*store, new_job("w", "other"));
  REQUIRE(store->cancel(c, "").has_value());

  auto s = store->stats(1h);
  REQUIRE(s.has_value());
  CHECK(s->at == clock->now());
  std::map<std::string, QueueInfo> q;
  for (const auto& info : s->queues) q[info.name] = info;
  REQUIRE(q.count("q"));
  CHECK(q["q"].pending == 1);
  CHECK(q["q"].scheduled == 2);
  CHECK(q["q"].running == 1);
  CHECK(q["q"].waiting == 1);
  CHECK(q["q"].completed == 1);
  CHECK(q["q"].failed == 1);
  CHECK(q["q"].cancelled == 0);
  CHECK_FALSE(q["q"].paused);
  REQUIRE(q.count("empty-but-paused"));
  CHECK(q["empty-but-paused"].paused);
  CHECK(q["other"].cancelled == 1);

  clock->advance(1h);  // one scheduled job is due now
  s = store->stats(1h);
  REQUIRE(s.has_value());
  for (const auto& info : s->queues) {
    if (info.name == "q") {
      CHECK(info.pending == 2);
      CHECK(info.scheduled == 1);
    }
  }
}

TEST_CASE("stats: per kind over the window, with run time percentiles", "[stats]") {
  PORTER_STORE_UNDER_TEST();
  // 100 "fast" jobs running 1..100 ms, then 3 failures and 2 retries of "slow".
  for (int i = 1; i <= 100; ++i) {
    add(*store, new_job("fast"));
    Job j = claim_one(*store);
    clock->advance(std::chrono::milliseconds(i));
    finish_ok(*store, j, OutcomeKind::complete);
  }
  for (int i = 0; i < 3; ++i) {
    NewJob n = new_job("slow");
    n.max_attempts = 1;
    add(*store, n);
    Job j = claim_one(*store);
    clock->advance(2s);
    finish_ok(*store, j, OutcomeKind::retry, "x");  // exhausted: failed
  }
  NewJob r = new_job("slow");
  r.max_attempts = 5;
  JobId rid = add(*store, r);
  for (int i = 0; i < 2; ++i) {
    Job j = claim_one(*store);
    REQUIRE(j.id == rid);
    finish_ok(*store, j, OutcomeKind::retry, "again");
  }
  Job done = claim_one(*store);
  clock->advance(1s);
  finish_ok(*store, done, OutcomeKind::complete);

  auto s = store->stats(1h);
  REQUIRE(s.has_value());
  std::map<std::string, KindStats> k;
  for (const auto& ks : s->kinds) k[ks.kind] = ks;
  REQUIRE(k.count("fast"));
  CHECK(k["fast"].completed == 100);
  CHECK(k["fast"].failed == 0);
  CHECK(k["fast"].retried == 0);
  CHECK(k["fast"].failure_rate == 0.0);
  CHECK(k["fast"].p50 == std::chrono::milliseconds(50));
  CHECK(k["fast"].p95 == std::chrono::milliseconds(95));
  CHECK(k["fast"].p99 == std::chrono::milliseconds(99));
  REQUIRE(k.count("slow"));
  CHECK(k["slow"].completed == 1);
  CHECK(k["slow"].failed == 3);
  CHECK(k["slow"].retried == 2);
  CHECK(k["slow"].failure_rate == Approx(0.75));
  CHECK(k["slow"].p50 == 2s);

  // Outside the window: nothing.
  clock->advance(2h);
  s = store->stats(1h);
  REQUIRE(s.has_value());
  CHECK(s->kinds.empty());
}

TEST_CASE("stats: oldest lease age and expired leases", "[stats][lease]") {
  PORTER_STORE_UNDER_TEST();
  auto s = store->stats(1h);
  REQUIRE(s.has_value());
  CHECK_FALSE(s->oldest_lease_age.has_value());
  CHECK(s->expired_leases == 0);
  add(*store, new_job());
  claim_one(*store, "default", 10s);
  clock->advance(5s);
  add(*store, new_job());
  claim_one(*store, "default", 60s);
  clock->advance(7s);
  s = store->stats(1h);
  REQUIRE(s.has_value());
  REQUIRE(s->oldest_lease_age.has_value());
  CHECK(*s->oldest_lease_age == 12s);
  CHECK(s->expired_leases == 1);
}

TEST_CASE("listeners hear available, finished and cancel_requested - removed ones hear nothing", "[admin]") {
  PORTER_STORE_UNDER_TEST();
  EventLog log(*store);
  JobId id = add(*store, new_job("k", "q"));
  auto events = log.events();
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().type == StoreEvent::Type::available);
  CHECK(events.back().queue == "q");

  log.clear();
  Job j = claim_one(*store, "q");
  finish_ok(*store, j, OutcomeKind::retry, "x");  // pending again: available
  CHECK(log.count(StoreEvent::Type::available) >= 1);
  j = claim_one(*store, "q");
  REQUIRE(store->cancel(id, "").value() == CancelResult::requested);
  CHECK(log.count(StoreEvent::Type::cancel_requested, id) == 1);
  finish_ok(*store, j, OutcomeKind::complete);
  events = log.events();
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().type == StoreEvent::Type::finished);
  CHECK(events.back().job == id);
  CHECK(events.back().state == JobState::cancelled);
  CHECK(events.back().queue == "q");

  std::size_t other_calls = 0;
  auto other = store->add_listener([&](const StoreEvent&) { ++other_calls; });
  add(*store, new_job("k", "q"));
  CHECK(other_calls >= 1);
  store->remove_listener(other);
  std::size_t before = other_calls;
  add(*store, new_job("k", "q"));
  CHECK(other_calls == before);
}

TEST_CASE("remove_listener returns only once no call to that listener is in flight", "[admin][concurrency]") {
  PORTER_STORE_UNDER_TEST();
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> in_listener{false};
  std::once_flag first;
  const auto id = store->add_listener([&](const StoreEvent&) {
    std::call_once(first, [&] {
      in_listener = true;
      entered.set_value();
      released.wait();  // the producer's insert is stuck here until the test lets it go
      in_listener = false;
    });
  });
  std::thread producer([&] { add(*store, new_job("k", "q")); });
  entered.get_future().wait();

  std::atomic<bool> removed{false};
  std::atomic<bool> call_in_flight_after_remove{false};
  std::thread remover([&] {
    store->remove_listener(id);
    // The listener's call must be over by now: the engine frees what it captured here.
    call_in_flight_after_remove = in_listener.load();
    removed = true;
  });
  // A remover that does not wait would be done long before this wait ends.
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(removed.load());
  release.set_value();
  remover.join();
  producer.join();
  CHECK(removed.load());
  CHECK_FALSE(call_in_flight_after_remove.load());  // checked here: Catch assertions stay on this thread
}

TEST_CASE("pruning thousands of jobs leaves a working store that never reuses ids", "[admin]") {
  PORTER_STORE_UNDER_TEST();
  constexpr int kJobs = 5000;  // more than one storage chunk of the memory store
  std::vector<NewJob> batch(kJobs, new_job());
  REQUIRE(store->insert(batch).has_value());
  for (;;) {
    auto jobs = claim(*store, "default", 500);
    if (jobs.empty()) break;
    std::vector<Outcome> outs;
    for (const auto& j : jobs) outs.push_back(outcome(j, OutcomeKind::complete));
    REQUIRE(store->finish(outs).has_value());
  }
  clock->advance(1s);
  auto n = store->prune(PruneRequest{.finished_before = clock->now(), .limit = kMaxPruneLimit});
  REQUIRE(n.has_value());
  CHECK(*n == kJobs);
  for (JobId id : {JobId{1}, JobId{4096}, JobId{4097}, JobId{kJobs}}) {
    CHECK(store->get(id).error().code() == ErrorCode::not_found);
  }
  auto page = store->list({}, std::nullopt, 10);
  REQUIRE(page.has_value());
  CHECK(page->jobs.empty());
  JobId next = add(*store, new_job());
  CHECK(next == kJobs + 1);
  CHECK(claim_one(*store).id == next);
}

TEST_CASE("every write that makes a job runnable announces it with an available event", "[admin][workflow]") {
  PORTER_STORE_UNDER_TEST();
  EventLog log(*store);
  auto announced = [&](const std::string& queue) {
    bool seen = false;
    for (const auto& e : log.events()) seen |= e.type == StoreEvent::Type::available && e.queue == queue;
    log.clear();
    return seen;
  };
  JobId a = add(*store, new_job("a", "qa"));
  CHECK(announced("qa"));  // insert
  NewJob dep = new_job("d", "qd");
  dep.depends_on = {a};
  add(*store, dep);
  log.clear();
  Job ja = claim_one(*store, "qa");
  finish_ok(*store, ja, OutcomeKind::complete);
  CHECK(announced("qd"));  // a dependency completed

  JobId p = add(*store, new_job("parent", "qp"));
  Job jp = claim_one(*store, "qp");
  REQUIRE(jp.id == p);
  REQUIRE(store->spawn(jp.lease_ref(), std::vector<NewJob>{new_job("child", "qc")}).has_value());
  CHECK(announced("qc"));  // spawn
  finish_ok(*store, jp, OutcomeKind::wait_children);
  finish_ok(*store, claim_one(*store, "qc"), OutcomeKind::complete);
  CHECK(announced("qp"));  // parent woken for its callback

  Job cb = claim_one(*store, "qp");
  finish_ok(*store, cb, OutcomeKind::release);
  CHECK(announced("qp"));  // released
  cb = claim_one(*store, "qp");
  finish_ok(*store, cb, OutcomeKind::retry, "again");
  CHECK(announced("qp"));  // retried
  cb = claim_one(*store, "qp", 10s);
  clock->advance(11s);
  REQUIRE(store->rescue_expired().has_value());
  CHECK(announced("qp"));  // rescued
  cb = claim_one(*store, "qp");
  finish_ok(*store, cb, OutcomeKind::fail, "no");
  log.clear();
  REQUIRE(store->retry_job(p).has_value());
  CHECK(announced("qp"));  // retried by an administrator

  REQUIRE(store->set_queue_paused("qz", true).has_value());
  add(*store, new_job("z", "qz"));
  log.clear();
  REQUIRE(store->set_queue_paused("qz", false).has_value());
  CHECK(announced("qz"));  // resumed with work waiting
}
