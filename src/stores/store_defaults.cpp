// The Store seam's default implementations: correct for any backend by
// composing the single calls; a backend overrides them to use one transaction.
#include "porter/store.h"

#include "rules/rules.h"

namespace porter {

Result<FinishAndClaim> Store::finish_and_claim(std::span<const Outcome> outcomes, const ClaimRequest& next) {
  FinishAndClaim out;
  if (!outcomes.empty()) {
    auto finished = finish(outcomes);
    if (!finished) return finished.error();
    out.finished = std::move(*finished);
  }
  if (next.limit == 0) return out;
  auto claimed = claim(next);
  if (claimed) {
    out.claimed = std::move(*claimed);
  } else {
    out.claim_status = claimed.error();
  }
  return out;
}

Result<std::vector<LeaseStatus>> Store::heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) {
  if (extend_by <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "extend_by must be positive");
  std::vector<LeaseRef> leases;
  leases.reserve(beats.size());
  for (const Beat& beat : beats) {
    leases.push_back(beat.lease);
    // A stale lease is reported by the heartbeat below; other errors stop here.
    const RunReport& report = beat.report;
    if (report.progress && rules::check_progress(*report.progress)) {
      if (auto s = report_progress(beat.lease, *report.progress); !s && s.error().code() != ErrorCode::stale_lease) return s.error();
    }
    if (!report.item_errors.empty()) {
      if (auto s = add_item_errors(beat.lease, report.item_errors); !s && s.error().code() != ErrorCode::stale_lease) return s.error();
    }
  }
  return heartbeat(leases, extend_by);
}

}  // namespace porter
