// Engine: lifecycle, handler outcomes, options, ordering and queue behaviour,
// run over the memory store. Tests that need time to pass use a ManualClock;
// the rest wait on conditions (wait_for, latches), never on sleeps.
#include <catch2/catch.hpp>

#include <atomic>
#include <latch>
#include <mutex>
#include <thread>

#include "engine/engine_test_support.h"

using namespace std::chrono_literals;
using namespace porter;
using porter::test::EventLog;
using porter::test::eventually;

TEST_CASE("engine: start, run a job, stop", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 2}}});
  std::atomic<int> runs{0};
  REQUIRE(engine.register_handler("hello", [&](JobContext& ctx) {
    ++runs;
    ctx.set_result(R"({"greeting":"hi"})");
  }));
  CHECK_FALSE(engine.running());
  REQUIRE(engine.start());
  CHECK(engine.running());
  auto id = engine.enqueue({.kind = "hello", .args = R"({"name":"ada"})"});
  REQUIRE(id);
  CHECK_FALSE(id->duplicate);
  auto job = engine.wait_for(id->id, 10s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->result == R"({"greeting":"hi"})");
  CHECK(job->attempt == 1);
  CHECK(runs == 1);
  engine.stop();
  CHECK_FALSE(engine.running());
  engine.stop();  // idempotent
}

TEST_CASE("engine: start twice is an error, restart after stop works", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  REQUIRE(engine.start());
  auto again = engine.start();
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == ErrorCode::wrong_state);
  engine.stop();
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "k"});
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
}

TEST_CASE("engine: bad options are rejected by start()", "[engine]") {
  struct Case {
    const char* what;
    EngineOptions options;
  };
  const std::vector<Case> cases = {
      {"zero concurrency", {.queues = {{"a", 0}}}},
      {"negative concurrency", {.queues = {{"a", -3}}}},
      {"no queues", {.queues = {}}},
      {"empty queue name", {.queues = {{"", 1}}}},
      {"duplicate queue", {.queues = {{"a", 1}, {"b", 1}, {"a", 2}}}},
      {"heartbeat == lease", {.lease_for = 10s, .heartbeat_every = 10s}},
      {"heartbeat > lease", {.lease_for = 10s, .heartbeat_every = 20s}},
      {"zero heartbeat", {.heartbeat_every = Duration::zero()}},
      {"zero poll", {.poll_every = Duration::zero()}},
      {"negative reaper", {.reaper_every = -1s}},
      {"negative grace", {.shutdown_grace = -1s}},
      {"zero claim batch", {.claim_batch = 0}},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    Engine engine(make_memory_store(), c.options);
    auto s = engine.start();
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == ErrorCode::invalid_argument);
    CHECK_FALSE(engine.running());
  }
  auto s = Engine(make_memory_store(), {.queues = {{"a", 1}, {"a", 1}}}).start();
  REQUIRE_FALSE(s);
  CHECK_THAT(s.error().message(), Catch::Contains("'a'"));
}

TEST_CASE("engine: register_handler and schedule reject bad input", "[engine]") {
  Engine engine(make_memory_store());
  CHECK(engine.register_handler("", [](JobContext&) {}).error().code() == ErrorCode::invalid_argument);
  CHECK(engine.register_handler("k", nullptr).error().code() == ErrorCode::invalid_argument);
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  auto twice = engine.register_handler("k", [](JobContext&) {});
  REQUIRE_FALSE(twice);
  CHECK_THAT(twice.error().message(), Catch::Contains("already registered"));

  auto bad_cron = engine.schedule("s", "61 * * * *", {.kind = "k"});
  REQUIRE_FALSE(bad_cron);
  CHECK_THAT(bad_cron.error().message(), Catch::Contains("minute field"));
  CHECK_FALSE(engine.schedule("s", "* * * * *", {.kind = "unknown"}));
  CHECK_FALSE(engine.schedule("", "* * * * *", {.kind = "k"}));
  REQUIRE(engine.schedule("s", "* * * * *", {.kind = "k"}));
  CHECK_FALSE(engine.schedule("s", "@daily", {.kind = "k"}));

  REQUIRE(engine.start());
  CHECK(engine.register_handler("late", [](JobContext&) {}).error().code() == ErrorCode::wrong_state);
  CHECK(engine.schedule("late", "@daily", {.kind = "k"}).error().code() == ErrorCode::wrong_state);
}

