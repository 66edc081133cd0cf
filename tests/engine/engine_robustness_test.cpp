// Issue 8, the engine's part: no input, handler or fault may hang the engine,
// run a job twice or lose one. Each case failed before its fix.
#include <catch2/catch.hpp>

#include <atomic>
#include <malloc.h>
#include <thread>

#include "engine/engine_test_support.h"

using namespace std::chrono_literals;
using namespace porter;
using porter::test::EventLog;
using porter::test::eventually;

TEST_CASE("robust: subscribing to engine B from inside engine A's callback takes effect", "[engine][robust]") {
  Engine a(make_memory_store(), {.accept_unregistered_kinds = true});
  Engine b(make_memory_store(), {.accept_unregistered_kinds = true});
  std::atomic<int> heard_from_b{0};
  std::uint64_t b_id = 0;
  const auto a_id = a.subscribe([&](const Event&) {
    if (b_id == 0) b_id = b.subscribe([&](const Event&) { heard_from_b.fetch_add(1); });
  });
  REQUIRE(a.enqueue({.kind = "k"}));
  REQUIRE(b_id != 0);
  REQUIRE(b.enqueue({.kind = "k"}));  // `enqueued` is delivered on this thread
  CHECK(heard_from_b.load() == 1);
  a.unsubscribe(a_id);
  b.unsubscribe(b_id);
}

TEST_CASE("robust: unsubscribing from B inside A's callback waits for B's call in flight", "[engine][robust]") {
  Engine a(make_memory_store(), {.accept_unregistered_kinds = true});
  Engine b(make_memory_store(), {.accept_unregistered_kinds = true});
  std::atomic<bool> b_in_call{false}, release{false};
  const auto b_id = b.subscribe([&](const Event&) {
    b_in_call.store(true);
    while (!release.load()) std::this_thread::sleep_for(1ms);
    b_in_call.store(false);
  });
  std::thread b_notifier([&] { (void)b.enqueue({.kind = "k"}); });
  REQUIRE(eventually([&] { return b_in_call.load(); }));
  std::thread releaser([&] {
    std::this_thread::sleep_for(50ms);  // lets a wrong unsubscribe return first; not a timing assertion
    release.store(true);
  });
  std::atomic<bool> call_was_over{false};
  const auto a_id = a.subscribe([&](const Event&) {
    b.unsubscribe(b_id);
    call_was_over.store(!b_in_call.load());
  });
  REQUIRE(a.enqueue({.kind = "k"}));
  CHECK(call_was_over.load());
  releaser.join();
  b_notifier.join();
  a.unsubscribe(a_id);
}

TEST_CASE("robust: a callback may enqueue on its own engine (nested notification)", "[engine][robust]") {
  Engine a(make_memory_store(), {.accept_unregistered_kinds = true});
  std::atomic<int> heard{0};
  const auto id = a.subscribe([&](const Event& e) {
    if (heard.fetch_add(1) == 0) REQUIRE(a.enqueue({.kind = "inner"}));
    (void)e;
  });
  REQUIRE(a.enqueue({.kind = "outer"}));
  CHECK(heard.load() == 2);
  a.unsubscribe(id);
}

TEST_CASE("robust: item errors beyond what the store keeps are counted, not buffered", "[engine][robust]") {
  auto clock = std::make_shared<ManualClock>();  // no heartbeat flushes the buffer meanwhile
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}});
  constexpr int kReports = 1'000'000;
  std::atomic<std::size_t> grew_by{0};
  REQUIRE(engine.register_handler("bulk", [&](JobContext& ctx) {
    const std::size_t before = mallinfo2().uordblks;
    for (int i = 0; i < kReports; ++i) {
      ctx.item_error("row " + std::to_string(i), "the e-mail address of this row is not valid at all");
    }
    const std::size_t after = mallinfo2().uordblks;
    grew_by.store(after > before ? after - before : 0);
  }));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "bulk"}, 60s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->item_error_count == kReports);
  REQUIRE(job->item_errors.size() == kMaxStoredItemErrors);
  CHECK(job->item_errors.front().item == "row 0");
  CHECK(job->item_errors.back().item == "row " + std::to_string(kMaxStoredItemErrors - 1));
  // A million buffered reports take over 100 MB; the kept ones take kilobytes.
  CHECK(grew_by.load() < 8u * 1024 * 1024);
}

TEST_CASE("robust: Engine(nullptr) is a programming error reported as invalid_argument", "[engine][robust]") {
  CHECK_THROWS_AS(Engine(nullptr), std::invalid_argument);
}

TEST_CASE("robust: register_handler and start() refuse names that enqueue always refuses", "[engine][robust]") {
  Engine engine(make_memory_store());
  for (std::string bad : {std::string("tab\tkind"), std::string("nl\nkind"), std::string("del\x7f"),
                          std::string(kMaxNameBytes + 1, 'k'), std::string()}) {
    auto s = engine.register_handler(bad, [](JobContext&) {});
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == ErrorCode::invalid_argument);
  }
  Engine queues(make_memory_store(), {.queues = {{"bad\x01queue", 1}}});
  auto s = queues.start();
  REQUIRE_FALSE(s);
  CHECK_THAT(s.error().message(), Catch::Contains("control character"));
}

