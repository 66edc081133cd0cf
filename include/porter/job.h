// The job model: what a job is, the states it moves through, and what a
// caller asks for when enqueueing one. Plain data, shared by every store.
//
//   pending ──claim──▶ running ──ok──────────────────▶ completed
//      ▲                  │ ├─ spawned children, wait ─▶ waiting ─ all children final ─▶ pending (callback phase)
//      │ transient error  │ ├─ permanent error / attempts exhausted ─▶ failed
//      └──── (backoff) ───┘ └─ cancelled ─▶ cancelled
//   lease expired (worker crash) ── rescue ──▶ pending (attempt consumed) or failed
//
// `pending` with run_at in the future is what admins call "scheduled".
// A job enqueued with dependencies starts in `waiting` and becomes pending
// when every dependency has completed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "porter/clock.h"
#include "porter/status.h"

namespace porter {

using JobId = std::int64_t;

enum class JobState : std::uint8_t { pending, running, waiting, completed, failed, cancelled };

std::string_view to_string(JobState state) noexcept;
Result<JobState> parse_job_state(std::string_view text);
// completed, failed and cancelled are final: nothing moves a job out of them
// but an administrator's retry.
constexpr bool is_final(JobState s) noexcept {
  return s == JobState::completed || s == JobState::failed || s == JobState::cancelled;
}

// How long a unique key keeps duplicates out.
enum class UniqueScope : std::uint8_t {
  active,  // while a job with the key is pending, waiting or running
  period,  // for `unique_period` after the existing job was created, whatever its state
  always,  // as long as the existing job is stored (until pruned)
};

// What happens to a parent when one of its children fails or is cancelled.
// Chosen per child when spawning.
enum class ChildFailurePolicy : std::uint8_t {
  fail_parent,  // the parent fails at once; its other unfinished children are cancelled
  callback,     // the parent's callback runs as usual and decides
};

// When a job with dependencies runs.
enum class DependencyMode : std::uint8_t {
  all_completed,  // once every dependency completed; cancelled when one fails or is cancelled
  all_final,      // once every dependency is final, however it ended (a "notify me when finished" job)
};

// Limits every store enforces (bad input is rejected at enqueue, not truncated).
inline constexpr std::size_t kMaxNameBytes = 128;           // kind, queue
inline constexpr std::size_t kMaxArgsBytes = 1 << 20;       // args and result JSON: 1 MiB
inline constexpr std::size_t kMaxUniqueKeyBytes = 512;
inline constexpr std::size_t kMaxOwnerBytes = 256;
inline constexpr int kMinPriority = -1000;
inline constexpr int kMaxPriority = 1000;
inline constexpr int kDefaultMaxAttempts = 20;
inline constexpr std::size_t kMaxStoredItemErrors = 100;    // per job; the total is still counted
inline constexpr std::size_t kMaxErrorMessageBytes = 4096;  // longer messages are cut, marked "…"

// What a caller asks for. Only `kind` is required.
struct NewJob {
  std::string kind;                      // handler name; non-empty, at most kMaxNameBytes
  std::string args = "{}";              // JSON text; validated at enqueue
  std::string queue = "default";        // non-empty, at most kMaxNameBytes
  int priority = 0;                      // lower runs first; kMinPriority..kMaxPriority. Default: 0
  std::optional<TimePoint> run_at;       // absent: runnable now. Default: now
  std::optional<Duration> delay;         // instead of run_at: runnable after this long (>= 0)
  int max_attempts = 0;                  // 0: the engine's policy for the kind, else kDefaultMaxAttempts
  std::string owner;                     // who enqueued it (for admin scoping). Default: none
  std::string unique_key;                // empty: not unique. Uniqueness is per (kind, unique_key)
  UniqueScope unique_scope = UniqueScope::active;
  Duration unique_period{0};             // for UniqueScope::period
  std::vector<JobId> depends_on;         // runs only after all of these completed; each must exist
  DependencyMode dependency_mode = DependencyMode::all_completed;  // Default: all_completed
  ChildFailurePolicy on_failure = ChildFailurePolicy::fail_parent;  // when spawned as a child
  std::string description;               // free text for people ("Import users.csv"). Default: none
};

// Checks a NewJob against the limits above. Shared by every store.
Status validate(const NewJob& job);
// The name check validate() applies to a kind or a queue (non-empty, at most
// kMaxNameBytes, no control characters); `what` names it in the message.
Status validate_name(std::string_view what, std::string_view value);
// When the job becomes runnable, given the store's `now` (run_at, now + delay, or now).
TimePoint resolve_run_at(const NewJob& job, TimePoint now);
// Error messages are kept to kMaxErrorMessageBytes (cut on a UTF-8 boundary, marked "…").
std::string clip_message(std::string_view message);

// One failed attempt, kept for the administrator.
struct AttemptError {
  int attempt = 0;
  TimePoint at{};
  std::string message;
  bool permanent = false;
};

// A failure of one item inside a bulk job (one bad row of an import).
struct ItemError {
  std::string item;     // the item's key, e.g. "row 17" or an e-mail address
  std::string message;
};

// Stores reject a report with negative counts or with done > total when the
// total is known (invalid_argument): progress never exceeds 100%.
struct Progress {
  std::int64_t done = 0;
  std::int64_t total = 0;  // 0: unknown
  std::string message;
  // 0..100 (clamped), or nullopt when total is unknown.
  std::optional<double> percent() const {
    if (total <= 0) return std::nullopt;
    if (done <= 0) return 0.0;
    if (done >= total) return 100.0;
    return 100.0 * static_cast<double>(done) / static_cast<double>(total);
  }
};

// Identifies one claim of one job. The token (fencing token) grows with every
// claim of the job, so a worker whose lease expired and was re-claimed holds a
// stale token and every call it makes with it is rejected.
struct LeaseRef {
  JobId id = 0;
  std::uint64_t token = 0;
  friend bool operator==(const LeaseRef&, const LeaseRef&) = default;
};

struct Lease {
  std::uint64_t token = 0;
  std::string worker;  // who holds it, e.g. "host:pid:engine"
  TimePoint expires_at{};
};

// A stored job, as stores return it.
struct Job {
  JobId id = 0;
  std::string kind;
  std::string args;
  std::string queue;
  int priority = 0;
  JobState state = JobState::pending;
  TimePoint run_at{};
  int attempt = 0;        // runs started in the current phase (a callback phase starts again at 0)
  int max_attempts = kDefaultMaxAttempts;
  std::string owner;
  std::string unique_key;
  std::string description;
  std::optional<JobId> parent_id;
  ChildFailurePolicy on_failure = ChildFailurePolicy::fail_parent;
  TimePoint created_at{};
  std::optional<TimePoint> started_at;   // of the latest run
  std::optional<TimePoint> finished_at;  // set in a final state
  std::optional<Lease> lease;            // while running
  bool cancel_requested = false;         // a running job asked to stop
  bool callback_pending = false;         // next run is the callback phase after its children finished
  int children_total = 0;
  int children_unfinished = 0;
  int dependencies_unfinished = 0;
  std::vector<JobId> depends_on;
  DependencyMode dependency_mode = DependencyMode::all_completed;
  Progress progress;
  std::vector<AttemptError> errors;      // one per failed attempt, oldest first
  std::int64_t item_error_count = 0;     // all item errors reported
  std::vector<ItemError> item_errors;    // the first kMaxStoredItemErrors of them
  std::string result;                    // JSON text set by the handler; empty: none

  LeaseRef lease_ref() const { return {id, lease ? lease->token : 0}; }
};

}  // namespace porter
