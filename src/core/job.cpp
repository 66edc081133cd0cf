// Job model helpers shared by every store: names of states and the one
// validation of NewJob, so all backends reject the same input the same way.
#include "porter/job.h"

#include "porter/store.h"

#include "core/bounds.h"
#include "core/json_check.h"

namespace porter {

std::string_view to_string(JobState state) noexcept {
  switch (state) {
    case JobState::pending: return "pending";
    case JobState::running: return "running";
    case JobState::waiting: return "waiting";
    case JobState::completed: return "completed";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "unknown";
}

Result<JobState> parse_job_state(std::string_view text) {
  for (auto s : {JobState::pending, JobState::running, JobState::waiting, JobState::completed,
                 JobState::failed, JobState::cancelled}) {
    if (to_string(s) == text) return s;
  }
  return make_error(ErrorCode::invalid_argument, "unknown job state '" + std::string(text) + "'");
}

std::string_view to_string(OutcomeKind kind) noexcept {
  switch (kind) {
    case OutcomeKind::complete: return "complete";
    case OutcomeKind::retry: return "retry";
    case OutcomeKind::fail: return "fail";
    case OutcomeKind::snooze: return "snooze";
    case OutcomeKind::wait_children: return "wait_children";
    case OutcomeKind::cancelled: return "cancelled";
    case OutcomeKind::release: return "release";
  }
  return "unknown";
}

Status validate_name(std::string_view what, std::string_view value) {
  if (value.empty()) return make_error(ErrorCode::invalid_argument, std::string(what) + " must not be empty");
  if (value.size() > kMaxNameBytes) {
    return make_error(ErrorCode::invalid_argument, std::string(what) + " is longer than " +
                                                       std::to_string(kMaxNameBytes) + " bytes");
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return make_error(ErrorCode::invalid_argument, std::string(what) + " contains a control character");
    }
  }
  return {};
}

Status validate(const NewJob& job) {
  if (auto s = validate_name("kind", job.kind); !s) return s;
  if (auto s = validate_name("queue", job.queue); !s) return s;
  if (job.args.size() > kMaxArgsBytes) {
    return make_error(ErrorCode::invalid_argument,
                      "args are " + std::to_string(job.args.size()) + " bytes; the limit is " +
                          std::to_string(kMaxArgsBytes));
  }
  if (const auto json = detail::check_json(job.args); !json.ok()) {
    return make_error(ErrorCode::invalid_argument, "args are not valid JSON: " + detail::describe_json_fault(job.args, json));
  }
  if (job.priority < kMinPriority || job.priority > kMaxPriority) {
    return make_error(ErrorCode::invalid_argument, "priority " + std::to_string(job.priority) + " is outside " +
                                                       std::to_string(kMinPriority) + ".." +
                                                       std::to_string(kMaxPriority));
  }
  if (job.max_attempts < 0) {
    return make_error(ErrorCode::invalid_argument, "max_attempts must be >= 1 (or 0 for the default)");
  }
  if (job.owner.size() > kMaxOwnerBytes) {
    return make_error(ErrorCode::invalid_argument, "owner is longer than " + std::to_string(kMaxOwnerBytes) + " bytes");
  }
  if (job.unique_key.size() > kMaxUniqueKeyBytes) {
    return make_error(ErrorCode::invalid_argument,
                      "unique_key is longer than " + std::to_string(kMaxUniqueKeyBytes) + " bytes");
  }
  if (!job.unique_key.empty() && job.unique_scope == UniqueScope::period && job.unique_period <= Duration::zero()) {
    return make_error(ErrorCode::invalid_argument, "unique scope 'period' needs a positive unique_period");
  }
  if (job.description.size() > kMaxErrorMessageBytes) {
    return make_error(ErrorCode::invalid_argument,
                      "description is longer than " + std::to_string(kMaxErrorMessageBytes) + " bytes");
  }
  if (job.delay && job.run_at) {
    return make_error(ErrorCode::invalid_argument, "give either run_at or delay, not both");
  }
  if (job.delay && *job.delay < Duration::zero()) {
    return make_error(ErrorCode::invalid_argument, "delay must not be negative");
  }
  for (JobId dep : job.depends_on) {
    if (dep <= 0) return make_error(ErrorCode::invalid_argument, "dependency id " + std::to_string(dep) + " is not a job id");
  }
  return {};
}

TimePoint resolve_run_at(const NewJob& job, TimePoint now) {
  if (job.run_at) return *job.run_at;
  if (job.delay) return detail::saturating_add(now, *job.delay);  // max(): never due
  return now;
}

std::string clip_message(std::string_view message) {
  if (message.size() <= kMaxErrorMessageBytes) return std::string(message);
  std::size_t cut = kMaxErrorMessageBytes - 3;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;  // not mid-character
  std::string out(message.substr(0, cut));
  out += "\xE2\x80\xA6";  // U+2026 HORIZONTAL ELLIPSIS
  return out;
}

}  // namespace porter
