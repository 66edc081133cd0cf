// Issue 9, the engine's part: workers that claim and finish for themselves
// through a leader per queue, events in batches, per-run state reused,
// prompt progress, and wake-ups from other processes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
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

// Records every finish call (the ids of its outcomes, and which it applied),
// can hold the first finish until released, and counts report writes.
class GroupStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    {
      std::unique_lock lock(mu_);
      if (hold_first_ && !held_once_) {
        held_once_ = true;
        holding_ = true;
        cv_.wait(lock, [&] { return !hold_first_; });
        holding_ = false;
      }
    }
    auto r = ForwardingStore::finish(outcomes);
    std::lock_guard lock(mu_);
    std::vector<JobId> ids;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      ids.push_back(outcomes[i].lease.id);
      if (r && i < r->size() && (*r)[i].status) ++applied_[outcomes[i].lease.id];
    }
    calls_.push_back(std::move(ids));
    return r;
  }
  Status report_progress(const LeaseRef& lease, const Progress& progress) override {
    progress_writes_.fetch_add(1);
    return ForwardingStore::report_progress(lease, progress);
  }
  Result<std::vector<LeaseStatus>> heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) override {
    for (const Beat& b : beats) {
      if (!b.report.empty()) report_beats_.fetch_add(1);
    }
    return inner().heartbeat_with_reports(beats, extend_by);
  }

  void hold_first_finish() {
    std::lock_guard lock(mu_);
    hold_first_ = true;
  }
  bool holding() {
    std::lock_guard lock(mu_);
    return holding_;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      hold_first_ = false;
    }
    cv_.notify_all();
  }
  std::vector<std::vector<JobId>> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::map<JobId, int> applied() {
    std::lock_guard lock(mu_);
    return applied_;
  }
  std::atomic<int> progress_writes_{0};
  std::atomic<int> report_beats_{0};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_first_ = false, held_once_ = false, holding_ = false;
  std::vector<std::vector<JobId>> calls_;
  std::map<JobId, int> applied_;
};

std::size_t largest(const std::vector<std::vector<JobId>>& calls) {
  std::size_t n = 0;
  for (const auto& c : calls) n = std::max(n, c.size());
  return n;
}

}  // namespace

TEST_CASE("group: workers queued behind a busy leader hand in their outcomes together, each applied once",
          "[engine][group]") {
  auto store = std::make_shared<GroupStore>(make_memory_store());
  Engine engine(store, {.queues = {{"default", 8}}});
  std::vector<Event> events;
  std::mutex events_mu;
  engine.subscribe([&](const Event& e) {
    std::lock_guard lock(events_mu);
    events.push_back(e);
  });
  std::atomic<int> started{0}, returned{0};
  std::atomic<bool> go{false};
  REQUIRE(engine.register_handler("k", [&](JobContext&) {
    started.fetch_add(1);
    while (!go.load()) std::this_thread::sleep_for(1ms);
    returned.fetch_add(1);
  }));
  std::vector<NewJob> jobs(8, NewJob{.kind = "k"});
  auto ids = engine.enqueue_batch(jobs);  // before start: no enqueue event interleaves below
  REQUIRE(ids);
  REQUIRE(engine.start());
  REQUIRE(eventually([&] { return started.load() == 8; }));
  // The first finisher leads and is held inside the store; the other seven
  // finish their handlers meanwhile and queue behind it.
  store->hold_first_finish();
  go.store(true);
  REQUIRE(eventually([&] { return store->holding() && returned.load() == 8; }));
  std::this_thread::sleep_for(100ms);  // lets the seven reach the queue; not a timing assertion
  store->release();
  for (const auto& r : *ids) {
    auto job = engine.wait_for(r.id, 20s);
    REQUIRE(job);
    CHECK(job->state == JobState::completed);
    CHECK(job->attempt == 1);
  }
  engine.stop();
  const auto calls = store->calls();
  CHECK(largest(calls) >= 2);  // a follower's outcome rode on another worker's call
  const auto applied = store->applied();
  CHECK(applied.size() == 8);
  for (const auto& [id, n] : applied) CHECK(n == 1);
  // One batch of events per store call: the completions of one call arrive
  // together, nothing between them.
  std::lock_guard lock(events_mu);
  for (const auto& call : calls) {
    if (call.size() < 2) continue;
    auto first = std::find_if(events.begin(), events.end(), [&](const Event& e) {
      return e.type == EventType::completed && e.job == call.front();
    });
    REQUIRE(first != events.end());
    REQUIRE(events.end() - first >= static_cast<std::ptrdiff_t>(call.size()));
    std::set<JobId> together;
    for (auto e = first; e != first + static_cast<std::ptrdiff_t>(call.size()); ++e) {
      CHECK(e->type == EventType::completed);
      together.insert(e->job);
    }
    CHECK(together == std::set<JobId>(call.begin(), call.end()));
  }
}

