// Input checks of the read/maintenance side of the Store seam (prune, the
// worker registry, claim's kinds filter), shared by every store so they
// reject the same input with the same words.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/bounds.h"
#include "porter/job.h"
#include "porter/store.h"

namespace porter::detail {

inline Status check_prune_request(const PruneRequest& r) {
  if (auto s = check_count("prune limit", r.limit, 1, kMaxPruneLimit); !s) return s;
  if (r.states.empty()) return make_error(ErrorCode::invalid_argument, "prune needs at least one final state");
  for (JobState s : r.states) {
    if (!is_final(s)) {
      return make_error(ErrorCode::invalid_argument,
                        "prune deletes only final jobs; '" + std::string(to_string(s)) + "' is not final");
    }
  }
  return {};
}

// Kinds and queues as validate(NewJob) checks them; the id as long as
// EngineOptions::worker_id may be (an engine's own id must always announce).
inline Status check_worker(const WorkerInfo& w, Duration ttl) {
  if (auto s = check_duration("worker ttl", ttl, DurationRule::positive); !s) return s;
  if (w.id.empty() || w.id.size() > kMaxOwnerBytes) {
    return make_error(ErrorCode::invalid_argument,
                      "worker id must be 1.." + std::to_string(kMaxOwnerBytes) + " bytes");
  }
  for (const auto& q : w.queues) {
    if (auto s = validate_name("queue", q); !s) return s;
  }
  for (const auto& k : w.kinds) {
    if (auto s = validate_name("kind", k); !s) return s;
  }
  return {};
}

// The distinct kinds of a claim request, sorted (an empty list: any kind).
inline std::vector<std::string> distinct_kinds(const std::vector<std::string>& kinds) {
  std::vector<std::string> out(kinds);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace porter::detail
