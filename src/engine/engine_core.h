// EngineCore: everything an Engine is, shared by the files of src/engine/.
//
// The threads (see DESIGN.md, "Engine"):
//   - workers, one pool per queue (QueueRuntime). A worker claims and
//     finishes for itself: it hands its outcome, and its wish for a next job,
//     to its queue's group (leader.cpp). The first waiter is the leader, as
//     in leveldb's write path: it takes every queued outcome and claim wish,
//     makes ONE Store::finish_and_claim call, and hands each follower its
//     result and its next job; jobs claimed beyond the group go to the
//     queue's idle workers. Claims never exceed the free workers, so every
//     claimed job starts at once and a burst spreads across engines.
//   - one maintenance thread (maintenance.cpp): heartbeats with the runs'
//     reports, prompt report writes, rescue, retention, the worker registry,
//     cron (scheduling.cpp), and the store-clock deadlines of scheduled jobs.
//   - a watchdog (maintenance.cpp) that fires a run's stop token at its kind's
//     timeout, or before its lease expires when heartbeats keep failing. It
//     makes no store call, so a store call that hangs (the very trouble it is
//     there for) cannot hold it up: that is why it is not the maintenance thread.
//   - a notifier for on_finished callbacks (waiting.cpp), started by the
//     first on_finished.
// Every wait is bounded in real time (kMaxBlock at most) and ended early by
// an explicit wake-up; store-clock deadlines are waited in Clock::real_wait
// slices, so a ManualClock drives leases, schedules and retries in tests.
//
// Locks (never held while a handler or a store call runs):
//   kinds_mu_     kinds_, schedules_
//   subscribers_  its own lock (CallbackSet), shared while subscribers run
//   q.mu          a queue's group and idle list, and the hand-shake fields
//                 of its slots (see WorkerSlot); the leader drops it for the store call
//   slots_mu_     every queue's `slots` vector (exclusive in start/stop)
//   slot->mu      a slot's run identity (active, job) and its handler state
//   maint_mu_     the maintenance thread's wake-ups and drained flags
//   watchdog_mu_  watchdog_signals_
//   exec_mu_      nothing but exec_cv_'s waits (executing_ is atomic)
//   watch_mu_     waiters_, callbacks_, fired_, watch_generation_
//   stopper_mu_   stopper_, stop_pending_
//   lifecycle_mu_ serialises start() and stop()
// Order when nested: slots_mu_, then q.mu, then slot->mu; nothing else under them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/bounds.h"
#include "core/callback_set.h"
#include "engine/run.h"
#include "porter/engine.h"

namespace porter::detail {

// The longest any engine thread blocks before it looks again at its state:
// a lost wake-up costs at most this, never a hang.
constexpr auto kMaxBlock = std::chrono::milliseconds(100);
// The longest single store-clock interval a loop adds: a Duration::max()
// interval never reaches Clock::real_wait's conversions.
constexpr Duration kLongestWait = std::chrono::hours(1);
// How long stop() waits for handlers after their stop token fired before it
// abandons them (documented in engine.h).
constexpr auto kAbandonAfter = std::chrono::seconds(2);
// The most outcomes one leader applies in one store call.
constexpr std::size_t kMaxGroup = 1024;
// A handler's progress and item errors reach the store within this (real
// time), coalesced into one write for every run with something new.
constexpr auto kReportDelay = std::chrono::milliseconds(250);
// Watched jobs the on_finished sweep reads per poll interval.
constexpr std::size_t kSweepBatch = 64;
// Scheduled minutes older than this are skipped rather than caught up on.
constexpr int kMaxCronCatchUp = 60;

struct KindEntry {
  Handler handler;
  RetryPolicy retry;
  std::optional<Duration> timeout;
};

struct ScheduleEntry {
  std::string name;
  CronSchedule cron;
  NewJob job;
};

// One worker thread: its Run, its hand-shake with stop(), and its place in
// its queue's group.
struct WorkerSlot {
  Run run;

  std::mutex mu;  // guards active, in_handler, abandoned, closed, and run.job while active changes
  bool active = false;      // run holds a claimed job whose outcome is not applied yet
  bool in_handler = false;  // the handler is running now
  bool abandoned = false;   // stop() gave up on the handler: leave without touching the engine
  bool closed = false;      // stop() is joining this worker: start no handler now
  // Set when abandoned: the handler being run stays alive after the engine
  // (the hot path holds no reference count of its own).
  std::shared_ptr<const KindEntry> kept_entry;