TEST_CASE("group: a leader's store call that fails for a while loses nothing and finishes nothing twice",
          "[engine][group][fault]") {
  auto inner = std::make_shared<GroupStore>(make_memory_store());
  auto faulty = std::make_shared<FaultStore>(inner, 7);
  Engine engine(faulty, {.queues = {{"default", 6}}});
  std::mutex mu;
  std::map<JobId, int> runs;
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    std::lock_guard lock(mu);
    ++runs[ctx.id()];
  }));
  std::vector<NewJob> jobs(300, NewJob{.kind = "k"});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  faulty->fail_next(30, {StoreOp::finish});  // `unavailable`: the leader retries for its whole group
  REQUIRE(engine.start());
  for (const auto& r : *ids) {
    auto job = engine.wait_for(r.id, 20s);
    REQUIRE(job);
    CHECK(job->state == JobState::completed);
    CHECK(job->attempt == 1);
  }
  engine.stop();
  CHECK(faulty->injected() == 30);
  std::lock_guard lock(mu);
  CHECK(runs.size() == ids->size());
  for (const auto& [id, n] : runs) CHECK(n == 1);
  for (const auto& [id, n] : inner->applied()) CHECK(n == 1);
}

namespace {

// Refuses (invalid_argument, the whole call) any finish holding a "poison"
// result: a leader's call fails for good, with followers' outcomes in it.
class PoisonStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    for (const auto& o : outcomes) {
      if (o.result == R"("poison")") return make_error(ErrorCode::invalid_argument, "result rejected");
    }
    auto r = ForwardingStore::finish(outcomes);
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; r && i < outcomes.size(); ++i) {
      if ((*r)[i].status) ++applied_[outcomes[i].lease.id];
    }
    return r;
  }
  std::map<JobId, int> applied() {
    std::lock_guard lock(mu_);
    return applied_;
  }

 private:
  std::mutex mu_;
  std::map<JobId, int> applied_;
};

}  // namespace

TEST_CASE("group: a leader whose call is refused for good: the followers' outcomes are applied alone, once",
          "[engine][group][fault]") {
  auto poison = std::make_shared<PoisonStore>(make_memory_store());
  Engine engine(poison, {.queues = {{"default", 6}}});
  EventLog log(engine);
  REQUIRE(engine.register_handler("k", [](JobContext& ctx) {
    if (ctx.args() == R"("bad")") ctx.set_result(R"("poison")");
  }));
  std::vector<NewJob> jobs;
  for (int i = 0; i < 200; ++i) jobs.push_back(NewJob{.kind = "k", .args = i % 20 == 0 ? R"("bad")" : "{}"});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  REQUIRE(engine.start());
  std::set<JobId> bad;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].args == R"("bad")") {
      bad.insert((*ids)[i].id);
      continue;
    }
    auto job = engine.wait_for((*ids)[i].id, 20s);
    REQUIRE(job);
    CHECK(job->state == JobState::completed);
    CHECK(job->attempt == 1);
  }
  for (JobId id : bad) REQUIRE(eventually([&] { return log.count(EventType::outcome_dropped, id) == 1; }));
  engine.stop();
  const auto applied = poison->applied();
  CHECK(applied.size() == jobs.size() - bad.size());
  for (const auto& [id, n] : applied) {
    CHECK(n == 1);
    CHECK(bad.count(id) == 0);
  }
  for (JobId id : bad) CHECK(engine.store().get(id)->state == JobState::running);  // rescued at lease expiry
}

