// Engine: the threads that run jobs from a Store.
//
// Per start() the engine builds:
//   - one worker pool per queue (QueueRuntime::workers), fed from that queue's
//     own hand-off deque, so a flood in one queue never takes another's threads;
//   - a claimer that claims for free workers only (never more: a claimed job
//     starts at once, so its attempt is honestly charged, and a burst spreads
//     across engines), naming the kinds it has handlers for; it is woken by
//     the store's `available` events, by a worker becoming free, by a poll
//     timer (work from other processes) and by the earliest scheduled run_at;
//   - a heartbeater extending the leases of running handlers in one call,
//     which also writes buffered progress and item errors and flags lost or
//     cancelled leases;
//   - a watchdog firing a run's stop token at its KindOptions::timeout, or
//     before its lease can expire when heartbeats keep failing;
//   - a reaper (Store::rescue_expired), a cron scheduler, and a completer that
//     applies finished handlers' outcomes in batches (retrying `unavailable`
//     only while the leases last).
// Every wait goes through Clock::real_wait, so a ManualClock drives leases,
// schedules and retries in tests without sleeping.
//
// Shutdown has a hard bound: a handler that ignores its stop token is
// abandoned (its thread detached, see WorkerSlot); what it can still reach
// (its Run, the store, EngineGate) is shared, never freed under it.
//
// Locks (never held while a handler or a store call runs, except gate_->mu,
// which only covers the quick dispatch of a store event, and
// engine_gate_->mu, held shared by an abandoned handler's spawn):
//   kinds_mu_   kinds_, schedules_
//   subscribers_ has its own lock (detail::CallbackSet), held shared while
//               subscribers run; unsubscribe waits for calls in flight
//   claim_mu_   queues_ (the vector and each QueueRuntime's claim fields)
//   q.mu        q.ready, q.idle, q.stopping (per queue)
//   slot->mu    a worker's WorkerSlot (in_handler, abandoned, run)
//   (atomics)   q.held, executing_, draining_, a Run's reason, lease_until,
//               timeout_at, returned: read and written lock-free; a waiter
//               re-checks them under its mutex and a writer that must wake
//               it takes that mutex to notify
//   runs_mu_    runs_
//   done_mu_    done_
//   exec_mu_    nothing but exec_cv_'s waits (executing_ is atomic)
//   stopper_mu_ stopper_, stop_pending_
//   watch_mu_   waiters_, callbacks_, fired_
//   watchdog_mu_ watchdog_signals_
//   lifecycle_mu_ serialises start() and stop()
// Order when nested: claim_mu_ is never held while taking another engine lock.
#include "porter/engine.h"

#include "core/bounds.h"
#include "core/callback_set.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>
#include <shared_mutex>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace porter {

std::string_view to_string(EventType type) noexcept {
  switch (type) {
    case EventType::enqueued: return "enqueued";
    case EventType::started: return "started";
    case EventType::completed: return "completed";
    case EventType::retried: return "retried";
    case EventType::failed: return "failed";
    case EventType::rescued: return "rescued";
    case EventType::cancelled: return "cancelled";
    case EventType::snoozed: return "snoozed";
    case EventType::waiting: return "waiting";
    case EventType::schedule_failed: return "schedule_failed";
    case EventType::outcome_dropped: return "outcome_dropped";
    case EventType::abandoned: return "abandoned";
    case EventType::maintenance_failed: return "maintenance_failed";
  }
  return "unknown";
}

// The braced-list overload exists so that a list is never taken for one
// NewJob: without it, {{"a"}, {"b"}} was also NewJob{.kind = "a", .args = "b"}.
Result<std::vector<InsertResult>> JobContext::spawn(std::initializer_list<NewJob> children) {
  return spawn(std::vector<NewJob>(children));
}

Result<InsertResult> JobContext::spawn(NewJob child) {
  std::vector<NewJob> one;
  one.push_back(std::move(child));
  auto r = spawn(std::move(one));
  if (!r) return std::move(r).error();
  if (r->size() != 1) return make_error(ErrorCode::internal, "spawn of one child returned " + std::to_string(r->size()));
  return r->front();
}

namespace {

std::string default_worker_id() {
  static std::atomic<int> counter{0};
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host[0] != '\0' ? host : "localhost") + ":" + std::to_string(getpid()) + ":" +
         std::to_string(++counter);
}

double unit_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// The most outcomes in one Store::finish call: big enough to amortise a
// transaction, small enough to keep one call short.
constexpr std::size_t kMaxFinishBatch = 1024;
// The longest single blocking wait: loops re-check their deadline after it,
// so a Duration::max() interval never reaches Clock::real_wait's conversions.
constexpr Duration kLongestWait = std::chrono::hours(1);
// How long stop() waits for handlers after their stop token fired before it
// abandons them (documented in engine.h).
constexpr auto kAbandonAfter = std::chrono::seconds(2);
// Watched jobs the on_finished sweep reads per poll interval.
constexpr std::size_t kSweepBatch = 64;
// Scheduled minutes older than this are skipped rather than caught up on
// (a clock jump or a long stall must not enqueue a flood of stale runs).
constexpr int kMaxCronCatchUp = 60;

}  // namespace

namespace detail {

// Why a run's stop token fired; the first reason wins and decides the outcome.
enum class StopReason : std::uint8_t {
  none,
  cancel,          // an administrator cancelled the job: it ends cancelled
  lease_lost,      // the store took the lease away: the outcome will be stale anyway
  shutdown,        // stop() past the grace: handed back, attempt not consumed
  lease_deadline,  // heartbeats failed and the lease is about to expire: a transient failure
  timeout,         // KindOptions::timeout passed: a transient failure ("timed out after ...")
};

// One claimed job, from the claim until its outcome is applied by the store.
struct Run {
  Run(Job j, TimePoint lease_until) : job(std::move(j)), lease_until_(lease_until.time_since_epoch().count()) {}
  Job job;
  // Fired on a cancel request, a lost lease, a lease deadline, a timeout or
  // shutdown. The one source of truth for "stopped": the handler's
  // stop_token, cancelled() and the outcome the engine applies never disagree.
  std::stop_source stop;

  bool cancelled() const noexcept { return stop.stop_requested(); }
  void stop_for(StopReason why) {
    StopReason none = StopReason::none;
    reason_.compare_exchange_strong(none, why);  // before the token: whoever sees it fired sees a reason
    stop.request_stop();
  }
  StopReason reason() const noexcept { return reason_.load(); }

  // When the lease runs out unless renewed (as of the last successful claim
  // or heartbeat, measured from before that store call).
  TimePoint lease_until() const noexcept { return TimePoint(Duration(lease_until_.load())); }
  void renewed(TimePoint until) noexcept { lease_until_.store(until.time_since_epoch().count()); }

  // Set by the worker around the handler call (store clock).
  std::atomic<Duration::rep> timeout_at{std::numeric_limits<Duration::rep>::max()};  // max: none
  // The handler returned: its outcome waits for the completer, and its lease
  // is no longer renewed, so a finish the store keeps refusing ends, at the
  // latest, when the lease would have expired anyway.
  std::atomic<bool> returned{false};

  std::mutex mu;  // guards progress, progress_dirty, item_errors, item_errors_uncounted
  Progress progress;
  bool progress_dirty = false;
  // Not yet flushed: at most kMaxStoredItemErrors (the store keeps no more
  // than that per job), and how many more were reported beyond them.
  std::vector<ItemError> item_errors;
  std::size_t item_errors_uncounted = 0;

 private:
  std::atomic<StopReason> reason_{StopReason::none};
  std::atomic<Duration::rep> lease_until_;
};

// One worker thread's hand-shake with stop(): a worker whose handler overran
// the shutdown is abandoned (its thread detached); when the handler finally
// returns, the thread sees `abandoned` and leaves without touching the engine.
struct WorkerSlot {
  std::mutex mu;  // guards all fields
  bool in_handler = false;
  bool abandoned = false;
  bool closed = false;  // stop() is joining this worker: it must not start a handler now
  std::shared_ptr<Run> run;  // while in_handler
};

// What a handler may reach after its engine is gone (an abandoned handler's
// spawn): the engine, or nullptr once it is destroyed.
struct EngineCore;
struct EngineGate {
  std::shared_mutex mu;  // shared while a handler uses the engine; exclusive to clear it
  EngineCore* core = nullptr;
};

struct QueueRuntime {
  explicit QueueRuntime(QueueOptions o) : options(std::move(o)) {}

  const QueueOptions options;

  std::mutex mu;  // guards ready, idle, stopping
  std::condition_variable cv;
  // Claimed for a free worker, not yet picked up: claims never exceed the
  // free workers, so every claimed job starts at once (its attempt is
  // charged at claim) and a burst spreads across engines.
  std::deque<std::shared_ptr<Run>> ready;
  int idle = 0;           // workers waiting on cv: hand_off wakes at most one per job
  bool stopping = false;  // set by stop(): workers leave once ready is empty

