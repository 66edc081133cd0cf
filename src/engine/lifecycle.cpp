// The engine's life: construction (the store listener), enqueue's part,
// start() (threads and their shared state), stop() (grace, hand-back,
// abandonment) and destruction.
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "engine/engine_core.h"
#include "porter/retention.h"

namespace porter::detail {
namespace {

std::string default_worker_id() {
  static std::atomic<int> counter{0};
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host[0] != '\0' ? host : "localhost") + ":" + std::to_string(getpid()) + ":" +
         std::to_string(++counter);
}

}  // namespace

EngineCore::EngineCore(std::shared_ptr<Store> s, EngineOptions o) : store_(std::move(s)), options_(std::move(o)) {
  if (options_.worker_id.empty()) options_.worker_id = default_worker_id();
  gate_ = std::make_shared<ListenerGate>();
  gate_->core = this;
  engine_gate_ = std::make_shared<EngineGate>();
  engine_gate_->core = this;
  listener_id_ = store_->add_listener([gate = gate_](const StoreEvent& ev) {
    // Nobody waits on any job: a `finished` event costs one atomic load.
    if (ev.type == StoreEvent::Type::finished && gate->watched.load(std::memory_order_acquire) == 0) return;
    std::shared_lock lock(gate->mu);
    if (gate->core != nullptr) gate->core->on_store_event(ev);
  });
}

EngineCore::~EngineCore() {
  stop();
  std::thread stopper;
  {
    std::lock_guard lock(stopper_mu_);
    stopper.swap(stopper_);
  }
  if (stopper.joinable()) stopper.join();  // a stop requested from a handler: it has nothing left to do
  store_->remove_listener(listener_id_);
  {
    std::unique_lock lock(gate_->mu);
    gate_->core = nullptr;
  }
  {
    std::unique_lock lock(engine_gate_->mu);  // waits for an abandoned handler's spawn in flight
    engine_gate_->core = nullptr;
  }
  {
    std::lock_guard lock(watch_mu_);
    notifier_stop_ = true;
  }
  watch_cv_.notify_all();
  if (notifier_.joinable()) notifier_.join();
}

// --- kinds and enqueue -------------------------------------------------------------

std::shared_ptr<const KindEntry> EngineCore::find_kind(const std::string& kind) const {
  std::shared_lock lock(kinds_mu_);
  auto it = kinds_.find(kind);
  return it == kinds_.end() ? nullptr : it->second;
}