TEST_CASE("pool: a worker runs every job it takes in the same per-run state", "[engine][pool]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 2}}});
  std::mutex mu;
  std::set<const void*> states;
  std::atomic<int> started_stopped{0};  // Catch's assertions are for the test's thread only
  REQUIRE(engine.register_handler("k", [&](JobContext& ctx) {
    std::lock_guard lock(mu);
    states.insert(&ctx.job());
    if (ctx.cancelled()) started_stopped.fetch_add(1);  // a reused run must start unstopped
  }));
  REQUIRE(engine.register_handler("cancel_me", [&](JobContext& ctx) {
    {
      std::lock_guard lock(mu);
      states.insert(&ctx.job());
    }
    while (!ctx.cancelled()) std::this_thread::sleep_for(1ms);
  }));
  REQUIRE(engine.start());
  auto stopped = engine.enqueue({.kind = "cancel_me"});
  REQUIRE(stopped);
  REQUIRE(eventually([&] { return engine.store().get(stopped->id)->state == JobState::running; }));
  REQUIRE(engine.store().cancel(stopped->id, "test"));
  REQUIRE(engine.wait_for(stopped->id, 20s)->state == JobState::cancelled);
  std::vector<NewJob> jobs(200, NewJob{.kind = "k"});
  auto ids = engine.enqueue_batch(jobs);
  REQUIRE(ids);
  for (const auto& r : *ids) REQUIRE(engine.wait_for(r.id, 20s)->state == JobState::completed);
  CHECK(started_stopped.load() == 0);
  std::lock_guard lock(mu);
  CHECK(states.size() <= 2);  // two workers, two runs, reused for 201 jobs
}

TEST_CASE("time: progress and item errors reach the store within a second, coalesced, with no clock moving",
          "[engine][time][report]") {
  auto clock = std::make_shared<ManualClock>();  // no heartbeat is ever due
  auto store = std::make_shared<GroupStore>(make_memory_store(clock));
  Engine engine(store, {.queues = {{"default", 1}}});
  std::atomic<bool> release{false};
  struct ReleaseOnExit {
    std::atomic<bool>& flag;
    ~ReleaseOnExit() { flag.store(true); }
  } release_on_exit{release};
  REQUIRE(engine.register_handler("long", [&](JobContext& ctx) {
    for (int i = 1; i <= 10000; ++i) ctx.progress(i, 10000, "row " + std::to_string(i));
    ctx.item_error("row 7", "bad e-mail");
    while (!release.load()) std::this_thread::sleep_for(1ms);
    ctx.progress(10000, 10000, "done");
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "long"});
  REQUIRE(id);
  REQUIRE(eventually([&] {
    auto j = store->get(id->id);
    return j && j->progress.done == 10000 && j->item_error_count == 1;
  }));
  auto running = store->get(id->id);
  CHECK(running->state == JobState::running);
  CHECK(running->progress.message == "row 10000");
  CHECK(store->report_beats_.load() < 100);  // ten thousand reports, a few writes
  release = true;
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->progress.message == "done");  // the last report rode on the outcome
  CHECK(store->progress_writes_.load() == 0);  // never a write of its own
}

