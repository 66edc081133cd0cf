// Retention passes (porter/retention.h). Kept apart from Admin so an engine's
// maintenance loop and an administrator share one batching loop.
#include "porter/retention.h"

#include "core/bounds.h"

namespace porter {

Status check_retention(const Retention& r) {
  using detail::DurationRule;
  if (auto s = detail::check_duration("retention.completed", r.completed, DurationRule::non_negative); !s) return s;
  if (auto s = detail::check_duration("retention.failed", r.failed, DurationRule::non_negative); !s) return s;
  if (auto s = detail::check_duration("retention.cancelled", r.cancelled, DurationRule::non_negative); !s) return s;
  if (auto s = detail::check_duration("retention.interval", r.interval, DurationRule::positive); !s) return s;
  return detail::check_count("retention.batch", r.batch, 1, kMaxPruneLimit);
}

std::vector<PruneRequest> retention_requests(const Retention& r, TimePoint now) {
  std::vector<PruneRequest> out;
  if (!r.enabled) return out;
  for (auto [state, keep] : {std::pair{JobState::completed, r.completed}, std::pair{JobState::failed, r.failed},
                             std::pair{JobState::cancelled, r.cancelled}}) {
    if (keep == Duration::max()) continue;  // kept forever
    out.push_back(PruneRequest{.states = {state}, .finished_before = detail::saturating_sub(now, keep), .limit = r.batch});
  }
  return out;
}

Result<std::int64_t> prune_in_batches(Store& store, const PruneRequest& request) {
  std::int64_t total = 0;
  for (int batch = 0; batch < kMaxPruneBatchesPerPass; ++batch) {
    auto n = store.prune(request);
    if (!n) return n.error();
    total += *n;
    if (*n < request.limit) break;
  }
  return total;
}

Result<std::int64_t> apply_retention(Store& store, const Retention& retention) {
  if (auto s = check_retention(retention); !s) return s.error();
  std::int64_t total = 0;
  for (const auto& request : retention_requests(retention, store.now())) {
    auto n = prune_in_batches(store, request);
    if (!n) return n.error();
    total += *n;
  }
  return total;
}

}  // namespace porter
