// Enqueue workloads: MEM (bytes per queued job), W1 (enqueue one at a time
// and in batches), W7 (one job per call from many threads at once).
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

class EnqueueWorkloads final : Workloads {
 public:
  using Workloads::Workloads;

  void run() {
    if (wants("MEM")) mem();
    if (wants("W1")) w1_enqueue();
    if (wants("W7")) w7_single();
  }

 private:
  // --- MEM -----------------------------------------------------------------
  void mem() {
    if (store_name_ != "memory") return;
    // A fresh process, so memory freed by earlier workloads cannot hide the store's growth.
    Row& row = add("MEM", "queued " + human(static_cast<double>(o_.mem_jobs)), "bytes/job", "B");
    row.note = "beyond args; RSS delta in a fresh process";
    for (int r = 0; r < o_.repeat; ++r) {
      // Under popen /proc/self/exe would be the shell: resolve it here.
      const std::string cmd = std::filesystem::read_symlink("/proc/self/exe").string() + " --mem-probe " +
                              std::to_string(o_.mem_jobs);
      FILE* pipe = popen(cmd.c_str(), "r");
      if (pipe == nullptr) throw std::runtime_error("cannot run " + cmd);
      double per_job = 0;
      const int got = std::fscanf(pipe, "%lf", &per_job);
      if (pclose(pipe) != 0 || got != 1) throw std::runtime_error("the memory probe failed");
      row.samples.push_back(per_job);
    }
    row.target = Target{512, false};
    print_row(row);
  }