// The engine's part of enqueueing: the kind must be known here (unless the
// options allow otherwise) and max_attempts defaults to the kind's policy.
// Everything else about the job is the store's to check (it is the
// authority, for other processes too), so a job is validated once.
Status EngineCore::prepare(NewJob& job, const std::shared_ptr<const KindEntry>& entry) const {
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

Status EngineCore::prepare_all(std::vector<NewJob>& jobs) const {
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

Result<std::vector<InsertResult>> EngineCore::enqueue_batch(std::vector<NewJob> jobs) {
  if (auto s = prepare_all(jobs); !s) return s.error();
  auto r = store_->insert(jobs);
  if (r) emit_enqueued(jobs, *r);
  return r;
}

// --- start ---------------------------------------------------------------------------

Status EngineCore::check_options() const {
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

Status EngineCore::start() {
  std::lock_guard life(lifecycle_mu_);
  if (running_.load()) return make_error(ErrorCode::wrong_state, "the engine is already running");
  if (auto s = check_options(); !s) return s;

  if (!queues_ready_.load()) {
    // Once: store events walk these without a lock from now on.
    for (const auto& qo : options_.queues) {
      auto q = std::make_unique<QueueRuntime>(qo);
      for (int i = 0; i < qo.concurrency; ++i) q->slots.push_back(std::make_shared<WorkerSlot>());
      queues_.push_back(std::move(q));
    }
    next_due_.assign(queues_.size(), std::nullopt);
    queues_ready_.store(true, std::memory_order_release);
  }
  {
    // Handlers cannot change while running: engine threads read these copies without a lock.
    std::shared_lock lock(kinds_mu_);
    run_kinds_ = kinds_;
    run_schedules_ = schedules_;
  }
  // Every claim names these, so the store never hands over a job this
  // engine cannot run (during a rolling deploy it waits for one that can).
  claim_kinds_.clear();
  for (const auto& [kind, entry] : run_kinds_) claim_kinds_.push_back(kind);
  std::sort(claim_kinds_.begin(), claim_kinds_.end());
  draining_.store(false);
  executing_.store(0);  // abandoned handlers of an earlier run are no longer counted
  std::fill(next_due_.begin(), next_due_.end(), std::nullopt);
  look_up_due_.store(false);
  report_due_.store(false);
  stopping_.store(false);
  {
    std::lock_guard lock(maint_mu_);
    maint_stop_ = false;
  }
  {
    std::lock_guard lock(watchdog_mu_);
    watchdog_stop_ = false;
  }
  announce();  // before the first claim: an administrator sees which kinds are handled

  const auto real_now = std::chrono::steady_clock::now();
  for (auto& qp : queues_) {
    QueueRuntime* q = qp.get();
    {
      std::lock_guard lock(q->mu);
      q->stopping = false;
      q->head = q->tail = nullptr;
      q->leading = false;
      q->idle.clear();
      q->next_poll = steady_deadline(real_now, options_.poll_every);
    }
    q->request = ClaimRequest{.queue = q->options.name, .worker = options_.worker_id, .limit = 0,
                              .lease_for = options_.lease_for, .kinds = claim_kinds_};
    for (auto& slot : q->slots) {
      std::lock_guard lock(slot->mu);
      slot->closed = false;
    }
    for (auto& slot : q->slots) q->workers.emplace_back([this, q, slot] { worker_loop(*q, slot); });
  }
  // Periodic work counts from now, not from whenever the thread gets to
  // run, so a test that moves a ManualClock right after start() is not racing it.
  const TimePoint started = now();
  maintenance_ = std::thread([this, started] {
    t_engine_thread = this;
    maintenance_loop(started);
  });
  watchdog_ = std::thread([this] {
    t_engine_thread = this;
    watchdog_loop();
  });
  running_.store(true);
  return {};
}

// --- stop ----------------------------------------------------------------------------

void EngineCore::stop() {
  if (t_engine_thread == this) {
    // A handler or listener on one of our threads: stopping here would join
    // this very thread. Stop from a helper thread once the caller returns.
    stop_in_background();
    return;
  }
  std::lock_guard life(lifecycle_mu_);
  if (!running_.load()) return;

  // 1. No new work: no claims, no cron runs, no rescues; idle workers leave.
  stopping_.store(true);
  for (auto& q : queues_) {
    std::lock_guard lock(q->mu);
    q->stopping = true;
    for (WorkerSlot* idle : q->idle) idle->cv.notify_one();
  }

  // 2. Running handlers get shutdown_grace, then their stop_token fires,
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
    for_each_active_run([](WorkerSlot& slot) { slot.run.stop_for(StopReason::shutdown); });
    const auto give_up = std::chrono::steady_clock::now() + kAbandonAfter;
    std::unique_lock lock(exec_mu_);
    while (executing_.load() > 0 && std::chrono::steady_clock::now() < give_up) {
      exec_cv_.wait_for(lock, kMaxBlock, [&] { return executing_.load() == 0; });
    }
  }

  // 3. Workers in a handler now are abandoned; the others apply their last
  //    outcomes (heartbeats still run meanwhile) and leave.
  for (auto& q : queues_) {
    std::vector<bool> overran(q->slots.size(), false);
    for (std::size_t i = 0; i < q->slots.size(); ++i) {
      std::lock_guard lock(q->slots[i]->mu);
      if (q->slots[i]->in_handler) {
        q->slots[i]->abandoned = true;
        auto entry = run_kinds_.find(q->slots[i]->run.job.kind);
        if (entry != run_kinds_.end()) q->slots[i]->kept_entry = entry->second;
        overran[i] = true;
      } else {
        q->slots[i]->closed = true;  // so the join below cannot wait on a handler
      }
    }
    for (std::size_t i = 0; i < q->workers.size(); ++i) {
      if (overran[i]) {
        abandon(*q->slots[i]);
        q->workers[i].detach();
      } else {
        q->workers[i].join();
      }
    }
    q->workers.clear();
    // An abandoned worker keeps its slot: a restart gets a fresh one.
    std::unique_lock slots_lock(slots_mu_);
    for (std::size_t i = 0; i < q->slots.size(); ++i) {
      if (overran[i]) q->slots[i] = std::make_shared<WorkerSlot>();
    }
  }

  // 4. Then the service threads.
  {
    std::lock_guard lock(watchdog_mu_);
    watchdog_stop_ = true;
  }
  watchdog_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  {
    std::lock_guard lock(maint_mu_);
    maint_stop_ = true;
  }
  maint_cv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();

  // Forget this engine now rather than at its announcement's expiry.
  if (auto s = store_->retire(options_.worker_id); !s) maintenance_failed("retire", s.error());
  running_.store(false);
}

// A handler that ignored its stop token past the shutdown: it is no longer
// heartbeated, so its lease expires and any engine's reaper rescues the job.
void EngineCore::abandon(WorkerSlot& slot) {
  {
    std::lock_guard lock(slot.mu);
    slot.active = false;  // out of heartbeats and store events; the handler still reads slot.run
  }
  if (has_subscribers()) {
    const Job& job = slot.run.job;
    emit(Event{.type = EventType::abandoned, .job = job.id, .kind = job.kind, .queue = job.queue,
               .attempt = job.attempt,
               .message = "stop() abandoned the handler: it ignored its stop token; the job is rescued once its "
                          "lease expires",
               .at = now()});
  }
}

void EngineCore::stop_in_background() {
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

}  // namespace porter::detail