TEST_CASE("engine: enqueue fills max_attempts from the kind's policy and validates", "[engine]") {
  Engine engine(make_memory_store(), {.retry = RetryPolicy{.max_attempts = 7}});
  REQUIRE(engine.register_handler("plain", [](JobContext&) {}));
  REQUIRE(engine.register_handler("picky", [](JobContext&) {}, {.retry = RetryPolicy{.max_attempts = 3}}));
  auto a = engine.enqueue({.kind = "plain"});
  auto b = engine.enqueue({.kind = "picky"});
  auto c = engine.enqueue({.kind = "picky", .max_attempts = 11});
  REQUIRE((a && b && c));
  CHECK(engine.store().get(a->id)->max_attempts == 7);
  CHECK(engine.store().get(b->id)->max_attempts == 3);
  CHECK(engine.store().get(c->id)->max_attempts == 11);

  auto bad_json = engine.enqueue({.kind = "plain", .args = "{nope"});
  REQUIRE_FALSE(bad_json);
  CHECK(bad_json.error().code() == ErrorCode::invalid_argument);

  auto batch = engine.enqueue_batch({{.kind = "plain"}, {.kind = "typo"}});
  REQUIRE_FALSE(batch);
  CHECK_THAT(batch.error().message(), Catch::Contains("job 1") && Catch::Contains("typo"));
  auto all = engine.store().list({}, std::nullopt, 100);
  REQUIRE(all);
  CHECK(all->jobs.size() == 3);  // nothing of the failed batch was inserted
}

TEST_CASE("engine: an unregistered kind is refused at enqueue, and waits unclaimed where no engine handles it", "[engine]") {
  auto store = make_memory_store();
  Engine producer(store, {.accept_unregistered_kinds = true});
  Engine strict(store);
  auto refused = strict.enqueue({.kind = "ghost"});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == ErrorCode::invalid_argument);
  CHECK_THAT(refused.error().message(), Catch::Contains("ghost"));

  auto id = producer.enqueue({.kind = "ghost", .max_attempts = 2});
  REQUIRE(id);
  auto done = producer.enqueue({.kind = "other"});
  REQUIRE(done);
  {
    // A rolling deploy: this engine lacks the handler. It never claims the
    // job (no attempt burnt), and an administrator sees the job unhandled.
    Engine worker(store, {.queues = {{"default", 1}}, .worker_id = "node-7"});
    REQUIRE(worker.register_handler("other", [](JobContext&) {}));
    REQUIRE(worker.start());
    REQUIRE(worker.wait_for(done->id, 10s));
    auto job = store->get(id->id);
    REQUIRE(job);
    CHECK(job->state == JobState::pending);
    CHECK(job->attempt == 0);
    auto stats = store->stats(std::chrono::minutes(5));
    REQUIRE(stats);
    REQUIRE(stats->unhandled.size() == 1);
    CHECK(stats->unhandled[0].kind == "ghost");
    CHECK(stats->unhandled[0].queue == "default");
    CHECK(stats->unhandled[0].pending == 1);
  }
  // The engine that brings the handler runs it.
  Engine upgraded(store, {.queues = {{"default", 1}}});
  REQUIRE(upgraded.register_handler("ghost", [](JobContext&) {}));
  REQUIRE(upgraded.start());
  auto job = upgraded.wait_for(id->id, 10s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->attempt == 1);
  auto stats = store->stats(std::chrono::minutes(5));
  REQUIRE(stats);
  CHECK(stats->unhandled.empty());
}

TEST_CASE("engine: PermanentError fails at once, kept with its message", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  EventLog log(engine);
  REQUIRE(engine.register_handler("bad", [](JobContext&) { throw PermanentError("row 3 has no email"); }));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "bad", .max_attempts = 5});
  REQUIRE(job);
  CHECK(job->state == JobState::failed);
  CHECK(job->attempt == 1);
  REQUIRE(job->errors.size() == 1);
  CHECK(job->errors[0].permanent);
  CHECK(job->errors[0].message == "row 3 has no email");
  REQUIRE(eventually([&] { return log.count(EventType::failed, job->id) == 1; }));
  CHECK(log.of(EventType::failed, job->id)[0].message == "row 3 has no email");
  CHECK(log.count(EventType::retried, job->id) == 0);
}

