// Retry policy: the delay before the next attempt of a job that failed
// transiently. Exponential backoff with full jitter and a cap (see retry.h);
// the arithmetic is done in floating point and clamped before converting back,
// so attempt 1000 with multiplier 2 yields the cap instead of overflowing.
#include "porter/retry.h"

#include <algorithm>
#include <cmath>

namespace porter {

Duration RetryPolicy::delay_after(int attempt, double unit_random) const {
  const int n = std::max(attempt, 1);
  if (custom) {
    const Duration d = custom(n);
    return d < Duration::zero() ? Duration::zero() : d;
  }
  const double cap_us = static_cast<double>(std::max(cap, Duration::zero()).count());
  const double base_us = static_cast<double>(std::max(base, Duration::zero()).count());
  // base * multiplier^(n-1) (a multiplier below 1 counts as 1: constant delay);
  // pow() may give inf for huge n, which min() turns into the cap.
  double ceiling = base_us * std::pow(std::max(multiplier, 1.0), n - 1);
  if (!(ceiling <= cap_us)) ceiling = cap_us;  // also catches NaN
  if (jitter) {
    const double u = std::clamp(unit_random, 0.0, 1.0);
    ceiling *= u;
  }
  // At the cap, return it exactly: a cap near INT64_MAX rounds up to 2^63 as a
  // double, and converting that back would be undefined.
  if (ceiling >= cap_us) return std::max(cap, Duration::zero());
  return Duration(static_cast<Duration::rep>(ceiling));
}

}  // namespace porter
