// The end-to-end harness's shared parts: its options, result rows and how
// they print, small helpers, and the base every workload file builds on. Each
// bench/workloads_*.cpp runs a family of workloads (see harness.cpp's header).
#pragma once

#include <atomic>
#include <chrono>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_support.h"
#include "porter/store.h"

namespace porter::bench {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Options

struct Options {
  std::vector<std::string> stores;  // empty: every store built in
  std::int64_t jobs = 100'000;
  int repeat = 3;
  std::string json_path;
  std::set<std::string> workloads{"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "MEM"};
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
  std::vector<int> single_threads{1, 8};          // W7: enqueueing threads
  int remote_samples = 300;                        // W8 jobs per run
  std::chrono::milliseconds remote_interval = 10ms;  // W8: one job this often
  std::int64_t scheduled_jobs = 200'000;           // W9: future jobs at a better priority
  std::int64_t mem_jobs = 200'000;
  bool smoke = false;
  std::int64_t mem_probe = 0;  // internal: run the MEM measurement in this process and print it
  std::string producer_path;   // internal (W8): enqueue into this store file and exit
};

Options parse_options(int argc, char** argv);

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

std::string human(double v);
std::string target_text(const Row& row);
void print_header(const std::string& store);
void print_row(const Row& row);
nlohmann::json to_json(const Row& row);

inline double seconds_between(std::int64_t from_ns, std::int64_t to_ns) { return static_cast<double>(to_ns - from_ns) / 1e9; }

// Waits for `done()` under `mutex`/`cv`, failing loudly instead of hanging a benchmark run.
void wait_or_throw(std::mutex& mutex, std::condition_variable& cv, const std::function<bool()>& done,
                   std::string_view what, std::chrono::seconds limit = 300s);

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
inline std::int64_t arg_int(std::string_view args, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":";
  const auto at = args.find(needle);
  if (at == std::string_view::npos) return -1;
  std::int64_t v = -1;
  const char* begin = args.data() + at + needle.size();
  std::from_chars(begin, args.data() + args.size(), v);
  return v;
}

// Stands in for a job's real work: spins (sleeping would hand the core back).
inline void busy_work(std::chrono::microseconds how_long) {
  if (how_long.count() <= 0) return;
  const auto until = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(how_long).count();
  while (now_ns() < until) {
  }
}

inline std::string stamped_args(std::int64_t index, std::int64_t t_ns, bool probe = false) {
  return std::string(R"({"i":)") + std::to_string(index) + R"(,"t":)" + std::to_string(t_ns) +
         (probe ? R"(,"p":1})" : "}");
}

// ---------------------------------------------------------------------------
// The base of every workload family: one store kind, its rows, a temp folder.

class Workloads {
 public:
  Workloads(const Options& options, std::string store, std::deque<Row>& rows)
      : o_(options), store_name_(std::move(store)), rows_(rows) {}

 protected:
  bool wants(const std::string& w) const { return o_.workloads.contains(w); }
  bool sqlite() const { return store_name_.starts_with("sqlite"); }
  std::shared_ptr<Store> fresh_store() { return must(open_store(store_name_, dir_.path()), "open " + store_name_); }

  Row& add(std::string workload, std::string variant, std::string metric, std::string unit) {
    rows_.push_back(Row{.store = store_name_, .workload = std::move(workload), .variant = std::move(variant),
                        .metric = std::move(metric), .unit = std::move(unit)});
    return rows_.back();
  }
  void skip(const std::string& workload, const std::string& why) const {
    std::printf("%-4s skipped: %s\n", workload.c_str(), why.c_str());
  }

  const Options& o_;
  const std::string store_name_;
  TempDir dir_;
  std::deque<Row>& rows_;  // a deque: add() hands out references that must survive later additions
};

// The families, each running the workloads of `options` it owns for one store.
void run_enqueue_workloads(const Options& options, const std::string& store, std::deque<Row>& rows);  // MEM W1 W7
// W8's producer, in its own process: enqueues remote_samples jobs into the
// store file, one every remote_interval, each stamped with its enqueue time.
int run_remote_producer(const Options& options);
void run_drain_workloads(const Options& options, const std::string& store, std::deque<Row>& rows);    // W2 W6
void run_latency_workloads(const Options& options, const std::string& store, std::deque<Row>& rows);  // W3 W4 W8
void run_claim_workloads(const Options& options, const std::string& store, std::deque<Row>& rows);    // W5 W9

}  // namespace porter::bench