  // Claimed and not yet handled (ready + running), plus a claim's reservation
  // while it runs. The claimer adds, workers subtract; claim_mu_ is taken
  // only to wake the claimer when a worker becomes free.
  std::atomic<int> held{0};

  // Guarded by Engine::Impl::claim_mu_.
  int claimable_room() const noexcept { return options.concurrency - held.load(); }
  bool wanted = true;    // the store may have runnable jobs for this queue
  std::uint64_t signals = 0;  // bumped by every wake-up, so a claim racing one does not lose it
  std::optional<TimePoint> next_due;  // earliest scheduled run_at seen, or the next retry after an error

  std::vector<std::jthread> workers;  // started by start(); joined (or, if abandoned, detached) by stop()
  std::vector<std::shared_ptr<WorkerSlot>> slots;  // one per worker
};

// The engine whose thread this is (worker, claimer, completer, ...), so that
// stop() called from one of them does not join itself.
thread_local const void* t_engine_thread = nullptr;

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

// Lets a store listener outlive the engine safely: the store may call a
// listener it copied just before remove_listener returned.
struct ListenerGate {
  std::mutex mu;  // guards impl, and is held while an event is dispatched
  EngineCore* impl = nullptr;
};

// Everything the engine is; Engine::Impl only names it (Impl is private to Engine,
// and the handler context and the store listener need to reach it).
struct EngineCore {
  EngineCore(std::shared_ptr<Store> s, EngineOptions o) : store_(std::move(s)), options_(std::move(o)) {
    if (options_.worker_id.empty()) options_.worker_id = default_worker_id();
    gate_ = std::make_shared<ListenerGate>();
    gate_->impl = this;
    engine_gate_ = std::make_shared<EngineGate>();
    engine_gate_->core = this;
    listener_id_ = store_->add_listener([gate = gate_](const StoreEvent& ev) {
      std::lock_guard lock(gate->mu);
      if (gate->impl != nullptr) gate->impl->on_store_event(ev);
    });
  }

  ~EngineCore() {
    stop();
    std::thread stopper;
    {
      std::lock_guard lock(stopper_mu_);
      stopper.swap(stopper_);
    }
    if (stopper.joinable()) stopper.join();  // a stop requested from a handler: it has nothing left to do
    store_->remove_listener(listener_id_);
    {
      std::lock_guard lock(gate_->mu);
      gate_->impl = nullptr;
    }
    {
      std::unique_lock lock(engine_gate_->mu);  // waits for an abandoned handler's spawn in flight
      engine_gate_->core = nullptr;
    }
    if (notifier_.joinable()) {
      notifier_.request_stop();
      watch_cv_.notify_all();
      notifier_.join();
    }
  }

  const Clock& clock() const noexcept { return store_->clock(); }
  TimePoint now() const noexcept { return store_->clock().now(); }
  // How long to block for the store clock to go from `t` to `deadline`.
  std::chrono::steady_clock::duration wait_slice(TimePoint deadline, TimePoint t) const noexcept {
    return clock().real_wait(std::clamp(saturating_diff(deadline, t), Duration::zero(), kLongestWait));
  }

  // --- kinds and enqueue ------------------------------------------------------

  std::shared_ptr<const KindEntry> find_kind(const std::string& kind) const {
    std::shared_lock lock(kinds_mu_);
    auto it = kinds_.find(kind);
    return it == kinds_.end() ? nullptr : it->second;
  }

  const RetryPolicy& policy_for(const KindEntry* entry) const { return entry ? entry->retry : options_.retry; }

  // The engine's part of enqueueing: the kind must be known here (unless the
  // options allow otherwise) and max_attempts defaults to the kind's policy.
  // Everything else about the job is the store's to check (it is the
  // authority, for other processes too), so a job is validated once.
  Status prepare(NewJob& job) const { return prepare(job, find_kind(job.kind)); }

  Status prepare(NewJob& job, const std::shared_ptr<const KindEntry>& entry) const {
    // An empty kind is the store's to refuse, with its own message.
    if (!entry && !options_.accept_unregistered_kinds && !job.kind.empty()) {
      return make_error(ErrorCode::invalid_argument,
                        "no handler is registered for kind '" + job.kind +
                            "' (register it, or set EngineOptions::accept_unregistered_kinds "
                            "if another process handles it)");
    }
    if (job.max_attempts == 0) job.max_attempts = std::max(1, policy_for(entry.get()).max_attempts);
    return {};
  }

  Status prepare_all(std::vector<NewJob>& jobs) const {
    // Batches are mostly of one kind: look it up once per run of equal kinds.
    const std::string* last_kind = nullptr;
    std::shared_ptr<const KindEntry> entry;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (last_kind == nullptr || *last_kind != jobs[i].kind) {
        entry = find_kind(jobs[i].kind);
        last_kind = &jobs[i].kind;
      }
      if (auto s = prepare(jobs[i], entry); !s) {
        return make_error(s.error().code(), "job " + std::to_string(i) + ": " + s.error().message());
      }
    }
    return {};
  }

  void emit_enqueued(const std::vector<NewJob>& jobs, const std::vector<InsertResult>& results) {
    if (!has_subscribers()) return;
    const TimePoint at = now();
    for (std::size_t i = 0; i < jobs.size() && i < results.size(); ++i) {
      if (results[i].duplicate) continue;
      emit(Event{.type = EventType::enqueued, .job = results[i].id, .kind = jobs[i].kind, .queue = jobs[i].queue,
                 .at = at});
    }
  }

  Result<std::vector<InsertResult>> enqueue_batch(std::vector<NewJob> jobs) {
    if (auto s = prepare_all(jobs); !s) return s.error();
    auto r = store_->insert(jobs);
    if (r) emit_enqueued(jobs, *r);
    return r;
  }

  // --- events ----------------------------------------------------------------

  bool has_subscribers() const noexcept { return !subscribers_.empty(); }

  void emit(const Event& event) { subscribers_.notify(event); }

  // --- store events -------------------------------------------------------------

  void on_store_event(const StoreEvent& ev) {
    switch (ev.type) {
      case StoreEvent::Type::available:
        wake_claimer(ev.queue);
        break;
      case StoreEvent::Type::changed_elsewhere:
        wake_claimer({});  // any queue
        break;
      case StoreEvent::Type::cancel_requested:
      case StoreEvent::Type::lease_lost: {
        // lease_lost (Admin::expire_stuck, a rescue): the handler hears it now,
        // not at its next heartbeat, so two runs overlap as little as possible.
        const StopReason why =
            ev.type == StoreEvent::Type::lease_lost ? StopReason::lease_lost : StopReason::cancel;
        std::lock_guard lock(runs_mu_);
        auto [b, e] = runs_.equal_range(ev.job);
        for (auto it = b; it != e; ++it) {
          // A lost lease stops only the run that held it, never a later claim of the job.
          if (ev.type == StoreEvent::Type::lease_lost && it->second->job.lease_ref().token != ev.token) continue;
          it->second->stop_for(why);
        }
        break;
      }
      case StoreEvent::Type::finished: {
        std::lock_guard lock(watch_mu_);
        auto watched = callbacks_.find(ev.job);
        // Kept in case the job is deleted before the notifier reads it back.
        if (watched != callbacks_.end()) watched->second.final_state = ev.state;
        if (waiters_.count(ev.job) != 0 || watched != callbacks_.end()) {
          fired_.insert(ev.job);
          watch_cv_.notify_all();
        }
        break;
      }
    }
  }

  // Marks a queue (every queue when `queue` is empty) as having work.
  void wake_claimer(std::string_view queue) {
    std::lock_guard lock(claim_mu_);
    bool any = false;
    for (auto& q : queues_) {
      if (queue.empty() || q->options.name == queue) {
        q->wanted = true;
        ++q->signals;
        any = true;
      }
    }
    if (any) claim_cv_.notify_all();
  }

  // --- lifecycle ----------------------------------------------------------------

