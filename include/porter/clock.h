// Time for leases, schedules and backoff comes from one injected Clock, so
// tests drive leases and retries with a ManualClock instead of sleeping.
//
// All times are microseconds since the Unix epoch (UTC): that is what the
// stores persist, and it keeps one representation across processes.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

namespace porter {

using Duration = std::chrono::microseconds;
using TimePoint = std::chrono::sys_time<Duration>;

// Thread-safe: now() may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const noexcept = 0;

  // How long a background thread should really block while waiting for
  // `until_due` of this clock's time to pass. The system clock waits it out;
  // a manual clock returns a short tick so loops notice when a test advances it.
  virtual std::chrono::steady_clock::duration real_wait(Duration until_due) const noexcept = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const noexcept override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
  std::chrono::steady_clock::duration real_wait(Duration until_due) const noexcept override {
    return until_due < Duration::zero() ? std::chrono::steady_clock::duration::zero() : until_due;
  }
};

// A clock that moves only when told to. Starts at a fixed, readable instant.
class ManualClock final : public Clock {
 public:
  static constexpr TimePoint kDefaultStart = TimePoint(Duration(1'700'000'000'000'000));  // 2023-11-14

  explicit ManualClock(TimePoint start = kDefaultStart) : now_us_(start.time_since_epoch().count()) {}

  TimePoint now() const noexcept override { return TimePoint(Duration(now_us_.load(std::memory_order_acquire))); }
  std::chrono::steady_clock::duration real_wait(Duration) const noexcept override {
    return std::chrono::milliseconds(1);
  }

  void advance(Duration d) noexcept { now_us_.fetch_add(d.count(), std::memory_order_acq_rel); }
  void set(TimePoint t) noexcept { now_us_.store(t.time_since_epoch().count(), std::memory_order_release); }

 private:
  std::atomic<std::int64_t> now_us_;
};

// The process-wide system clock, shared by stores that are given no clock.
std::shared_ptr<Clock> system_clock();

}  // namespace porter
