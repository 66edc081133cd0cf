// Engine behaviour that depends on time - backoff, snooze, delayed jobs,
// heartbeats, lease expiry and rescue, graceful shutdown, cron - driven by a
// ManualClock: the test moves time, the engine's waits notice within a tick.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "engine/engine_test_support.h"

using namespace std::chrono_literals;
using namespace porter;
using porter::test::EventLog;
using porter::test::eventually;

namespace {

bool job_matches(Store& store, JobId id, const std::function<bool(const Job&)>& pred) {
  return eventually([&] {
    auto j = store.get(id);
    return j && pred(*j);
  });
}

// A job stop() handed back: pending again, its attempt not consumed, no lease.
void check_handed_back(Store& store, JobId id) {
  auto job = store.get(id);
  REQUIRE(job);
  CHECK(job->state == JobState::pending);
  CHECK(job->attempt == 0);
  CHECK(job->errors.empty());
  CHECK_FALSE(job->lease.has_value());
}

}  // namespace

TEST_CASE("time: retries follow the policy's backoff, then fail with every error", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}});
  EventLog log(engine);
  const RetryPolicy policy{.max_attempts = 3, .base = 10s, .multiplier = 2.0, .cap = 1h, .jitter = false};
  REQUIRE(engine.register_handler("down", [](JobContext& ctx) {
    throw std::runtime_error("attempt " + std::to_string(ctx.attempt()) + " failed");
  }, {.retry = policy}));
  REQUIRE(engine.start());
  const TimePoint t0 = clock->now();
  auto id = engine.enqueue({.kind = "down"});
  REQUIRE(id);
  CHECK(store->get(id->id)->max_attempts == 3);

  REQUIRE(job_matches(*store, id->id, [](const Job& j) { return j.errors.size() == 1 && j.state == JobState::pending; }));
  CHECK(store->get(id->id)->run_at == t0 + 10s);

  clock->advance(9s);
  // Not due yet; the next step proves it was waiting for the right moment.
  clock->advance(1s);
  REQUIRE(job_matches(*store, id->id, [](const Job& j) { return j.errors.size() == 2 && j.state == JobState::pending; }));
  CHECK(store->get(id->id)->run_at == t0 + 10s + 20s);

  clock->advance(20s);
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::failed);
  REQUIRE(job->errors.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(job->errors[static_cast<std::size_t>(i)].attempt == i + 1);
    CHECK(job->errors[static_cast<std::size_t>(i)].message == "attempt " + std::to_string(i + 1) + " failed");
  }
  REQUIRE(eventually([&] { return log.count(EventType::failed, id->id) == 1; }));
  CHECK(log.count(EventType::retried, id->id) == 2);
}

TEST_CASE("time: jittered retry delays stay within the ceiling", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 4}}});
  const RetryPolicy policy{.max_attempts = 3, .base = 8s, .multiplier = 3.0, .cap = 1h, .jitter = true};
  REQUIRE(engine.register_handler("down", [](JobContext&) { throw std::runtime_error("no"); }, {.retry = policy}));
  REQUIRE(engine.start());
  const TimePoint t0 = clock->now();
  std::vector<NewJob> jobs(40, NewJob{.kind = "down"});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  std::set<Duration::rep> distinct;
  for (const auto& r : *ids) {
    REQUIRE(job_matches(*store, r.id, [](const Job& j) { return j.errors.size() == 1 && j.state == JobState::pending; }));
    const Duration wait = store->get(r.id)->run_at - t0;
    CHECK(wait >= Duration::zero());
    CHECK(wait <= Duration(8s));
    distinct.insert(wait.count());
  }
  CHECK(distinct.size() > 1);  // jittered, not in lockstep

  clock->advance(8s);  // every first retry is due now
  const TimePoint t1 = clock->now();
  for (const auto& r : *ids) {
    REQUIRE(job_matches(*store, r.id, [](const Job& j) { return j.errors.size() == 2 && j.state == JobState::pending; }));
    const Duration wait = store->get(r.id)->run_at - t1;
    CHECK(wait >= Duration::zero());
    CHECK(wait <= Duration(24s));
  }
}