  // --- the group hand-shake, guarded by the queue's mu ---------------------------
  std::condition_variable cv;  // waited on with the queue's mu
  WorkerSlot* next = nullptr;  // in the queue's writer list
  bool has_outcome = false;    // `outcome` is to be applied
  bool wants = false;          // wants a next job
  bool parked = false;         // blocked on cv: a waker must notify
  bool idle = false;           // in the queue's idle list
  bool poked = false;          // idle, and asked to claim (new work may be there)
  bool assigned = false;       // a leader put a new job in `run`
  Outcome outcome;
  FinishResult finished;       // what the store said about `outcome`
  std::atomic<bool> done{false};  // the leader handled this slot's turn (read while spinning)
};

struct QueueRuntime {
  explicit QueueRuntime(QueueOptions o) : options(std::move(o)) {}
  const QueueOptions options;

  std::mutex mu;  // guards everything below but the request, the vectors of threads and slots
  WorkerSlot* head = nullptr;  // writers waiting for a turn; the head leads
  WorkerSlot* tail = nullptr;
  bool leading = false;           // a leader's store call is in flight; it counted the idle workers
  std::vector<WorkerSlot*> idle;  // free workers, parked until handed a job or poked
  std::uint64_t signals = 0;      // bumped by every wake-up, so a claim racing one does not lose it
  bool stopping = false;          // stop(): claim nothing; workers leave once their outcome is applied
  std::chrono::steady_clock::time_point next_poll{};  // real time: an idle worker claims then

  // Used only by the leader of the moment (one at a time per queue).
  ClaimRequest request;  // set by start(); the leader sets only its limit
  std::vector<WorkerSlot*> batch;
  std::vector<WorkerSlot*> owners;  // the slot of each outcome
  std::vector<Outcome> outcomes;
  std::vector<WorkerSlot*> wake;  // to notify once q.mu is released

  // Drained, or jobs went back to pending: the maintenance thread asks the
  // store when the next one is due.
  std::atomic<bool> look_up{false};

  std::vector<std::thread> workers;                // started by start(); joined or detached by stop()
  std::vector<std::shared_ptr<WorkerSlot>> slots;  // one per worker; a detached worker shares its slot
};

// What a handler may reach after its engine is gone (an abandoned handler's
// spawn): the engine, or nullptr once it is destroyed.
struct EngineCore;
struct EngineGate {
  std::shared_mutex mu;  // shared while a handler uses the engine; exclusive to clear it
  EngineCore* core = nullptr;
};

// Lets a store listener outlive the engine safely: the store may call a
// listener it copied just before remove_listener returned.
struct ListenerGate {
  std::shared_mutex mu;  // guards core; shared while an event is dispatched
  EngineCore* core = nullptr;
  // Jobs somebody waits on (wait_for, on_finished): a `finished` event is
  // dropped unlocked when it is 0, so a drain nobody watches pays nothing.
  std::atomic<std::int64_t> watched{0};
};

// The engine whose thread this is, so that stop() called from one of them
// does not join itself.
inline thread_local const void* t_engine_thread = nullptr;

struct EngineCore {
  EngineCore(std::shared_ptr<Store> s, EngineOptions o);
  ~EngineCore();

  const Clock& clock() const noexcept { return store_->clock(); }
  TimePoint now() const noexcept { return store_->clock().now(); }
  // How long to block for the store clock to go from `t` to `deadline`.
  std::chrono::steady_clock::duration wait_slice(TimePoint deadline, TimePoint t) const noexcept {
    const auto d = clock().real_wait(std::clamp(saturating_diff(deadline, t), Duration::zero(), kLongestWait));
    return std::min<std::chrono::steady_clock::duration>(d, kMaxBlock);
  }

