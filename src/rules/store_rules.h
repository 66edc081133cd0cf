// Rules every store enforces the same way, beyond validate(NewJob): kept here
// so the backends cannot drift apart in what they reject or how they say it.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "porter/job.h"
#include "porter/status.h"

namespace porter::detail {

// A child that depends on its parent (or any ancestor) would wait for a job
// that waits for it: a deadlock, so spawn rejects it. `ancestors` is the
// spawning job and its ancestors.
inline Status check_children_do_not_depend_on_ancestors(std::span<const NewJob> children,
                                                        std::span<const JobId> ancestors) {
  for (std::size_t i = 0; i < children.size(); ++i) {
    for (JobId dep : children[i].depends_on) {
      if (std::find(ancestors.begin(), ancestors.end(), dep) != ancestors.end()) {
        return make_error(ErrorCode::invalid_argument,
                          "child " + std::to_string(i) + " depends on job " + std::to_string(dep) +
                              ", its own parent or ancestor, which waits for it: that would never finish");
      }
    }
  }
  return {};
}

}  // namespace porter::detail
