// Bounds: the one place where durations, time points and counts that a
// caller passes are checked or saturated. Duration::max() means "forever"
// and TimePoint::max() "never": arithmetic on them saturates instead of
// overflowing (signed overflow is undefined behaviour, and in practice turns
// "in a very long time" into "long ago", which runs a job at once or expires
// a lease at claim).
//
// Every store, the engine and Admin go through these helpers; a new option
// that takes a duration or a count uses them too, so the rule stays in one file.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "porter/clock.h"
#include "porter/status.h"

namespace porter::detail {

// t + d, clamped to [TimePoint::min(), TimePoint::max()].
constexpr TimePoint saturating_add(TimePoint t, Duration d) noexcept {
  const auto a = t.time_since_epoch().count();
  const auto b = d.count();
  using Rep = Duration::rep;
  if (b > 0 && a > std::numeric_limits<Rep>::max() - b) return TimePoint::max();
  if (b < 0 && a < std::numeric_limits<Rep>::min() - b) return TimePoint::min();
  return TimePoint(Duration(a + b));
}

// t - d, clamped.
constexpr TimePoint saturating_sub(TimePoint t, Duration d) noexcept {
  if (d == Duration::min()) return saturating_add(saturating_add(t, Duration::max()), Duration(1));
  return saturating_add(t, -d);
}

// a - b as a Duration, clamped (two far-apart time points do not overflow).
constexpr Duration saturating_diff(TimePoint a, TimePoint b) noexcept {
  const auto x = a.time_since_epoch().count();
  const auto y = b.time_since_epoch().count();
  using Rep = Duration::rep;
  if (y < 0 && x > std::numeric_limits<Rep>::max() + y) return Duration::max();
  if (y > 0 && x < std::numeric_limits<Rep>::min() + y) return Duration::min();
  return Duration(x - y);
}

// A Duration of any chrono type, clamped to what Duration holds (a
// milliseconds::max() timeout is longer than Duration can say: it saturates).
template <class Rep, class Period>
constexpr Duration saturating_cast(std::chrono::duration<Rep, Period> d) noexcept {
  using Wide = std::chrono::duration<long double, std::micro>;
  const auto wide = std::chrono::duration_cast<Wide>(d).count();
  if (wide >= static_cast<long double>(Duration::max().count())) return Duration::max();
  if (wide <= static_cast<long double>(Duration::min().count())) return Duration::min();
  return std::chrono::duration_cast<Duration>(d);
}

// The steady-clock instant `d` from `from`, clamped: a wait of
// milliseconds::max() waits as long as the clock can count.
inline std::chrono::steady_clock::time_point steady_deadline(std::chrono::steady_clock::time_point from,
                                                             Duration d) noexcept {
  using SD = std::chrono::steady_clock::duration;
  const Duration room = saturating_cast(SD::max() - from.time_since_epoch());
  if (d >= room) return std::chrono::steady_clock::time_point::max();
  if (d <= Duration::zero()) return from;
  return from + std::chrono::duration_cast<SD>(d);
}

// How a caller's duration may look.
enum class DurationRule : std::uint8_t {
  non_negative,  // 0 allowed (e.g. no delay, no grace)
  positive,      // must be > 0 (a lease, a poll interval)
};

// invalid_argument naming `what` when `d` breaks `rule`. Duration::max() is
// always allowed: it means forever.
inline Status check_duration(std::string_view what, Duration d, DurationRule rule) {
  if (d < Duration::zero()) return make_error(ErrorCode::invalid_argument, std::string(what) + " must not be negative");
  if (rule == DurationRule::positive && d == Duration::zero()) {
    return make_error(ErrorCode::invalid_argument, std::string(what) + " must be positive");
  }
  return {};
}

// invalid_argument naming `what` unless lo <= n <= hi.
inline Status check_count(std::string_view what, std::int64_t n, std::int64_t lo, std::int64_t hi) {
  if (n < lo || n > hi) {
    return make_error(ErrorCode::invalid_argument, std::string(what) + " is " + std::to_string(n) + "; it must be in " +
                                                       std::to_string(lo) + ".." + std::to_string(hi));
  }
  return {};
}

}  // namespace porter::detail