  // --- W1 ------------------------------------------------------------------
  void w1_enqueue() {
    const std::int64_t n = o_.jobs;
    // One transaction per job on SQLite: the one-at-a-time rows use fewer jobs there.
    const std::int64_t n_one = sqlite() ? std::min(n, o_.sqlite_one_max) : n;
    const std::string batch = "batch " + std::to_string(o_.batch);
    Row& store_one = add("W1", "store.insert one", "throughput", "jobs/s");
    Row& store_batch = add("W1", "store.insert " + batch, "throughput", "jobs/s");
    Row& engine_one = add("W1", "engine.enqueue one", "throughput", "jobs/s");
    Row& engine_batch = add("W1", "engine.enqueue_batch " + batch.substr(6), "throughput", "jobs/s");
    for (int r = 0; r < o_.repeat; ++r) {
      const double base_one = baseline_enqueue(n_one, 1);
      const double base_batch = baseline_enqueue(n, o_.batch);
      {
        auto store = fresh_store();
        const auto t0 = now_ns();
        for (std::int64_t i = 0; i < n_one; ++i) {
          const NewJob job = noop_job(i);
          must(store->insert(std::span<const NewJob>(&job, 1)), "insert");
        }
        store_one.samples.push_back(static_cast<double>(n_one) / seconds_between(t0, now_ns()));
        store_one.baseline.push_back(base_one);
      }
      {
        auto store = fresh_store();
        std::vector<NewJob> jobs;
        const auto t0 = now_ns();
        for (std::int64_t i = 0; i < n; i += o_.batch) {
          jobs.clear();
          for (std::int64_t k = i; k < std::min(n, i + o_.batch); ++k) jobs.push_back(noop_job(k));
          must(store->insert(jobs), "insert batch");
        }
        store_batch.samples.push_back(static_cast<double>(n) / seconds_between(t0, now_ns()));
        store_batch.baseline.push_back(base_batch);
      }
      {
        Engine engine(fresh_store(), {.queues = {{"default", 1}}});
        must(engine.register_handler(std::string(kNoopKind), [](JobContext&) {}), "register");
        const auto t0 = now_ns();
        for (std::int64_t i = 0; i < n_one; ++i) must(engine.enqueue(noop_job(i)), "enqueue");
        engine_one.samples.push_back(static_cast<double>(n_one) / seconds_between(t0, now_ns()));
        engine_one.baseline.push_back(base_one);
      }
      {
        Engine engine(fresh_store(), {.queues = {{"default", 1}}});
        must(engine.register_handler(std::string(kNoopKind), [](JobContext&) {}), "register");
        const auto t0 = now_ns();
        for (std::int64_t i = 0; i < n; i += o_.batch) {
          std::vector<NewJob> jobs;
          for (std::int64_t k = i; k < std::min(n, i + o_.batch); ++k) jobs.push_back(noop_job(k));
          must(engine.enqueue_batch(std::move(jobs)), "enqueue_batch");
        }
        engine_batch.samples.push_back(static_cast<double>(n) / seconds_between(t0, now_ns()));
        engine_batch.baseline.push_back(base_batch);
      }
    }
    if (n_one < n) {
      store_one.note = human(static_cast<double>(n_one)) + " jobs (--jobs capped for one commit per job)";
      engine_one.note = store_one.note;
    }
    const Target batch_target{sqlite() ? 200'000.0 : 2'000'000.0, true};
    store_batch.target = batch_target;
    print_row(store_one);
    print_row(store_batch);
    engine_batch.target = batch_target;
    print_row(engine_one);
    print_row(engine_batch);
  }

  // The pool's enqueue: building the closure (with the same small args) and queueing it.
  static double baseline_enqueue(std::int64_t n, int batch) {
    BaselinePool pool;  // not started: enqueue only, as W1 does for Porter
    std::vector<BaselinePool::Task> tasks;
    const auto t0 = now_ns();
    for (std::int64_t i = 0; i < n; i += batch) {
      tasks.clear();
      for (std::int64_t k = i; k < std::min(n, i + batch); ++k) {
        tasks.emplace_back([args = small_args(k)] { (void)args; });
      }
      if (batch == 1) {
        pool.submit(std::move(tasks.front()));
      } else {
        pool.submit_batch(tasks);
      }
    }
    return static_cast<double>(n) / seconds_between(t0, now_ns());
  }


  // --- W7 ------------------------------------------------------------------
  // Engine::enqueue with one job per call from T threads at once: what a web
  // application does, one job per request. Each call returns only once its
  // job is stored (durable, on "sqlite"), so on SQLite this measures how well
  // concurrent commits are grouped. The engine is not started: enqueue only.
  void w7_single() {
    const std::int64_t n = sqlite() ? std::min(o_.jobs, o_.sqlite_one_max) : o_.jobs;
    for (const int threads : o_.single_threads) {
      Row& row = add("W7", "enqueue one, T=" + std::to_string(threads), "throughput", "jobs/s");
      for (int r = 0; r < o_.repeat; ++r) {
        row.samples.push_back(from_threads(n, threads, [&](Engine& engine, std::int64_t i) {
          must(engine.enqueue(noop_job(i)), "enqueue");
        }));
        BaselinePool pool;  // not started, as the engine
        row.baseline.push_back(from_threads(n, threads, [&](Engine&, std::int64_t i) {
          pool.submit([args = small_args(i)] { (void)args; });
        }));
      }
      if (n < o_.jobs) row.note = human(static_cast<double>(n)) + " jobs (--jobs capped for one commit per job)";
      if (threads >= 8 && sqlite()) row.target = Target{30'000.0, true};
      print_row(row);
    }
  }

  // Runs `one(engine, i)` for i in [0, n) split over `threads` threads started
  // together; returns calls per second.
  double from_threads(std::int64_t n, int threads, const std::function<void(Engine&, std::int64_t)>& one) {
    Engine engine(fresh_store(), {.queues = {{"default", 1}}});
    must(engine.register_handler(std::string(kNoopKind), [](JobContext&) {}), "register");
    const std::int64_t per = std::max<std::int64_t>(1, n / threads);
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::jthread> producers;
    for (int t = 0; t < threads; ++t) {
      producers.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        for (std::int64_t i = 0; i < per; ++i) one(engine, t * per + i);
      });
    }
    while (ready.load() < threads) std::this_thread::yield();
    const auto t0 = now_ns();
    go.store(true, std::memory_order_release);
    producers.clear();  // joins
    return static_cast<double>(per * threads) / seconds_between(t0, now_ns());
  }
};

}  // namespace

void run_enqueue_workloads(const Options& options, const std::string& store, std::deque<Row>& rows) {
  EnqueueWorkloads(options, store, rows).run();
}

}  // namespace porter::bench
