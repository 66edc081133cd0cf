// The worker loop: run a job, hand its outcome to the queue's group with the
// wish for the next job (leader.cpp does the store call), and, when the
// queue has nothing, park until a leader hands over a job, a wake-up says
// there may be work (poke), or the real-time poll is due.
#include <algorithm>

#include "engine/engine_core.h"
#include "engine/run_context.h"

namespace porter::detail {
namespace {

// A follower yields this many times for the leader's answer before it
// parks: the store call is often shorter than a park and a wake-up.
constexpr int kSpins = 16;

}  // namespace

void EngineCore::worker_loop(QueueRuntime& q, std::shared_ptr<WorkerSlot> slot_ptr) {
  t_engine_thread = this;
  // Shared with the handler: an abandoned handler may outlive the engine.
  const std::shared_ptr<Store> store = store_;
  const std::shared_ptr<EngineGate> gate = engine_gate_;
  WorkerSlot& slot = *slot_ptr;
  bool carrying = false;
  while (next_job(q, slot, carrying)) {
    if (!execute(slot, *store, gate)) return;  // abandoned by stop(): the engine may be gone
    carrying = true;
  }
}

bool EngineCore::next_job(QueueRuntime& q, WorkerSlot& slot, bool carrying) {
  const bool can_claim = !claim_kinds_.empty();  // no handlers: an empty list would mean any kind
  std::unique_lock lock(q.mu);
  bool claim = can_claim;
  while (true) {
    const bool want = claim && !q.stopping;
    if (carrying || want) {
      slot.has_outcome = carrying;
      slot.wants = want;
      slot.assigned = false;
      slot.poked = false;
      slot.done.store(false, std::memory_order_relaxed);
      slot.next = nullptr;
      if (q.tail != nullptr) {
        q.tail->next = &slot;
      } else {
        q.head = &slot;
      }
      q.tail = &slot;
      if (q.head != &slot) wait_turn(q, lock, slot);
      if (!slot.done.load(std::memory_order_acquire)) lead(q, lock, slot);
      carrying = false;
      if (slot.assigned) {
        slot.assigned = false;
        if (q.stopping) slot.run.stop_for(StopReason::shutdown);  // claimed as stop() began: hand it back
        return true;
      }
      if (q.stopping) return false;
      claim = slot.poked;  // new work came in during the claim: look again
      slot.poked = false;
      if (claim) continue;
    }
    if (q.stopping) return false;
    if (wait_idle(q, lock, slot, claim)) {
      if (q.stopping) slot.run.stop_for(StopReason::shutdown);
      return true;
    }
    if (q.stopping) return false;
    claim = claim && can_claim;
  }
}

// A follower: the leader answers (done) or hands over the lead (head).
void EngineCore::wait_turn(QueueRuntime& q, std::unique_lock<std::mutex>& lock, WorkerSlot& slot) {
  lock.unlock();
  for (int i = 0; i < kSpins && !slot.done.load(std::memory_order_acquire); ++i) std::this_thread::yield();
  lock.lock();
  while (!slot.done.load(std::memory_order_acquire) && q.head != &slot) {
    slot.parked = true;
    slot.cv.wait_for(lock, kMaxBlock);
    slot.parked = false;
  }
}

bool EngineCore::wait_idle(QueueRuntime& q, std::unique_lock<std::mutex>& lock, WorkerSlot& slot, bool& claim) {
  const bool can_claim = !claim_kinds_.empty();
  slot.idle = true;
  slot.poked = false;
  slot.assigned = false;
  q.idle.push_back(&slot);
  claim = false;
  while (slot.idle && !q.stopping) {
    // A leader in flight counted this worker: its answer comes first.
    if (!q.leading && can_claim) {
      const auto real = std::chrono::steady_clock::now();
      if (slot.poked) {
        claim = true;
        break;
      }
      if (real >= q.next_poll) {  // work from other processes, or a wake-up that was lost
        q.next_poll = steady_deadline(real, options_.poll_every);
        claim = true;
        break;
      }
    }
    slot.parked = true;
    const auto until = std::min(q.next_poll, std::chrono::steady_clock::now() + kMaxBlock);
    slot.cv.wait_until(lock, until);
    slot.parked = false;
  }
  if (slot.idle) {
    slot.idle = false;
    q.idle.erase(std::find(q.idle.begin(), q.idle.end(), &slot));
  }
  slot.poked = false;
  if (!slot.assigned) return false;
  slot.assigned = false;
  return true;
}

void EngineCore::take_job(WorkerSlot& slot, Job job, TimePoint lease_until) {
  std::lock_guard lock(slot.mu);
  slot.run.reset(std::move(job), lease_until);
  slot.active = true;
}

void EngineCore::release_run(WorkerSlot& slot) {
  std::lock_guard lock(slot.mu);
  slot.active = false;
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

bool EngineCore::execute(WorkerSlot& slot, Store& store, const std::shared_ptr<EngineGate>& gate) {
  Run& run = slot.run;
  executing_.fetch_add(1);
  const Job& job = run.job;
  const auto found = run_kinds_.find(job.kind);
  const KindEntry* entry = found == run_kinds_.end() ? nullptr : found->second.get();
  const RetryPolicy& policy = policy_for(entry);

  Outcome outcome;
  if (run.cancelled()) {
    // Stopped (cancelled, lease lost, shutdown) before it started: do not start it.
  } else if (entry == nullptr) {
    // The claim names only our kinds; a store that ignores ClaimRequest::kinds
    // still gets a visible, retried failure rather than a silent loss.
    outcome = transient_outcome(job, policy,
                                "no handler for kind '" + job.kind + "' is registered on worker " + options_.worker_id);
  } else {
    if (entry->timeout) {
      run.timeout_at.store(saturating_add(now(), *entry->timeout).time_since_epoch().count());
      poke_watchdog();
    }
    bool closed = false;
    {
      std::lock_guard lock(slot.mu);
      closed = slot.closed;
      slot.in_handler = !closed;
    }
    // stop() is past its deadlines and about to join this thread: hand back.
    if (closed) run.stop_for(StopReason::shutdown);
    if (!closed) outcome = run_handler(*entry, run, store, gate);
    {
      std::lock_guard lock(slot.mu);
      if (slot.abandoned) return false;  // stop() gave up on us: the engine may be gone
      slot.in_handler = false;
    }
  }
  run.returned.store(true);
  if (run.cancelled()) {
    const Duration ran_for = outcome.ran_for;
    outcome = stopped_outcome(run, policy);
    outcome.ran_for = ran_for;
  }
  // What the handler reported rides on the outcome, in the finish transaction.
  const std::size_t uncounted = run.take_report(outcome.report);
  if (uncounted > 0) {
    // The kept errors go first, so the blanks that only count cannot take their place.
    const LeaseRef lease = job.lease_ref();
    if (!outcome.report.item_errors.empty()) (void)store_->add_item_errors(lease, outcome.report.item_errors);
    outcome.report.item_errors.clear();
    write_uncounted(lease, uncounted);
  }
  slot.outcome = std::move(outcome);
  // seq_cst pairs with stop(): it sets draining_ and then reads executing_,
  // so either it sees this decrement or this sees draining_ and notifies.
  if (executing_.fetch_sub(1) == 1 && draining_.load()) {
    std::lock_guard lock(exec_mu_);
    exec_cv_.notify_all();
  }
  return true;
}

}  // namespace porter::detail
