// Issue 8, the engine's part: claiming, shutdown, the completer, lease
// deadlines, timeouts, on_finished and run-time metrics. Each case failed
// before its fix.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "engine/engine_test_support.h"
#include "support/fault_store.h"

using namespace std::chrono_literals;
using namespace porter;
using porter::test::EventLog;
using porter::test::eventually;
using porter::test::FaultStore;
using porter::test::ForwardingStore;
using porter::test::StoreOp;

namespace {

std::size_t count_in(Store& store, JobState state) {
  auto page = store.list({.states = {state}}, std::nullopt, 1000);
  return page ? page->jobs.size() : 0;
}

// Records what the engine passes through the seam.
class RecordingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<Job>> claim(const ClaimRequest& request) override {
    {
      std::lock_guard lock(mu_);
      claim_kinds_.push_back(request.kinds);
    }
    return ForwardingStore::claim(request);
  }
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    {
      std::lock_guard lock(mu_);
      for (const auto& o : outcomes) ran_for_.push_back(o.ran_for);
    }
    return ForwardingStore::finish(outcomes);
  }
  Result<Job> get(JobId id) override {
    gets_.fetch_add(1);
    if (discard_final_on_get_) {
      // The job is discarded just before the engine reads it back.
      auto j = ForwardingStore::get(id);
      if (j && is_final(j->state)) (void)ForwardingStore::discard(id);
    }
    return ForwardingStore::get(id);
  }
  std::vector<std::vector<std::string>> claim_kinds() const {
    std::lock_guard lock(mu_);
    return claim_kinds_;
  }
  std::vector<Duration> ran_for() const {
    std::lock_guard lock(mu_);
    return ran_for_;
  }
  std::int64_t gets() const { return gets_.load(); }
  std::atomic<bool> discard_final_on_get_{false};

 private:
  mutable std::mutex mu_;
  std::vector<std::vector<std::string>> claim_kinds_;
  std::vector<Duration> ran_for_;
  std::atomic<std::int64_t> gets_{0};
};

// Rejects (invalid_argument, for the whole batch) any finish that carries the
// result "poison": a store error that retrying cannot cure.
class PoisonStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    for (const auto& o : outcomes) {
      if (o.result == R"("poison")") {
        rejected_.fetch_add(1);
        return make_error(ErrorCode::invalid_argument, "result rejected");
      }
    }
    return ForwardingStore::finish(outcomes);
  }
  std::atomic<int> rejected_{0};
};

}  // namespace

