// Latency workloads: W3 (enqueue to start on idle workers), W4 (mixed
// producers and priorities, high-priority jobs cutting into a flood), W8
// (enqueue to start when the producer is another process).
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

class LatencyWorkloads final : Workloads {
 public:
  using Workloads::Workloads;

  void run() {
    if (wants("W3")) w3_latency();
    if (wants("W4")) w4_mixed();
    if (wants("W8")) w8_remote();
  }

 private:
  // --- W3 ------------------------------------------------------------------
  void w3_latency() {
    const int workers = o_.workers.front();
    const std::string variant = "C=" + std::to_string(workers) + ", every " +
                                std::to_string(o_.latency_interval.count()) + "us";
    Row& p50 = add("W3", variant, "p50", "us");
    Row& p99 = add("W3", variant, "p99", "us");
    Row& max = add("W3", variant, "max", "us");
    for (int r = 0; r < o_.repeat; ++r) {
      const auto porter = porter_latency(workers);
      const auto base = baseline_latency(workers);
      for (auto [row, p] : {std::pair{&p50, 50.0}, {&p99, 99.0}, {&max, 100.0}}) {
        row->samples.push_back(percentile(porter, p));
        row->baseline.push_back(percentile(base, p));
      }
    }
    p50.target = Target{sqlite() ? 2000.0 : 30.0, false};
    print_row(p50);
    print_row(p99);
    print_row(max);
  }

  // Enqueue-to-handler-start latencies in microseconds; the enqueue time travels in the args.
  // Registers the no-op handler that records, per job index, enqueue-to-start
  // in microseconds (the enqueue time travels in the args: stamped_args).
  static void record_start_latency(Engine& engine, std::vector<double>& latency, CountLatch& handled) {
    must(engine.register_handler(std::string(kNoopKind),
                                 [&](JobContext& ctx) {
                                   const auto started = now_ns();
                                   const auto i = arg_int(ctx.args(), "i");
                                   latency[static_cast<std::size_t>(i)] =
                                       static_cast<double>(started - arg_int(ctx.args(), "t")) / 1e3;
                                   handled.hit();
                                 }),
         "register");
  }

  std::vector<double> porter_latency(int workers) {
    const int n = o_.latency_samples;
    std::vector<double> latency(static_cast<std::size_t>(n));
    CountLatch handled(n);
    Engine engine(fresh_store(), {.queues = {{"default", workers}}});
    record_start_latency(engine, latency, handled);
    must(engine.start(), "start");
    std::this_thread::sleep_for(20ms);  // let the workers go idle
    for (int i = 0; i < n; ++i) {
      NewJob job{.kind = std::string(kNoopKind), .args = stamped_args(i, now_ns())};
      must(engine.enqueue(std::move(job)), "enqueue");
      std::this_thread::sleep_for(o_.latency_interval);
    }
    handled.wait("W3 handlers");
    engine.stop();
    return latency;
  }

  std::vector<double> baseline_latency(int workers) const {
    const int n = o_.latency_samples;
    std::vector<double> latency(static_cast<std::size_t>(n));
    CountLatch handled(n);
    BaselinePool pool;
    pool.start(workers);
    std::this_thread::sleep_for(20ms);
    for (int i = 0; i < n; ++i) {
      const auto t = now_ns();
      pool.submit([&, i, t, args = small_args(i)] {
        latency[static_cast<std::size_t>(i)] = static_cast<double>(now_ns() - t) / 1e3;
        handled.hit();
      });
      std::this_thread::sleep_for(o_.latency_interval);
    }
    handled.wait("W3 baseline");
    return latency;
  }


  // --- W4 ------------------------------------------------------------------
  // Three queues: "flood" always holds a backlog of low-priority jobs (priority
  // 100) that a prober cuts into with high-priority jobs (-100) every 2 ms;
  // "mail" and "report" get mixed priorities. Producers keep at most kBacklog
  // jobs outstanding, so the run is a steady state rather than a growing queue.
  // Every job busy-works `mixed_work` (5 us): with no-op jobs the baseline
  // pool drains faster than the producers fill it, so it would never have a
  // flood queued and the priority comparison would measure nothing.
  struct MixedResult {
    double jobs_per_s = 0;
    std::vector<double> probe_us;
  };
  static constexpr std::int64_t kBacklog = 20'000;
  static constexpr int kProducers = 2;
  static constexpr int kProducerBatch = 100;

