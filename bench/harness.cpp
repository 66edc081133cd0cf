// porter_bench: the end-to-end harness. Runs whole workloads against a store
// through the Engine (what an application sees), and the same work on a
// minimal mutex + condition-variable thread pool in the same run, so every
// Porter figure comes with a ratio to that baseline measured side by side.
//
//   porter_bench [--store memory,sqlite,sqlite-normal] [--jobs N] [--repeat K] [--json FILE]
//                [--workloads W1,W2,W3,W4,W5,W6,MEM] [--workers 1,2,8] [--smoke]
//
// Workloads (see bench/RESULTS.md for what each measures and the targets):
//   W1 enqueue  N no-op jobs with small JSON args, one at a time and in batches
//   W2 drain    N queued jobs run by one Engine with C workers, start() to last completion
//   W3 latency  idle workers, one job every few ms: enqueue to handler start
//   W4 mixed    producers and workers at once over several queues and priorities
//   W5 scale    claim latency with 10k / 100k / 1M jobs queued
//   W6 admin    W2's drain while an administrator polls stats and two listings every 100 ms,
//               against the plain drain in the same run (the ratio is the slowdown)
//   MEM         bytes per queued job (in-memory store), measured in a fresh process
// Each row is the median over --repeat runs, with min and max. Machines are
// noisy: compare ratios from one run, not absolute figures across runs.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <stop_token>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "baseline_pool.h"
#include "bench_support.h"
#include "porter/store.h"
#include "porter/engine.h"

namespace porter::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Options

struct Options {
  std::vector<std::string> stores;  // empty: every store built in
  std::int64_t jobs = 100'000;
  int repeat = 3;
  std::string json_path;
  std::set<std::string> workloads{"W1", "W2", "W3", "W4", "W5", "W6", "MEM"};
  std::vector<int> workers{8, 1, 2};  // the first is the default configuration
  int batch = 1000;                    // W1 batch size
  int latency_samples = 500;           // W3 jobs per run
  std::chrono::microseconds latency_interval = 2ms;
  std::chrono::milliseconds mixed_duration = 3000ms;  // W4 per run
  std::chrono::microseconds mixed_work = 5us;        // W4: each job busy-works this long (see w4_mixed)
  std::vector<std::int64_t> scale_sizes{10'000, 100'000, 1'000'000};
  std::int64_t sqlite_scale_max = 1'000'000;  // larger W5 sizes are reduced to this for SQLite
  std::int64_t sqlite_one_max = 20'000;       // W1 one-at-a-time on SQLite: one commit per job is slow
  std::int64_t sqlite_drain_max = 50'000;     // W2 on SQLite: keeps the default run within ~5 minutes
  int scale_claims = 2000;                    // W5 timed claims per size
  std::chrono::milliseconds admin_poll = 100ms;  // W6: how often the administrator reads
  std::int64_t mem_jobs = 200'000;
  bool smoke = false;
  std::int64_t mem_probe = 0;  // internal: run the MEM measurement in this process and print it
};

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto end = comma == std::string_view::npos ? text.size() : comma;
    if (end > start) parts.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::int64_t parse_int(std::string_view flag, std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
    throw std::invalid_argument(std::string(flag) + " wants a non-negative integer, got '" + std::string(text) + "'");
  }
  return value;
}

constexpr std::string_view kUsage =
    "usage: porter_bench [--store memory,sqlite,sqlite-normal] [--jobs N] [--repeat K] [--json FILE]\n"
    "                    [--workloads W1,W2,W3,W4,W5,W6,MEM] [--workers 8,1,2] [--batch B]\n"
    "                    [--latency-samples S] [--mixed-seconds T] [--mixed-work-us U]\n"
    "                    [--scale 10000,100000,1000000] [--sqlite-scale-max M] [--smoke]\n";