  Status check_options() const {
    const auto bad = [](std::string why) { return make_error(ErrorCode::invalid_argument, std::move(why)); };
    if (options_.queues.empty()) return bad("no queues to work: EngineOptions::queues is empty");
    std::unordered_set<std::string> names;
    for (const auto& q : options_.queues) {
      if (auto s = validate_name("a queue name", q.name); !s) return s;
      if (q.concurrency < 1) {
        return bad("queue '" + q.name + "' has concurrency " + std::to_string(q.concurrency) + "; it must be >= 1");
      }
      if (!names.insert(q.name).second) return bad("queue '" + q.name + "' is listed twice");
    }
    // Every duration through bounds.h: Duration::max() means "never" and the
    // engine's arithmetic on it saturates.
    using R = DurationRule;
    for (const auto& [what, d, rule] : {std::tuple{"lease_for", options_.lease_for, R::positive},
                                        std::tuple{"heartbeat_every", options_.heartbeat_every, R::positive},
                                        std::tuple{"reaper_every", options_.reaper_every, R::non_negative},
                                        std::tuple{"poll_every", options_.poll_every, R::positive},
                                        std::tuple{"shutdown_grace", options_.shutdown_grace, R::non_negative}}) {
      if (auto s = check_duration(what, d, rule); !s) return s;
    }
    if (options_.heartbeat_every >= options_.lease_for) {
      return bad("heartbeat_every must be shorter than lease_for, or leases expire between heartbeats");
    }
    if (auto s = check_count("claim_batch", options_.claim_batch, 1, std::numeric_limits<int>::max()); !s) return s;
    if (auto s = check_retention(options_.retention); !s) return s;
    if (options_.worker_id.size() > kMaxOwnerBytes) return bad("worker_id is too long");
    return {};
  }

  Status start() {
    std::lock_guard life(lifecycle_mu_);
    if (running_.load()) return make_error(ErrorCode::wrong_state, "the engine is already running");
    if (auto s = check_options(); !s) return s;

    {
      std::lock_guard lock(claim_mu_);
      queues_.clear();
      for (const auto& qo : options_.queues) {
        queues_.push_back(std::make_unique<QueueRuntime>(qo));
      }
    }
    {
      // Handlers cannot change while running: workers read this copy without a lock.
      std::shared_lock lock(kinds_mu_);
      run_kinds_ = kinds_;
    }
    // Every claim names these, so the store never hands over a job this
    // engine cannot run (during a rolling deploy it waits for one that can).
    claim_kinds_.clear();
    for (const auto& [kind, entry] : run_kinds_) claim_kinds_.push_back(kind);
    std::sort(claim_kinds_.begin(), claim_kinds_.end());
    draining_.store(false);
    executing_.store(0);  // abandoned handlers of an earlier run are no longer counted
    // queues_ is not resized again until stop(), so the pointers stay valid.
    for (auto& q : queues_) {
      QueueRuntime* qp = q.get();
      for (int i = 0; i < qp->options.concurrency; ++i) {
        auto slot = std::make_shared<WorkerSlot>();
        qp->slots.push_back(slot);
        qp->workers.emplace_back([this, qp, slot] { worker_loop(*qp, slot); });
      }
    }
    // Periodic threads count from now, not from whenever the thread gets to
    // run, so a test that moves a ManualClock right after start() is not racing them.
    const TimePoint started = now();
    completer_ = std::jthread([this](std::stop_token st) {
      t_engine_thread = this;
      completer_loop(st);
    });
    heartbeater_ = std::jthread([this, started](std::stop_token st) {
      t_engine_thread = this;
      heartbeat_loop(st, started);
    });
    announce();  // before the first claim: an administrator sees which kinds are handled
    if (options_.reaper_every > Duration::zero() || options_.retention.enabled) {
      reaper_ = std::jthread([this, started](std::stop_token st) {
        t_engine_thread = this;
        maintenance_loop(st, started);
      });
    }
    bool has_schedules = false;
    {
      std::shared_lock lock(kinds_mu_);
      has_schedules = !schedules_.empty();
    }
    if (has_schedules) {
      scheduler_ = std::jthread([this, started](std::stop_token st) {
        t_engine_thread = this;
        scheduler_loop(st, started);
      });
    }
    watchdog_ = std::jthread([this](std::stop_token st) {
      t_engine_thread = this;
      watchdog_loop(st);
    });
    if (!claim_kinds_.empty()) {  // no handlers: nothing to claim (an empty list would mean any kind)
      claimer_ = std::jthread([this, started](std::stop_token st) {
        t_engine_thread = this;
        claimer_loop(st, started);
      });
    }
    running_.store(true);
    return {};
  }

  static void join(std::jthread& t) {
    if (!t.joinable()) return;
    t.request_stop();
    t.join();
  }

  void stop() {
    if (t_engine_thread == this) {
      // A handler or listener on one of our threads: stopping here would join
      // this very thread. Stop from a helper thread once the caller returns.
      stop_in_background();
      return;
    }
    std::lock_guard life(lifecycle_mu_);
    if (!running_.load()) return;

    // 1. No new work: stop claiming and scheduling.
    claimer_.request_stop();
    claim_cv_.notify_all();
    join(claimer_);
    join(scheduler_);
    join(reaper_);

    // 2. Hand back what was claimed but not started, and let idle workers go.
    for (auto& q : queues_) {
      std::deque<std::shared_ptr<Run>> unstarted;
      {
        std::lock_guard lock(q->mu);
        unstarted.swap(q->ready);
        q->stopping = true;
      }
      q->cv.notify_all();
      for (auto& run : unstarted) {
        push_done(Done{run, Outcome{.lease = run->job.lease_ref(), .kind = OutcomeKind::release}});
      }
    }

    // 3. Running handlers get shutdown_grace, then their stop_token fires,
    //    and kAbandonAfter later whatever still runs is abandoned.
    draining_.store(true);  // from now on the last handler to end notifies exec_cv_
    {
      const TimePoint deadline = saturating_add(now(), options_.shutdown_grace);
      std::unique_lock lock(exec_mu_);
      while (executing_.load() > 0) {
        const TimePoint t = now();
        if (t >= deadline) break;
        exec_cv_.wait_for(lock, wait_slice(deadline, t), [&] { return executing_.load() == 0; });
      }
    }
    if (executing_.load() > 0) {
      {
        std::lock_guard lock(runs_mu_);
        for (auto& [id, run] : runs_) run->stop_for(StopReason::shutdown);
      }
      std::unique_lock lock(exec_mu_);
      exec_cv_.wait_for(lock, kAbandonAfter, [&] { return executing_.load() == 0; });
    }
    for (auto& q : queues_) {
      for (std::size_t i = 0; i < q->workers.size(); ++i) {
        std::shared_ptr<Run> overran;
        {
          std::lock_guard lock(q->slots[i]->mu);
          if (q->slots[i]->in_handler) {
            q->slots[i]->abandoned = true;
            overran = q->slots[i]->run;
          } else {
            q->slots[i]->closed = true;  // so the join below cannot wait on a handler
          }
        }
        if (overran) {
          abandon(std::move(overran));
          q->workers[i].detach();
        } else {
          q->workers[i].join();
        }
      }
      q->workers.clear();
      q->slots.clear();
    }

    // 4. Apply the last outcomes, then stop heartbeating (leases were held until now).
    join(completer_);
    join(heartbeater_);
    join(watchdog_);

    {
      std::lock_guard lock(runs_mu_);
      runs_.clear();
    }
    {
      std::lock_guard lock(claim_mu_);
      queues_.clear();
    }
    // Forget this engine now rather than at its announcement's expiry.
    if (auto s = store_->retire(options_.worker_id); !s) maintenance_failed("retire", s.error());
    running_.store(false);
  }

  // A handler that ignored its stop token past the shutdown: it is no longer
  // heartbeated, so its lease expires and any engine's reaper rescues the job.
  void abandon(std::shared_ptr<Run> run) {
    {
      std::lock_guard lock(runs_mu_);
      auto [b, e] = runs_.equal_range(run->job.id);
      for (auto it = b; it != e; ++it) {
        if (it->second == run) {
          runs_.erase(it);
          break;
        }
      }
    }
    if (has_subscribers()) {
      emit(Event{.type = EventType::abandoned, .job = run->job.id, .kind = run->job.kind, .queue = run->job.queue,
                 .attempt = run->job.attempt,
                 .message = "stop() abandoned the handler: it ignored its stop token; the job is rescued once its "
                            "lease expires",
                 .at = now()});
    }
  }

  void stop_in_background() {
    std::lock_guard lock(stopper_mu_);
    if (stop_pending_) return;
    stop_pending_ = true;
    // A previous background stop cleared stop_pending_ as its last step: its
    // thread is finishing, and joining it here is short.
    if (stopper_.joinable()) stopper_.join();
    stopper_ = std::thread([this] {
      stop();
      std::lock_guard done(stopper_mu_);
      stop_pending_ = false;
    });
  }

  // --- claimer ------------------------------------------------------------------

