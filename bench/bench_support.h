// Shared by the component benchmarks and the end-to-end harness: opening a
// store by name (SQLite on a temporary file), building no-op jobs, reading
// the process's memory from /proc, and summarising samples.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
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

}  // namespace porter::bench