  // --- kinds and enqueue (lifecycle.cpp) -------------------------------------------
  std::shared_ptr<const KindEntry> find_kind(const std::string& kind) const;
  const RetryPolicy& policy_for(const KindEntry* entry) const { return entry ? entry->retry : options_.retry; }
  Status prepare(NewJob& job) const { return prepare(job, find_kind(job.kind)); }
  Status prepare(NewJob& job, const std::shared_ptr<const KindEntry>& entry) const;
  Status prepare_all(std::vector<NewJob>& jobs) const;
  Result<std::vector<InsertResult>> enqueue_batch(std::vector<NewJob> jobs);

  // --- lifecycle (lifecycle.cpp) -----------------------------------------------------
  Status check_options() const;
  Status start();
  void stop();
  void stop_in_background();
  void abandon(WorkerSlot& slot);

  // --- events (events.cpp) -------------------------------------------------------------
  bool has_subscribers() const noexcept { return !subscribers_.empty(); }
  void emit(const Event& event) { subscribers_.notify(event); }
  void emit_all(const std::vector<Event>& events);
  void emit_enqueued(const std::vector<NewJob>& jobs, const std::vector<InsertResult>& results);
  void on_store_event(const StoreEvent& ev);
  // A queue (every queue when `queue` is empty) may have work: one idle worker claims.
  void poke(std::string_view queue);
  void poke(QueueRuntime& q);
  template <class F> void for_each_active_run(F&& f);  // f(WorkerSlot&) with slot->mu held
  void maintenance_failed(std::string_view what, const Error& error);
  // Says it through options_.diagnostics (component "engine", with this worker's id).
  void diagnose(Severity severity, std::string message, std::vector<DiagnosticField> fields = {}) const noexcept;

  // --- workers (worker.cpp) -------------------------------------------------------------
  void worker_loop(QueueRuntime& q, std::shared_ptr<WorkerSlot> slot);
  // Hands in slot.outcome (when `carrying`) and waits for, or claims, this
  // worker's next job; false when it should leave.
  bool next_job(QueueRuntime& q, WorkerSlot& slot, bool carrying);
  void wait_turn(QueueRuntime& q, std::unique_lock<std::mutex>& lock, WorkerSlot& slot);
  // With q.mu held: parks a free worker; true when a leader handed it a job.
  bool wait_idle(QueueRuntime& q, std::unique_lock<std::mutex>& lock, WorkerSlot& slot, bool& claim);
  // Runs the job in slot.run and leaves its outcome in slot.outcome; false
  // when stop() abandoned this worker meanwhile.
  bool execute(WorkerSlot& slot, Store& store, const std::shared_ptr<EngineGate>& gate);
  Outcome stopped_outcome(const Run& run, const RetryPolicy& policy) const;
  void take_job(WorkerSlot& slot, Job job, TimePoint lease_until);
  void release_run(WorkerSlot& slot);

  // --- the group (leader.cpp) -------------------------------------------------------------
  // With q.mu held and `self` at the head of the writers: does one turn for
  // every queued writer (and the idle workers), then hands leadership on.
  void lead(QueueRuntime& q, std::unique_lock<std::mutex>& lock, WorkerSlot& self);
  struct StoreTurn {
    std::vector<FinishResult> finished;  // one per outcome (dropped ones: an error)
    std::vector<Job> claimed;
    bool claim_failed = false;
  };
  StoreTurn store_turn(QueueRuntime& q);
  void store_turn_slow(QueueRuntime& q, Error error, StoreTurn& turn);
  void turn_events(QueueRuntime& q, const StoreTurn& turn);
  void report_dropped(const Run& run, OutcomeKind kind, std::string why);
  void release_jobs(std::vector<Job> jobs);

  // --- maintenance (maintenance.cpp, scheduling.cpp) ------------------------------------
  void maintenance_loop(TimePoint started);
  void heartbeat_once(bool reports_only);
  void rescue_once();
  void announce();
  void look_up_due(TimePoint t);
  void mark_look_up(QueueRuntime& q);
  void wake_maintenance();
  void ask_report(Run& run);
  void watchdog_loop();
  void poke_watchdog();
  void write_uncounted(const LeaseRef& lease, std::size_t uncounted);
  // Cron: inserts due runs; returns the next store-clock instant it needs.
  void schedule_init(TimePoint start);
  TimePoint schedule_step(TimePoint t);
  bool insert_scheduled(const ScheduleEntry& entry, std::vector<NewJob>& runs);
  NewJob cron_job(const ScheduleEntry& e, TimePoint minute) const;