  void claimer_loop(std::stop_token st, TimePoint started) {
    const Duration poll = options_.poll_every;
    TimePoint next_poll = saturating_add(started, poll);
    // The poll also runs on real time: other processes' work appears in real
    // time whatever the store's clock says (a ManualClock in tests), and a
    // wake-up lost for any reason then costs one poll interval, never a hang.
    auto next_real_poll = steady_deadline(std::chrono::steady_clock::now(), poll);
    std::unique_lock lock(claim_mu_);
    while (!st.stop_requested()) {
      TimePoint t = now();
      const auto real = std::chrono::steady_clock::now();
      if (t >= next_poll || real >= next_real_poll) {
        for (auto& q : queues_) q->wanted = true;
        next_poll = saturating_add(t, poll);
        next_real_poll = steady_deadline(real, poll);
      }
      for (auto& q : queues_) {
        if (q->next_due && *q->next_due <= t) {
          q->wanted = true;
          q->next_due.reset();
        }
      }

      bool progressed = false;
      std::vector<QueueRuntime*> drained;
      for (auto& qp : queues_) {
        QueueRuntime& q = *qp;
        if (!q.wanted || st.stop_requested()) continue;
        const int n = std::min(q.claimable_room(), options_.claim_batch);
        if (n <= 0) continue;  // a worker becoming free wakes us
        const std::uint64_t seen = q.signals;
        q.held.fetch_add(n);  // reserve the room while the store call runs
        lock.unlock();
        // The lease runs from (at the latest) now: the store call comes after.
        const TimePoint lease_until = saturating_add(now(), options_.lease_for);
        auto claimed = store_->claim(ClaimRequest{.queue = q.options.name, .worker = options_.worker_id, .limit = n,
                                                  .lease_for = options_.lease_for, .kinds = claim_kinds_});
        const int got = claimed ? static_cast<int>(claimed->size()) : 0;
        if (got > 0) hand_off(q, std::move(*claimed), lease_until);
        lock.lock();
        q.held.fetch_sub(n - got);
        if (!claimed) {
          // Store trouble: try this queue again after a poll interval, not in a spin.
          q.wanted = false;
          q.next_due = saturating_add(now(), poll);
          continue;
        }
        if (got > 0) progressed = true;
        if (got < n && q.signals == seen) {
          q.wanted = false;
          drained.push_back(&q);
        }
      }

      if (!drained.empty()) {
        lock.unlock();
        std::vector<std::pair<QueueRuntime*, std::optional<TimePoint>>> due;
        for (QueueRuntime* q : drained) {
          auto r = store_->next_run_at(q->options.name);
          due.emplace_back(q, r ? *r : std::optional<TimePoint>(saturating_add(now(), poll)));
        }
        lock.lock();
        t = now();
        for (auto& [q, when] : due) {
          // A due job we could not claim (paused queue, or a race): look again
          // at the next poll rather than spinning on it.
          if (when && *when <= t) when = saturating_add(t, poll);
          if (when && (!q->next_due || *when < *q->next_due)) q->next_due = when;
        }
      }

      const auto claimable = [&] {
        return std::any_of(queues_.begin(), queues_.end(),
                           [](const auto& q) { return q->wanted && q->claimable_room() > 0; });
      };
      if (progressed && claimable()) continue;

      TimePoint deadline = next_poll;
      for (auto& q : queues_) {
        if (q->next_due) deadline = std::min(deadline, *q->next_due);
      }
      t = now();
      if (deadline <= t) continue;
      claim_cv_.wait_for(lock, st, wait_slice(deadline, t), claimable);
    }
  }

  void hand_off(QueueRuntime& q, std::vector<Job> jobs, TimePoint lease_until) {
    const std::size_t count = jobs.size();
    std::vector<std::shared_ptr<Run>> runs;
    runs.reserve(count);
    for (auto& j : jobs) runs.push_back(std::make_shared<Run>(std::move(j), lease_until));
    {
      std::lock_guard lock(runs_mu_);
      for (auto& r : runs) runs_.emplace(r->job.id, r);
    }
    int wake = 0;
    {
      std::lock_guard lock(q.mu);
      for (auto& r : runs) q.ready.push_back(std::move(r));
      // One wake-up per job for idle workers; busy ones take the next job
      // when they finish, without sleeping.
      wake = static_cast<int>(std::min<std::size_t>(count, static_cast<std::size_t>(q.idle)));
    }
    for (int i = 0; i < wake; ++i) q.cv.notify_one();
  }

  // --- workers ------------------------------------------------------------------

  void worker_loop(QueueRuntime& q, const std::shared_ptr<WorkerSlot>& slot) {
    t_engine_thread = this;
    std::unique_lock lock(q.mu);
    while (true) {
      while (q.ready.empty() && !q.stopping) {
        ++q.idle;
        q.cv.wait(lock);
        --q.idle;
      }
      if (q.ready.empty()) return;  // stopping, nothing left to start
      std::shared_ptr<Run> run = std::move(q.ready.front());
      q.ready.pop_front();
      lock.unlock();
      // Abandoned by stop(): the engine may be gone; touch nothing of it.
      if (!execute(run, slot)) return;
      run.reset();
      // Wake the claimer when this frees the first worker: exactly one
      // finishing worker sees that crossing (a claimer with room is awake).
      const int now_held = q.held.fetch_sub(1) - 1;
      if (q.options.concurrency - now_held == 1) {
        std::lock_guard claim_lock(claim_mu_);
        if (q.wanted) claim_cv_.notify_one();
      }
      lock.lock();
    }
  }

  Outcome stopped_outcome(const Run& run, const RetryPolicy& policy) const;  // below
  // Runs one job; false when stop() abandoned this worker meanwhile.
  bool execute(const std::shared_ptr<Run>& run, const std::shared_ptr<WorkerSlot>& slot);  // below, after RunContext

  // --- completer ----------------------------------------------------------------

  struct Done {
    std::shared_ptr<Run> run;
    Outcome outcome;  // ran_for: the handler's own run time
  };

  void push_done(Done d) {
    bool was_empty = false;
    {
      std::lock_guard lock(done_mu_);
      was_empty = done_.empty();
      done_.push_back(std::move(d));
    }
    // The completer takes everything queued at once: only the first outcome
    // after it emptied the queue needs to wake it.
    if (was_empty) done_cv_.notify_one();
  }

  void completer_loop(std::stop_token st) {
    std::vector<Done> batch;
    while (true) {
      {
        std::unique_lock lock(done_mu_);
        done_cv_.wait(lock, st, [&] { return !done_.empty(); });
        if (done_.empty()) return;  // stop requested and everything applied
        batch.swap(done_);
      }
      for (std::size_t from = 0; from < batch.size(); from += kMaxFinishBatch) {
        const std::size_t to = std::min(batch.size(), from + kMaxFinishBatch);
        apply(std::span<Done>(batch.data() + from, to - from));
      }
      batch.clear();
    }
  }

  struct Applied {
    const Done* done;
    FinishResult result;
  };

  void apply(std::span<Done> batch) {
    std::vector<const Done*> items;
    items.reserve(batch.size());
    for (const auto& d : batch) items.push_back(&d);
    std::vector<Applied> applied;
    applied.reserve(batch.size());
    finish_all(std::move(items), applied);
    std::unordered_set<std::string> requeued;  // queues with jobs pending again
    {
      std::lock_guard lock(runs_mu_);
      for (auto& d : batch) {
        auto [b, e] = runs_.equal_range(d.run->job.id);
        for (auto it = b; it != e; ++it) {
          if (it->second == d.run) {
            runs_.erase(it);
            break;
          }
        }
      }
    }

    const bool events = has_subscribers();
    const TimePoint at = now();
    for (const auto& [done, fr] : applied) {
      const Done& d = *done;
      const Outcome& outcome = d.outcome;
      if (!fr.status) {
        // stale_lease: another worker owns the job now. Anything else: the
        // store refused this one outcome; the job is rescued at lease expiry.
        if (fr.status.error().code() != ErrorCode::stale_lease) {
          report_dropped(d, "the store refused its outcome: " + fr.status.error().message());
        }
        continue;
      }
      if (fr.state == JobState::pending) requeued.insert(d.run->job.queue);
      if (!events) continue;
      std::optional<EventType> type;
      switch (fr.state) {
        case JobState::completed: type = EventType::completed; break;
        case JobState::failed: type = EventType::failed; break;
        case JobState::cancelled: type = EventType::cancelled; break;
        case JobState::waiting: type = EventType::waiting; break;
        case JobState::pending:
          if (outcome.kind == OutcomeKind::retry) type = EventType::retried;
          if (outcome.kind == OutcomeKind::snooze) type = EventType::snoozed;
          break;
        case JobState::running: break;
      }
      if (!type) continue;
      emit(Event{.type = *type, .job = d.run->job.id, .kind = d.run->job.kind, .queue = d.run->job.queue,
                 .attempt = d.run->job.attempt, .message = outcome.error, .ran_for = outcome.ran_for, .at = at});
    }
    // Retries, snoozes and hand-backs may not raise `available` (their run_at
    // is later): let the claimer look up when they are due.
    for (const auto& q : requeued) wake_claimer(q);
  }

