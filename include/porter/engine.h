// Engine: runs jobs from a Store on worker threads.
//
// A host application creates one Engine per process over a shared Store,
// registers a handler per job kind, starts it, and enqueues jobs from anywhere.
// The engine owns its threads: a worker pool per queue with its own
// concurrency limit (a flood in one queue never starves another), whose
// workers claim and finish for themselves (one store call per batch of
// waiting workers, claiming only for free workers), one maintenance thread
// (heartbeats with progress reports, rescue of crashed workers' jobs,
// retention, periodic (cron) jobs) and a watchdog. Work enqueued in this
// process wakes an idle worker at once; work from other processes is found
// when the store says so (StoreEvent::changed_elsewhere) or by polling every
// `poll_every`. Claims name the kinds this engine has handlers for, so it
// never takes a job it cannot run. A handler is stopped (its stop token
// fires) at its kind's timeout, and before its lease can expire when
// heartbeats keep failing.
//
//   porter::Engine engine(porter::make_memory_store(), {.queues = {{"mail", 4}}});
//   engine.register_handler("send_email", [](porter::JobContext& ctx) {
//     send(ctx.args());                 // throw to retry, PermanentError to fail now
//   });
//   engine.start();
//   engine.enqueue({.kind = "send_email", .args = R"({"to":"a@b.c"})", .queue = "mail"});
//
// Thread safety: every public method may be called from any thread, except
// that register_handler and schedule must come before start().
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "porter/clock.h"
#include "porter/cron.h"
#include "porter/diagnostics.h"
#include "porter/job.h"
#include "porter/retention.h"
#include "porter/retry.h"
#include "porter/status.h"
#include "porter/store.h"
#include "porter/typed.h"

namespace porter {

// What a handler gets: the job, and the means to report on it and steer it.
// Valid only during the handler call, on the handler's thread.
class JobContext {
 public:
  virtual ~JobContext() = default;

  virtual const Job& job() const noexcept = 0;
  JobId id() const noexcept { return job().id; }
  std::string_view args() const noexcept { return job().args; }
  int attempt() const noexcept { return job().attempt; }
  // True when this run is the callback phase after the job's children finished.
  bool is_callback() const noexcept { return job().callback_pending; }

  // Stop now: an administrator cancelled the job (it ends cancelled), its
  // lease was lost or is about to expire because heartbeats fail (retried),
  // its kind's timeout passed (retried as "timed out"), or the engine is
  // shutting down past its grace period (handed back). Long handlers poll it
  // and return early; the engine decides the outcome by the reason, whatever
  // the handler returns.
  virtual bool cancelled() const noexcept = 0;
  virtual std::stop_token stop_token() const noexcept = 0;

  // Progress for the admin view (percent done). Cheap: buffered, and written
  // within about a second (all reports of that time in one write), or with
  // the outcome at the end.
  virtual void progress(std::int64_t done, std::int64_t total, std::string message = {}) = 0;
  // One failed item of a bulk job; the job can still complete.
  virtual void item_error(std::string item, std::string message) = 0;

  // Children of this job, inserted now under this run's lease, all or none.
  // A braced list is always a list, of any length and plain or designated:
  //   ctx.spawn({{.kind = "thumbnail"}, {.kind = "index", .queue = "indexing"}})  // two children
  //   ctx.spawn({{"thumbnail"}})                                               // one, as a list
  // and one NewJob is one child: ctx.spawn({.kind = "thumbnail"}) or ctx.spawn(job).
  virtual Result<std::vector<InsertResult>> spawn(std::vector<NewJob> children) = 0;
  Result<std::vector<InsertResult>> spawn(std::initializer_list<NewJob> children);
  Result<InsertResult> spawn(NewJob child);
  // When the handler returns, wait for every child to be final, then run the
  // handler again as the callback phase (is_callback() true).
  virtual void wait_for_children() = 0;
  // This job's children with their states and results (for the callback).
  virtual Result<std::vector<Job>> children() const = 0;

