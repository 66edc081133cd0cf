// Retention: how long finished jobs are kept before they are pruned, so
// storage does not grow without bound. An engine's maintenance loop applies
// it every `interval` (apply_retention); an administrator can prune at will
// through Admin::prune. Pruning runs in batches of `batch` jobs, each one
// short transaction, so it never holds the write lock for long.
//
// The defaults follow River (completed 24 h, discarded 7 days): a completed
// job is rarely looked at after a day, a failed or cancelled one is kept a
// week so someone can read its errors and retry it.
//
// Thread safety: plain values; apply_retention may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "porter/clock.h"
#include "porter/status.h"
#include "porter/store.h"

namespace porter {

struct Retention {
  // false: finished jobs are kept until an administrator prunes them. Default: true.
  bool enabled = true;
  // How long after finishing a job is kept, per final state; Duration::max():
  // forever. Must not be negative.
  Duration completed = std::chrono::hours(24);      // Default: 24 hours.
  Duration failed = std::chrono::hours(24 * 7);     // Default: 7 days.
  Duration cancelled = std::chrono::hours(24 * 7);  // Default: 7 days.
  // How often the engine prunes; positive. Default: 1 minute.
  Duration interval = std::chrono::minutes(1);
  // Jobs deleted per transaction, 1..kMaxPruneLimit. Default: 1000.
  int batch = 1000;
};

// invalid_argument naming the first bad field.
Status check_retention(const Retention& retention);

// The prune batches one pass makes at `now`: one request per final state
// whose window is not forever (none when retention is disabled).
std::vector<PruneRequest> retention_requests(const Retention& retention, TimePoint now);

// Upper bound on the batches one call of prune_in_batches runs (with the
// default batch, ten million jobs): a pass always ends, and the next pass
// continues where it stopped.
inline constexpr int kMaxPruneBatchesPerPass = 10000;

// Runs `request` in batches until a batch deletes fewer than request.limit
// jobs (or kMaxPruneBatchesPerPass batches ran). Returns how many were deleted.
Result<std::int64_t> prune_in_batches(Store& store, const PruneRequest& request);

// One retention pass at store.now(): every request of retention_requests,
// each in batches. Returns how many jobs were deleted.
Result<std::int64_t> apply_retention(Store& store, const Retention& retention);

}  // namespace porter
