// Shared by the component benchmarks and the end-to-end harness: opening a
// store by name (SQLite on a temporary file), building no-op jobs, reading
// the process's memory from /proc, and summarising samples.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "porter/job.h"
#include "porter/status.h"
#include "porter/store.h"
#include "support/fault_store.h"

namespace porter::bench {

// A directory under $TMPDIR (or /tmp) removed with everything in it when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// Stores the benchmarks know: "memory"; when built with SQLite, "sqlite" (the
// durable default, Durability::power_loss) and "sqlite-normal" (process_crash).
std::vector<std::string> available_stores();

// A fresh, empty store of that kind; SQLite gets a new file in `dir`.
Result<std::shared_ptr<Store>> open_store(std::string_view name, const std::string& dir);
// That kind of store on the file at `path` (created when missing), so a
// second process can open the same one. Only stores with a file.
Result<std::shared_ptr<Store>> open_store_file(std::string_view name, const std::string& path);

// The benchmarks' job kind and a small JSON argument, like a real "send mail" job.
inline constexpr std::string_view kNoopKind = "noop";
std::string small_args(std::int64_t n);
NewJob noop_job(std::int64_t n, std::string queue = "default", int priority = 0);

// Inserts `count` no-op jobs in batches of `batch`; priorities cycle over
// `priorities` distinct values when > 1. Throws on a store error.
void fill(Store& store, std::int64_t count, int batch = 1000, std::string queue = "default", int priorities = 1);

// From /proc/self/status, in bytes: VmRSS (now) and VmHWM (peak).
std::int64_t rss_bytes();
std::int64_t peak_rss_bytes();

// Monotonic nanoseconds, comparable across threads of one process.
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sample summaries; `samples` need not be sorted. Empty input gives 0.
double median(std::vector<double> samples);
double percentile(std::vector<double> samples, double p);  // p in [0, 100], nearest rank

// Throws std::runtime_error naming `what` and the error, when there is one.
[[noreturn]] void throw_error(const Error& error, std::string_view what);
template <class T>
T must(Result<T> r, std::string_view what) {
  if (!r.has_value()) throw_error(r.error(), what);
  return std::move(r).value();
}
inline void must(const Status& s, std::string_view what) {
  if (!s.has_value()) throw_error(s.error(), what);
}

// Forwards every call to another store (the tests' ForwardingStore) and
// counts the hot-path calls, so the harness can report how large the
// engine's claim and finish batches really are.
class CountingStore final : public test::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  std::int64_t claim_calls() const { return claim_calls_.load(); }
  std::int64_t claimed_jobs() const { return claimed_jobs_.load(); }
  std::int64_t finish_calls() const { return finish_calls_.load(); }
  std::int64_t finished_jobs() const { return finished_jobs_.load(); }

  Result<std::vector<Job>> claim(const ClaimRequest& request) override {
    auto r = ForwardingStore::claim(request);
    claim_calls_.fetch_add(1, std::memory_order_relaxed);
    if (r) claimed_jobs_.fetch_add(static_cast<std::int64_t>(r->size()), std::memory_order_relaxed);
    return r;
  }
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    finish_calls_.fetch_add(1, std::memory_order_relaxed);
    finished_jobs_.fetch_add(static_cast<std::int64_t>(outcomes.size()), std::memory_order_relaxed);
    return ForwardingStore::finish(outcomes);
  }

 private:
  std::atomic<std::int64_t> claim_calls_{0}, claimed_jobs_{0}, finish_calls_{0}, finished_jobs_{0};
};

// The 1-minute load average (/proc/loadavg): other work on the machine skews every figure.
double load_average();

}  // namespace porter::bench
