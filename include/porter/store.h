// Store: the seam every storage backend implements, and the only one.
//
// Operations are domain-level and each is atomic (one transaction, or one
// critical section): with SQLite or PostgreSQL many processes call them at
// once, so the store, not the engine, decides who owns a job. Operations take
// batches where the hot path needs them (insert, claim, heartbeat, finish).
//
// Time: the store reads time from its own clock (an injected Clock for the
// in-process stores, the database's now() for PostgreSQL). Callers pass
// durations, never absolute deadlines computed on another machine.
//
// Parent/child and dependency bookkeeping happens inside finish, cancel and
// rescue, in the same transaction as the child's transition, so a parent is
// woken exactly once.
//
// Thread safety: every Store method may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "porter/clock.h"
#include "porter/job.h"
#include "porter/status.h"

namespace porter {

struct InsertResult {
  JobId id = 0;
  bool duplicate = false;  // a unique job already existed; `id` is that job
};

struct ClaimRequest {
  std::string queue;
  std::string worker;       // recorded as the lease holder
  int limit = 1;            // at most this many jobs (>= 1)
  Duration lease_for{std::chrono::seconds(30)};
  // Only jobs of these kinds (the handlers the claiming engine has); empty:
  // any kind. An engine never claims a job it cannot run, so during a rolling
  // deploy each job waits for an engine that handles it.
  std::vector<std::string> kinds;
};

struct LeaseStatus {
  bool held = false;              // false: the lease expired or was taken over; stop working
  bool cancel_requested = false;  // someone asked the job to stop
};

enum class OutcomeKind : std::uint8_t {
  complete,       // ran to the end; `result` optional
  retry,          // transient failure: pending again after `delay`; failed if attempts are exhausted
  fail,           // permanent failure: failed now
  snooze,         // not now: pending again after `delay`, attempt not consumed
  wait_children,  // spawned children: waiting until every child is final, then the callback phase
  cancelled,      // the handler stopped because it was cancelled
  release,        // hand the job back (shutdown): pending now, attempt not consumed
};

std::string_view to_string(OutcomeKind kind) noexcept;

// Progress and item errors a handler reported since its last write: they
// ride on the next heartbeat or on the outcome, in that transaction, instead
// of a transaction each. Applied only while the lease is live. A progress
// that fails the check (negative, done > total) is ignored: the engine checks
// it where the handler reports it.
struct RunReport {
  std::optional<Progress> progress;    // the latest: replaces the stored one
  std::vector<ItemError> item_errors;  // counted; the first kMaxStoredItemErrors are kept
  bool empty() const noexcept { return !progress && item_errors.empty(); }
};

struct Outcome {
  LeaseRef lease;
  OutcomeKind kind = OutcomeKind::complete;
  std::string result;      // complete / wait_children: JSON text, empty for none
  std::string error;       // retry / fail: the message recorded in the job's errors
  Duration delay{0};       // retry / snooze
  Duration ran_for{0};     // the handler's own run time; 0: unknown (the store uses started -> now)
  RunReport report;        // applied first, in the same transaction
};

// One lease to extend, with what its handler reported since the last beat.
struct Beat {
  LeaseRef lease;
  RunReport report;
};

struct FinishResult {
  Status status;                   // stale_lease when the token no longer matches: nothing changed
  JobState state = JobState::pending;  // the job's state after the call
};

// What finish_and_claim did: a worker hands back its jobs and takes its next
// ones in one call (one commit where the backend can).
struct FinishAndClaim {
  std::vector<FinishResult> finished;  // one per outcome, as finish returns them
  std::vector<Job> claimed;            // as claim returns them
  // The claim's own error when only the claim failed: the outcomes were
  // applied all the same (finished is filled), so they must not be resent.
  Status claim_status;
};

enum class CancelResult : std::uint8_t {
  cancelled,          // it was pending or waiting: it is cancelled now and will never run
  requested,          // it is running: its handler is asked to stop; it ends cancelled
  already_finished,   // it was already completed, failed or cancelled: nothing changed
};

// Filters for admin listings; every set field must match.
struct JobFilter {
  std::vector<JobState> states;            // empty: any
  std::optional<std::string> queue;
  std::optional<std::string> kind;
  std::optional<std::string> owner;
  std::optional<JobId> parent_id;
  std::optional<TimePoint> created_after;  // inclusive
  std::optional<TimePoint> created_before; // exclusive
};

// Newest first. Pass `next` back as the cursor for the following page.
struct JobPage {
  std::vector<Job> jobs;
  std::optional<JobId> next;  // nullopt: no more
};

struct QueueInfo {
  std::string name;
  bool paused = false;
  std::int64_t pending = 0;     // runnable now
  std::int64_t scheduled = 0;   // pending with run_at in the future
  std::int64_t running = 0;
  std::int64_t waiting = 0;
  std::int64_t completed = 0;
  std::int64_t failed = 0;
  std::int64_t cancelled = 0;
};

struct KindStats {
  std::string kind;
  std::int64_t completed = 0;  // finished in the window
  std::int64_t failed = 0;     // finished failed in the window
  std::int64_t retried = 0;    // failed attempts that were retried (or rescued) in the window
  double failure_rate = 0;     // failed / (completed + failed); 0 when none finished
  Duration p50{0}, p95{0}, p99{0};  // the handler's run time, of jobs finished in the window
  // Queue latency (due -> started) of the runs of jobs finished in the window.
  Duration latency_p50{0}, latency_p95{0}, latency_p99{0};
};

// Pending jobs of one (queue, kind) that no live worker handles (see Store::announce).
struct UnhandledKind {
  std::string queue;
  std::string kind;
  std::int64_t pending = 0;  // pending jobs (due or scheduled) of that kind on that queue
};

struct Stats {
  TimePoint at{};
  std::vector<QueueInfo> queues;
  std::vector<KindStats> kinds;
  std::optional<Duration> oldest_lease_age;  // age of the longest-held lease among running jobs
  std::int64_t expired_leases = 0;           // running jobs whose lease has expired (stale locks)
  // Pending jobs whose kind no live worker handles on their queue (a rolling
  // deploy removed the handler, or no engine runs at all), by queue then kind.
  std::vector<UnhandledKind> unhandled;
};

// One batch of retention pruning: final jobs in `states` that finished before
// `finished_before`, oldest first, at most `limit` of them, in one short
// transaction (so no long transaction holds the write lock). Call it again
// while it returns `limit`.
struct PruneRequest {
  // Only final states are allowed (invalid_argument otherwise). Default: all three.
  std::vector<JobState> states{JobState::completed, JobState::failed, JobState::cancelled};
  TimePoint finished_before{};
  int limit = 1000;  // 1..kMaxPruneLimit jobs per call. Default: 1000.
};
inline constexpr int kMaxPruneLimit = 100000;

// A running worker (an engine) as the registry knows it.
struct WorkerInfo {
  std::string id;                  // unique per engine (e.g. host:pid:n); non-empty
  std::vector<std::string> queues; // the queues it claims from
  std::vector<std::string> kinds;  // the kinds it has handlers for (on each of its queues)
};

// What a store tells in-process listeners: the engine wakes its claimer on
// `available` instead of polling, wait_for() wakes on `finished`, and a
// running handler sees `cancel_requested` at once rather than at its next
// heartbeat. Other processes learn the same by polling and heartbeats.
struct StoreEvent {
  // lease_lost: the job's lease was taken away (expired as stuck, rescued):
  // its handler must stop now; its outcome will be rejected as stale.
  // changed_elsewhere: another process committed to the same database (the
  // SQLite store watches its file): jobs may have become available on any
  // queue (`queue` is empty) or finished; listeners re-read what they wait on.
  enum class Type : std::uint8_t { available, finished, cancel_requested, lease_lost, changed_elsewhere } type;
  std::string_view queue;
  JobId job = 0;                      // available: one of the jobs (or 0); otherwise the job
  JobState state = JobState::pending; // finished: the final state
  // lease_lost: the token of the lease taken away. A later claim of the same
  // job holds a greater token, so a listener stops only the run holding this one.
  std::uint64_t token = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // The clock this store decides leases and schedules with.
  virtual const Clock& clock() const noexcept = 0;
  TimePoint now() const noexcept { return clock().now(); }

