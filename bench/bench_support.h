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

// Stores the benchmarks know: "memory", and "sqlite" when built with it.
std::vector<std::string> available_stores();

// A fresh, empty store of that kind. SQLite gets a new file in `dir` with
// process_crash durability (synchronous=NORMAL), or power_loss when `durable`.
Result<std::shared_ptr<Store>> open_store(std::string_view name, const std::string& dir, bool durable = false);

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

// Forwards every call to another store and counts the hot-path calls, so the
// harness can report how large the engine's claim and finish batches really are.
class CountingStore final : public Store {
 public:
  explicit CountingStore(std::shared_ptr<Store> inner) : inner_(std::move(inner)) {}

  std::int64_t claim_calls() const { return claim_calls_.load(); }
  std::int64_t claimed_jobs() const { return claimed_jobs_.load(); }
  std::int64_t finish_calls() const { return finish_calls_.load(); }
  std::int64_t finished_jobs() const { return finished_jobs_.load(); }

  const Clock& clock() const noexcept override { return inner_->clock(); }
  Result<std::vector<InsertResult>> insert(std::span<const NewJob> jobs) override { return inner_->insert(jobs); }
  Result<std::vector<Job>> claim(const ClaimRequest& request) override {
    auto r = inner_->claim(request);
    claim_calls_.fetch_add(1, std::memory_order_relaxed);
    if (r) claimed_jobs_.fetch_add(static_cast<std::int64_t>(r->size()), std::memory_order_relaxed);
    return r;
  }
  Result<std::vector<LeaseStatus>> heartbeat(std::span<const LeaseRef> leases, Duration extend_by) override {
    return inner_->heartbeat(leases, extend_by);
  }
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    finish_calls_.fetch_add(1, std::memory_order_relaxed);
    finished_jobs_.fetch_add(static_cast<std::int64_t>(outcomes.size()), std::memory_order_relaxed);
    return inner_->finish(outcomes);
  }
  Result<std::vector<InsertResult>> spawn(const LeaseRef& parent, std::span<const NewJob> children) override {
    return inner_->spawn(parent, children);
  }
  Status report_progress(const LeaseRef& lease, const Progress& progress) override {
    return inner_->report_progress(lease, progress);
  }
  Status add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) override {
    return inner_->add_item_errors(lease, errors);
  }
  Result<std::vector<JobId>> rescue_expired() override { return inner_->rescue_expired(); }
  Result<std::optional<TimePoint>> next_run_at(std::string_view queue) override { return inner_->next_run_at(queue); }
  Result<CancelResult> cancel(JobId id, std::string_view reason) override { return inner_->cancel(id, reason); }
  Result<std::vector<JobId>> expire_stuck(Duration older_than) override { return inner_->expire_stuck(older_than); }
  Status retry_job(JobId id) override { return inner_->retry_job(id); }
  Status discard(JobId id) override { return inner_->discard(id); }
  Status set_queue_paused(std::string_view queue, bool paused) override {
    return inner_->set_queue_paused(queue, paused);
  }
  Result<std::int64_t> prune(TimePoint finished_before) override { return inner_->prune(finished_before); }
  Result<Job> get(JobId id) override { return inner_->get(id); }
  Result<JobPage> list(const JobFilter& filter, std::optional<JobId> cursor, int limit) override {
    return inner_->list(filter, cursor, limit);
  }
  Result<Stats> stats(Duration window) override { return inner_->stats(window); }
  std::uint64_t add_listener(Listener listener) override { return inner_->add_listener(std::move(listener)); }
  void remove_listener(std::uint64_t id) override { inner_->remove_listener(id); }

 private:
  std::shared_ptr<Store> inner_;
  std::atomic<std::int64_t> claim_calls_{0}, claimed_jobs_{0}, finish_calls_{0}, finished_jobs_{0};
};

// The 1-minute load average (/proc/loadavg): other work on the machine skews every figure.
double load_average();

}  // namespace porter::bench