Options parse_options(int argc, char** argv) {
  Options o;
  bool jobs_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--store") {
      o.stores = split(value());
    } else if (flag == "--jobs") {
      o.jobs = parse_int(flag, value());
      jobs_set = true;
    } else if (flag == "--repeat") {
      o.repeat = static_cast<int>(parse_int(flag, value()));
    } else if (flag == "--json") {
      o.json_path = value();
    } else if (flag == "--workloads") {
      o.workloads.clear();
      for (auto& w : split(value())) o.workloads.insert(w);
    } else if (flag == "--workers") {
      o.workers.clear();
      for (auto& w : split(value())) o.workers.push_back(static_cast<int>(parse_int(flag, w)));
    } else if (flag == "--batch") {
      o.batch = static_cast<int>(parse_int(flag, value()));
    } else if (flag == "--latency-samples") {
      o.latency_samples = static_cast<int>(parse_int(flag, value()));
    } else if (flag == "--mixed-seconds") {
      o.mixed_duration = std::chrono::milliseconds(parse_int(flag, value()) * 1000);
    } else if (flag == "--mixed-work-us") {
      o.mixed_work = std::chrono::microseconds(parse_int(flag, value()));
    } else if (flag == "--scale") {
      o.scale_sizes.clear();
      for (auto& s : split(value())) o.scale_sizes.push_back(parse_int(flag, s));
    } else if (flag == "--sqlite-scale-max") {
      o.sqlite_scale_max = parse_int(flag, value());
    } else if (flag == "--smoke") {
      o.smoke = true;
    } else if (flag == "--mem-probe") {
      o.mem_probe = parse_int(flag, value());
    } else if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown option " + std::string(flag) + "\n" + std::string(kUsage));
    }
  }
  if (o.smoke) {
    // Every workload with tiny sizes: keeps the harness working, measures nothing.
    if (!jobs_set) o.jobs = 300;
    o.repeat = 1;
    o.batch = 100;
    o.workers = {2, 1};
    o.latency_samples = 20;
    o.latency_interval = 200us;
    o.mixed_duration = 300ms;
    o.scale_sizes = {1000, 2000};
    o.scale_claims = 50;
    o.mem_jobs = 2000;
  }
  if (o.jobs < 1 || o.repeat < 1 || o.batch < 1 || o.workers.empty() ||
      std::any_of(o.workers.begin(), o.workers.end(), [](int w) { return w < 1; })) {
    throw std::invalid_argument("--jobs, --repeat, --batch and --workers must be >= 1");
  }
  return o;
}

// ---------------------------------------------------------------------------
// Results

struct Target {
  double value = 0;
  bool at_least = true;  // false: the figure must stay below `value`
};

struct Row {
  std::string store;
  std::string workload;
  std::string variant;
  std::string metric;
  std::string unit;
  std::vector<double> samples;   // one per repeat
  std::vector<double> baseline;  // the pool's figure, one per repeat (empty: no counterpart)
  std::optional<Target> target;
  std::string note;

  double med() const { return median(samples); }
  double lo() const { return samples.empty() ? 0 : *std::min_element(samples.begin(), samples.end()); }
  double hi() const { return samples.empty() ? 0 : *std::max_element(samples.begin(), samples.end()); }
  std::optional<double> ratio() const {
    if (baseline.empty() || median(baseline) == 0) return std::nullopt;
    return med() / median(baseline);
  }
  std::optional<bool> met() const {
    if (!target || samples.empty()) return std::nullopt;
    return target->at_least ? med() >= target->value : med() < target->value;
  }
};

