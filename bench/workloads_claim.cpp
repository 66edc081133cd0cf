// Claim workloads: W5 (claim latency as the queue grows), W9 (claim latency
// behind a large schedule of future jobs at a better priority).
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

class ClaimWorkloads final : Workloads {
 public:
  using Workloads::Workloads;

  void run() {
    if (wants("W5")) w5_scale();
    if (wants("W9")) w9_schedule();
  }

 private:
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
        const auto lat = claim_latencies(*store, request, "W5");
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

  // scale_claims timed claims (microseconds each); each must find a job.
  std::vector<double> claim_latencies(Store& store, const ClaimRequest& request, std::string_view what) const {
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(o_.scale_claims));
    for (int i = 0; i < o_.scale_claims; ++i) {
      const auto t0 = now_ns();
      auto claimed = must(store.claim(request), "claim");
      lat.push_back(static_cast<double>(now_ns() - t0) / 1e3);
      if (claimed.size() != 1) throw std::runtime_error(std::string(what) + ": claim found nothing");
    }
    return lat;
  }

  // --- W9 ------------------------------------------------------------------
  // scheduled_jobs jobs due in an hour at a better priority (-100) than the
  // due ones (0): a claim must pass over them at about no cost. The baseline
  // column is the same claim on a store with no schedule.
  void w9_schedule() {
    const std::string variant = "claim(1) behind " + human(static_cast<double>(o_.scheduled_jobs)) + " scheduled";
    Row& p50 = add("W9", variant, "p50", "us");
    Row& flat = add("W9", "p50 with / without schedule", "ratio", "x");
    p50.note = "baseline: the same claim with no schedule";
    const std::int64_t due = static_cast<std::int64_t>(o_.scale_claims) * o_.repeat;
    auto plain = fresh_store();
    fill(*plain, due, 1000);
    auto behind = fresh_store();
    std::vector<NewJob> later;
    for (std::int64_t i = 0; i < o_.scheduled_jobs; ++i) {
      later.push_back(noop_job(i, "default", -100));
      later.back().delay = std::chrono::hours(1);
      if (later.size() == 1000 || i + 1 == o_.scheduled_jobs) {
        must(behind->insert(later), "insert scheduled");
        later.clear();
      }
    }
    fill(*behind, due, 1000);
    const ClaimRequest request{.queue = "default", .worker = "bench", .limit = 1};
    for (int r = 0; r < o_.repeat; ++r) {
      const double without = percentile(claim_latencies(*plain, request, "W9"), 50);
      const double with = percentile(claim_latencies(*behind, request, "W9"), 50);
      p50.samples.push_back(with);
      p50.baseline.push_back(without);
      flat.samples.push_back(with / std::max(without, 1e-3));
    }
    flat.target = Target{2.0, false};
    print_row(p50);
    print_row(flat);
  }
};

}  // namespace

void run_claim_workloads(const Options& options, const std::string& store, std::deque<Row>& rows) {
  ClaimWorkloads(options, store, rows).run();
}

}  // namespace porter::bench
