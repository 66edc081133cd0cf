// The state machine's transition rules, shared by every store.
//
// What a transition means (a final child and its parent, a dependency and
// its dependents, retry, rescue, where a new job starts) is decided here,
// once. A store supplies a small per-transaction adapter (`Tx`) over its own
// containers or SQL: read a job's head, write it back, list relatives, record
// an error, a result, a finished run, an event. The store keeps only the
// mapping; a new backend implements Tx and passes the conformance suite.
//
// Choices where store.h is silent (the conformance suite pins them):
//  - A lease stays live until the job is rescued, expired as stuck or
//    re-claimed: the fencing token, not the clock alone, decides ownership. A
//    heartbeat on an expired lease nobody rescued yet extends it, and finish
//    accepts it.
//  - A cancellation reason, and why a job was cancelled because of a
//    dependency or a parent, is kept as a permanent AttemptError.
//  - When a job ends failed or cancelled, its unfinished descendants are
//    cancelled (running ones are asked to stop). A parent that completes
//    without waiting leaves its children running.
//  - children_unfinished counts the children that are not final, exactly,
//    whatever the parent's own state (a final parent too, so a retried
//    parent waits for the right number).
//  - A waiting job with dependencies_unfinished > 0 waits for dependencies
//    and has not run since; one with 0 waits for its children. A dependency
//    completing never wakes a job that still has unfinished children.
//  - wait_children with no unfinished children goes straight to the callback
//    phase (pending, attempt 0, callback_pending).
//  - callback_pending is cleared when the job completes; a job that failed in
//    its callback phase resumes the callback phase on retry_job.
//  - retry_job recounts dependencies: unfinished ones make the job wait
//    again; failed or cancelled ones do not count (an administrator's
//    override: the job runs regardless). A retried child counts again in its
//    parent's children_unfinished.
//  - A job with DependencyMode::all_final counts a failed or cancelled
//    dependency as done, like a completed one: it runs once all are final.
//  - Every dependency must exist before the insert (or spawn) call: a job
//    cannot depend on one inserted earlier in the same batch.
//  - A child may not depend on a job that waits for the spawning job
//    (through unfinished dependencies and unfinished children): a cycle.
//  - A result (complete, wait_children) over kMaxArgsBytes or not JSON fails
//    its own job with a permanent error; the batch's other outcomes apply.
//  - Negative retry/snooze delays count as zero; Duration::max() means never.
//  - Rescue and expire_stuck announce lease_lost for each job they take.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "porter/job.h"
#include "porter/status.h"
#include "porter/store.h"