TEST_CASE("life: an engine claims only for free workers, so a burst spreads across engines", "[engine][life]") {
  auto store = make_memory_store();
  std::atomic<int> running{0};
  std::atomic<bool> release{false};
  std::atomic<bool> saw_two{false};
  const auto handler = [&](JobContext&) {
    if (running.fetch_add(1) + 1 >= 2) saw_two.store(true);
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (!release.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
    running.fetch_sub(1);
  };
  Engine a(store, {.queues = {{"default", 1}}, .poll_every = 5ms, .worker_id = "a"});
  Engine b(store, {.queues = {{"default", 1}}, .poll_every = 5ms, .worker_id = "b"});
  REQUIRE(a.register_handler("k", handler));
  REQUIRE(b.register_handler("k", handler));
  std::vector<NewJob> burst(4, NewJob{.kind = "k"});
  auto ids = a.enqueue_batch(burst);
  REQUIRE(ids);
  REQUIRE(a.start());
  REQUIRE(eventually([&] { return running.load() == 1; }));
  REQUIRE(b.start());
  // B gets a job while A's only worker is busy: A did not take the burst.
  CHECK(eventually([&] { return saw_two.load(); }, 10s));
  // Only jobs that started are running; the others were never charged.
  CHECK(count_in(*store, JobState::running) == 2);
  auto pending = store->list({.states = {JobState::pending}}, std::nullopt, 10);
  REQUIRE(pending);
  CHECK(pending->jobs.size() == 2);
  for (const auto& j : pending->jobs) CHECK(j.attempt == 0);
  release.store(true);
  for (const auto& r : *ids) CHECK(a.wait_for(r.id, 20s));
}

TEST_CASE("life: stop() returns while a handler ignores cancellation, and the job is rescued", "[engine][life]") {
  auto store = make_memory_store();
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::atomic<bool>>(false);
  std::atomic<bool> abandoned_event{false};
  JobId id = 0;
  {
    auto a = std::make_unique<Engine>(store, EngineOptions{.queues = {{"default", 1}}, .lease_for = 1s,
                                                           .heartbeat_every = 100ms, .reaper_every = Duration::zero(),
                                                           .shutdown_grace = 50ms, .worker_id = "a"});
    REQUIRE(a->register_handler("stubborn", [release, started](JobContext& ctx) {
      started->store(true);
      while (!release->load()) std::this_thread::sleep_for(1ms);  // ignores its stop token
      ctx.set_result(R"({"by":"a"})");
    }));
    a->subscribe([&](const Event& e) {
      if (e.type == EventType::abandoned) abandoned_event.store(true);
    });
    REQUIRE(a->start());
    auto r = a->enqueue({.kind = "stubborn", .max_attempts = 3});
    REQUIRE(r);
    id = r->id;
    REQUIRE(eventually([&] { return started->load(); }));
    std::thread stopper([&, done] {
      a.reset();  // stop() and the destructor
      done->store(true);
    });
    const bool returned = eventually([&] { return done->load(); }, 20s);
    CHECK(returned);
    if (!returned) release->store(true);
    stopper.join();
  }
  CHECK(abandoned_event.load());
  // The lease is no longer renewed: another engine rescues and runs the job.
  Engine b(store, {.queues = {{"default", 1}}, .reaper_every = 50ms, .poll_every = 5ms, .worker_id = "b"});
  REQUIRE(b.register_handler("stubborn", [](JobContext& ctx) { ctx.set_result(R"({"by":"b"})"); }));
  REQUIRE(b.start());
  auto job = b.wait_for(id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->result == R"({"by":"b"})");
  // The first handler returns after its engine is gone: nothing is used after free.
  release->store(true);
}

TEST_CASE("life: the completer retries an unavailable finish while the lease is valid, stop() included",
          "[engine][life][fault]") {
  auto clock = std::make_shared<ManualClock>();
  auto faulty = std::make_shared<FaultStore>(make_memory_store(clock));
  Engine engine(faulty, {.queues = {{"default", 1}}});
  std::atomic<bool> ran{false};
  REQUIRE(engine.register_handler("k", [&](JobContext&) { ran.store(true); }));
  faulty->fail_next(50, {StoreOp::finish});
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "k"});
  REQUIRE(id);
  REQUIRE(eventually([&] { return ran.load() && faulty->calls(StoreOp::finish) >= 1; }));
  engine.stop();
  auto job = engine.store().get(id->id);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
}

TEST_CASE("life: an outcome the store rejects for good fails alone and stalls nothing", "[engine][life][fault]") {
  auto poison = std::make_shared<PoisonStore>(make_memory_store());
  Engine engine(poison, {.queues = {{"default", 4}}});
  EventLog log(engine);
  REQUIRE(engine.register_handler("k", [](JobContext& ctx) {
    if (ctx.args() == R"("bad")") ctx.set_result(R"("poison")");
  }));
  REQUIRE(engine.start());
  auto bad = engine.enqueue({.kind = "k", .args = R"("bad")"});
  REQUIRE(bad);
  REQUIRE(eventually([&] { return poison->rejected_.load() >= 1; }));
  for (int i = 0; i < 20; ++i) {
    auto job = porter::test::enqueue_and_wait(engine, {.kind = "k", .args = std::to_string(i)});
    REQUIRE(job);
    CHECK(job->state == JobState::completed);
  }
  REQUIRE(eventually([&] { return log.count(EventType::outcome_dropped, bad->id) == 1; }));
  CHECK(poison->rejected_.load() <= 2);  // tried alone once, never in a loop
  auto still = engine.store().get(bad->id);
  REQUIRE(still);
  CHECK(still->state == JobState::running);  // its lease will expire and it will be rescued
}