  // JSON text kept with the job when it completes; readable by its parent.
  virtual void set_result(std::string json) = 0;
  // When the handler returns: pending again after `delay`, attempt not consumed.
  virtual void snooze(Duration delay) = 0;

  // Typed forms (porter/typed.h): one child of a job type; a result of any
  // type with a JobCodec (the codec's errors are thrown).
  template <JobType T>
  Result<InsertResult> spawn(const T& child, JobOptions options = {});
  template <class R>
    requires(!std::is_convertible_v<const R&, std::string>)
  void set_result(const R& value);
};

using Handler = std::function<void(JobContext&)>;

struct KindOptions {
  std::optional<RetryPolicy> retry;  // Default: the engine's retry policy
  // How long one run may take: then its stop token fires, and the run counts
  // as a transient failure ("timed out after ...": retried, or failed when its
  // attempts are used up). A handler that ignores the token past its lease is
  // no longer heartbeated, so the job is rescued. Default: none (no limit).
  std::optional<Duration> timeout;
};

struct QueueOptions {
  std::string name;
  int concurrency = 10;  // worker threads for this queue, >= 1. Default: 10
};

struct EngineOptions {
  std::vector<QueueOptions> queues{{"default", 10}};  // queues this engine works. Default: "default" x10
  Duration lease_for{std::chrono::seconds(30)};        // Default: 30 s
  Duration heartbeat_every{std::chrono::seconds(10)};  // Default: 10 s (a third of the lease)
  Duration reaper_every{std::chrono::seconds(5)};      // Default: 5 s; 0 disables the reaper
  Duration poll_every{std::chrono::milliseconds(200)}; // fallback for work from other processes. Default: 200 ms
  Duration shutdown_grace{std::chrono::seconds(10)};   // Default: 10 s
  int claim_batch = 64;                                // most jobs leased per store call, >= 1. Default: 64
  // Durations are checked by start() (negative, or zero where it must be
  // positive, is invalid_argument); Duration::max() means "never" and saturates.
  // An engine claims only for its free workers (at most claim_batch per
  // store call), so every job it claims starts at once: a job is never
  // charged an attempt while it waits in this process, and a burst of jobs
  // spreads across the engines that share a store.
  RetryPolicy retry;                                   // Default: see RetryPolicy
  std::string worker_id;                               // Default: "<host>:<pid>:<n>"
  bool accept_unregistered_kinds = false;              // enqueue kinds handled elsewhere. Default: false
  // Finished jobs are pruned after these windows, in short batches, by the
  // engine's maintenance thread (with the reaper). Several engines on one
  // store may all prune: it is idempotent. Default: see Retention (completed
  // 24 h, failed and cancelled 7 days, checked every minute).
  Retention retention;
  // Where the engine says what went wrong without anybody asking: dropped
  // outcomes, failed heartbeats and maintenance passes, stopped threads
  // (porter/diagnostics.h). Default: warnings and errors on stderr, one line each.
  DiagnosticSink diagnostics = stderr_sink();
};

enum class EventType : std::uint8_t {
  enqueued, started, completed, retried, failed, rescued, cancelled, snoozed, waiting,
  // Trouble the engine reports rather than retrying forever (`message` says what):
  schedule_failed,  // a cron run could not be inserted for good (e.g. not_found); that run is skipped
  outcome_dropped,  // a job's outcome could not be stored; the job is rescued when its lease expires
  abandoned,        // stop() gave up on a handler that ignored its stop token; its lease will expire
  maintenance_failed,  // rescue, retention or announcing this engine failed; tried again at its next interval
};
std::string_view to_string(EventType type) noexcept;

struct Event {
  EventType type;
  JobId job = 0;
  std::string kind;   // empty for rescued (the reaper knows only ids)
  std::string queue;
  int attempt = 0;
  std::string message;  // the error for retried / failed
  Duration ran_for{0};  // completed / retried / failed: the handler's run time
  TimePoint at{};
};

class Engine {
 public:
  // Throws std::invalid_argument for a null store (a programming error).
  explicit Engine(std::shared_ptr<Store> store, EngineOptions options = {});
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // invalid_argument for a kind enqueue would refuse (empty, too long,
  // control characters), a kind registered twice, or a non-positive timeout.
  Status register_handler(std::string kind, Handler handler, KindOptions options = {});