  // --- waiting for jobs (waiting.cpp) -----------------------------------------------------
  Result<Job> wait_for(JobId id, std::chrono::milliseconds timeout);
  Status on_finished(JobId id, std::function<void(const Job&)> callback);
  void notifier_loop();
  void notify_if_final(JobId id);
  std::chrono::steady_clock::duration poll_slice() const;

  // --- state ------------------------------------------------------------------------------
  std::shared_ptr<Store> store_;
  EngineOptions options_;

  mutable std::shared_mutex kinds_mu_;
  std::unordered_map<std::string, std::shared_ptr<const KindEntry>> kinds_;  // guarded by kinds_mu_
  std::vector<ScheduleEntry> schedules_;                                     // guarded by kinds_mu_
  // As of start(), read by engine threads without a lock (fixed while running).
  std::unordered_map<std::string, std::shared_ptr<const KindEntry>> run_kinds_;
  std::vector<std::string> claim_kinds_;  // run_kinds_' names, sorted: every ClaimRequest::kinds
  std::vector<ScheduleEntry> run_schedules_;

  detail::CallbackSet<Event> subscribers_;

  std::mutex lifecycle_mu_;
  std::atomic<bool> running_{false};
  std::mutex stopper_mu_;
  std::thread stopper_;
  bool stop_pending_ = false;

  // Built by the first successful start() and never resized, so store events
  // walk them without a lock; `queues_ready_` publishes them.
  std::vector<std::unique_ptr<QueueRuntime>> queues_;
  std::atomic<bool> queues_ready_{false};
  std::atomic<bool> stopping_{false};  // stop() has begun: no claims, cron runs or rescues
  // Guards every queue's `slots` (replaced by start() and stop()); shared
  // while heartbeats, the watchdog and store events walk the runs.
  std::shared_mutex slots_mu_;

  std::mutex exec_mu_;
  std::condition_variable exec_cv_;
  std::atomic<int> executing_{0};
  std::atomic<bool> draining_{false};

  std::mutex maint_mu_;
  std::condition_variable maint_cv_;
  bool maint_stop_ = false;          // guarded by maint_mu_
  std::uint64_t maint_signals_ = 0;  // guarded by maint_mu_
  std::vector<std::optional<TimePoint>> next_due_;  // per queue (store clock); maintenance thread only
  std::atomic<bool> look_up_due_{false};  // a queue was drained or requeued: ask the store when next
  std::atomic<bool> report_due_{false};   // a run asked for a prompt report write
  std::thread maintenance_;
  std::vector<TimePoint> cron_next_;               // per schedule; maintenance thread only
  std::vector<std::vector<NewJob>> cron_pending_;  // due runs not yet inserted, per schedule

  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool watchdog_stop_ = false;          // guarded by watchdog_mu_
  std::uint64_t watchdog_signals_ = 0;  // guarded by watchdog_mu_
  std::thread watchdog_;

  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  std::unordered_map<JobId, int> waiters_;  // wait_for calls per job
  struct Watch {
    Job seen;                             // as read by on_finished
    std::optional<JobState> final_state;  // from this process's `finished` event
    bool missing_once = false;            // read back as not_found once, with no final state known
    std::vector<std::function<void(const Job&)>> callbacks;
  };
  std::map<JobId, Watch> callbacks_;  // ordered: the sweep goes round it
  std::unordered_set<JobId> fired_;   // watched jobs with a `finished` event not yet looked at
  std::uint64_t watch_generation_ = 0;  // bumped by changed_elsewhere: every waiter looks again
  bool sweep_now_ = false;              // changed_elsewhere: the notifier sweeps at once
  bool notifier_stop_ = false;
  std::thread notifier_;

  std::shared_ptr<EngineGate> engine_gate_;
  std::shared_ptr<ListenerGate> gate_;
  std::uint64_t listener_id_ = 0;
};

template <class F>
void EngineCore::for_each_active_run(F&& f) {
  if (!queues_ready_.load(std::memory_order_acquire)) return;
  std::shared_lock slots_lock(slots_mu_);
  for (auto& q : queues_) {
    for (auto& slot : q->slots) {
      std::lock_guard lock(slot->mu);
      if (slot->active) f(*slot);
    }
  }
}

}  // namespace porter::detail