TEST_CASE("life: a handler learns before its lease can expire that heartbeats fail", "[engine][life][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = make_memory_store(clock);
  auto cut_off = std::make_shared<FaultStore>(store);
  cut_off->fail_one_in(1, {StoreOp::heartbeat});
  Engine engine(cut_off, {.queues = {{"default", 1}}, .lease_for = 10s, .heartbeat_every = 3s,
                          .reaper_every = Duration::zero()});
  std::atomic<bool> started{false};
  std::atomic<bool> told{false};
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    started.store(true);
    while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
    told.store(true);
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "k", .max_attempts = 3});
  REQUIRE(id);
  REQUIRE(eventually([&] { return started.load(); }));
  for (int i = 0; i < 9 && !told.load(); ++i) {
    clock->advance(1s);
    eventually([&] { return told.load(); }, 50ms);
  }
  CHECK(told.load());  // within 9 s of a 10 s lease
  // The outcome still reached the store: a transient failure, retried.
  REQUIRE(eventually([&] {
    auto j = store->get(id->id);
    return j && j->errors.size() == 1;
  }));
  CHECK_THAT(store->get(id->id)->errors[0].message, Catch::Contains("lease could not be renewed"));
}

TEST_CASE("life: KindOptions::timeout stops the handler and retries, then fails as timed out", "[engine][life][time]") {
  auto clock = std::make_shared<ManualClock>();
  Engine engine(make_memory_store(clock), {.queues = {{"default", 1}}});
  std::atomic<int> runs{0};
  REQUIRE(engine.register_handler("slow", [&](JobContext& ctx) {
    runs.fetch_add(1);
    while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
  }, {.retry = RetryPolicy{.base = Duration::zero(), .jitter = false}, .timeout = 5s}));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "slow", .max_attempts = 2});
  REQUIRE(id);
  REQUIRE(eventually([&] { return runs.load() == 1; }));
  clock->advance(6s);
  REQUIRE(eventually([&] { return runs.load() == 2; }));
  clock->advance(6s);
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::failed);
  REQUIRE(job->errors.size() == 2);
  for (const auto& e : job->errors) CHECK_THAT(e.message, Catch::Contains("timed out after 5s"));
}

TEST_CASE("life: on_finished fires even when the job is discarded before the engine reads it", "[engine][life]") {
  auto recording = std::make_shared<RecordingStore>(make_memory_store());
  Engine engine(recording, {.queues = {{"default", 4}}});
  std::atomic<bool> release{false};
  REQUIRE(engine.register_handler("k", [&](JobContext&) {
    while (!release.load()) std::this_thread::sleep_for(1ms);
  }));
  REQUIRE(engine.start());
  constexpr int kJobs = 50;
  std::atomic<int> called{0}, completed{0};
  for (int i = 0; i < kJobs; ++i) {
    auto id = engine.enqueue({.kind = "k"});
    REQUIRE(id);
    REQUIRE(engine.on_finished(id->id, [&](const Job& j) {
      called.fetch_add(1);
      if (j.state == JobState::completed) completed.fetch_add(1);
    }));
  }
  recording->discard_final_on_get_.store(true);
  release.store(true);
  CHECK(eventually([&] { return called.load() == kJobs; }));
  CHECK(completed.load() == kJobs);
}