  // Stores the outcomes of `items`, adding what the store answered to
  // `applied`. Only `unavailable` is retried, with a growing pause, and only
  // while an outcome's lease is still valid (its run is no longer heartbeated,
  // so that is at most lease_for): after that the job is rescued anyway.
  // Any other error is for the batch: each outcome is tried alone once, so a
  // bad one fails alone and never stalls the others.
  void finish_all(std::vector<const Done*> items, std::vector<Applied>& applied) {
    Duration pause = std::chrono::milliseconds(5);
    while (!items.empty()) {
      std::vector<Outcome> outcomes;
      outcomes.reserve(items.size());
      for (const Done* d : items) outcomes.push_back(d->outcome);
      auto results = store_->finish(outcomes);
      if (results) {
        for (std::size_t i = 0; i < items.size() && i < results->size(); ++i) {
          applied.push_back(Applied{items[i], std::move((*results)[i])});
        }
        return;
      }
      const Error& error = results.error();
      if (error.code() != ErrorCode::unavailable) {
        if (items.size() == 1) {
          report_dropped(*items.front(), "the store refused its outcome: " + error.message());
        } else {
          for (const Done* d : items) finish_all({d}, applied);
        }
        return;
      }
      const TimePoint t = now();
      std::erase_if(items, [&](const Done* d) {
        if (d->run->lease_until() > t) return false;
        report_dropped(*d, "the store stayed unavailable until its lease expired: " + error.message());
        return true;
      });
      if (items.empty()) return;
      std::this_thread::sleep_for(clock().real_wait(pause));
      pause = std::min<Duration>(pause * 2, std::min<Duration>(options_.heartbeat_every, std::chrono::seconds(1)));
    }
  }

  // An outcome that will not be stored: say so; the lease expires and the
  // job is rescued (the attempt is consumed, with "lease expired" recorded).
  void report_dropped(const Done& d, std::string why) {
    if (!has_subscribers()) return;
    emit(Event{.type = EventType::outcome_dropped, .job = d.run->job.id, .kind = d.run->job.kind,
               .queue = d.run->job.queue, .attempt = d.run->job.attempt,
               .message = "outcome '" + std::string(to_string(d.outcome.kind)) + "' dropped: " + std::move(why),
               .at = now()});
  }

  // --- heartbeater --------------------------------------------------------------

  std::vector<std::shared_ptr<Run>> snapshot_runs() {
    std::lock_guard lock(runs_mu_);
    std::vector<std::shared_ptr<Run>> out;
    out.reserve(runs_.size());
    for (auto& [id, r] : runs_) out.push_back(r);
    return out;
  }

  // Writes a run's buffered progress and item errors (on the heartbeat and
  // before its outcome). Failures are dropped: both are advisory.
  void flush_reports(Run& run) {
    std::optional<Progress> progress;
    std::vector<ItemError> errors;
    std::size_t uncounted = 0;
    {
      std::lock_guard lock(run.mu);
      if (run.progress_dirty) {
        progress = run.progress;
        run.progress_dirty = false;
      }
      errors.swap(run.item_errors);
      std::swap(uncounted, run.item_errors_uncounted);
    }
    const LeaseRef lease = run.job.lease_ref();
    if (progress) (void)store_->report_progress(lease, *progress);
    if (errors.empty()) return;
    if (!store_->add_item_errors(lease, errors)) return;
    // The reports beyond the kept ones follow kMaxStoredItemErrors real ones,
    // so the store has no room left for them and only counts them: blank
    // entries from one shared block carry that count through the seam.
    static const std::vector<ItemError> blanks(4096);
    while (uncounted > 0) {
      const std::size_t n = std::min(uncounted, blanks.size());
      if (!store_->add_item_errors(lease, std::span<const ItemError>(blanks.data(), n))) return;
      uncounted -= n;
    }
  }

  void heartbeat_loop(std::stop_token st, TimePoint started) {
    TimePoint next = saturating_add(started, options_.heartbeat_every);
    while (!st.stop_requested()) {
      sleep_until_clock(st, next);
      if (st.stop_requested()) return;
      heartbeat_once();
      announce();
      next = saturating_add(now(), options_.heartbeat_every);
    }
  }

  void heartbeat_once() {
    auto runs = snapshot_runs();
    // Renew only runs whose handler is still at work and within its time: a
    // returned run's outcome is the completer's (bounded by this lease), and a
    // timed-out handler that ignores its stop token must become rescuable.
    std::erase_if(runs, [](const auto& r) { return r->returned.load() || r->reason() == StopReason::timeout; });
    if (runs.empty()) return;
    std::vector<LeaseRef> leases;
    leases.reserve(runs.size());
    for (auto& r : runs) {
      flush_reports(*r);
      leases.push_back(r->job.lease_ref());
    }
    const TimePoint until = saturating_add(now(), options_.lease_for);  // from before the call
    auto statuses = store_->heartbeat(leases, options_.lease_for);
    if (!statuses) return;  // store trouble: the next heartbeat tries again; the watchdog minds the lease
    for (std::size_t i = 0; i < runs.size() && i < statuses->size(); ++i) {
      const LeaseStatus& s = (*statuses)[i];
      if (!s.held) {
        runs[i]->stop_for(StopReason::lease_lost);
      } else {
        runs[i]->renewed(until);
        if (s.cancel_requested) runs[i]->stop_for(StopReason::cancel);
      }
    }
  }

  // --- watchdog -----------------------------------------------------------------

  // Fires a run's stop token when its KindOptions::timeout passes, and when
  // its lease is about to expire because heartbeats keep failing: the handler
  // hears it before another engine can rescue the job and run it alongside.
  void watchdog_loop(std::stop_token st) {
    // Early enough that the handler can stop before the lease ends; late
    // enough that one heartbeat after the last renewal could still succeed.
    // (start() checked 0 < heartbeat_every < lease_for: no overflow.)
    const Duration margin = std::min(options_.heartbeat_every, (options_.lease_for - options_.heartbeat_every) / 2);
    while (!st.stop_requested()) {
      const TimePoint t = now();
      TimePoint next = saturating_add(t, options_.heartbeat_every);
      for (const auto& run : snapshot_runs()) {
        if (run->returned.load() || run->cancelled()) continue;
        const TimePoint timeout_at{Duration(run->timeout_at.load())};
        const TimePoint lease_deadline = saturating_sub(run->lease_until(), margin);
        if (t >= timeout_at) {
          run->stop_for(StopReason::timeout);
        } else if (t >= lease_deadline) {
          run->stop_for(StopReason::lease_deadline);
        } else {
          next = std::min({next, timeout_at, lease_deadline});
        }
      }
      std::unique_lock lock(watchdog_mu_);
      const std::uint64_t seen = watchdog_signals_;
      while (!st.stop_requested() && watchdog_signals_ == seen) {
        const TimePoint now_t = now();
        if (now_t >= next) break;
        watchdog_cv_.wait_for(lock, st, wait_slice(next, now_t), [&] { return watchdog_signals_ != seen; });
      }
    }
  }

  // A run started with a timeout: the watchdog recomputes its next wake-up.
  void poke_watchdog() {
    {
      std::lock_guard lock(watchdog_mu_);
      ++watchdog_signals_;
    }
    watchdog_cv_.notify_all();
  }