  void w4_mixed() {
    const int workers = std::max(3, o_.workers.front());
    const std::string variant = "3 queues, C=" + std::to_string(workers) + ", " +
                                std::to_string(o_.mixed_duration.count() / 1000.0).substr(0, 3) + "s, " +
                                std::to_string(o_.mixed_work.count()) + "us/job";
    Row& rate = add("W4", variant, "sustained", "jobs/s");
    Row& p50 = add("W4", "high-prio under flood", "p50", "us");
    Row& p99 = add("W4", "high-prio under flood", "p99", "us");
    p50.note = "baseline is FIFO: no priorities";
    for (int r = 0; r < o_.repeat; ++r) {
      const auto porter = porter_mixed(workers);
      const auto base = baseline_mixed(workers);
      rate.samples.push_back(porter.jobs_per_s);
      rate.baseline.push_back(base.jobs_per_s);
      p50.samples.push_back(percentile(porter.probe_us, 50));
      p50.baseline.push_back(percentile(base.probe_us, 50));
      p99.samples.push_back(percentile(porter.probe_us, 99));
      p99.baseline.push_back(percentile(base.probe_us, 99));
    }
    print_row(rate);
    print_row(p50);
    print_row(p99);
  }

  // Drives producers and a prober for the duration; `submit(batch)` and
  // `submit_probe(t)` hand work to Porter or the pool; `completed` counts runs.
  MixedResult drive_mixed(const std::function<void(std::vector<NewJob>&)>& submit,
                          const std::function<void(std::int64_t index)>& submit_probe,
                          const std::atomic<std::int64_t>& completed, std::mutex& probe_mutex,
                          std::vector<double>& probe_us) const {
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> produced{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < kProducers; ++p) {
      threads.emplace_back([&, p] {
        std::mt19937 rng(static_cast<unsigned>(p + 1));
        std::vector<NewJob> batch;
        std::int64_t serial = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          if (produced.load(std::memory_order_relaxed) - completed.load(std::memory_order_relaxed) > kBacklog) {
            std::this_thread::sleep_for(100us);
            continue;
          }
          batch.clear();
          for (int k = 0; k < kProducerBatch; ++k, ++serial) {
            const unsigned pick = rng() % 4;
            if (pick < 2) {
              batch.push_back(noop_job(serial, "flood", 100));
            } else {
              batch.push_back(noop_job(serial, pick == 2 ? "mail" : "report", static_cast<int>(rng() % 10)));
            }
          }
          submit(batch);
          produced.fetch_add(kProducerBatch, std::memory_order_relaxed);
        }
      });
    }
    threads.emplace_back([&] {
      std::int64_t i = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        submit_probe(i++);
        std::this_thread::sleep_for(2ms);
      }
    });
    // Measure after a warm-up, once the backlog has built up.
    const auto warmup = std::min<std::chrono::milliseconds>(500ms, o_.mixed_duration / 4);
    std::this_thread::sleep_for(warmup);
    {
      std::lock_guard lock(probe_mutex);
      probe_us.clear();
    }
    const auto c0 = completed.load();
    const auto t0 = now_ns();
    std::this_thread::sleep_for(o_.mixed_duration);
    const auto c1 = completed.load();
    const auto t1 = now_ns();
    stop = true;
    for (auto& t : threads) t.join();
    MixedResult result;
    result.jobs_per_s = static_cast<double>(c1 - c0) / seconds_between(t0, t1);
    std::lock_guard lock(probe_mutex);
    result.probe_us = probe_us;
    return result;
  }

  MixedResult porter_mixed(int workers) {
    std::atomic<std::int64_t> completed{0};
    std::mutex probe_mutex;
    std::vector<double> probe_us;  // guarded by probe_mutex
    const int flood_workers = std::max(1, workers / 2);
    const int other = std::max(1, (workers - flood_workers) / 2);
    Engine engine(fresh_store(), {.queues = {{"flood", flood_workers}, {"mail", other}, {"report", other}}});
    must(engine.register_handler(std::string(kNoopKind),
                                 [&](JobContext& ctx) {
                                   if (arg_int(ctx.args(), "p") == 1) {
                                     const double us =
                                         static_cast<double>(now_ns() - arg_int(ctx.args(), "t")) / 1e3;
                                     std::lock_guard lock(probe_mutex);
                                     probe_us.push_back(us);
                                   }
                                   busy_work(o_.mixed_work);
                                   completed.fetch_add(1, std::memory_order_relaxed);
                                 }),
         "register");
    must(engine.start(), "start");
    auto result = drive_mixed(
        [&](std::vector<NewJob>& batch) { must(engine.enqueue_batch(std::move(batch)), "enqueue_batch"); },
        [&](std::int64_t i) {
          NewJob probe{.kind = std::string(kNoopKind), .args = stamped_args(i, now_ns(), true), .queue = "flood",
                       .priority = -100};
          must(engine.enqueue(std::move(probe)), "enqueue probe");
        },
        completed, probe_mutex, probe_us);
    engine.stop();
    return result;
  }

  MixedResult baseline_mixed(int workers) const {
    std::atomic<std::int64_t> completed{0};
    std::mutex probe_mutex;
    std::vector<double> probe_us;  // guarded by probe_mutex
    BaselinePool pool;
    pool.start(workers);
    auto result = drive_mixed(
        [&](std::vector<NewJob>& batch) {
          std::vector<BaselinePool::Task> tasks;
          tasks.reserve(batch.size());
          for (auto& job : batch) {
            tasks.emplace_back([this, &completed, args = std::move(job.args)] {
              busy_work(o_.mixed_work);
              completed.fetch_add(1, std::memory_order_relaxed);
            });
          }
          pool.submit_batch(tasks);
        },
        [&](std::int64_t i) {
          const auto t = now_ns();
          pool.submit([&, t, args = stamped_args(i, t, true)] {
            const double us = static_cast<double>(now_ns() - t) / 1e3;
            {
              std::lock_guard lock(probe_mutex);
              probe_us.push_back(us);
            }
            busy_work(o_.mixed_work);
            completed.fetch_add(1, std::memory_order_relaxed);
          });
        },
        completed, probe_mutex, probe_us);
    pool.stop();
    return result;
  }


  // --- W8 ------------------------------------------------------------------
  // Enqueue-to-start across processes: a producer process (this binary with
  // --producer FILE) enqueues one job every remote_interval into the store's
  // file while this process runs an engine on it, as a web process and a
  // worker process would. The engine learns of those commits only through
  // the store (a watch on the file where the store has one, else its poll).
  // steady_clock is CLOCK_MONOTONIC, so the stamps compare across processes.
  void w8_remote() {
    if (!sqlite()) {
      skip("W8", "the " + store_name_ + " store has no file another process can open");
      return;
    }
    const int workers = o_.workers.front();
    const std::string variant = "C=" + std::to_string(workers) + ", other process every " +
                                std::to_string(o_.remote_interval.count()) + "ms";
    Row& p50 = add("W8", variant, "p50", "us");
    Row& p99 = add("W8", variant, "p99", "us");
    for (int r = 0; r < o_.repeat; ++r) {
      const auto latency = remote_latency(workers);
      p50.samples.push_back(percentile(latency, 50));
      p99.samples.push_back(percentile(latency, 99));
    }
    p50.target = Target{2000.0, false};
    p99.target = Target{10000.0, false};
    print_row(p50);
    print_row(p99);
  }

  std::vector<double> remote_latency(int workers) {
    const std::string path = dir_.path() + "/remote-" + std::to_string(remote_runs_++) + ".db";
    auto store = must(open_store_file(store_name_, path), "open " + path);
    const int n = o_.remote_samples;
    std::vector<double> latency(static_cast<std::size_t>(n));
    CountLatch handled(n);
    Engine engine(store, {.queues = {{"default", workers}}});
    record_start_latency(engine, latency, handled);
    must(engine.start(), "start");
    std::this_thread::sleep_for(20ms);  // let the workers go idle
    // Under popen /proc/self/exe would be the shell: resolve it here.
    const std::string cmd = std::filesystem::read_symlink("/proc/self/exe").string() + " --store " + store_name_ +
                            " --producer " + path + " --remote-samples " + std::to_string(n) +
                            " --remote-interval-ms " + std::to_string(o_.remote_interval.count());
    FILE* producer = popen(cmd.c_str(), "r");
    if (producer == nullptr) throw std::runtime_error("cannot run " + cmd);
    handled.wait("W8 handlers");
    if (pclose(producer) != 0) throw std::runtime_error("the W8 producer failed: " + cmd);
    engine.stop();
    return latency;
  }
  int remote_runs_ = 0;
};

}  // namespace

int run_remote_producer(const Options& options) {
  if (options.stores.size() != 1) throw std::invalid_argument("--producer needs exactly one --store");
  auto store = must(open_store_file(options.stores.front(), options.producer_path), "open " + options.producer_path);
  for (int i = 0; i < options.remote_samples; ++i) {
    const NewJob job{.kind = std::string(kNoopKind), .args = stamped_args(i, now_ns())};
    must(store->insert(std::span<const NewJob>(&job, 1)), "insert");
    std::this_thread::sleep_for(options.remote_interval);
  }
  return 0;
}

void run_latency_workloads(const Options& options, const std::string& store, std::deque<Row>& rows) {
  LatencyWorkloads(options, store, rows).run();
}

}  // namespace porter::bench
