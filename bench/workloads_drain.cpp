// Drain workloads: W2 (a queue of no-op jobs drained by one engine), W6
// (the same while an administrator polls).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include "baseline_pool.h"
#include "harness.h"
#include "porter/engine.h"

namespace porter::bench {
namespace {

using Clock = std::chrono::steady_clock;

class DrainWorkloads final : Workloads {
 public:
  using Workloads::Workloads;

  void run() {
    if (wants("W2")) w2_drain();
    if (wants("W6")) w6_admin();
  }

 private:
  // --- W2 ------------------------------------------------------------------
  void w2_drain() {
    for (const int workers : o_.workers) {
      Row& row = add("W2", "drain C=" + std::to_string(workers), "throughput", "jobs/s");
      claim_batch_.clear();
      finish_batch_.clear();
      for (int r = 0; r < o_.repeat; ++r) {
        row.samples.push_back(porter_drain(workers));
        row.baseline.push_back(baseline_drain(workers));
      }
      row.note = "jobs per claim " + human(median(claim_batch_)) + ", per finish " + human(median(finish_batch_));
      if (drain_jobs() < o_.jobs) row.note += "; " + human(static_cast<double>(drain_jobs())) + " jobs";
      row.target = Target{sqlite() ? 60'000.0 : 1'000'000.0, true};
      print_row(row);
    }
  }

  std::int64_t drain_jobs() const { return sqlite() ? std::min(o_.jobs, o_.sqlite_drain_max) : o_.jobs; }


  // `during`, when set, runs beside the engine from start() to the last
  // completion (W6's administrator); it must return when its token stops.
  double porter_drain(int workers, const std::function<void(Store&, std::stop_token)>& during = {}) {
    const std::int64_t n = drain_jobs();
    auto counting = std::make_shared<CountingStore>(fresh_store());
    std::shared_ptr<Store> store = counting;
    fill(*store, n, 1000);
    CountLatch handled(n);
    CountLatch completed(n);  // the store's view: a finished(completed) event per job
    const auto listener = store->add_listener([&](const StoreEvent& e) {
      if (e.type == StoreEvent::Type::finished && e.state == JobState::completed) completed.hit();
    });
    std::int64_t t_end = 0;
    std::int64_t t0 = 0;
    {
      Engine engine(store, {.queues = {{"default", workers}}});
      must(engine.register_handler(std::string(kNoopKind), [&](JobContext&) { handled.hit(); }), "register");
      std::jthread beside;
      t0 = now_ns();
      if (during) beside = std::jthread([&](std::stop_token stop) { during(*store, stop); });
      must(engine.start(), "start");
      handled.wait("W2 handlers");
      t_end = completed.wait("W2 completions");
      beside = {};  // stop and join the administrator before the engine
      engine.stop();
    }
    store->remove_listener(listener);
    // Outside the timing: the store agrees every job completed.
    const auto stats = must(store->stats(Duration(0)), "stats");
    std::int64_t done = 0;
    for (const auto& q : stats.queues) done += q.completed;
    if (done != n) throw std::runtime_error("W2: the store reports " + std::to_string(done) + " of " +
                                            std::to_string(n) + " jobs completed");
    claim_batch_.push_back(static_cast<double>(counting->claimed_jobs()) /
                           static_cast<double>(std::max<std::int64_t>(1, counting->claim_calls())));
    finish_batch_.push_back(static_cast<double>(counting->finished_jobs()) /
                            static_cast<double>(std::max<std::int64_t>(1, counting->finish_calls())));
    return static_cast<double>(n) / seconds_between(t0, t_end);
  }
  // Jobs per store call in the last W2 runs: how well the engine batches.
  std::vector<double> claim_batch_, finish_batch_;

  double baseline_drain(int workers) const {
    const std::int64_t n = drain_jobs();
    CountLatch done(n);
    BaselinePool pool;
    std::vector<BaselinePool::Task> tasks;
    for (std::int64_t i = 0; i < n; ++i) tasks.emplace_back([&done, args = small_args(i)] { done.hit(); });
    pool.submit_batch(tasks);
    const auto t0 = now_ns();
    pool.start(workers);
    const auto t_end = done.wait("W2 baseline");
    return static_cast<double>(n) / seconds_between(t0, t_end);
  }


  // --- W6 ------------------------------------------------------------------
  // The admin page polled while workers drain: stats over 5 minutes, the
  // newest 50 jobs, and the newest 50 failed ones (none fail here, so that
  // listing has to look through every job), every admin_poll. The baseline
  // column is the same drain without the administrator, run alternately in
  // the same process; the target is to stay within 10% of it.
  void w6_admin() {
    const int workers = o_.workers.front();
    Row& row = add("W6", "drain C=" + std::to_string(workers) + " + admin/" +
                             std::to_string(o_.admin_poll.count()) + "ms",
                   "throughput", "jobs/s");
    std::vector<double> polls;
    for (int r = 0; r < o_.repeat; ++r) {
      row.baseline.push_back(porter_drain(workers));
      std::int64_t n = 0;
      row.samples.push_back(porter_drain(workers, [&](Store& store, std::stop_token stop) { n = admin_polls(store, stop); }));
      polls.push_back(static_cast<double>(n));
    }
    row.note = "baseline: the same drain without polling; polls per run " + human(median(polls));
    if (drain_jobs() < o_.jobs) row.note += "; " + human(static_cast<double>(drain_jobs())) + " jobs";
    print_row(row);
  }

  // Polls until stopped; returns how many rounds it made. A failed read is an error of the run.
  std::int64_t admin_polls(Store& store, std::stop_token stop) const {
    JobFilter failed;
    failed.states = {JobState::failed};
    std::int64_t rounds = 0;
    std::mutex mu;
    std::condition_variable_any cv;
    for (auto next = Clock::now(); !stop.stop_requested(); next += o_.admin_poll) {
      must(store.stats(std::chrono::minutes(5)), "W6 stats");
      must(store.list(JobFilter{}, std::nullopt, 50), "W6 list");
      must(store.list(failed, std::nullopt, 50), "W6 list failed");
      ++rounds;
      std::unique_lock lock(mu);
      cv.wait_until(lock, stop, next + o_.admin_poll, [] { return false; });
    }
    return rounds;
  }

};

}  // namespace

void run_drain_workloads(const Options& options, const std::string& store, std::deque<Row>& rows) {
  DrainWorkloads(options, store, rows).run();
}

}  // namespace porter::bench
