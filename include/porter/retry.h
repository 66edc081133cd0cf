// Retry policy: how many attempts a job gets and how long it waits between
// them. The default is exponential backoff with full jitter, capped:
//   delay(n) = uniform(0, min(cap, base * multiplier^(n-1)))
// Full jitter spreads retries of many jobs that failed together (a downstream
// outage) instead of having them hammer the service again in lockstep.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

#include "porter/clock.h"
#include "porter/job.h"

namespace porter {

struct RetryPolicy {
  int max_attempts = kDefaultMaxAttempts;        // Default: 20
  Duration base{std::chrono::seconds(1)};        // Default: 1 s
  double multiplier = 2.0;                       // Default: 2
  Duration cap{std::chrono::hours(1)};           // Default: 1 h
  bool jitter = true;                            // Default: full jitter
  // Replaces the formula when set: attempt (1-based, the one that just failed) -> delay.
  std::function<Duration(int attempt)> custom;

  // The delay after failed attempt `attempt` (>= 1). `unit_random` in [0, 1)
  // draws the jitter; pass a fixed value in tests.
  Duration delay_after(int attempt, double unit_random) const;
};

// Throw from a handler (or derive from it) for a failure that retrying cannot
// fix: invalid data, a missing record. The job fails at once, kept for review.
// Any other exception is transient and retried.
class PermanentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace porter
