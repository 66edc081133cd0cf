// RetryPolicy::delay_after: the exponential curve, the cap, full jitter's
// bounds, the custom override and large attempts that would overflow.
#include <catch2/catch.hpp>

#include <random>

#include "porter/retry.h"

using namespace std::chrono_literals;
using porter::Duration;
using porter::RetryPolicy;

TEST_CASE("retry: without jitter the delay doubles from base up to the cap", "[retry]") {
  RetryPolicy p{.base = 1s, .multiplier = 2.0, .cap = 60s, .jitter = false};
  CHECK(p.delay_after(1, 0.5) == Duration(1s));
  CHECK(p.delay_after(2, 0.5) == Duration(2s));
  CHECK(p.delay_after(3, 0.5) == Duration(4s));
  CHECK(p.delay_after(6, 0.5) == Duration(32s));
  CHECK(p.delay_after(7, 0.5) == Duration(60s));
  CHECK(p.delay_after(50, 0.5) == Duration(60s));
}

TEST_CASE("retry: full jitter stays within 0..ceiling", "[retry]") {
  RetryPolicy p{.base = 100ms, .multiplier = 3.0, .cap = 10s, .jitter = true};
  CHECK(p.delay_after(1, 0.0) == Duration::zero());
  CHECK(p.delay_after(3, 0.5) == Duration(450ms));
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int attempt = 1; attempt <= 30; ++attempt) {
    const Duration ceiling = RetryPolicy{.base = 100ms, .multiplier = 3.0, .cap = 10s, .jitter = false}
                                 .delay_after(attempt, 0);
    for (int i = 0; i < 100; ++i) {
      const Duration d = p.delay_after(attempt, unit(rng));
      REQUIRE(d >= Duration::zero());
      REQUIRE(d <= ceiling);
    }
  }
}

TEST_CASE("retry: out-of-range random values and attempts are clamped", "[retry]") {
  RetryPolicy p{.base = 1s, .multiplier = 2.0, .cap = 8s, .jitter = true};
  CHECK(p.delay_after(1, -3.0) == Duration::zero());
  CHECK(p.delay_after(2, 7.0) == Duration(2s));
  CHECK(p.delay_after(0, 1.0) == Duration(1s));    // attempt 0 counts as the first
  CHECK(p.delay_after(-5, 1.0) == Duration(1s));
}

TEST_CASE("retry: huge attempts and caps do not overflow", "[retry]") {
  RetryPolicy p{.base = 1s, .multiplier = 10.0, .cap = 1h, .jitter = false};
  CHECK(p.delay_after(1'000'000, 0) == Duration(1h));
  CHECK(p.delay_after(std::numeric_limits<int>::max(), 0) == Duration(1h));

  RetryPolicy unbounded{.base = 1s, .multiplier = 2.0, .cap = Duration::max(), .jitter = false};
  CHECK(unbounded.delay_after(10'000, 0) == Duration::max());
  RetryPolicy jittered{.base = 1s, .multiplier = 2.0, .cap = Duration::max(), .jitter = true};
  const Duration d = jittered.delay_after(10'000, 0.25);
  CHECK(d > Duration::zero());
  CHECK(d < Duration::max());
}

TEST_CASE("retry: a multiplier of 1 (or less) gives a constant delay", "[retry]") {
  RetryPolicy p{.base = 5s, .multiplier = 1.0, .cap = 1h, .jitter = false};
  CHECK(p.delay_after(1, 0) == Duration(5s));
  CHECK(p.delay_after(9, 0) == Duration(5s));
  p.multiplier = 0.1;
  CHECK(p.delay_after(9, 0) == Duration(5s));
}

TEST_CASE("retry: a custom function replaces the formula", "[retry]") {
  RetryPolicy p;
  p.custom = [](int attempt) { return Duration(std::chrono::seconds(attempt * 7)); };
  CHECK(p.delay_after(1, 0.9) == Duration(7s));
  CHECK(p.delay_after(3, 0.1) == Duration(21s));
  p.custom = [](int) { return Duration(-5s); };
  CHECK(p.delay_after(1, 0.5) == Duration::zero());  // never a negative delay
}

TEST_CASE("retry: defaults are 20 attempts, 1 s base, x2, 1 h cap, jitter", "[retry]") {
  RetryPolicy p;
  CHECK(p.max_attempts == 20);
  CHECK(p.base == Duration(1s));
  CHECK(p.multiplier == 2.0);
  CHECK(p.cap == Duration(1h));
  CHECK(p.jitter);
}

TEST_CASE("retry: PermanentError is a runtime_error carrying its message", "[retry]") {
  try {
    throw porter::PermanentError("bad row");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "bad row");
  }
}