  // --- producers -----------------------------------------------------------

  // Inserts all jobs in one transaction, or none: invalid_argument names the
  // first invalid job (by index) and why; not_found names a missing dependency.
  // A job whose (kind, unique_key) matches an existing job within its scope is
  // not inserted: its result is that job's id with duplicate = true.
  // Dependencies must already exist, so a cycle cannot be formed. A job with
  // unfinished dependencies starts `waiting`; one whose dependency already
  // failed or was cancelled starts `cancelled`.
  virtual Result<std::vector<InsertResult>> insert(std::span<const NewJob> jobs) = 0;

  // --- workers -------------------------------------------------------------

  // Atomically leases up to `limit` runnable jobs of one queue (pending,
  // run_at <= now, queue not paused, kind in request.kinds unless it is
  // empty), in order of priority, then run_at, then
  // id. Each returned job is `running`, its attempt incremented, with a fresh
  // lease (new token, expires now + lease_for). Two callers never get the same job.
  virtual Result<std::vector<Job>> claim(const ClaimRequest& request) = 0;

  // Extends each held lease to now + `extend_by`. Per lease: whether it is
  // still held and whether cancellation was requested.
  virtual Result<std::vector<LeaseStatus>> heartbeat(std::span<const LeaseRef> leases, Duration extend_by) = 0;