TEST_CASE("engine: any other exception retries until attempts run out, keeping every error", "[engine]") {
  Engine engine(make_memory_store(),
                {.queues = {{"default", 2}}, .retry = RetryPolicy{.base = Duration::zero(), .jitter = false}});
  EventLog log(engine);
  std::atomic<int> calls{0};
  REQUIRE(engine.register_handler("flaky", [&](JobContext& ctx) {
    ++calls;
    if (ctx.attempt() == 1) throw std::runtime_error("timeout talking to smtp");
    if (ctx.attempt() == 2) throw 42;  // not a std::exception
    throw std::logic_error("still broken");
  }));
  REQUIRE(engine.register_handler("ok", [](JobContext&) {}));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "flaky", .max_attempts = 3});
  REQUIRE(job);
  CHECK(job->state == JobState::failed);
  CHECK(calls == 3);
  REQUIRE(job->errors.size() == 3);
  CHECK(job->errors[0].attempt == 1);
  CHECK(job->errors[0].message == "timeout talking to smtp");
  CHECK_THAT(job->errors[1].message, Catch::Contains("not a std::exception"));
  CHECK(job->errors[2].message == "still broken");
  for (const auto& e : job->errors) CHECK_FALSE(e.permanent);
  REQUIRE(eventually([&] { return log.count(EventType::failed, job->id) == 1; }));
  CHECK(log.count(EventType::retried, job->id) == 2);
  CHECK(log.count(EventType::started, job->id) == 3);

  // The workers survived: a good job still runs.
  auto ok = engine.enqueue({.kind = "ok"});
  REQUIRE(ok);
  CHECK(engine.wait_for(ok->id, 10s)->state == JobState::completed);
}

TEST_CASE("engine: one worker runs jobs by priority, then run_at, then id", "[engine]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}});
  std::mutex mu;
  std::vector<std::string> order;
  REQUIRE(engine.register_handler("rec", [&](JobContext& ctx) {
    std::lock_guard lock(mu);
    order.emplace_back(ctx.args());
  }));
  const TimePoint t = clock->now();
  std::vector<NewJob> jobs = {
      {.kind = "rec", .args = R"("p0-late")", .priority = 0, .run_at = t - 1s},
      {.kind = "rec", .args = R"("p5")", .priority = 5, .run_at = t - 9s},
      {.kind = "rec", .args = R"("p0-early-a")", .priority = 0, .run_at = t - 5s},
      {.kind = "rec", .args = R"("pm3")", .priority = -3, .run_at = t},
      {.kind = "rec", .args = R"("p0-early-b")", .priority = 0, .run_at = t - 5s},
  };
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  REQUIRE(engine.start());
  for (const auto& r : *ids) REQUIRE(engine.wait_for(r.id, 10s));
  std::lock_guard lock(mu);
  CHECK(order == std::vector<std::string>{R"("pm3")", R"("p0-early-a")", R"("p0-early-b")", R"("p0-late")",
                                          R"("p5")"});
}

TEST_CASE("engine: a flood in one queue does not starve another", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"bulk", 2}, {"urgent", 1}}});
  std::atomic<bool> release{false};
  std::atomic<int> bulk_started{0};
  REQUIRE(engine.register_handler("slow", [&](JobContext&) {
    ++bulk_started;
    while (!release.load()) std::this_thread::yield();
  }));
  REQUIRE(engine.register_handler("quick", [](JobContext&) {}));
  REQUIRE(engine.start());
  std::vector<NewJob> flood(500, NewJob{.kind = "slow", .queue = "bulk"});
  REQUIRE(engine.enqueue_batch(flood));
  REQUIRE(eventually([&] { return bulk_started == 2; }));
  // Both bulk workers are stuck and 498 bulk jobs wait: urgent work still runs.
  for (int i = 0; i < 5; ++i) {
    auto id = engine.enqueue({.kind = "quick", .queue = "urgent"});
    REQUIRE(id);
    auto job = engine.wait_for(id->id, 10s);
    REQUIRE(job);
    CHECK(job->state == JobState::completed);
  }
  CHECK(bulk_started == 2);  // the bulk queue's limit held meanwhile
  release = true;
}