namespace porter::rules {

// What the rules read and write of a job: its state and counters, no payload.
struct JobHead {
  JobId id = 0;
  JobState state = JobState::pending;
  TimePoint run_at{};
  std::optional<TimePoint> started_at;   // of the latest run
  std::optional<TimePoint> finished_at;  // set in a final state
  int attempt = 0;
  int max_attempts = kDefaultMaxAttempts;
  bool cancel_requested = false;
  bool callback_pending = false;
  JobId parent_id = 0;  // 0: none
  ChildFailurePolicy on_failure = ChildFailurePolicy::fail_parent;
  DependencyMode dependency_mode = DependencyMode::all_completed;
  int children_total = 0;
  int children_unfinished = 0;
  int dependencies_unfinished = 0;
  bool has_dependents = false;  // some job lists this one in depends_on
  std::uint64_t token = 0;      // the latest lease token (claims set it; the rules only read it)
  // The store's own handle for the job (e.g. a pointer to its record), set by
  // Tx::read and handed back to the store; the rules never touch it. Lets an
  // in-memory store skip a second lookup on the hot path.
  void* handle = nullptr;
};

// How a run ended, for stats.
enum class RunEnd : std::uint8_t { completed, failed, retried };

// A store's view of one transaction (its lock or its database transaction is
// held for the adapter's whole life). Methods never fail: a store whose
// backend fails throws and rolls the whole transaction back.
class Tx {
 public:
  virtual TimePoint now() const = 0;
  virtual std::optional<JobHead> read(JobId id) = 0;
  // Stores every field of `h` but id, parent_id, on_failure, dependency_mode,
  // children_total (fixed, or kept by add_children) and has_dependents. A job leaving
  // `running` loses its lease; a pending job is runnable at run_at.
  virtual void write(const JobHead& h) = 0;
  // Appends the ids of `id`'s children that are not final.
  virtual void unfinished_children(JobId id, std::vector<JobId>& out) = 0;
  // Appends the ids of jobs that list `id` in depends_on (maybe deleted ones).
  virtual void dependents(JobId id, std::vector<JobId>& out) = 0;
  // Appends `id`'s dependencies (maybe deleted ones).
  virtual void dependencies(JobId id, std::vector<JobId>& out) = 0;
  // `parent` got `n` more children (children_total and children_unfinished).
  virtual void add_children(JobId parent, int n) = 0;
  virtual std::string kind_of(JobId id) = 0;
  // The latest error message of the job ("" when none).
  virtual std::string last_error(JobId id) = 0;
  // Records an AttemptError for h.attempt (`message` not yet clipped);
  // `retried`: the job goes back to pending after it (stats count it).
  virtual void add_error(const JobHead& h, std::string_view message, bool permanent, bool retried) = 0;
  virtual void set_result(JobId id, std::string_view result) = 0;
  // A run ended. run_time: the handler's; latency: due -> started. Called
  // just before the write() of the same job that ends the run (`h` already
  // in its new state), so a store may store both in one statement.
  virtual void record_run(const JobHead& h, RunEnd end, Duration run_time, Duration latency) = 0;
  virtual void emit(StoreEvent::Type type, const JobHead& h) = 0;

  // Jobs made final in this transaction whose relatives still need updating
  // (see run_effects). Stores leave it alone.
  std::vector<JobId> finals;

 protected:
  virtual ~Tx() = default;  // not deleted through a Tx*
};

// --- checks (nothing changed when they fail) --------------------------------

// validate() of each job, naming the first bad one by index.
Status validate_batch(std::span<const NewJob> jobs);
// Every dependency of every job exists now (not_found names job and id).
Status check_dependencies_exist(Tx& tx, std::span<const NewJob> jobs);
// No child depends on a job that waits for `spawner` (invalid_argument).
Status check_no_cycle(Tx& tx, JobId spawner, std::span<const NewJob> children);
// A handler's result: at most kMaxArgsBytes, valid JSON.
Status check_result(std::string_view result);
// A progress report: counts >= 0, done <= total when total is known.
Status check_progress(const Progress& progress);

// --- transitions -------------------------------------------------------------

// A new job, just stored by the store with state `waiting` and zero counts,
// and its distinct dependencies (each exists): counts the unfinished ones and
// makes it pending, waiting, or cancelled when one failed or was cancelled.
// (The store counts it in its parent with Tx::add_children.)
void place_new_job(Tx& tx, JobHead& h, std::span<const JobId> deps);

// Applies a handler's outcome to its running job `h` (live lease checked by
// the store). Returns the job's state after it.
JobState apply_outcome(Tx& tx, JobHead& h, const Outcome& o);

// Moves a job into a final state, recording `error` as permanent if given.
void finalize(Tx& tx, JobHead& h, JobState s, std::string_view error, Duration ran_for = Duration::zero());

// rescue_expired / expire_stuck: the running job loses its lease (announced);
// the attempt counts as a transient failure.
void give_up_lease(Tx& tx, JobHead& h, std::string_view message);

// Store::cancel of an existing job.
CancelResult cancel(Tx& tx, JobHead& h, std::string_view reason);

// Store::retry_job of an existing job.
Status retry(Tx& tx, JobHead& h);

// Updates the relatives of every job in tx.finals (parents, dependents,
// descendants), until none is left. A worklist, not recursion: chains can be
// long. Stores call it before their transaction ends.
void run_effects(Tx& tx);

// --- small shared pieces ------------------------------------------------------

// "0.600s": an age for messages, with millisecond precision.
std::string format_age(Duration d);
// When a job with `delay` after now is due: saturates (max() is never).
TimePoint due_after(TimePoint now, Duration delay);

}  // namespace porter::rules