TEST_CASE("life: thousands of outstanding on_finished callbacks do not make an idle engine poll them all",
          "[engine][life]") {
  auto recording = std::make_shared<RecordingStore>(make_memory_store());
  Engine engine(recording, {.queues = {{"default", 1}}, .poll_every = 10ms, .accept_unregistered_kinds = true});
  constexpr int kJobs = 2000;
  std::vector<NewJob> jobs(kJobs, NewJob{.kind = "elsewhere"});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  for (const auto& r : *ids) REQUIRE(engine.on_finished(r.id, [](const Job&) {}));
  const std::int64_t before = recording->gets();
  std::this_thread::sleep_for(200ms);  // a measuring window, not a timing assertion
  const std::int64_t polled = recording->gets() - before;
  // Every job each poll would be about 2000 x 20 reads; a bounded sweep reads a few per poll.
  CHECK(polled < kJobs * 2);
}

TEST_CASE("life: Outcome::ran_for is the handler's own run time", "[engine][life]") {
  auto recording = std::make_shared<RecordingStore>(make_memory_store());
  Engine engine(recording, {.queues = {{"default", 1}}});
  EventLog log(engine);
  REQUIRE(engine.register_handler("k", [](JobContext&) { std::this_thread::sleep_for(30ms); }));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "k"});
  REQUIRE(job);
  const auto ran = recording->ran_for();
  REQUIRE(ran.size() == 1);
  CHECK(ran[0] >= 30ms);
  CHECK(ran[0] < 10s);
  REQUIRE(eventually([&] { return log.count(EventType::completed, job->id) == 1; }));
  CHECK(log.of(EventType::completed, job->id)[0].ran_for == ran[0]);
}

TEST_CASE("life: every claim names the kinds this engine handles; no handlers, no claims", "[engine][life]") {
  auto recording = std::make_shared<RecordingStore>(make_memory_store());
  {
    Engine idle(recording, {.queues = {{"default", 1}}, .poll_every = 5ms, .accept_unregistered_kinds = true});
    REQUIRE(idle.start());
    REQUIRE(idle.enqueue({.kind = "b"}));
    std::this_thread::sleep_for(50ms);  // gives a wrong claimer time to claim
    CHECK(recording->claim_kinds().empty());
  }
  Engine engine(recording, {.queues = {{"default", 2}}, .poll_every = 5ms});
  REQUIRE(engine.register_handler("b", [](JobContext&) {}));
  REQUIRE(engine.register_handler("a", [](JobContext&) {}));
  REQUIRE(engine.start());
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "a"});
  REQUIRE(job);
  const auto claims = recording->claim_kinds();
  REQUIRE_FALSE(claims.empty());
  for (const auto& kinds : claims) CHECK(kinds == std::vector<std::string>{"a", "b"});
}

TEST_CASE("life: Duration::max() intervals mean never, not a busy loop or an early deadline", "[engine][life]") {
  auto recording = std::make_shared<RecordingStore>(make_memory_store());
  // lease_for = max is the store's to saturate (the conformance suite); here
  // a lease far longer than any interval the engine adds it to.
  Engine engine(recording, {.queues = {{"default", 1}}, .lease_for = std::chrono::hours(24 * 365 * 1000),
                            .heartbeat_every = std::chrono::hours(1), .reaper_every = Duration::max(),
                            .poll_every = Duration::max(), .shutdown_grace = Duration::max()});
  REQUIRE(engine.register_handler("k", [](JobContext& ctx) { ctx.set_result(R"("done")"); }));
  REQUIRE(engine.start());
  std::this_thread::sleep_for(100ms);  // a measuring window, not a timing assertion
  CHECK(recording->claim_kinds().size() < 10);  // an overflowing poll deadline claims in a loop
  auto job = porter::test::enqueue_and_wait(engine, {.kind = "k"});
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  engine.stop();
}

namespace {

// Lets a test raise store events by hand, as a store does when an
// administrator expires a stuck job (StoreEvent::Type::lease_lost).
class EventfulStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::uint64_t add_listener(Listener listener) override {
    std::lock_guard lock(mu_);
    listeners_.push_back(listener);
    return ForwardingStore::add_listener(std::move(listener));
  }
  void raise(const StoreEvent& ev) {
    std::vector<Listener> all;
    {
      std::lock_guard lock(mu_);
      all = listeners_;
    }
    for (auto& l : all) l(ev);
  }