TEST_CASE("engine: per-queue concurrency limits hold", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"a", 3}, {"b", 2}}, .claim_batch = 4});
  struct Gauge {
    std::atomic<int> now{0};
    std::atomic<int> max{0};
  };
  Gauge a, b;
  const auto measure = [](Gauge& g) {
    const int n = ++g.now;
    int seen = g.max.load();
    while (n > seen && !g.max.compare_exchange_weak(seen, n)) {
    }
    for (int i = 0; i < 200; ++i) std::this_thread::yield();
    --g.now;
  };
  REQUIRE(engine.register_handler("ja", [&](JobContext&) { measure(a); }));
  REQUIRE(engine.register_handler("jb", [&](JobContext&) { measure(b); }));
  REQUIRE(engine.start());
  std::vector<NewJob> jobs;
  for (int i = 0; i < 300; ++i) {
    jobs.push_back({.kind = "ja", .queue = "a"});
    jobs.push_back({.kind = "jb", .queue = "b"});
  }
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  for (const auto& r : *ids) REQUIRE(engine.wait_for(r.id, 30s)->state == JobState::completed);
  CHECK(a.max <= 3);
  CHECK(b.max <= 2);
  CHECK(a.max >= 1);
  CHECK(b.max >= 1);
}

TEST_CASE("engine: every subscriber hears each event once", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 4}}});
  EventLog first(engine);
  EventLog second(engine);
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  REQUIRE(engine.start());
  std::vector<NewJob> jobs(50, NewJob{.kind = "k"});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  for (const auto& r : *ids) REQUIRE(engine.wait_for(r.id, 10s));
  for (EventLog* log : {&first, &second}) {
    REQUIRE(eventually([&] { return log->count(EventType::completed) == 50; }));
    for (const auto& r : *ids) {
      CHECK(log->count(EventType::enqueued, r.id) == 1);
      CHECK(log->count(EventType::started, r.id) == 1);
      CHECK(log->count(EventType::completed, r.id) == 1);
      const auto done = log->of(EventType::completed, r.id);
      CHECK(done[0].kind == "k");
      CHECK(done[0].queue == "default");
      CHECK(done[0].attempt == 1);
    }
  }
  engine.stop();
  CHECK(first.all().size() == 150);
  CHECK(second.all().size() == 150);
}

TEST_CASE("engine: wait_for times out, on_finished fires once, before or after the end", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  std::atomic<bool> go{false};
  REQUIRE(engine.register_handler("gate", [&](JobContext&) {
    while (!go.load()) std::this_thread::yield();
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "gate"});
  REQUIRE(id);
  auto early = engine.wait_for(id->id, 20ms);
  REQUIRE_FALSE(early);
  CHECK(early.error().code() == ErrorCode::timeout);

  std::atomic<int> before{0};
  std::atomic<JobState> seen{JobState::pending};
  REQUIRE(engine.on_finished(id->id, [&](const Job& j) {
    ++before;
    seen = j.state;
  }));
  go = true;
  REQUIRE(engine.wait_for(id->id, 10s));
  REQUIRE(eventually([&] { return before == 1; }));
  CHECK(seen == JobState::completed);

  int after = 0;
  REQUIRE(engine.on_finished(id->id, [&](const Job&) { ++after; }));
  CHECK(after == 1);  // already final: called at once
  CHECK(engine.on_finished(987654, [](const Job&) {}).error().code() == ErrorCode::not_found);
  CHECK(engine.wait_for(987654, 10ms).error().code() == ErrorCode::not_found);
  engine.stop();
  CHECK(before == 1);
}

TEST_CASE("engine: a cancel request reaches a running handler at once", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}, .lease_for = 30s, .heartbeat_every = 10s});
  EventLog log(engine);
  std::atomic<bool> started{false};
  std::atomic<bool> token_fired{false};  // Catch assertions stay on the test thread
  REQUIRE(engine.register_handler("long", [&](JobContext& ctx) {
    started = true;
    while (!ctx.cancelled()) std::this_thread::yield();
    token_fired = ctx.stop_token().stop_requested();
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "long"});
  REQUIRE(id);
  REQUIRE(eventually([&] { return started.load(); }));
  auto r = engine.store().cancel(id->id, "operator");
  REQUIRE(r);
  CHECK(*r == CancelResult::requested);
  auto job = engine.wait_for(id->id, 10s);
  REQUIRE(job);
  CHECK(job->state == JobState::cancelled);
  CHECK(token_fired);
  REQUIRE(eventually([&] { return log.count(EventType::cancelled, id->id) == 1; }));
}

TEST_CASE("engine: progress, item errors and result are stored", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  REQUIRE(engine.register_handler("import", [](JobContext& ctx) {
    ctx.progress(1, 4, "row 1");
    ctx.item_error("row 2", "no email");
    ctx.progress(3, 4, "row 3");
    ctx.item_error("row 4", "duplicate");
    ctx.progress(4, 4, "done");
    ctx.set_result(R"({"imported":2})");
  }));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "import"});
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->progress.done == 4);
  CHECK(job->progress.total == 4);
  CHECK(job->progress.message == "done");
  CHECK(job->item_error_count == 2);
  REQUIRE(job->item_errors.size() == 2);
  CHECK(job->item_errors[0].item == "row 2");
  CHECK(job->item_errors[1].message == "duplicate");
  CHECK(job->result == R"({"imported":2})");
}