TEST_CASE("robust: a custom retry policy that throws fails the job, not the process", "[engine][robust]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  EventLog log(engine);
  const RetryPolicy policy{.max_attempts = 5, .custom = [](int) -> Duration { throw std::runtime_error("no table"); }};
  REQUIRE(engine.register_handler("k", [](JobContext&) { throw std::runtime_error("smtp down"); }, {.retry = policy}));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "k"});
  REQUIRE(job);
  CHECK(job->state == JobState::failed);
  REQUIRE(job->errors.size() == 1);
  CHECK_THAT(job->errors[0].message, Catch::Contains("smtp down") && Catch::Contains("retry policy") &&
                                         Catch::Contains("no table"));
}

TEST_CASE("robust: wait_for(milliseconds::max()) waits instead of timing out at once", "[engine][robust]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  std::atomic<bool> release{false};
  REQUIRE(engine.register_handler("k", [&](JobContext&) {
    while (!release.load()) std::this_thread::sleep_for(1ms);
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "k"});
  REQUIRE(id);
  std::thread releaser([&] {
    std::this_thread::sleep_for(20ms);
    release.store(true);
  });
  auto job = engine.wait_for(id->id, std::chrono::milliseconds::max());
  releaser.join();
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
}

TEST_CASE("robust: a shutdown_grace of Duration::max() waits for the handler", "[engine][robust]") {
  auto clock = std::make_shared<ManualClock>();
  Engine engine(make_memory_store(clock), {.queues = {{"default", 1}}, .shutdown_grace = Duration::max()});
  std::atomic<bool> started{false}, release{false}, stopped_early{false};
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    started.store(true);
    while (!release.load()) {
      if (ctx.cancelled()) stopped_early.store(true);
      std::this_thread::sleep_for(1ms);
    }
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "k"});
  REQUIRE(id);
  REQUIRE(eventually([&] { return started.load(); }));
  std::thread stopper([&] { engine.stop(); });
  clock->advance(5s);  // an overflowing deadline is already past; the lease (30 s) is not
  // Nothing should happen: this only gives a wrong stop() the chance to cancel.
  CHECK_FALSE(eventually([&] { return stopped_early.load(); }, 200ms));
  release.store(true);
  stopper.join();
  auto job = engine.store().get(id->id);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
}

TEST_CASE("robust: one cron template that cannot be inserted does not stop the others", "[engine][robust][cron]") {
  auto clock = std::make_shared<ManualClock>(ManualClock::kDefaultStart);
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}}});
  EventLog log(engine);
  std::atomic<int> good_runs{0};
  REQUIRE(engine.register_handler("good", [&](JobContext&) { good_runs.fetch_add(1); }));
  REQUIRE(engine.register_handler("dep", [](JobContext&) {}));
  // A dependency that existed when the schedule was made, then was discarded.
  auto dep = engine.enqueue({.kind = "dep"});
  REQUIRE(dep);
  REQUIRE(engine.schedule("broken", "* * * * *", {.kind = "good", .depends_on = {dep->id}}));
  REQUIRE(engine.schedule("fine", "* * * * *", {.kind = "good"}));
  REQUIRE(engine.start());
  REQUIRE(engine.wait_for(dep->id, 10s));
  REQUIRE(store->discard(dep->id));
  clock->advance(std::chrono::minutes(1));
  REQUIRE(eventually([&] { return good_runs.load() >= 1; }));
  clock->advance(std::chrono::minutes(1));
  REQUIRE(eventually([&] { return good_runs.load() >= 2; }));
  REQUIRE(eventually([&] { return log.count(EventType::schedule_failed) >= 1; }));
  const auto failed = log.of(EventType::schedule_failed);
  CHECK_THAT(failed[0].message, Catch::Contains("broken") && Catch::Contains(std::to_string(dep->id)));
}

TEST_CASE("robust: progress past its total is kept at 100 percent, not dropped", "[engine][robust]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 1}}});
  REQUIRE(engine.register_handler("count", [](JobContext& ctx) {
    ctx.progress(150, 100, "overshot");  // the store refuses done > total: the engine saturates it
  }));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "count"});
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->progress.done == 100);
  CHECK(job->progress.total == 100);
  CHECK(job->progress.message == "overshot");
  REQUIRE(job->progress.percent());
  CHECK(*job->progress.percent() == 100.0);
}

TEST_CASE("robust: the maintenance thread prunes finished jobs after their retention window", "[engine][robust]") {
  auto clock = std::make_shared<ManualClock>(ManualClock::kDefaultStart);
  auto store = make_memory_store(clock);
  Engine engine(store, {.queues = {{"default", 1}},
                        .retention = {.completed = std::chrono::hours(1), .interval = std::chrono::minutes(1)}});
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "k"});
  REQUIRE(job);
  clock->advance(std::chrono::minutes(30));
  std::this_thread::sleep_for(50ms);  // a maintenance pass may run: the job is inside its window
  REQUIRE(store->get(job->id));
  clock->advance(std::chrono::minutes(31));
  CHECK(eventually([&] { return !store->get(job->id).has_value(); }));
}

TEST_CASE("robust: an engine whose worker_id is as long as allowed still announces itself", "[engine][robust]") {
  auto store = make_memory_store();
  Engine engine(store, {.queues = {{"default", 1}}, .worker_id = std::string(kMaxOwnerBytes, 'w')});
  EventLog log(engine);
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  REQUIRE(engine.start());
  REQUIRE(porter::test::enqueue_and_wait(engine, {.kind = "k"}));
  CHECK(log.count(EventType::maintenance_failed) == 0);
  auto stats = store->stats(std::chrono::minutes(5));
  REQUIRE(stats);
  CHECK(stats->unhandled.empty());
}