TEST_CASE("time: snooze puts the job back without using an attempt", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}});
  EventLog log(engine);
  std::atomic<int> runs{0};
  REQUIRE(engine.register_handler("later", [&](JobContext& ctx) {
    if (++runs == 1) ctx.snooze(30s);
  }));
  REQUIRE(engine.start());
  const TimePoint t0 = clock->now();
  auto id = engine.enqueue({.kind = "later", .max_attempts = 1});
  REQUIRE(id);
  REQUIRE(eventually([&] { return log.count(EventType::snoozed, id->id) == 1; }));
  auto job = store->get(id->id);
  REQUIRE(job);
  CHECK(job->state == JobState::pending);
  CHECK(job->attempt == 0);
  CHECK(job->run_at == t0 + 30s);
  CHECK(job->errors.empty());

  clock->advance(30s);
  auto done = engine.wait_for(id->id, 20s);
  REQUIRE(done);
  CHECK(done->state == JobState::completed);  // max_attempts 1, still ran: the snooze cost nothing
  CHECK(done->attempt == 1);
  CHECK(runs == 2);
}

TEST_CASE("time: a delayed job runs when it is due, not before", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}});
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  REQUIRE(engine.start());
  auto later = engine.enqueue({.kind = "k", .delay = 60s});
  REQUIRE(later);
  clock->advance(59s);
  // A job enqueued now runs at once; the delayed one (enqueued first) must still wait.
  auto now_job = engine.enqueue({.kind = "k"});
  REQUIRE(now_job);
  REQUIRE(engine.wait_for(now_job->id, 20s)->state == JobState::completed);
  CHECK(store->get(later->id)->state == JobState::pending);
  CHECK(store->get(later->id)->attempt == 0);

  clock->advance(1s);
  auto job = engine.wait_for(later->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
}

TEST_CASE("time: heartbeats keep a long job's lease alive and write its progress", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}, .lease_for = 10s, .heartbeat_every = 3s, .reaper_every = 1s});
  EventLog log(engine);
  std::atomic<bool> release{false};
  // Destroyed before the engine: a failed REQUIRE below still lets the
  // handler return, so ~Engine does not wait on a clock nobody advances.
  struct ReleaseOnExit {
    std::atomic<bool>& flag;
    ~ReleaseOnExit() { flag.store(true); }
  } release_on_exit{release};
  REQUIRE(engine.register_handler("long", [&](JobContext& ctx) {
    ctx.progress(1, 2, "half way");
    while (!release.load()) std::this_thread::yield();
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "long"});
  REQUIRE(id);
  REQUIRE(job_matches(*store, id->id, [](const Job& j) { return j.state == JobState::running; }));
  for (int second = 0; second < 30; ++second) {
    clock->advance(1s);
    // Heartbeats every 3 s extend the lease to now + 10 s, so it never gets within 6 s of expiring.
    REQUIRE(job_matches(*store, id->id, [&](const Job& j) {
      return j.state == JobState::running && j.lease && j.lease->expires_at >= clock->now() + 6s;
    }));
  }
  auto running = store->get(id->id);
  REQUIRE(running);
  CHECK(running->attempt == 1);
  CHECK(running->progress.done == 1);
  CHECK(running->progress.message == "half way");
  release = true;
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->attempt == 1);
  CHECK(log.count(EventType::rescued) == 0);
}

