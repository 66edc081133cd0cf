// Bounds (src/core/bounds.h): saturating time arithmetic and the checks of
// caller-given durations and counts.
#include <catch2/catch.hpp>

#include "core/bounds.h"

using namespace porter;
using namespace porter::detail;
using namespace std::chrono_literals;

TEST_CASE("time arithmetic saturates instead of overflowing", "[bounds]") {
  const TimePoint t = ManualClock::kDefaultStart;
  CHECK(saturating_add(t, 5s) == t + 5s);
  CHECK(saturating_add(t, Duration::max()) == TimePoint::max());
  CHECK(saturating_add(TimePoint::max(), 1us) == TimePoint::max());
  CHECK(saturating_add(TimePoint::min(), -1us) == TimePoint::min());
  CHECK(saturating_sub(t, 5s) == t - 5s);
  CHECK(saturating_sub(t, Duration::max()) < t);
  CHECK(saturating_sub(t, Duration::min()) == TimePoint::max());
  CHECK(saturating_diff(TimePoint::max(), TimePoint::min()) == Duration::max());
  CHECK(saturating_diff(TimePoint::min(), TimePoint::max()) == Duration::min());
  CHECK(saturating_diff(t + 3s, t) == 3s);
}

TEST_CASE("durations of other units saturate to what Duration holds", "[bounds]") {
  CHECK(saturating_cast(std::chrono::milliseconds::max()) == Duration::max());
  CHECK(saturating_cast(std::chrono::hours::max()) == Duration::max());
  CHECK(saturating_cast(std::chrono::hours::min()) == Duration::min());
  CHECK(saturating_cast(1500ms) == 1500000us);
  const auto now = std::chrono::steady_clock::now();
  CHECK(steady_deadline(now, Duration::max()) == std::chrono::steady_clock::time_point::max());
  CHECK(steady_deadline(now, -1s) == now);
  CHECK(steady_deadline(now, 2s) == now + 2s);
}

TEST_CASE("caller durations and counts are checked in one place", "[bounds]") {
  CHECK(check_duration("lease_for", 1s, DurationRule::positive).has_value());
  CHECK(check_duration("lease_for", Duration::max(), DurationRule::positive).has_value());
  auto zero = check_duration("lease_for", 0s, DurationRule::positive);
  REQUIRE_FALSE(zero.has_value());
  CHECK(zero.error().code() == ErrorCode::invalid_argument);
  CHECK_THAT(zero.error().message(), Catch::Contains("lease_for"));
  CHECK(check_duration("delay", 0s, DurationRule::non_negative).has_value());
  CHECK_FALSE(check_duration("delay", -1us, DurationRule::non_negative).has_value());
  CHECK(check_count("limit", 5, 1, 1000).has_value());
  CHECK_FALSE(check_count("limit", 0, 1, 1000).has_value());
  CHECK_FALSE(check_count("limit", 1001, 1, 1000).has_value());
}