namespace {

// Another process's store: this engine hears none of its events, only
// changed_elsewhere (as from a file watch) when the test raises it.
class ElsewhereStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::uint64_t add_listener(Listener listener) override {
    std::lock_guard lock(mu_);
    listeners_.push_back(std::move(listener));
    return listeners_.size();
  }
  void remove_listener(std::uint64_t) override {}
  void changed_elsewhere() {
    std::vector<Listener> all;
    {
      std::lock_guard lock(mu_);
      all = listeners_;
    }
    for (auto& l : all) l(StoreEvent{.type = StoreEvent::Type::changed_elsewhere});
  }

 private:
  std::mutex mu_;
  std::vector<Listener> listeners_;
};

}  // namespace

TEST_CASE("events: changed_elsewhere makes the engine claim at once, with no poll due", "[engine][events]") {
  auto inner = make_memory_store();
  auto store = std::make_shared<ElsewhereStore>(inner);
  Engine engine(store, {.queues = {{"default", 2}, {"other", 1}}, .poll_every = std::chrono::hours(1)});
  REQUIRE(engine.register_handler("k", [](JobContext&) {}));
  REQUIRE(engine.start());
  // Each idle worker's first look finds nothing; after that only a poll (an
  // hour away) or a wake-up makes it look again.
  std::this_thread::sleep_for(50ms);
  auto ids = inner->insert(std::vector<NewJob>{{.kind = "k"}, {.kind = "k", .queue = "other"}});
  REQUIRE(ids);
  store->changed_elsewhere();
  for (const auto& r : *ids) {
    auto job = engine.wait_for(r.id, 20s);
    REQUIRE(job);
    CHECK(job->state == JobState::completed);
  }
}

namespace {

// Moves the clock by `jump` during the first heartbeat, as a slow store
// call on a busy machine does.
class SlowBeatStore final : public ForwardingStore {
 public:
  SlowBeatStore(std::shared_ptr<Store> inner, std::shared_ptr<ManualClock> clock, Duration jump)
      : ForwardingStore(std::move(inner)), clock_(std::move(clock)), jump_(jump) {}
  Result<std::vector<LeaseStatus>> heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) override {
    auto r = inner().heartbeat_with_reports(beats, extend_by);
    if (!jumped_.exchange(true)) clock_->advance(jump_);
    return r;
  }

 private:
  std::shared_ptr<ManualClock> clock_;
  Duration jump_;
  std::atomic<bool> jumped_{false};
};

}  // namespace

TEST_CASE("time: a clock that moves during a heartbeat does not push the next beat past the lease",
          "[engine][time]") {
  auto clock = std::make_shared<ManualClock>();
  auto store = std::make_shared<SlowBeatStore>(make_memory_store(clock), clock, std::chrono::seconds(3));
  Engine engine(store, {.queues = {{"default", 1}}, .lease_for = 10s, .heartbeat_every = 3s,
                        .reaper_every = Duration::zero()});
  std::atomic<bool> release{false};
  struct ReleaseOnExit {
    std::atomic<bool>& flag;
    ~ReleaseOnExit() { flag.store(true); }
  } release_on_exit{release};
  REQUIRE(engine.register_handler("long", [&](JobContext&) {
    while (!release.load()) std::this_thread::sleep_for(1ms);
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue({.kind = "long"});
  REQUIRE(id);
  REQUIRE(eventually([&] { return store->get(id->id)->state == JobState::running; }));
  for (int second = 0; second < 12; ++second) {
    clock->advance(1s);
    // Each beat extends the lease to 10 s past its start and the next is due
    // 3 s after that start, so the lease never gets within 6 s of expiring.
    // Counting the next beat from after the call (3 s later here) stalled this.
    REQUIRE(eventually([&] {
      auto j = store->get(id->id);
      return j && j->lease && j->lease->expires_at >= clock->now() + 6s;
    }));
  }
  release = true;
  REQUIRE(engine.wait_for(id->id, 20s)->state == JobState::completed);
}