TEST_CASE("time: the reaper rescues a crashed worker's job, the stale worker is fenced off", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  // A worker in another process claims the job, then dies without a word.
  REQUIRE(store->insert(std::vector<NewJob>{{.kind = "k", .args = R"({"n":1})", .max_attempts = 5}}));
  auto claimed = store->claim({.queue = "default", .worker = "dead-worker", .limit = 1, .lease_for = 10s});
  REQUIRE(claimed);
  REQUIRE(claimed->size() == 1);
  const Job stale = claimed->front();

  Engine engine(store, {.queues = {{"default", 1}}, .lease_for = 30s, .heartbeat_every = 10s, .reaper_every = 1s});
  EventLog log(engine);
  REQUIRE(engine.register_handler("k", [](JobContext& ctx) { ctx.set_result(R"({"by":"engine"})"); }));
  REQUIRE(engine.start());
  clock->advance(11s);
  REQUIRE(eventually([&] { return log.count(EventType::rescued, stale.id) == 1; }));
  auto job = engine.wait_for(stale.id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->attempt == 2);
  REQUIRE(job->errors.size() == 1);
  CHECK(job->result == R"({"by":"engine"})");

  // The dead worker wakes up and reports: its token is stale, nothing changes.
  auto late = store->finish(std::vector<Outcome>{
      {.lease = stale.lease_ref(), .kind = OutcomeKind::fail, .error = "stale worker's verdict"}});
  REQUIRE(late);
  REQUIRE_FALSE((*late)[0].status);
  CHECK((*late)[0].status.error().code() == ErrorCode::stale_lease);
  CHECK(store->heartbeat(std::vector<LeaseRef>{stale.lease_ref()}, 10s)->at(0).held == false);
  auto after = store->get(stale.id);
  REQUIRE(after);
  CHECK(after->state == JobState::completed);
  CHECK(after->result == R"({"by":"engine"})");
  CHECK(after->errors.size() == 1);
}

TEST_CASE("time: stop() hands a running job back after the grace period", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}, .shutdown_grace = 5s});
  std::atomic<bool> started{false};
  std::atomic<bool> saw_stop{false};
  REQUIRE(engine.register_handler("long", [&](JobContext& ctx) {
    started = true;
    while (!ctx.stop_token().stop_requested()) std::this_thread::yield();
    saw_stop = ctx.cancelled();
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "long", .max_attempts = 1});
  auto queued = engine.enqueue({.kind = "long", .max_attempts = 1});
  REQUIRE((id && queued));
  REQUIRE(eventually([&] { return started.load(); }));

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    engine.stop();
    stopped = true;
  });
  // The grace period runs on the engine's clock: move it until stop() returns.
  REQUIRE(eventually([&] {
    clock->advance(1s);
    return stopped.load();
  }));
  stopper.join();
  CHECK(saw_stop);
  CHECK_FALSE(engine.running());
  for (JobId j : {id->id, queued->id}) check_handed_back(*store, j);
}

TEST_CASE("time: stop() lets a handler that finishes within the grace complete", "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}, .shutdown_grace = 1h});
  std::atomic<bool> in_handler{false};
  std::atomic<bool> stop_called{false};
  std::atomic<bool> was_cancelled{false};
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    in_handler = true;
    while (!stop_called.load()) std::this_thread::yield();
    for (int i = 0; i < 1000; ++i) std::this_thread::yield();
    was_cancelled = ctx.cancelled();
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "k"});
  REQUIRE(id);
  REQUIRE(eventually([&] { return in_handler.load(); }));
  std::thread stopper([&] {
    stop_called = true;
    engine.stop();
  });
  stopper.join();
  auto job = store->get(id->id);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->attempt == 1);
  CHECK_FALSE(was_cancelled);
}