std::string human(double v) {
  char buf[64];
  const double a = std::abs(v);
  if (a >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  } else if (a >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  } else if (a >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (a >= 1) {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
  }
  return buf;
}

std::string target_text(const Row& row) {
  if (!row.target) return "";
  return std::string(row.target->at_least ? ">=" : "<") + human(row.target->value) + (*row.met() ? " met" : " NOT met");
}

void print_header(const std::string& store) {
  std::printf("\n== store: %s ==\n", store.c_str());
  std::printf("%-4s %-28s %-14s %10s %10s %10s %10s %8s  %s\n", "", "variant", "metric", "median", "min", "max",
              "baseline", "ratio", "target");
}

void print_row(const Row& row) {
  const auto ratio = row.ratio();
  std::printf("%-4s %-28s %-14s %10s %10s %10s %10s %8s  %s%s%s\n", row.workload.c_str(), row.variant.c_str(),
              (row.metric + " " + row.unit).c_str(), human(row.med()).c_str(), human(row.lo()).c_str(),
              human(row.hi()).c_str(), row.baseline.empty() ? "-" : human(median(row.baseline)).c_str(),
              ratio ? (human(*ratio) + "x").c_str() : "-", target_text(row).c_str(), row.note.empty() ? "" : "  # ",
              row.note.c_str());
  std::fflush(stdout);
}

nlohmann::json to_json(const Row& row) {
  nlohmann::json j{{"store", row.store},   {"workload", row.workload}, {"variant", row.variant},
                   {"metric", row.metric}, {"unit", row.unit},         {"median", row.med()},
                   {"min", row.lo()},      {"max", row.hi()},          {"samples", row.samples}};
  if (!row.baseline.empty()) {
    j["baseline_median"] = median(row.baseline);
    j["baseline_samples"] = row.baseline;
    j["ratio"] = *row.ratio();
  }
  if (row.target) {
    j["target"] = {{"value", row.target->value}, {"at_least", row.target->at_least}, {"met", *row.met()}};
  }
  if (!row.note.empty()) j["note"] = row.note;
  return j;
}

double seconds_between(std::int64_t from_ns, std::int64_t to_ns) { return static_cast<double>(to_ns - from_ns) / 1e9; }

// Waits for `done()` under `mutex`/`cv`, failing loudly instead of hanging a benchmark run.
void wait_or_throw(std::mutex& mutex, std::condition_variable& cv, const std::function<bool()>& done,
                   std::string_view what, std::chrono::seconds limit = 300s) {
  std::unique_lock lock(mutex);
  if (!cv.wait_for(lock, limit, done)) throw std::runtime_error(std::string(what) + ": timed out");
}

// A one-shot "N things happened" latch with the time the last one happened.
class CountLatch {
 public:
  explicit CountLatch(std::int64_t target) : target_(target) {}
  void hit() {
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == target_) {
      std::lock_guard lock(mutex_);
      done_at_ns_ = now_ns();
      cv_.notify_all();
    }
  }
  std::int64_t count() const { return count_.load(std::memory_order_acquire); }
  // Returns the time of the last hit.
  std::int64_t wait(std::string_view what) {
    wait_or_throw(mutex_, cv_, [&] { return done_at_ns_ != 0; }, what);
    std::lock_guard lock(mutex_);
    return done_at_ns_;
  }

 private:
  const std::int64_t target_;
  std::atomic<std::int64_t> count_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::int64_t done_at_ns_ = 0;  // guarded by mutex_
};

// Reads the integer after `"key":` in a job's args (written by the harness itself).
[[maybe_unused]] std::int64_t arg_int(std::string_view args, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":";
  const auto at = args.find(needle);
  if (at == std::string_view::npos) return -1;
  std::int64_t v = -1;
  const char* begin = args.data() + at + needle.size();
  std::from_chars(begin, args.data() + args.size(), v);
  return v;
}

// Stands in for a job's real work: spins (sleeping would hand the core back).
void busy_work(std::chrono::microseconds how_long) {
  if (how_long.count() <= 0) return;
  const auto until = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(how_long).count();
  while (now_ns() < until) {
  }
}

std::string stamped_args(std::int64_t index, std::int64_t t_ns, bool probe = false) {
  return std::string(R"({"i":)") + std::to_string(index) + R"(,"t":)" + std::to_string(t_ns) +
         (probe ? R"(,"p":1})" : "}");
}

// ---------------------------------------------------------------------------
// The workloads

class Harness {
 public:
  Harness(Options options, std::string store) : o_(std::move(options)), store_name_(std::move(store)) {}

  std::deque<Row> run() {
    print_header(store_name_);
    if (wants("MEM")) mem();
    if (wants("W1")) w1_enqueue();
    if (wants("W2")) w2_drain();
    if (wants("W3")) w3_latency();
    if (wants("W4")) w4_mixed();
    if (wants("W5")) w5_scale();
    if (wants("W6")) w6_admin();
    return std::move(rows_);
  }

 private:
  bool wants(const std::string& w) const { return o_.workloads.contains(w); }
  bool sqlite() const { return store_name_.starts_with("sqlite"); }
  std::shared_ptr<Store> fresh_store() { return must(open_store(store_name_, dir_.path()), "open " + store_name_); }

