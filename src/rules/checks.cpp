// What every store rejects, and how it says so (see rules.h).
#include <algorithm>
#include <cstdio>

#include "core/json_check.h"
#include "rules/rules.h"

namespace porter::rules {

Status validate_batch(std::span<const NewJob> jobs) {
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (auto s = validate(jobs[i]); !s) {
      return make_error(s.error().code(), "job " + std::to_string(i) + ": " + s.error().message());
    }
  }
  return {};
}

Status check_dependencies_exist(Tx& tx, std::span<const NewJob> jobs) {
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    for (JobId dep : jobs[i].depends_on) {
      if (!tx.read(dep)) {
        return make_error(ErrorCode::not_found,
                          "job " + std::to_string(i) + ": dependency " + std::to_string(dep) + " does not exist");
      }
    }
  }
  return {};
}

Status check_no_cycle(Tx& tx, JobId spawner, std::span<const NewJob> children) {
  if (std::all_of(children.begin(), children.end(), [](const NewJob& c) { return c.depends_on.empty(); })) return {};
  // Every job that waits for the spawner: its unfinished ancestors and
  // dependents, and theirs. A child of the spawner is waited for by the
  // spawner, so a child depending on any of these closes a cycle.
  std::vector<JobId> waiting{spawner};
  std::vector<JobId> next;
  for (std::size_t i = 0; i < waiting.size(); ++i) {
    auto k = tx.read(waiting[i]);
    if (!k || is_final(k->state)) continue;
    next.clear();
    if (k->parent_id != 0) next.push_back(k->parent_id);
    if (k->has_dependents) tx.dependents(k->id, next);
    for (JobId n : next) {
      if (std::find(waiting.begin(), waiting.end(), n) != waiting.end()) continue;
      if (auto j = tx.read(n); j && !is_final(j->state)) waiting.push_back(n);
    }
  }
  for (std::size_t i = 0; i < children.size(); ++i) {
    for (JobId dep : children[i].depends_on) {
      if (std::find(waiting.begin(), waiting.end(), dep) != waiting.end()) {
        return make_error(ErrorCode::invalid_argument,
                          "child " + std::to_string(i) + " depends on job " + std::to_string(dep) +
                              ", which waits for job " + std::to_string(spawner) +
                              " (the spawning job, an ancestor, or a job depending on one): that would never finish");
      }
    }
  }
  return {};
}

Status check_result(std::string_view result) {
  if (result.size() > kMaxArgsBytes) {
    return make_error(ErrorCode::invalid_argument, "result rejected: " + std::to_string(result.size()) +
                                                       " bytes; the limit is " + std::to_string(kMaxArgsBytes));
  }
  if (const auto json = detail::check_json(result); !json.ok()) {
    return make_error(ErrorCode::invalid_argument,
                      "result rejected: not valid JSON: " + detail::describe_json_fault(result, json));
  }
  return {};
}

Status check_progress(const Progress& progress) {
  if (progress.done < 0 || progress.total < 0) {
    return make_error(ErrorCode::invalid_argument, "progress counts must not be negative");
  }
  if (progress.total > 0 && progress.done > progress.total) {
    return make_error(ErrorCode::invalid_argument, "progress " + std::to_string(progress.done) + " exceeds its total " +
                                                       std::to_string(progress.total));
  }
  return {};
}

std::string format_age(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%03llds", static_cast<long long>(ms / 1000),
                static_cast<long long>(ms < 0 ? -(ms % 1000) : ms % 1000));
  return buf;
}

}  // namespace porter::rules