TEST_CASE("time: two engines on one store enqueue each cron minute once", "[engine][time][cron]") {
  auto clock = std::make_shared<ManualClock>();
  clock->set(std::chrono::floor<std::chrono::minutes>(clock->now()) + 1min);  // on a minute boundary
  auto store = make_memory_store(clock);
  std::atomic<int> ticks{0};
  auto make_engine = [&](const char* worker) {
    auto e = std::make_unique<Engine>(store, EngineOptions{.queues = {{"default", 2}}, .worker_id = worker});
    REQUIRE(e->register_handler("tick", [&](JobContext&) { ++ticks; }));
    REQUIRE(e->schedule("every-minute", "* * * * *", {.kind = "tick", .args = R"({"src":"cron"})"}));
    return e;
  };
  auto a = make_engine("a");
  auto b = make_engine("b");
  EventLog log_a(*a);
  EventLog log_b(*b);
  REQUIRE(a->start());
  REQUIRE(b->start());
  const TimePoint t0 = clock->now();
  JobFilter filter;
  filter.kind = "tick";
  for (int minute = 1; minute <= 5; ++minute) {
    clock->advance(1min);
    // Each minute's job is enqueued and has run before time moves on (a jump
    // of a minute would otherwise also expire the running job's lease).
    REQUIRE(eventually([&] {
      auto page = store->list(filter, std::nullopt, 100);
      return page && static_cast<int>(page->jobs.size()) == minute && ticks == minute &&
             std::all_of(page->jobs.begin(), page->jobs.end(),
                         [](const Job& j) { return j.state == JobState::completed; });
    }));
  }
  a->stop();
  b->stop();
  auto page = store->list(filter, std::nullopt, 100);
  REQUIRE(page);
  REQUIRE(page->jobs.size() == 5);
  std::set<std::string> keys;
  std::set<TimePoint> minutes;
  for (const auto& j : page->jobs) {
    keys.insert(j.unique_key);
    minutes.insert(j.run_at);
    CHECK(j.args == R"({"src":"cron"})");
    CHECK(j.state == JobState::completed);
  }
  CHECK(keys.size() == 5);
  CHECK(minutes == std::set<TimePoint>{t0 + 1min, t0 + 2min, t0 + 3min, t0 + 4min, t0 + 5min});
  const auto epoch = std::chrono::duration_cast<std::chrono::seconds>((t0 + 1min).time_since_epoch()).count();
  CHECK(keys.count("porter:cron:every-minute:" + std::to_string(epoch)) == 1);
  CHECK(log_a.count(EventType::enqueued) + log_b.count(EventType::enqueued) == 5);
  CHECK(ticks == 5);
}

TEST_CASE("time: jobs behind a busy worker are not claimed: pending, uncharged, never leased",
          "[engine][time][claim]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}, .lease_for = 10s, .heartbeat_every = 3s,
                        .reaper_every = Duration::zero(), .poll_every = 1s});
  std::atomic<int> started{0};
  std::atomic<bool> release{false};
  // Destroyed before the engine: a failed REQUIRE below still lets the
  // handler return, so ~Engine does not wait on a clock nobody advances.
  struct ReleaseOnExit {
    std::atomic<bool>& flag;
    ~ReleaseOnExit() { flag.store(true); }
  } release_on_exit{release};
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    started.fetch_add(1);
    while (!release.load() && !ctx.cancelled()) std::this_thread::yield();
  }));
  std::vector<NewJob> jobs(5, NewJob{.kind = "k", .max_attempts = 1});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  REQUIRE(engine.start());
  REQUIRE(eventually([&] { return started.load() == 1; }));
  for (int i = 0; i < 4; ++i) {
    clock->advance(3s);  // heartbeats and claim polls come and go; the worker stays busy
    REQUIRE(eventually([&] {
      auto first = store->get(ids->front().id);
      return first && first->lease && first->lease->expires_at >= clock->now() + 7s;
    }));
  }
  for (std::size_t i = 1; i < ids->size(); ++i) {
    auto j = store->get((*ids)[i].id);
    REQUIRE(j);
    CHECK(j->state == JobState::pending);
    CHECK(j->attempt == 0);
    CHECK_FALSE(j->lease.has_value());
  }
  CHECK(store->rescue_expired()->empty());
  release = true;
  for (const auto& r : *ids) {
    auto j = engine.wait_for(r.id, 20s);
    REQUIRE(j);
    CHECK(j->state == JobState::completed);
    CHECK(j->attempt == 1);
  }
}
