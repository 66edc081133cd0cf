// Engine: the threads that run jobs from a Store.
//
// Per start() the engine builds:
//   - one worker pool per queue (QueueRuntime::workers), fed from that queue's
//     own hand-off deque, so a flood in one queue never takes another's threads;
//   - a claimer that keeps each queue's workers busy and, while the queue has
//     a backlog, a buffer of up to `prefetch` claimed jobs waiting for a
//     worker, claiming in batches: it is woken by the store's `available`
//     events, by a queue whose room to claim has grown to `refill_at` (half
//     the prefetch: one wake-up and one store call per batch, not per job),
//     by a poll timer (work from other processes) and by the earliest
//     scheduled run_at;
//   - a heartbeater extending every held lease in one call, which also writes
//     buffered progress and item errors and flags lost or cancelled leases;
//   - a reaper (Store::rescue_expired), a cron scheduler, and a completer that
//     applies finished handlers' outcomes in batches.
// Every wait goes through Clock::real_wait, so a ManualClock drives leases,
// schedules and retries in tests without sleeping.
//
// Locks (never held while a handler or a store call runs, except gate_->mu,
// which only covers the quick dispatch of a store event):
//   kinds_mu_   kinds_, schedules_
//   subscribers_ has its own lock (detail::CallbackSet), held shared while
//               subscribers run; unsubscribe waits for calls in flight
//   claim_mu_   queues_ (the vector and each QueueRuntime's claim fields)
//   q.mu        q.ready, q.idle, q.stopping (per queue)
//   (atomics)   q.held, executing_, draining_: read and written lock-free on
//               the hot path; a waiter re-checks them under its mutex and a
//               writer that must wake it takes that mutex to notify
//   runs_mu_    runs_
//   done_mu_    done_
//   exec_mu_    nothing but exec_cv_'s waits (executing_ is atomic)
//   stopper_mu_ stopper_, stop_pending_
//   watch_mu_   waiters_, callbacks_, fired_
//   lifecycle_mu_ serialises start() and stop()
// Order when nested: claim_mu_ is never held while taking another engine lock.
#include "porter/engine.h"

#include "core/callback_set.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
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
  }
  return "unknown";
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
// Scheduled minutes older than this are skipped rather than caught up on
// (a clock jump or a long stall must not enqueue a flood of stale runs).
constexpr int kMaxCronCatchUp = 60;

}  // namespace

namespace detail {

// One claimed job, from the claim until its outcome is applied by the store.
struct Run {
  explicit Run(Job j) : job(std::move(j)) {}
  Job job;
  // Fired on a cancel request, a lost lease or shutdown. The one source of
  // truth for "cancelled": the handler's stop_token, cancelled() and the
  // outcome the engine applies can never disagree.
  std::stop_source stop;
  std::atomic<bool> shutdown{false};  // cancelled by stop() past the grace: hand back, do not cancel

  bool cancelled() const noexcept { return stop.stop_requested(); }
  void cancel(bool for_shutdown) {
    if (for_shutdown) shutdown.store(true);  // before the token: whoever sees it fired sees this too
    stop.request_stop();
  }

  std::mutex mu;  // guards progress, progress_dirty, item_errors
  Progress progress;
  bool progress_dirty = false;
  std::vector<ItemError> item_errors;
};

struct QueueRuntime {
  QueueRuntime(QueueOptions o, int prefetch, int claim_batch)
      : options(std::move(o)),
        limit(options.concurrency + prefetch),
        refill_at(std::max(1, std::min(claim_batch, (prefetch + 1) / 2))) {}

  const QueueOptions options;
  // The most jobs held at once: every worker busy plus `prefetch` waiting.
  const int limit;
  // Claim once this much room is free. Half the prefetch: the buffer still
  // holds the other half while the store call runs, so workers never wait
  // for the claimer, and each claim carries at least this many jobs.
  const int refill_at;

  std::mutex mu;  // guards ready, idle, stopping
  std::condition_variable cv;
  std::deque<std::shared_ptr<Run>> ready;  // claimed, waiting for a worker (the prefetch buffer)
  int idle = 0;           // workers waiting on cv: hand_off wakes at most one per job
  bool stopping = false;  // set by stop(): workers leave once ready is empty