  // Blocks until the store clock reaches `deadline`, or until stop is requested.
  void sleep_until_clock(std::stop_token st, TimePoint deadline) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    while (!st.stop_requested()) {
      const TimePoint t = now();
      if (t >= deadline) return;
      cv.wait_for(lock, st, wait_slice(deadline, t), [] { return false; });
    }
  }

  // --- reaper -------------------------------------------------------------------

  // Rescue of expired leases (every reaper_every; 0: never) and retention
  // (every retention.interval, when enabled) on one thread: both are short
  // store calls, and an error is reported and tried again next time.
  void maintenance_loop(std::stop_token st, TimePoint started) {
    const bool reap = options_.reaper_every > Duration::zero();
    const bool prune = options_.retention.enabled;
    TimePoint next_reap = reap ? saturating_add(started, options_.reaper_every) : TimePoint::max();
    TimePoint next_prune = prune ? saturating_add(started, options_.retention.interval) : TimePoint::max();
    while (!st.stop_requested()) {
      sleep_until_clock(st, std::min(next_reap, next_prune));
      if (st.stop_requested()) return;
      const TimePoint t = now();
      if (t >= next_reap) {
        next_reap = saturating_add(t, options_.reaper_every);
        rescue_once();
      }
      if (t >= next_prune) {
        next_prune = saturating_add(t, options_.retention.interval);
        if (auto r = apply_retention(*store_, options_.retention); !r) maintenance_failed("retention", r.error());
      }
    }
  }

  void rescue_once() {
    auto ids = store_->rescue_expired();
    if (!ids) {
      maintenance_failed("rescue of expired leases", ids.error());
      return;
    }
    if (ids->empty()) return;
    if (has_subscribers()) {
      const TimePoint at = now();
      for (JobId id : *ids) emit(Event{.type = EventType::rescued, .job = id, .at = at});
    }
    wake_claimer({});
  }

  // Tells the store this engine is alive and which kinds it handles on which
  // queues (Stats::unhandled shows pending kinds that no live engine handles).
  // At start and with every heartbeat; valid for one lease period.
  void announce() {
    WorkerInfo info{.id = options_.worker_id, .kinds = claim_kinds_};
    for (const auto& q : options_.queues) info.queues.push_back(q.name);
    if (auto s = store_->announce(info, options_.lease_for); !s) maintenance_failed("announce", s.error());
  }

  void maintenance_failed(std::string_view what, const Error& error) {
    if (!has_subscribers()) return;
    emit(Event{.type = EventType::maintenance_failed,
               .message = std::string(what) + " failed: " + error.to_string(),
               .at = now()});
  }

  // --- scheduler ----------------------------------------------------------------

  void scheduler_loop(std::stop_token st, TimePoint start) {
    std::vector<ScheduleEntry> entries;
    {
      std::shared_lock lock(kinds_mu_);
      entries = schedules_;
    }
    std::vector<TimePoint> next(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) next[i] = entries[i].cron.next_after(start);

    // Due runs not yet inserted, per schedule: each schedule is inserted on its
    // own, so one that can no longer be inserted never holds up the others.
    std::vector<std::vector<NewJob>> pending(entries.size());
    while (!st.stop_requested()) {
      const TimePoint t = now();
      const TimePoint oldest = saturating_sub(t, std::chrono::minutes(kMaxCronCatchUp));
      bool retry_soon = false;
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (next[i] <= oldest) next[i] = entries[i].cron.next_after(oldest);
        while (next[i] <= t) {
          pending[i].push_back(cron_job(entries[i], next[i]));
          next[i] = entries[i].cron.next_after(next[i]);
        }
        // Runs that stayed uninserted past the catch-up window are skipped,
        // like minutes missed while stalled: the list stays bounded.
        std::erase_if(pending[i], [&](const NewJob& j) { return *j.run_at <= oldest; });
        if (!pending[i].empty()) retry_soon |= !insert_scheduled(entries[i], pending[i]);
      }
      TimePoint deadline = TimePoint::max();
      for (TimePoint n : next) deadline = std::min(deadline, n);
      if (retry_soon) deadline = std::min(deadline, saturating_add(now(), options_.poll_every));
      if (deadline == TimePoint::max()) return;
      sleep_until_clock(st, deadline);
    }
  }

  // Inserts one schedule's due runs. False when the store is unavailable (kept
  // to try again); any other error cannot be cured by retrying: the runs are
  // reported (schedule_failed) and skipped, and the schedule carries on.
  bool insert_scheduled(const ScheduleEntry& entry, std::vector<NewJob>& runs) {
    auto r = store_->insert(runs);
    if (r) {
      emit_enqueued(runs, *r);
      runs.clear();
      return true;
    }
    if (r.error().code() == ErrorCode::unavailable) return false;
    if (has_subscribers()) {
      const TimePoint at = now();
      for (const NewJob& job : runs) {
        const auto minute = std::chrono::duration_cast<std::chrono::seconds>(job.run_at->time_since_epoch()).count();
        emit(Event{.type = EventType::schedule_failed, .kind = job.kind, .queue = job.queue,
                   .message = "schedule '" + entry.name + "': the run of minute " + std::to_string(minute) +
                              " (Unix seconds) is skipped: " + r.error().message(),
                   .at = at});
      }
    }
    runs.clear();
    return true;
  }

  NewJob cron_job(const ScheduleEntry& e, TimePoint minute) const {
    NewJob job = e.job;
    job.run_at = minute;
    job.delay.reset();
    const auto epoch = std::chrono::duration_cast<std::chrono::seconds>(minute.time_since_epoch()).count();
    job.unique_key = "porter:cron:" + e.name + ":" + std::to_string(epoch);
    job.unique_scope = UniqueScope::always;
    return job;
  }

  // --- waiting for jobs ---------------------------------------------------------

  Result<Job> wait_for(JobId id, std::chrono::milliseconds timeout) {
    const auto deadline = steady_deadline(std::chrono::steady_clock::now(), saturating_cast(timeout));
    {
      std::lock_guard lock(watch_mu_);
      ++waiters_[id];
    }
    struct Unwatch {
      EngineCore& impl;
      JobId id;
      ~Unwatch() {
        std::lock_guard lock(impl.watch_mu_);
        if (--impl.waiters_[id] == 0) {
          impl.waiters_.erase(id);
          if (impl.callbacks_.count(id) == 0) impl.fired_.erase(id);
        }
      }
    } unwatch{*this, id};

    while (true) {
      auto job = store_->get(id);
      // A store that is briefly unavailable is waited out like an unfinished job.
      if (!job && job.error().code() != ErrorCode::unavailable) return job;
      if (job && is_final(job->state)) return job;
      std::unique_lock lock(watch_mu_);
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        if (!job) return job;
        return make_error(ErrorCode::timeout, "job " + std::to_string(id) + " is still " +
                                                  std::string(to_string(job->state)) + " after " +
                                                  std::to_string(timeout.count()) + " ms");
      }
      // The `finished` event wakes us; the bounded poll covers other processes.
      const auto slice = std::min<std::chrono::steady_clock::duration>(left, poll_slice());
      watch_cv_.wait_for(lock, slice, [&] { return fired_.count(id) != 0; });
      if (callbacks_.count(id) == 0) fired_.erase(id);
    }
  }

  std::chrono::steady_clock::duration poll_slice() const {
    return std::clamp<std::chrono::steady_clock::duration>(clock().real_wait(std::min(options_.poll_every, kLongestWait)),
                                                           std::chrono::milliseconds(1), std::chrono::seconds(1));
  }

  Status on_finished(JobId id, std::function<void(const Job&)> callback) {
    if (!callback) return make_error(ErrorCode::invalid_argument, "on_finished needs a callback");
    auto job = store_->get(id);
    if (!job) return job.error();
    if (is_final(job->state)) {
      callback(*job);
      return {};
    }
    {
      std::lock_guard lock(watch_mu_);
      auto [it, added] = callbacks_.try_emplace(id);
      if (added) it->second.seen = std::move(*job);
      it->second.callbacks.push_back(std::move(callback));
      fired_.insert(id);  // it may have finished between get() and now: have the notifier look once
      if (!notifier_.joinable()) notifier_ = std::jthread([this](std::stop_token st) { notifier_loop(st); });
    }
    watch_cv_.notify_all();
    return {};
  }

  // Calls on_finished callbacks: at once on `finished` events (this process),
  // and by a slow sweep for jobs finished by other processes that reads at
  // most kSweepBatch watched jobs per poll interval, so thousands of
  // outstanding callbacks cost an idle engine little.
  void notifier_loop(std::stop_token st) {
    auto next_sweep = std::chrono::steady_clock::now();
    JobId swept_to = 0;  // the sweep goes round the watched ids in order
    while (!st.stop_requested()) {
      std::vector<JobId> check;
      {
        std::unique_lock lock(watch_mu_);
        const auto has_fired = [&] {
          return std::any_of(fired_.begin(), fired_.end(), [&](JobId id) { return callbacks_.count(id) != 0; });
        };
        watch_cv_.wait_until(lock, st, next_sweep, has_fired);
        if (st.stop_requested()) return;
        for (JobId id : fired_) {
          if (callbacks_.count(id) != 0) check.push_back(id);
        }
        if (std::chrono::steady_clock::now() >= next_sweep) {
          auto it = callbacks_.upper_bound(swept_to);
          for (std::size_t n = 0; n < kSweepBatch && !callbacks_.empty(); ++n) {
            if (it == callbacks_.end()) it = callbacks_.begin();
            if (it->first == swept_to && n > 0) break;  // fewer watched jobs than a batch: all seen
            check.push_back(it->first);
            swept_to = it->first;
            ++it;
          }
          next_sweep = std::chrono::steady_clock::now() + poll_slice();
        }
        for (JobId id : check) {
          if (waiters_.count(id) == 0) fired_.erase(id);
        }
      }
      std::sort(check.begin(), check.end());
      check.erase(std::unique(check.begin(), check.end()), check.end());
      for (JobId id : check) notify_if_final(id);
    }
  }

  void notify_if_final(JobId id) {
    auto job = store_->get(id);
    if (job && !is_final(job->state)) return;
    if (!job && job.error().code() != ErrorCode::not_found) return;  // store trouble: next look
    Watch watch;
    {
      std::lock_guard lock(watch_mu_);
      auto it = callbacks_.find(id);
      if (it == callbacks_.end()) return;
      if (!job && !it->second.final_state && !it->second.missing_once) {
        // Our own `finished` event may still be on its way (the store calls
        // listeners just after its write): look once more before giving up.
        it->second.missing_once = true;
        return;
      }
      watch = std::move(it->second);
      callbacks_.erase(it);
    }
    if (!job) {
      // Deleted (discarded, pruned) before we could read it. Its final state
      // is known if this process finished it: report the record as it was
      // seen when on_finished was called, with that state. Otherwise there
      // is nothing true to report.
      if (!watch.final_state) return;
      watch.seen.state = *watch.final_state;
      watch.seen.lease.reset();
      job = std::move(watch.seen);
    }
    for (auto& cb : watch.callbacks) {
      try {
        cb(*job);
      } catch (...) {
        // A callback's exception must not kill the notifier.
      }
    }
  }

  // --- state ----------------------------------------------------------------------

  std::shared_ptr<Store> store_;
  EngineOptions options_;

  mutable std::shared_mutex kinds_mu_;
  std::unordered_map<std::string, std::shared_ptr<const KindEntry>> kinds_;  // guarded by kinds_mu_
  std::vector<ScheduleEntry> schedules_;                                     // guarded by kinds_mu_

  detail::CallbackSet<Event> subscribers_;  // unsubscribe waits for calls in flight

  std::mutex lifecycle_mu_;
  std::atomic<bool> running_{false};

  std::mutex stopper_mu_;
  std::thread stopper_;        // runs a stop() requested from an engine thread; joined by the next one or ~EngineCore
  bool stop_pending_ = false;  // stopper_ has not finished its stop() yet

  std::mutex claim_mu_;
  std::condition_variable_any claim_cv_;
  std::vector<std::unique_ptr<QueueRuntime>> queues_;  // guarded by claim_mu_ (resized only in start/stop)

  std::mutex runs_mu_;
  std::unordered_multimap<JobId, std::shared_ptr<Run>> runs_;  // claimed and not yet applied

  std::mutex done_mu_;
  std::condition_variable_any done_cv_;
  std::vector<Done> done_;  // outcomes waiting for the completer

  std::unordered_map<std::string, std::shared_ptr<const KindEntry>> run_kinds_;  // kinds_ as of start(): read by workers unlocked

  std::mutex exec_mu_;  // only for waiting on exec_cv_
  std::condition_variable exec_cv_;
  std::atomic<int> executing_{0};     // handlers running now
  std::atomic<bool> draining_{false};  // stop() waits for executing_ to reach 0

  std::mutex watch_mu_;
  std::condition_variable_any watch_cv_;
  std::unordered_map<JobId, int> waiters_;  // wait_for calls per job
  struct Watch {
    Job seen;                             // as read by on_finished
    std::optional<JobState> final_state;  // from this process's `finished` event
    bool missing_once = false;            // read back as not_found once, with no final state known
    std::vector<std::function<void(const Job&)>> callbacks;
  };
  std::map<JobId, Watch> callbacks_;  // ordered: the sweep goes round it
  std::unordered_set<JobId> fired_;  // watched jobs with a `finished` event not yet looked at

  std::jthread claimer_, completer_, heartbeater_, reaper_, scheduler_, watchdog_;
  std::mutex watchdog_mu_;  // guards watchdog_signals_
  std::condition_variable_any watchdog_cv_;
  std::uint64_t watchdog_signals_ = 0;
  std::vector<std::string> claim_kinds_;  // run_kinds_' names, sorted: every ClaimRequest::kinds
  std::shared_ptr<EngineGate> engine_gate_;  // handlers reach the engine through it
  std::jthread notifier_;  // started by the first on_finished; lives until destruction

  std::shared_ptr<ListenerGate> gate_;
  std::uint64_t listener_id_ = 0;
};

}  // namespace detail

