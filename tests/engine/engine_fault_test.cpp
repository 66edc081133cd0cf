// The engine against a store that fails (tests/support/fault_store.h): calls
// that come back `unavailable` must never lose a job or kill a thread, and a
// worker cut off from the store is fenced off once its lease expires.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "engine/engine_test_support.h"
#include "support/fault_store.h"

using namespace std::chrono_literals;
using namespace porter;
using porter::test::EventLog;
using porter::test::eventually;
using porter::test::FaultStore;
using porter::test::StoreOp;

TEST_CASE("fault: an engine survives failing store calls without losing jobs", "[engine][fault]") {
  auto faulty = std::make_shared<FaultStore>(make_memory_store(), 7);
  Engine engine(faulty, {.queues = {{"a", 3}, {"b", 2}},
                         .lease_for = 30s, .heartbeat_every = 10ms, .reaper_every = 10ms, .poll_every = 5ms,
                         .claim_batch = 8});
  constexpr int kJobs = 600;
  auto runs = std::make_unique<std::atomic<int>[]>(kJobs);
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    ctx.progress(1, 1);
    ctx.item_error("item", "meh");
    runs[static_cast<std::size_t>(std::stoi(std::string(ctx.args())))].fetch_add(1);
  }));
  std::vector<NewJob> jobs;
  for (int i = 0; i < kJobs; ++i) jobs.push_back({.kind = "k", .args = std::to_string(i), .queue = i % 2 ? "a" : "b"});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);

  faulty->fail_one_in(4, {StoreOp::claim, StoreOp::heartbeat, StoreOp::finish, StoreOp::next_run_at,
                          StoreOp::rescue_expired, StoreOp::report_progress, StoreOp::add_item_errors});
  REQUIRE(engine.start());
  for (const auto& r : *ids) {
    auto job = engine.wait_for(r.id, 60s);
    REQUIRE(job);
    REQUIRE(job->state == JobState::completed);
  }
  CHECK(faulty->injected() > 0);
  // Finish batches carry many jobs (prefetched claims), yet finish was called
  // repeatedly, so at a 1-in-4 fault rate its failures were ridden out too.
  CHECK(faulty->calls(StoreOp::finish) > 1);
  engine.stop();
  int never = 0;
  for (int i = 0; i < kJobs; ++i) never += runs[static_cast<std::size_t>(i)].load() == 0 ? 1 : 0;
  CHECK(never == 0);

  // A failing enqueue reports the error and inserts nothing.
  faulty->fail_next(1, {StoreOp::insert});
  auto refused = engine.enqueue({.kind = "k", .args = "0"});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == ErrorCode::unavailable);
}

TEST_CASE("fault: a worker that cannot heartbeat loses its job to a rescuer and is fenced off",
          "[engine][fault][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  auto cut_off = std::make_shared<FaultStore>(store);
  cut_off->fail_one_in(1, {StoreOp::heartbeat});  // every heartbeat of engine A fails

  Engine a(cut_off, {.queues = {{"default", 1}}, .lease_for = 10s, .heartbeat_every = 3s,
                     .reaper_every = Duration::zero(), .shutdown_grace = Duration::zero(), .worker_id = "a"});
  std::atomic<bool> a_started{false};
  std::atomic<bool> a_release{false};
  REQUIRE(a.register_handler("k", [&](JobContext& ctx) {
    a_started = true;
    while (!a_release.load()) std::this_thread::yield();
    ctx.set_result(R"({"by":"a"})");
  }));
  REQUIRE(a.start());
  auto id = a.enqueue({.kind = "k", .max_attempts = 3});
  REQUIRE(id);
  REQUIRE(eventually([&] { return a_started.load(); }));

  Engine b(store, {.queues = {{"default", 1}}, .lease_for = 10s, .heartbeat_every = 3s, .reaper_every = 1s,
                   .worker_id = "b"});
  EventLog b_log(b);
  REQUIRE(b.register_handler("k", [](JobContext& ctx) { ctx.set_result(R"({"by":"b"})"); }));
  REQUIRE(b.start());
  clock->advance(4s);
  REQUIRE(eventually([&] { return cut_off->calls(StoreOp::heartbeat) > 0; }));  // A tried, and failed
  clock->advance(7s);  // A's lease runs out: nobody extended it
  auto job = b.wait_for(id->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->attempt == 2);
  CHECK(job->result == R"({"by":"b"})");
  REQUIRE(job->errors.size() == 1);  // the rescue of attempt 1
  // The reaper emits `rescued` after its store call returns, which can be after
  // the claimer already ran the job: wait for the event, then count it.
  CHECK(eventually([&] { return b_log.count(EventType::rescued, id->id) >= 1; }));
  CHECK(b_log.count(EventType::rescued, id->id) == 1);

  // A's handler finally returns: its outcome is stale and changes nothing.
  a_release = true;
  a.stop();
  auto after = store->get(id->id);
  REQUIRE(after);
  CHECK(after->state == JobState::completed);
  CHECK(after->result == R"({"by":"b"})");
  CHECK(after->attempt == 2);
}

namespace {

// A store whose in-process events never reach this engine: what an engine
// sees of jobs that another process works on.
class DeafStore final : public porter::test::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::uint64_t add_listener(Listener) override { return 1; }
  void remove_listener(std::uint64_t) override {}
};

}  // namespace

TEST_CASE("fault: wait_for and on_finished notice jobs finished by another process", "[engine][fault]") {
  auto store = make_memory_store();
  Engine watcher(std::make_shared<DeafStore>(store),
                 {.queues = {{"default", 1}}, .poll_every = 5ms, .accept_unregistered_kinds = true});
  auto id = watcher.enqueue({.kind = "elsewhere"});
  REQUIRE(id);
  std::atomic<int> called{0};
  REQUIRE(watcher.on_finished(id->id, [&](const Job& j) {
    if (j.state == JobState::completed) ++called;
  }));

  std::thread other_process([&] {
    auto claimed = store->claim({.queue = "default", .worker = "other", .limit = 1});
    if (claimed && claimed->size() == 1) {
      (void)store->finish(std::vector<Outcome>{{.lease = claimed->front().lease_ref(), .kind = OutcomeKind::complete}});
    }
  });
  auto job = watcher.wait_for(id->id, 20s);
  other_process.join();
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  REQUIRE(eventually([&] { return called == 1; }));
}