TEST_CASE("engine: a parent spawns children, waits, and reads them in its callback", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 3}}});
  std::atomic<int> callbacks{0};
  std::atomic<int> problems{0};  // counted on handler threads, checked on the test thread
  REQUIRE(engine.register_handler("child", [](JobContext& ctx) {
    ctx.set_result(std::string("{\"echo\":") + std::string(ctx.args()) + "}");
  }));
  REQUIRE(engine.register_handler("parent", [&](JobContext& ctx) {
    if (!ctx.is_callback()) {
      for (int i = 0; i < 3; ++i) {
        if (!ctx.spawn(NewJob{.kind = "child", .args = std::to_string(i)})) ++problems;
      }
      if (ctx.spawn(NewJob{.kind = "chlid"})) ++problems;  // a typo'd kind is refused
      ctx.wait_for_children();
      return;
    }
    ++callbacks;
    auto kids = ctx.children();
    if (!kids || kids->size() != 3) {
      ++problems;
      return;
    }
    std::string results;
    for (const auto& k : *kids) {
      if (k.state != JobState::completed) ++problems;
      results += (results.empty() ? "" : ",") + k.result;  // a result must be JSON
    }
    ctx.set_result("[" + results + "]");
  }));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "parent"});
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(callbacks == 1);
  CHECK(problems == 0);
  CHECK(job->result == R"([{"echo":0},{"echo":1},{"echo":2}])");
  CHECK(job->children_total == 3);
}

TEST_CASE("engine: stop() called from a handler returns, and the engine stops after it", "[engine]") {
  auto store = make_memory_store();
  Engine engine(store, {.queues = {{"default", 2}}});
  std::atomic<bool> returned{false};
  REQUIRE(engine.register_handler("halt", [&](JobContext&) {
    engine.stop();  // would join this very worker if it blocked
    returned = true;
  }));
  REQUIRE(engine.start());
  auto done = porter::test::enqueue_and_wait(engine, {.kind = "halt"});
  REQUIRE(porter::test::eventually([&] { return !engine.running(); }));
  CHECK(returned);
  REQUIRE(done);
  CHECK(done->state == JobState::completed);  // the handler's job ends normally, within the grace
  engine.stop();                               // and a later stop() from outside is a no-op
  REQUIRE(engine.start());                     // the engine can run again
  CHECK(engine.running());
  engine.stop();
  CHECK_FALSE(engine.running());
}

TEST_CASE("engine: unsubscribe waits for a call in flight, and a subscriber may unsubscribe itself", "[engine]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));

  // A subscriber that leaves after the first event it hears, from inside that call.
  std::atomic<int> one_shot_calls{0};
  std::atomic<std::uint64_t> one_shot_id{0};
  one_shot_id = engine.subscribe([&](const Event&) {
    ++one_shot_calls;
    engine.unsubscribe(one_shot_id.load());
  });

  // A subscriber that blocks in its call until released.
  std::latch entered(1);
  std::atomic<bool> release{false};
  std::atomic<bool> in_call{false};
  std::atomic<bool> first{true};
  const auto slow = engine.subscribe([&](const Event& e) {
    // `started` comes from a worker thread (`enqueued` from the enqueuing one).
    if (e.type != EventType::started || !first.exchange(false)) return;
    in_call = true;
    entered.count_down();
    while (!release.load()) std::this_thread::yield();
    in_call = false;
  });

  REQUIRE(engine.start());
  REQUIRE(engine.enqueue({.kind = "k"}));
  entered.wait();
  std::atomic<bool> removed{false};
  std::atomic<bool> call_in_flight_after_remove{false};
  std::thread remover([&] {
    engine.unsubscribe(slow);
    call_in_flight_after_remove = in_call.load();
    removed = true;
  });
  std::this_thread::sleep_for(50ms);  // a remover that does not wait would be done by now
  CHECK_FALSE(removed.load());
  release = true;
  remover.join();
  CHECK_FALSE(call_in_flight_after_remove.load());

  auto more = engine.enqueue({.kind = "k"});
  REQUIRE(more);
  REQUIRE(engine.wait_for(more->id, 20s));
  engine.stop();
  CHECK(one_shot_calls.load() == 1);
}