struct Engine::Impl final : detail::EngineCore {
  using EngineCore::EngineCore;
};

namespace detail {

// --- the handler's view ------------------------------------------------------------

namespace {

class RunContext final : public JobContext {
 public:
  // Holds the store and the gate by shared ownership: a handler abandoned at
  // shutdown may outlive its engine.
  RunContext(std::shared_ptr<EngineGate> gate, std::shared_ptr<Store> store, Run& run)
      : gate_(std::move(gate)), store_(std::move(store)), run_(run) {}

  const Job& job() const noexcept override { return run_.job; }
  bool cancelled() const noexcept override { return run_.cancelled(); }
  std::stop_token stop_token() const noexcept override { return run_.stop.get_token(); }

  void progress(std::int64_t done, std::int64_t total, std::string message) override {
    // Saturated into what the store accepts (0 <= done <= total when total is
    // known), so a report is never dropped for a count that overshot.
    total = std::max<std::int64_t>(total, 0);
    done = std::clamp<std::int64_t>(done, 0, total > 0 ? total : std::numeric_limits<std::int64_t>::max());
    std::lock_guard lock(run_.mu);
    run_.progress = Progress{done, total, std::move(message)};
    run_.progress_dirty = true;
  }

  void item_error(std::string item, std::string message) override {
    std::lock_guard lock(run_.mu);
    if (run_.item_errors.size() < kMaxStoredItemErrors) {
      run_.item_errors.push_back(ItemError{std::move(item), clip_message(message)});
    } else {
      ++run_.item_errors_uncounted;  // the store would only count it: so do we, without keeping it
    }
  }

  Result<std::vector<InsertResult>> spawn(std::vector<NewJob> children) override;

  void wait_for_children() override { wait_children_ = true; }

  Result<std::vector<Job>> children() const override {
    std::vector<Job> out;
    JobFilter filter;
    filter.parent_id = run_.job.id;
    std::optional<JobId> cursor;
    do {
      auto page = store_->list(filter, cursor, 500);
      if (!page) return std::move(page).error();
      for (auto& j : page->jobs) out.push_back(std::move(j));
      cursor = page->next;
    } while (cursor);
    std::sort(out.begin(), out.end(), [](const Job& a, const Job& b) { return a.id < b.id; });
    return out;
  }

  void set_result(std::string json) override { result_ = std::move(json); }
  void snooze(Duration delay) override { snooze_ = std::max(delay, Duration::zero()); }

  // The outcome of a handler that returned normally.
  Outcome outcome() const {
    Outcome o{.lease = run_.job.lease_ref()};
    if (snooze_) {
      o.kind = OutcomeKind::snooze;
      o.delay = *snooze_;
    } else if (wait_children_) {
      o.kind = OutcomeKind::wait_children;
      o.result = result_;
    } else {
      o.kind = OutcomeKind::complete;
      o.result = result_;
    }
    return o;
  }

 private:
  std::shared_ptr<EngineGate> gate_;
  std::shared_ptr<Store> store_;
  Run& run_;
  std::string result_;
  bool wait_children_ = false;
  std::optional<Duration> snooze_;
};

// "5s", "250ms", "7us": how a timeout reads in an error message.
std::string describe(Duration d) {
  using namespace std::chrono;
  if (d % seconds(1) == Duration::zero()) return std::to_string(duration_cast<seconds>(d).count()) + "s";
  if (d % milliseconds(1) == Duration::zero()) return std::to_string(duration_cast<milliseconds>(d).count()) + "ms";
  return std::to_string(d.count()) + "us";
}

// A transient failure: retried after the policy's delay (or failed by the
// store when the attempts are used up). A custom policy is user code: if it
// throws, there is no delay to retry after, so the job fails with both
// messages instead of the process ending.
Outcome transient_outcome(const Job& job, const RetryPolicy& policy, std::string message) {
  try {
    return Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::retry, .error = clip_message(message),
                   .delay = policy.delay_after(job.attempt, unit_random())};
  } catch (const std::exception& e) {
    message += std::string("; the retry policy threw (") + e.what() + "), so the job is failed instead of retried";
  } catch (...) {
    message += "; the retry policy threw an exception, so the job is failed instead of retried";
  }
  return Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::fail, .error = clip_message(message)};
}

// Calls the handler and turns what it did into an outcome, timing the call
// itself (Outcome::ran_for). Touches nothing of the engine but what it
// shares (`gate`, `store`, `run`, `entry`): stop() may abandon this thread.
Outcome run_handler(const KindEntry& entry, Run& run, std::shared_ptr<Store> store, std::shared_ptr<EngineGate> gate) {
  const auto started = std::chrono::steady_clock::now();
  Outcome outcome;
  RunContext ctx(std::move(gate), std::move(store), run);
  try {
    entry.handler(ctx);
    outcome = ctx.outcome();
  } catch (const PermanentError& e) {
    outcome = Outcome{.lease = run.job.lease_ref(), .kind = OutcomeKind::fail, .error = clip_message(e.what())};
  } catch (const std::exception& e) {
    outcome = transient_outcome(run.job, entry.retry, e.what());
  } catch (...) {
    outcome = transient_outcome(run.job, entry.retry, "the handler threw an exception that is not a std::exception");
  }
  outcome.ran_for = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - started);
  return outcome;
}

}  // namespace