  Row& add(std::string workload, std::string variant, std::string metric, std::string unit) {
    rows_.push_back(Row{.store = store_name_, .workload = std::move(workload), .variant = std::move(variant),
                        .metric = std::move(metric), .unit = std::move(unit)});
    return rows_.back();
  }
  void skip(const std::string& workload, const std::string& why) {
    std::printf("%-4s skipped: %s\n", workload.c_str(), why.c_str());
  }

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
      row.target = Target{sqlite() ? 50'000.0 : 1'000'000.0, true};
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
    p50.target = Target{sqlite() ? 2000.0 : 100.0, false};
    print_row(p50);
    print_row(p99);
    print_row(max);
  }

  // Enqueue-to-handler-start latencies in microseconds; the enqueue time travels in the args.
  std::vector<double> porter_latency(int workers) {
    const int n = o_.latency_samples;
    std::vector<double> latency(static_cast<std::size_t>(n));
    CountLatch handled(n);
    Engine engine(fresh_store(), {.queues = {{"default", workers}}});
    must(engine.register_handler(std::string(kNoopKind),
                                 [&](JobContext& ctx) {
                                   const auto started = now_ns();
                                   const auto i = arg_int(ctx.args(), "i");
                                   latency[static_cast<std::size_t>(i)] =
                                       static_cast<double>(started - arg_int(ctx.args(), "t")) / 1e3;
                                   handled.hit();
                                 }),
         "register");
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

  // --- W5 ------------------------------------------------------------------
  void w5_scale() {
    std::vector<std::pair<std::int64_t, Row*>> by_size;
    for (std::int64_t size : o_.scale_sizes) {
      std::string note;
      if (sqlite() && size > o_.sqlite_scale_max) {
        note = "reduced from " + human(static_cast<double>(size)) + " (--sqlite-scale-max)";
        size = o_.sqlite_scale_max;
      }
      Row& row = add("W5", "claim(1), " + human(static_cast<double>(size)) + " queued", "p50", "us");
      row.note = note;
      Row& p99 = add("W5", "claim(1), " + human(static_cast<double>(size)) + " queued", "p99", "us");
      // Filled once per size (filling dominates the time); each repeat claims
      // scale_claims more, a negligible dent in the queue.
      auto store = fresh_store();
      fill(*store, size, 1000, "default", 100);
      const ClaimRequest request{.queue = "default", .worker = "bench", .limit = 1};
      for (int r = 0; r < o_.repeat; ++r) {
        std::vector<double> lat;
        lat.reserve(static_cast<std::size_t>(o_.scale_claims));
        for (int i = 0; i < o_.scale_claims; ++i) {
          const auto t0 = now_ns();
          auto claimed = must(store->claim(request), "claim");
          lat.push_back(static_cast<double>(now_ns() - t0) / 1e3);
          if (claimed.size() != 1) throw std::runtime_error("W5: claim found nothing");
        }
        row.samples.push_back(percentile(lat, 50));
        p99.samples.push_back(percentile(lat, 99));
        const auto base = baseline_take(size);
        row.baseline.push_back(percentile(base, 50));
        p99.baseline.push_back(percentile(base, 99));
      }
      print_row(row);
      print_row(p99);
      by_size.emplace_back(size, &row);
    }
    if (by_size.size() >= 2) {
      // Flatness: the largest size's median claim latency over the smallest's.
      const auto& [small_n, small] = by_size.front();
      const auto& [large_n, large] = by_size.back();
      Row& flat = add("W5", "p50 " + human(static_cast<double>(large_n)) + " / " +
                                human(static_cast<double>(small_n)),
                      "ratio", "x");
      for (std::size_t r = 0; r < large->samples.size(); ++r) {
        flat.samples.push_back(large->samples[r] / small->samples[r]);
      }
      flat.target = Target{2.0, false};
      print_row(flat);
    }
  }

  // The pool's counterpart of a claim: taking one task off a queue of `size`.
  std::vector<double> baseline_take(std::int64_t size) const {
    BaselinePool pool;
    std::vector<BaselinePool::Task> tasks;
    for (std::int64_t i = 0; i < size; ++i) tasks.emplace_back([args = small_args(i)] { (void)args; });
    pool.submit_batch(tasks);
    std::vector<double> lat;
    BaselinePool::Task task;
    for (int i = 0; i < o_.scale_claims; ++i) {
      const auto t0 = now_ns();
      if (!pool.take_one(task)) break;
      lat.push_back(static_cast<double>(now_ns() - t0) / 1e3);
    }
    return lat;
  }

  Options o_;
  std::string store_name_;
  TempDir dir_;
  std::deque<Row> rows_;  // a deque: add() hands out references that must survive later additions
};

// --mem-probe N: queue N jobs in a fresh in-memory store and print bytes per
// job beyond the args (RSS delta minus the args' bytes, over N).
int mem_probe(std::int64_t n) {
  TempDir dir;
  auto store = must(open_store("memory", dir.path()), "open memory");
  const auto before = rss_bytes();
  fill(*store, n, 1000);
  const auto after = rss_bytes();
  std::int64_t args_bytes = 0;
  for (std::int64_t i = 0; i < n; ++i) args_bytes += static_cast<std::int64_t>(small_args(i).size());
  std::printf("%.1f\n", static_cast<double>(after - before - args_bytes) / static_cast<double>(n));
  return 0;
}

std::string command_line(int argc, char** argv) {
  std::string line = "porter_bench";
  for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
  return line;
}

int run(int argc, char** argv) {
  Options options = parse_options(argc, argv);
  if (options.mem_probe > 0) return mem_probe(options.mem_probe);
  const auto built = available_stores();
  if (options.stores.empty()) options.stores = built;
  if (options.stores.empty()) {
    std::printf("no store is built into this binary yet: nothing to measure\n");
    return 0;
  }
  for (const auto& s : options.stores) {
    if (std::find(built.begin(), built.end(), s) == built.end()) {
      throw std::invalid_argument("store '" + s + "' is not built into this binary");
    }
  }
  std::printf("porter_bench: jobs=%lld repeat=%d workers=", static_cast<long long>(options.jobs), options.repeat);
  for (int w : options.workers) std::printf("%d ", w);
  std::printf("hardware threads=%u%s\n", std::thread::hardware_concurrency(), options.smoke ? " (smoke run)" : "");
  std::printf("each row: median over repeats [min, max]; baseline = mutex+condvar thread pool, same run; "
              "ratio = porter / baseline\n");

  std::vector<Row> rows;
  const double load_before = load_average();
  const auto started = now_ns();
  for (const auto& store : options.stores) {
    Harness harness(options, store);
    for (auto& row : harness.run()) rows.push_back(std::move(row));
  }
  const double elapsed = seconds_between(started, now_ns());
  const auto peak = peak_rss_bytes();
  const double load_after = load_average();
  std::printf("\npeak RSS (VmHWM): %.1f MiB; wall time %.1f s; load average %.2f before, %.2f after\n",
              static_cast<double>(peak) / (1 << 20), elapsed, load_before, load_after);

  int met = 0;
  int missed = 0;
  for (const auto& row : rows) {
    if (auto m = row.met()) (*m ? met : missed)++;
  }
  std::printf("targets: %d met, %d not met%s\n", met, missed, options.smoke ? " (smoke sizes: not meaningful)" : "");

  if (!options.json_path.empty()) {
    nlohmann::json out;
    out["command"] = command_line(argc, argv);
    out["smoke"] = options.smoke;
    out["jobs"] = options.jobs;
    out["repeat"] = options.repeat;
    out["hardware_threads"] = std::thread::hardware_concurrency();
    out["peak_rss_bytes"] = peak;
    out["wall_seconds"] = elapsed;
    out["load_average_before"] = load_before;
    out["load_average_after"] = load_after;
    out["rows"] = nlohmann::json::array();
    for (const auto& row : rows) out["rows"].push_back(to_json(row));
    std::ofstream file(options.json_path);
    file << out.dump(2) << "\n";
    if (!file) throw std::runtime_error("cannot write " + options.json_path);
  }
  return 0;
}

}  // namespace
}  // namespace porter::bench

int main(int argc, char** argv) {
  try {
    return porter::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "porter_bench: %s\n", e.what());
    return 1;
  }
}