  // A periodic job: one job per matching minute, named `name`. Engines
  // sharing a store never enqueue the same minute twice.
  Status schedule(std::string name, std::string_view cron_expression, NewJob job_template);

  // Validates and inserts; max_attempts 0 takes the kind's retry policy.
  // A kind with no handler registered here is invalid_argument (a typo would
  // otherwise sit in the queue), unless options().accept_unregistered_kinds.
  // A claimed job whose kind has no handler fails as a transient error, so a
  // rolling deploy that brings the handler later still runs it.
  Result<InsertResult> enqueue(NewJob job);
  Result<std::vector<InsertResult>> enqueue_batch(std::vector<NewJob> jobs);

  // invalid_argument for bad options (zero concurrency, empty queue name).
  Status start();
  // Graceful: stop claiming, let running jobs finish within shutdown_grace,
  // then fire their stop tokens and hand their jobs back (attempt not
  // consumed). A handler still running 2 s after its stop token fired is
  // abandoned: its thread is left to finish on its own (what it touches
  // stays alive; its spawn() fails once the engine is destroyed), its lease is
  // no longer renewed and the job is rescued when it expires (an `abandoned`
  // event says so). So stop() returns within shutdown_grace + 2 s + the time
  // to store the last outcomes (retried while the store is unavailable, at
  // most until their leases expire: lease_for). Blocks until all that is done, except when
  // called from an engine thread (a handler, an event listener): then it only
  // requests the stop and returns at once, the engine stops in the background
  // once the caller returns, and running() turns false when it has.
  void stop();
  bool running() const noexcept;

  // Engine-wide events, each delivered once to each subscriber, on engine threads
  // (`enqueued` on the enqueuing thread). unsubscribe() returns once no call to
  // that subscriber is in flight; from inside a call it takes effect at once
  // for later events without waiting.
  std::uint64_t subscribe(std::function<void(const Event&)> listener);
  void unsubscribe(std::uint64_t id);

  // Called once when the job reaches a final state (at once if it already has).
  // If the job is deleted (discarded, pruned) before the engine reads its
  // final record, a job this process finished is reported as last read by
  // on_finished, with its final state; one finished and deleted elsewhere
  // cannot be reported. Jobs finished by other processes are noticed by a
  // sweep that reads a bounded batch of watched jobs per poll interval.
  Status on_finished(JobId id, std::function<void(const Job&)> callback);
  // Blocks until the job is final; timeout error if it is not within `timeout`
  // (milliseconds::max(): no limit). Bounded by `timeout` apart from a store
  // call in flight.
  Result<Job> wait_for(JobId id, std::chrono::milliseconds timeout);

  Store& store() noexcept;
  const EngineOptions& options() const noexcept;

  // Typed jobs (porter/typed.h). register_job<T>: the handler takes
  // (const T&) or (const T&, JobContext&) and returns void or a result; args
  // that do not decode fail the job permanently; T::timeout, when declared,
  // is the kind's timeout unless `options` sets one. enqueue: as the NewJob
  // form, with the type's defaults under `options`.
  template <JobType T, class F>
  Status register_job(F handler, KindOptions options = {});
  template <JobType T>
  Result<InsertResult> enqueue(const T& job, JobOptions options = {});
  template <JobType T>
  Result<std::vector<InsertResult>> enqueue_batch(const std::vector<T>& jobs, const JobOptions& options = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace porter

#include "porter/detail/typed_engine-inl.h"  // IWYU pragma: export