Result<std::vector<InsertResult>> RunContext::spawn(std::vector<NewJob> children) {
  std::shared_lock lock(gate_->mu);
  if (gate_->core == nullptr) {
    return make_error(ErrorCode::wrong_state, "the engine is gone: this handler overran the shutdown and was abandoned");
  }
  EngineCore& engine = *gate_->core;
  if (auto s = engine.prepare_all(children); !s) return s.error();
  auto r = store_->spawn(run_.job.lease_ref(), children);
  if (r) engine.emit_enqueued(children, *r);
  return r;
}

// The outcome of a run whose stop token fired, by the first reason.
Outcome EngineCore::stopped_outcome(const Run& run, const RetryPolicy& policy) const {
  const Job& job = run.job;
  switch (run.reason()) {
    case StopReason::shutdown:
    case StopReason::lease_lost:  // stale anyway; a release is the harmless answer
      return Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::release};
    case StopReason::lease_deadline:
      return transient_outcome(job, policy,
                               "stopped: the lease could not be renewed (heartbeats failed) and was about to expire");
    case StopReason::timeout: {
      const auto found = run_kinds_.find(job.kind);
      const Duration limit = found != run_kinds_.end() && found->second->timeout ? *found->second->timeout : Duration{};
      return transient_outcome(job, policy, "timed out after " + describe(limit));
    }
    case StopReason::cancel:
    case StopReason::none:
      break;
  }
  return Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::cancelled};
}

bool EngineCore::execute(const std::shared_ptr<Run>& run, const std::shared_ptr<WorkerSlot>& slot) {
  executing_.fetch_add(1);
  const Job& job = run->job;
  if (has_subscribers() && !run->cancelled()) {
    emit(Event{.type = EventType::started, .job = job.id, .kind = job.kind, .queue = job.queue,
               .attempt = job.attempt, .at = now()});
  }
  const auto found = run_kinds_.find(job.kind);
  const std::shared_ptr<const KindEntry> entry = found == run_kinds_.end() ? nullptr : found->second;
  const RetryPolicy& policy = policy_for(entry.get());

  Outcome outcome;
  if (run->cancelled()) {
    // Stopped (cancelled, lease lost) before it started: do not start it.
  } else if (!entry) {
    // The claim names only our kinds; a store that ignores ClaimRequest::kinds
    // still gets a visible, retried failure rather than a silent loss.
    outcome = transient_outcome(job, policy,
                                "no handler for kind '" + job.kind + "' is registered on worker " + options_.worker_id);
  } else {
    if (entry->timeout) {
      run->timeout_at.store(saturating_add(now(), *entry->timeout).time_since_epoch().count());
      poke_watchdog();
    }
    bool closed = false;
    {
      std::lock_guard lock(slot->mu);
      closed = slot->closed;
      slot->in_handler = !closed;
      if (!closed) slot->run = run;
    }
    // stop() is past its deadlines and about to join this thread: hand back.
    if (closed) run->stop_for(StopReason::shutdown);
    if (!closed) outcome = run_handler(*entry, *run, store_, engine_gate_);
    {
      std::lock_guard lock(slot->mu);
      if (slot->abandoned) return false;  // stop() gave up on us: the engine may be gone
      slot->in_handler = false;
      slot->run.reset();
    }
  }
  run->returned.store(true);
  if (run->cancelled()) {
    const Duration ran_for = outcome.ran_for;
    outcome = stopped_outcome(*run, policy);
    outcome.ran_for = ran_for;
  }
  flush_reports(*run);
  push_done(Done{run, std::move(outcome)});
  // seq_cst pairs with stop(): it sets draining_ and then reads executing_,
  // so either it sees this decrement or this sees draining_ and notifies.
  if (executing_.fetch_sub(1) == 1 && draining_.load()) {
    std::lock_guard lock(exec_mu_);
    exec_cv_.notify_all();
  }
  return true;
}

}  // namespace detail

// --- Engine ------------------------------------------------------------------------

namespace {
std::shared_ptr<Store> require_store(std::shared_ptr<Store> store) {
  if (!store) throw std::invalid_argument("porter::Engine needs a store, got nullptr (see make_memory_store)");
  return store;
}
}  // namespace

Engine::Engine(std::shared_ptr<Store> store, EngineOptions options)
    : impl_(std::make_unique<Impl>(require_store(std::move(store)), std::move(options))) {}

Engine::~Engine() = default;  // Impl's destructor stops the engine

Status Engine::register_handler(std::string kind, Handler handler, KindOptions options) {
  // The very check enqueue applies, so a handler can always be reached.
  if (auto s = validate_name("a handler's kind", kind); !s) return s;
  if (!handler) return make_error(ErrorCode::invalid_argument, "the handler for kind '" + kind + "' is empty");
  if (impl_->running_.load()) {
    return make_error(ErrorCode::wrong_state, "register handlers before start(); kind '" + kind + "' came late");
  }
  auto entry = std::make_shared<detail::KindEntry>();
  entry->handler = std::move(handler);
  entry->retry = options.retry ? *options.retry : impl_->options_.retry;
  if (options.timeout) {
    if (auto s = detail::check_duration("KindOptions::timeout", *options.timeout, detail::DurationRule::positive); !s) {
      return s;
    }
    entry->timeout = options.timeout;
  }
  std::unique_lock lock(impl_->kinds_mu_);
  if (!impl_->kinds_.emplace(kind, std::move(entry)).second) {
    return make_error(ErrorCode::invalid_argument, "a handler for kind '" + kind + "' is already registered");
  }
  return {};
}

Status Engine::schedule(std::string name, std::string_view cron_expression, NewJob job_template) {
  if (name.empty()) return make_error(ErrorCode::invalid_argument, "a schedule's name must not be empty");
  if (name.size() > kMaxNameBytes) return make_error(ErrorCode::invalid_argument, "schedule name '" + name + "' is too long");
  if (impl_->running_.load()) {
    return make_error(ErrorCode::wrong_state, "add schedules before start(); schedule '" + name + "' came late");
  }
  auto cron = CronSchedule::parse(cron_expression);
  if (!cron) return make_error(ErrorCode::invalid_argument, "schedule '" + name + "': " + cron.error().message());
  if (auto s = validate(job_template); !s) {
    return make_error(ErrorCode::invalid_argument, "schedule '" + name + "': " + s.error().message());
  }
  if (auto s = impl_->prepare(job_template); !s) {
    return make_error(ErrorCode::invalid_argument, "schedule '" + name + "': " + s.error().message());
  }
  std::unique_lock lock(impl_->kinds_mu_);
  for (const auto& e : impl_->schedules_) {
    if (e.name == name) return make_error(ErrorCode::invalid_argument, "schedule '" + name + "' already exists");
  }
  impl_->schedules_.push_back(detail::ScheduleEntry{std::move(name), std::move(*cron), std::move(job_template)});
  return {};
}

Result<InsertResult> Engine::enqueue(NewJob job) {
  std::vector<NewJob> one;
  one.push_back(std::move(job));
  auto r = impl_->enqueue_batch(std::move(one));
  if (!r) {
    // Drop the "job 0: " prefix: there is only one job.
    std::string msg = r.error().message();
    if (msg.rfind("job 0: ", 0) == 0) msg.erase(0, 7);
    return make_error(r.error().code(), std::move(msg));
  }
  return r->front();
}

Result<std::vector<InsertResult>> Engine::enqueue_batch(std::vector<NewJob> jobs) {
  return impl_->enqueue_batch(std::move(jobs));
}

Status Engine::start() { return impl_->start(); }
void Engine::stop() { impl_->stop(); }
bool Engine::running() const noexcept { return impl_->running_.load(); }

std::uint64_t Engine::subscribe(std::function<void(const Event&)> listener) {
  return impl_->subscribers_.add([listener = std::move(listener)](const Event& event) {
    try {
      listener(event);
    } catch (...) {
      // A subscriber's exception must not kill an engine thread.
    }
  });
}

void Engine::unsubscribe(std::uint64_t id) { impl_->subscribers_.remove(id); }

Status Engine::on_finished(JobId id, std::function<void(const Job&)> callback) {
  return impl_->on_finished(id, std::move(callback));
}

Result<Job> Engine::wait_for(JobId id, std::chrono::milliseconds timeout) { return impl_->wait_for(id, timeout); }

Store& Engine::store() noexcept { return *impl_->store_; }
const EngineOptions& Engine::options() const noexcept { return impl_->options_; }

}  // namespace porter