 private:
  std::mutex mu_;
  std::vector<Listener> listeners_;
};

}  // namespace

TEST_CASE("life: a lost lease stops the handler at once and never cancels the job", "[engine][life]") {
  auto store = std::make_shared<EventfulStore>(make_memory_store());
  Engine engine(store, {.queues = {{"default", 1}}});
  std::atomic<int> runs{0};
  std::atomic<bool> stopped{false};
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    if (runs.fetch_add(1) > 0) return;  // the second run completes
    while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
    stopped.store(true);
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "k"});
  REQUIRE(id);
  REQUIRE(eventually([&] { return runs.load() == 1; }));
  auto running = store->get(id->id);
  REQUIRE(running);
  REQUIRE(running->lease);
  // A lost lease names its token: only the run holding that lease stops.
  store->raise(StoreEvent{.type = StoreEvent::Type::lease_lost, .queue = "default", .job = id->id,
                          .token = running->lease->token + 1});
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(stopped.load());  // another lease's loss: this run goes on
  store->raise(StoreEvent{.type = StoreEvent::Type::lease_lost, .queue = "default", .job = id->id,
                          .token = running->lease->token});
  REQUIRE(eventually([&] { return stopped.load(); }));
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
}

namespace {

// A store whose in-process events never arrive (as if every wake-up were lost).
class DeafStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::uint64_t add_listener(Listener) override { return 0; }
  void remove_listener(std::uint64_t) override {}
  Result<std::vector<Job>> claim(const ClaimRequest& request) override {
    claims.fetch_add(1);
    return ForwardingStore::claim(request);
  }
  std::atomic<int> claims{0};
};

}  // namespace

TEST_CASE("life: with every wake-up lost and a store clock that stands still, the poll still finds work", "[engine][life]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = std::make_shared<DeafStore>(make_memory_store(clock));
  Engine engine(store, {.queues = {{"default", 1}}, .poll_every = 50ms});
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  REQUIRE(engine.start());
  REQUIRE(eventually([&] { return store->claims.load() >= 1; }));  // it looked once, found nothing
  std::this_thread::sleep_for(10ms);
  auto id = engine.enqueue({.kind = "k"});
  REQUIRE(id);
  // No event wakes the claimer and the clock never moves: only a poll on
  // real time can claim the job (before, the claimer slept forever).
  CHECK(eventually([&] {
    auto job = store->get(id->id);
    return job && job->state == JobState::completed;
  }));
}

TEST_CASE("life: a dropped outcome is said on the diagnostics sink with nobody subscribed",
          "[engine][life][fault][diagnostics]") {
  auto poison = std::make_shared<PoisonStore>(make_memory_store());
  auto said = std::make_shared<std::vector<Diagnostic>>();
  auto said_mu = std::make_shared<std::mutex>();
  Engine engine(poison, {.queues = {{"default", 1}}, .diagnostics = [said, said_mu](const Diagnostic& d) {
                           std::lock_guard lock(*said_mu);
                           said->push_back(d);
                         }});
  REQUIRE(engine.register_handler("k", [](JobContext& ctx) { ctx.set_result(R"("poison")"); }));
  REQUIRE(engine.start());
  auto bad = engine.enqueue({.kind = "k", .args = R"("bad")"});
  REQUIRE(bad);
  const auto dropped = [&] {
    std::lock_guard lock(*said_mu);
    for (const Diagnostic& d : *said) {
      if (d.message != "outcome dropped" || d.severity != Severity::error) continue;
      for (const DiagnosticField& f : d.fields) {
        if (f.key == "job" && f.value == std::to_string(bad->id)) return true;
      }
    }
    return false;
  };
  REQUIRE(eventually(dropped));
}