  // heartbeat, with each beat's report applied while its lease is live, in
  // one transaction where the backend can. Default: report_progress and
  // add_item_errors per report, then heartbeat.
  virtual Result<std::vector<LeaseStatus>> heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by);

  // Applies outcomes, all in one transaction. Per outcome: stale_lease (and no
  // change) when the token does not match the job's live lease. A job with
  // cancel_requested ends `cancelled` whatever the outcome. Final transitions
  // update the parent (and dependents) in the same transaction.
  virtual Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) = 0;

  // finish(outcomes), then claim(next) unless next.limit is 0, in one
  // transaction where the backend can. A failing finish part changes nothing
  // and is the call's error; a failing claim part is claim_status (see
  // FinishAndClaim). Default: the two calls.
  virtual Result<FinishAndClaim> finish_and_claim(std::span<const Outcome> outcomes, const ClaimRequest& next);

  // Inserts children of a running job under its live lease (stale_lease
  // otherwise). Children get parent_id; the parent counts them. Atomic.
  virtual Result<std::vector<InsertResult>> spawn(const LeaseRef& parent, std::span<const NewJob> children) = 0;

  virtual Status report_progress(const LeaseRef& lease, const Progress& progress) = 0;

  // Counts every item error; stores the first kMaxStoredItemErrors.
  virtual Status add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) = 0;

  // Jobs whose lease expired (worker crashed or hung) go back to pending with
  // the attempt consumed and an error recorded ("lease expired"), or to failed
  // if it was the last attempt. Safe to run from every node. Returns their ids.
  virtual Result<std::vector<JobId>> rescue_expired() = 0;

  // The earliest run_at among pending jobs of `queue` (nullopt when none):
  // lets an idle engine sleep until a scheduled job is due.
  virtual Result<std::optional<TimePoint>> next_run_at(std::string_view queue) = 0;

  // --- control -------------------------------------------------------------

  // Cancels a job and its unfinished descendants. See CancelResult.
  virtual Result<CancelResult> cancel(JobId id, std::string_view reason) = 0;

  // Running jobs started more than `older_than` ago lose their lease now and
  // are treated as rescued (retried or failed by their attempts). Returns ids.
  virtual Result<std::vector<JobId>> expire_stuck(Duration older_than) = 0;

  // A failed or cancelled job back to pending now, with one more attempt
  // allowed if it had used them all. Its error history is kept. It waits
  // instead while some of its dependencies are unfinished (failed or
  // cancelled ones no longer hold it back: the administrator overrides them).
  virtual Status retry_job(JobId id) = 0;

  // Deletes a final job (with its history). wrong_state if not final.
  virtual Status discard(JobId id) = 0;

  virtual Status set_queue_paused(std::string_view queue, bool paused) = 0;

  // Deletes up to request.limit final jobs of request.states that finished
  // before request.finished_before (oldest first), with their history, unless
  // their parent still exists unfinished. Returns how many; fewer than the
  // limit means no more match now. invalid_argument for a non-final state or
  // a limit outside 1..kMaxPruneLimit.
  virtual Result<std::int64_t> prune(const PruneRequest& request) = 0;

  // --- worker registry -----------------------------------------------------

  // Records (or replaces) a live worker: it handles worker.kinds on
  // worker.queues until now + ttl. An engine calls it at start and then well
  // within every ttl from its maintenance loop; an entry not renewed expires,
  // so a crashed engine drops out by itself. Stats::unhandled is computed
  // from the live entries. invalid_argument for an empty id, bad names or a
  // non-positive ttl. Expired entries are removed here too.
  virtual Status announce(const WorkerInfo& worker, Duration ttl) = 0;
  // Forgets a worker now (an engine that stopped). Unknown ids are fine.
  virtual Status retire(std::string_view worker_id) = 0;

  // --- reads ---------------------------------------------------------------

  virtual Result<Job> get(JobId id) = 0;
  virtual Result<JobPage> list(const JobFilter& filter, std::optional<JobId> cursor, int limit) = 0;
  // Queues (every queue that has jobs or was paused), kinds over `window`, lease ages.
  virtual Result<Stats> stats(Duration window) = 0;

  // --- in-process notification ---------------------------------------------

  // Registers a listener called (outside any store lock) after this process's
  // own writes make jobs available or finish them. Returns an id for
  // remove_listener. Listeners must be quick and must not call back into the
  // store synchronously.
  using Listener = std::function<void(const StoreEvent&)>;
  virtual std::uint64_t add_listener(Listener listener) = 0;
  // Returns once no call to that listener is in flight.
  virtual void remove_listener(std::uint64_t id) = 0;
};

// The in-memory store: no durability, for tests and ephemeral work.
// `clock` defaults to the system clock.
std::shared_ptr<Store> make_memory_store(std::shared_ptr<Clock> clock = nullptr);

}  // namespace porter