  // Claimed and not yet handled (ready + running), plus a claim's reservation
  // while it runs. The claimer adds, workers subtract; claim_mu_ is taken
  // only to wake the claimer when the room crosses refill_at.
  std::atomic<int> held{0};

  // Guarded by Engine::Impl::claim_mu_.
  // Prefetch only while the queue has a backlog (the last claim was full and
  // more jobs were due): a queue that keeps up claims for free workers only,
  // so a trickle of jobs is never held behind a busy worker, and a job
  // enqueued with a higher priority overtakes the ones queued before it.
  bool backlog = false;
  // How many jobs to claim now (<= 0: none): up to the free workers, or with
  // a backlog up to the prefetch, once refill_at of it is free.
  int claimable_room() const noexcept {
    const int h = held.load();
    if (!backlog) return options.concurrency - h;
    const int room = limit - h;
    return room >= refill_at ? room : 0;
  }
  bool wanted = true;    // the store may have runnable jobs for this queue
  std::uint64_t signals = 0;  // bumped by every wake-up, so a claim racing one does not lose it
  std::optional<TimePoint> next_due;  // earliest scheduled run_at seen, or the next retry after an error

  std::vector<std::jthread> workers;  // started and joined by start()/stop()
};

// The engine whose thread this is (worker, claimer, completer, ...), so that
// stop() called from one of them does not join itself.
thread_local const void* t_engine_thread = nullptr;

struct KindEntry {
  Handler handler;
  RetryPolicy retry;
};

struct ScheduleEntry {
  std::string name;
  CronSchedule cron;
  NewJob job;
};

// Lets a store listener outlive the engine safely: the store may call a
// listener it copied just before remove_listener returned.
struct EngineCore;
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
    if (notifier_.joinable()) {
      notifier_.request_stop();
      watch_cv_.notify_all();
      notifier_.join();
    }
  }

  const Clock& clock() const noexcept { return store_->clock(); }
  TimePoint now() const noexcept { return store_->clock().now(); }

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
      case StoreEvent::Type::cancel_requested:
      case StoreEvent::Type::lease_lost: {
        std::lock_guard lock(runs_mu_);
        auto [b, e] = runs_.equal_range(ev.job);
        for (auto it = b; it != e; ++it) {
          // A lost lease stops only the run that held it, never a later claim of the job.
          if (ev.type == StoreEvent::Type::lease_lost && it->second->job.lease_ref().token != ev.token) continue;
          it->second->cancel(false);
        }
        break;
      }
      case StoreEvent::Type::finished: {
        std::lock_guard lock(watch_mu_);
        if (waiters_.count(ev.job) != 0 || callbacks_.count(ev.job) != 0) {
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
      if (q.name.empty()) return bad("a queue name is empty");
      if (q.name.size() > kMaxNameBytes) return bad("queue name '" + q.name + "' is too long");
      if (q.concurrency < 1) {
        return bad("queue '" + q.name + "' has concurrency " + std::to_string(q.concurrency) + "; it must be >= 1");
      }
      if (!names.insert(q.name).second) return bad("queue '" + q.name + "' is listed twice");
    }
    if (options_.lease_for <= Duration::zero()) return bad("lease_for must be positive");
    if (options_.heartbeat_every <= Duration::zero()) return bad("heartbeat_every must be positive");
    if (options_.heartbeat_every >= options_.lease_for) {
      return bad("heartbeat_every must be shorter than lease_for, or leases expire between heartbeats");
    }
    if (options_.reaper_every < Duration::zero()) return bad("reaper_every must not be negative (0 disables it)");
    if (options_.poll_every <= Duration::zero()) return bad("poll_every must be positive");
    if (options_.shutdown_grace < Duration::zero()) return bad("shutdown_grace must not be negative");
    if (options_.claim_batch < 1) return bad("claim_batch must be >= 1");
    if (options_.prefetch < 0) return bad("prefetch must not be negative (0 claims only for free workers)");
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
        queues_.push_back(std::make_unique<QueueRuntime>(qo, options_.prefetch, options_.claim_batch));
      }
    }
    {
      // Handlers cannot change while running: workers read this copy without a lock.
      std::shared_lock lock(kinds_mu_);
      run_kinds_ = kinds_;
    }
    draining_.store(false);
    // queues_ is not resized again until stop(), so the pointers stay valid.
    for (auto& q : queues_) {
      QueueRuntime* qp = q.get();
      for (int i = 0; i < qp->options.concurrency; ++i) {
        qp->workers.emplace_back([this, qp] { worker_loop(*qp); });
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
    if (options_.reaper_every > Duration::zero()) {
      reaper_ = std::jthread([this, started](std::stop_token st) {
        t_engine_thread = this;
        reaper_loop(st, started);
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
    claimer_ = std::jthread([this, started](std::stop_token st) {
      t_engine_thread = this;
      claimer_loop(st, started);
    });
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
        push_done(Done{run, Outcome{.lease = run->job.lease_ref(), .kind = OutcomeKind::release}, Duration::zero()});
      }
    }

    // 3. Running handlers get shutdown_grace, then their stop_token fires.
    draining_.store(true);  // from now on the last handler to end notifies exec_cv_
    {
      const TimePoint deadline = now() + options_.shutdown_grace;
      std::unique_lock lock(exec_mu_);
      while (executing_.load() > 0) {
        const TimePoint t = now();
        if (t >= deadline) break;
        exec_cv_.wait_for(lock, clock().real_wait(deadline - t), [&] { return executing_.load() == 0; });
      }
    }
    const bool past_grace = executing_.load() > 0;
    if (past_grace) {
      std::lock_guard lock(runs_mu_);
      for (auto& [id, run] : runs_) run->cancel(true);
    }
    for (auto& q : queues_) {
      for (auto& w : q->workers) w.join();
      q->workers.clear();
    }

    // 4. Apply the last outcomes, then stop heartbeating (leases were held until now).
    join(completer_);
    join(heartbeater_);

    {
      std::lock_guard lock(runs_mu_);
      runs_.clear();
    }
    {
      std::lock_guard lock(claim_mu_);
      queues_.clear();
    }
    running_.store(false);
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
    TimePoint next_poll = started + poll;
    std::unique_lock lock(claim_mu_);
    while (!st.stop_requested()) {
      TimePoint t = now();
      if (t >= next_poll) {
        for (auto& q : queues_) q->wanted = true;
        next_poll = t + poll;
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
        if (n <= 0) continue;  // a worker freeing enough room wakes us
        const std::uint64_t seen = q.signals;
        const bool backlog = q.backlog;
        q.held.fetch_add(n);  // reserve the room while the store call runs
        lock.unlock();
        auto claimed = store_->claim(ClaimRequest{
            .queue = q.options.name, .worker = options_.worker_id, .limit = n, .lease_for = options_.lease_for});
        const int got = claimed ? static_cast<int>(claimed->size()) : 0;
        if (got > 0) hand_off(q, std::move(*claimed));
        // A full claim for free workers: prefetch from now on if more is due.
        bool more_due = backlog;
        if (got == n && !backlog) {
          auto due = store_->next_run_at(q.options.name);
          more_due = due && *due && **due <= now();
        }
        lock.lock();
        q.held.fetch_sub(n - got);
        q.backlog = got == n && more_due;
        if (!claimed) {
          // Store trouble: try this queue again after a poll interval, not in a spin.
          q.wanted = false;
          q.next_due = now() + poll;
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
          due.emplace_back(q, r ? *r : std::optional<TimePoint>(now() + poll));
        }
        lock.lock();
        t = now();
        for (auto& [q, when] : due) {
          // A due job we could not claim (paused queue, or a race): look again
          // at the next poll rather than spinning on it.
          if (when && *when <= t) when = t + poll;
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
      claim_cv_.wait_for(lock, st, clock().real_wait(deadline - t), claimable);
    }
  }

  void hand_off(QueueRuntime& q, std::vector<Job> jobs) {
    const std::size_t count = jobs.size();
    std::vector<std::shared_ptr<Run>> runs;
    runs.reserve(count);
    for (auto& j : jobs) runs.push_back(std::make_shared<Run>(std::move(j)));
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

  void worker_loop(QueueRuntime& q) {
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
      execute(run);
      run.reset();
      // Wake the claimer only when this job's slot makes the room reach
      // refill_at (with a backlog), or frees the first worker (without):
      // exactly one finishing worker sees each crossing.
      const int now_held = q.held.fetch_sub(1) - 1;
      if (q.limit - now_held == q.refill_at || q.options.concurrency - now_held == 1) {
        std::lock_guard claim_lock(claim_mu_);
        if (q.wanted) claim_cv_.notify_one();
      }
      lock.lock();
    }
  }

  void execute(const std::shared_ptr<Run>& run);  // below, after RunContext

  // --- completer ----------------------------------------------------------------

  struct Done {
    std::shared_ptr<Run> run;
    Outcome outcome;
    Duration ran_for{0};
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
        apply(st, std::span<Done>(batch.data() + from, to - from));
      }
      batch.clear();
    }
  }

  void apply(std::stop_token st, std::span<Done> batch) {
    std::vector<Outcome> outcomes;
    outcomes.reserve(batch.size());
    for (auto& d : batch) outcomes.push_back(std::move(d.outcome));  // read back from `outcomes` below

    auto results = store_->finish(outcomes);
    // The store is unreachable: keep trying (the leases are still heartbeated)
    // with a growing pause; when stopping, give up after a few tries - the
    // leases then expire and the reaper of any engine rescues the jobs.
    Duration pause = std::chrono::milliseconds(5);
    for (int tries = 1; !results; ++tries) {
      if (st.stop_requested() && tries > 5) break;
      std::unique_lock lock(done_mu_);
      done_cv_.wait_for(lock, clock().real_wait(pause), [] { return false; });
      lock.unlock();
      pause = std::min<Duration>(pause * 2, std::min<Duration>(options_.heartbeat_every, std::chrono::seconds(1)));
      results = store_->finish(outcomes);
    }

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
    if (!results) return;

    const bool events = has_subscribers();
    const TimePoint at = now();
    for (std::size_t i = 0; i < batch.size() && i < results->size(); ++i) {
      const FinishResult& fr = (*results)[i];
      if (!fr.status) continue;  // stale lease: another worker owns the job now
      const Done& d = batch[i];
      const Outcome& outcome = outcomes[i];
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
                 .attempt = d.run->job.attempt, .message = outcome.error, .ran_for = d.ran_for, .at = at});
    }
    // Retries, snoozes and hand-backs may not raise `available` (their run_at
    // is later): let the claimer look up when they are due.
    for (const auto& q : requeued) wake_claimer(q);
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
    {
      std::lock_guard lock(run.mu);
      if (run.progress_dirty) {
        progress = run.progress;
        run.progress_dirty = false;
      }
      errors.swap(run.item_errors);
    }
    const LeaseRef lease = run.job.lease_ref();
    if (progress) (void)store_->report_progress(lease, *progress);
    if (!errors.empty()) (void)store_->add_item_errors(lease, errors);
  }

  void heartbeat_loop(std::stop_token st, TimePoint started) {
    TimePoint next = started + options_.heartbeat_every;
    while (!st.stop_requested()) {
      sleep_until_clock(st, next);
      if (st.stop_requested()) return;
      heartbeat_once();
      next = now() + options_.heartbeat_every;
    }
  }

  void heartbeat_once() {
    auto runs = snapshot_runs();
    if (runs.empty()) return;
    std::vector<LeaseRef> leases;
    leases.reserve(runs.size());
    for (auto& r : runs) {
      flush_reports(*r);
      leases.push_back(r->job.lease_ref());
    }
    auto statuses = store_->heartbeat(leases, options_.lease_for);
    if (!statuses) return;  // store trouble: the next heartbeat tries again, within the lease
    for (std::size_t i = 0; i < runs.size() && i < statuses->size(); ++i) {
      const LeaseStatus& s = (*statuses)[i];
      if (!s.held || s.cancel_requested) runs[i]->cancel(false);
    }
  }

  // Blocks until the store clock reaches `deadline`, or until stop is requested.
  void sleep_until_clock(std::stop_token st, TimePoint deadline) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    while (!st.stop_requested()) {
      const TimePoint t = now();
      if (t >= deadline) return;
      cv.wait_for(lock, st, clock().real_wait(deadline - t), [] { return false; });
    }
  }

  // --- reaper -------------------------------------------------------------------

  void reaper_loop(std::stop_token st, TimePoint started) {
    TimePoint next = started + options_.reaper_every;
    while (!st.stop_requested()) {
      sleep_until_clock(st, next);
      if (st.stop_requested()) return;
      next = now() + options_.reaper_every;
      auto ids = store_->rescue_expired();
      if (!ids || ids->empty()) continue;
      if (has_subscribers()) {
        const TimePoint at = now();
        for (JobId id : *ids) emit(Event{.type = EventType::rescued, .job = id, .at = at});
      }
      wake_claimer({});
    }
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

    std::vector<NewJob> pending;  // due jobs not yet inserted (store trouble)
    while (!st.stop_requested()) {
      TimePoint t = now();
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (next[i] <= t - std::chrono::minutes(kMaxCronCatchUp)) {
          next[i] = entries[i].cron.next_after(t - std::chrono::minutes(kMaxCronCatchUp));
        }
        while (next[i] <= t) {
          pending.push_back(cron_job(entries[i], next[i]));
          next[i] = entries[i].cron.next_after(next[i]);
        }
      }
      if (!pending.empty()) {
        auto r = store_->insert(pending);
        if (r) {
          emit_enqueued(pending, *r);
          pending.clear();
        } else {
          sleep_until_clock(st, now() + options_.poll_every);
          continue;
        }
      }
      TimePoint deadline = TimePoint::max();
      for (TimePoint n : next) deadline = std::min(deadline, n);
      if (deadline == TimePoint::max()) return;
      sleep_until_clock(st, deadline);
    }
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
    const auto deadline = std::chrono::steady_clock::now() + timeout;
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
    return std::clamp<std::chrono::steady_clock::duration>(clock().real_wait(options_.poll_every),
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
      callbacks_[id].push_back(std::move(callback));
      fired_.insert(id);  // it may have finished between get() and now: have the notifier look once
      if (!notifier_.joinable()) notifier_ = std::jthread([this](std::stop_token st) { notifier_loop(st); });
    }
    watch_cv_.notify_all();
    return {};
  }

  // Calls on_finished callbacks: on `finished` events, and by polling the
  // watched jobs (finished by another process) every poll interval.
  void notifier_loop(std::stop_token st) {
    auto next_poll = std::chrono::steady_clock::now();
    while (!st.stop_requested()) {
      std::vector<JobId> check;
      {
        std::unique_lock lock(watch_mu_);
        const auto has_fired = [&] {
          return std::any_of(fired_.begin(), fired_.end(), [&](JobId id) { return callbacks_.count(id) != 0; });
        };
        watch_cv_.wait_until(lock, st, next_poll, has_fired);
        if (st.stop_requested()) return;
        if (std::chrono::steady_clock::now() >= next_poll) {
          for (auto& [id, cbs] : callbacks_) check.push_back(id);
          next_poll = std::chrono::steady_clock::now() + poll_slice();
        } else {
          for (JobId id : fired_) {
            if (callbacks_.count(id) != 0) check.push_back(id);
          }
        }
        for (JobId id : check) {
          if (waiters_.count(id) == 0) fired_.erase(id);
        }
      }
      for (JobId id : check) {
        auto job = store_->get(id);
        if (job && !is_final(job->state)) continue;
        if (!job && job.error().code() != ErrorCode::not_found) continue;  // store trouble: next poll
        std::vector<std::function<void(const Job&)>> cbs;
        {
          std::lock_guard lock(watch_mu_);
          auto it = callbacks_.find(id);
          if (it == callbacks_.end()) continue;
          cbs = std::move(it->second);
          callbacks_.erase(it);
        }
        if (!job) continue;  // deleted (pruned or discarded) before we saw it final: nothing to report
        for (auto& cb : cbs) {
          try {
            cb(*job);
          } catch (...) {
            // A callback's exception must not kill the notifier.
          }
        }
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
  std::unordered_map<JobId, std::vector<std::function<void(const Job&)>>> callbacks_;
  std::unordered_set<JobId> fired_;  // watched jobs with a `finished` event not yet looked at

  std::jthread claimer_, completer_, heartbeater_, reaper_, scheduler_;
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
  RunContext(EngineCore& engine, Store& store, Run& run) : engine_(engine), store_(store), run_(run) {}

  const Job& job() const noexcept override { return run_.job; }
  bool cancelled() const noexcept override { return run_.cancelled(); }
  std::stop_token stop_token() const noexcept override { return run_.stop.get_token(); }

  void progress(std::int64_t done, std::int64_t total, std::string message) override {
    std::lock_guard lock(run_.mu);
    run_.progress = Progress{done, total, std::move(message)};
    run_.progress_dirty = true;
  }

  void item_error(std::string item, std::string message) override {
    std::lock_guard lock(run_.mu);
    run_.item_errors.push_back(ItemError{std::move(item), clip_message(message)});
  }

  Result<std::vector<InsertResult>> spawn(std::vector<NewJob> children) override;

  void wait_for_children() override { wait_children_ = true; }

  Result<std::vector<Job>> children() const override {
    std::vector<Job> out;
    JobFilter filter;
    filter.parent_id = run_.job.id;
    std::optional<JobId> cursor;
    do {
      auto page = store_.list(filter, cursor, 500);
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
  EngineCore& engine_;
  Store& store_;
  Run& run_;
  std::string result_;
  bool wait_children_ = false;
  std::optional<Duration> snooze_;
};

}  // namespace

Result<std::vector<InsertResult>> RunContext::spawn(std::vector<NewJob> children) {
  if (auto s = engine_.prepare_all(children); !s) return s.error();
  auto r = store_.spawn(run_.job.lease_ref(), children);
  if (r) engine_.emit_enqueued(children, *r);
  return r;
}

void EngineCore::execute(const std::shared_ptr<Run>& run) {
  executing_.fetch_add(1);
  const Job& job = run->job;
  if (has_subscribers() && !run->cancelled()) {
    emit(Event{.type = EventType::started, .job = job.id, .kind = job.kind, .queue = job.queue,
               .attempt = job.attempt, .at = now()});
  }
  const auto found = run_kinds_.find(job.kind);
  const KindEntry* entry = found == run_kinds_.end() ? nullptr : found->second.get();
  const RetryPolicy& policy = policy_for(entry);
  const auto transient = [&](std::string message) {
    return Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::retry, .error = clip_message(message),
                   .delay = policy.delay_after(job.attempt, unit_random())};
  };

  const auto started = std::chrono::steady_clock::now();
  Outcome outcome;
  if (run->cancelled()) {
    // Cancelled (or its lease lost) while it waited for a worker: do not start it.
  } else if (!entry) {
    outcome = transient("no handler for kind '" + job.kind + "' is registered on worker " + options_.worker_id);
  } else {
    RunContext ctx(*this, *store_, *run);
    try {
      entry->handler(ctx);
      outcome = ctx.outcome();
    } catch (const PermanentError& e) {
      outcome = Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::fail, .error = clip_message(e.what())};
    } catch (const std::exception& e) {
      outcome = transient(e.what());
    } catch (...) {
      outcome = transient("the handler threw an exception that is not a std::exception");
    }
  }
  const auto ran_for = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - started);
  if (run->cancelled()) {
    const bool shutdown = run->shutdown.load();
    outcome = Outcome{.lease = job.lease_ref(), .kind = shutdown ? OutcomeKind::release : OutcomeKind::cancelled};
  }
  flush_reports(*run);
  push_done(Done{run, std::move(outcome), ran_for});
  // seq_cst pairs with stop(): it sets draining_ and then reads executing_,
  // so either it sees this decrement or this sees draining_ and notifies.
  if (executing_.fetch_sub(1) == 1 && draining_.load()) {
    std::lock_guard lock(exec_mu_);
    exec_cv_.notify_all();
  }
}

}  // namespace detail

// --- Engine ------------------------------------------------------------------------

Engine::Engine(std::shared_ptr<Store> store, EngineOptions options)
    : impl_(std::make_unique<Impl>(std::move(store), std::move(options))) {}

Engine::~Engine() = default;  // Impl's destructor stops the engine

Status Engine::register_handler(std::string kind, Handler handler, KindOptions options) {
  if (kind.empty()) return make_error(ErrorCode::invalid_argument, "a handler's kind must not be empty");
  if (kind.size() > kMaxNameBytes) return make_error(ErrorCode::invalid_argument, "kind '" + kind + "' is too long");
  if (!handler) return make_error(ErrorCode::invalid_argument, "the handler for kind '" + kind + "' is empty");
  if (impl_->running_.load()) {
    return make_error(ErrorCode::wrong_state, "register handlers before start(); kind '" + kind + "' came late");
  }
  auto entry = std::make_shared<detail::KindEntry>();
  entry->handler = std::move(handler);
  entry->retry = options.retry ? *options.retry : impl_->options_.retry;
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
