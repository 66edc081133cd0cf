// The maintenance thread: everything periodic that calls the store, on one
// thread and one timed wait. Each pass does what is due, then sleeps until
// the earliest store-clock deadline (in Clock::real_wait slices, at most
// kMaxBlock) or until woken (a report to write, a queue to look up):
//   - heartbeats (every heartbeat_every): every live run's lease, with its
//     buffered progress and item errors, in one heartbeat_with_reports call;
//     the worker registry is announced with them;
//   - prompt reports: kReportDelay after a handler reports, the runs with
//     something new are written (the same call, for those runs only);
//   - rescue of expired leases (reaper_every), retention (its interval),
//     cron (scheduling.cpp): not once stop() has begun;
//   - when a drained or requeued queue's next job is due (next_run_at), that
//     queue is poked.
// Plus the watchdog (its own thread; see engine_core.h for why).
#include <algorithm>

#include "engine/engine_core.h"
#include "porter/retention.h"

namespace porter::detail {

void EngineCore::maintenance_loop(TimePoint started) {
  const bool reap = options_.reaper_every > Duration::zero();
  const bool prune = options_.retention.enabled;
  TimePoint next_beat = saturating_add(started, options_.heartbeat_every);
  TimePoint next_reap = reap ? saturating_add(started, options_.reaper_every) : TimePoint::max();
  TimePoint next_prune = prune ? saturating_add(started, options_.retention.interval) : TimePoint::max();
  schedule_init(started);
  TimePoint next_cron = run_schedules_.empty() ? TimePoint::max() : started;
  auto report_at = std::chrono::steady_clock::time_point::max();

  std::unique_lock lock(maint_mu_);
  while (!maint_stop_) {
    const std::uint64_t seen = maint_signals_;
    lock.unlock();
    const TimePoint t = now();
    const auto real = std::chrono::steady_clock::now();
    if (report_due_.exchange(false)) report_at = std::min(report_at, real + kReportDelay);
    if (t >= next_beat) {
      // The next beat counts from `t`, read before this one's store call: a
      // lease extended by it runs at least lease_for from `t`. Counting from
      // after the call (and the announce) let a clock that moved meanwhile
      // push the next beat past what the lease allows (the heartbeat tests'
      // stalls under sanitizers).
      next_beat = saturating_add(t, options_.heartbeat_every);
      heartbeat_once(false);  // writes every report too
      announce();
      report_at = std::chrono::steady_clock::time_point::max();
    } else if (real >= report_at) {
      report_at = std::chrono::steady_clock::time_point::max();
      heartbeat_once(true);
    }
    if (!stopping_.load()) {
      if (t >= next_reap) {
        next_reap = saturating_add(t, options_.reaper_every);
        rescue_once();
      }
      if (t >= next_prune) {
        next_prune = saturating_add(t, options_.retention.interval);
        if (auto r = apply_retention(*store_, options_.retention); !r) maintenance_failed("retention", r.error());
      }
      if (t >= next_cron) next_cron = schedule_step(t);
    }
    if (look_up_due_.exchange(false)) look_up_due(t);
    TimePoint deadline = std::min({next_beat, next_reap, next_prune, next_cron});
    for (std::size_t i = 0; i < next_due_.size(); ++i) {
      if (!next_due_[i]) continue;
      if (*next_due_[i] <= t) {
        next_due_[i].reset();
        poke(*queues_[i]);
      } else {
        deadline = std::min(deadline, *next_due_[i]);
      }
    }

    lock.lock();
    if (maint_stop_ || maint_signals_ != seen) continue;
    const TimePoint now_t = now();
    if (deadline <= now_t) continue;
    auto wait = wait_slice(deadline, now_t);
    if (report_at != std::chrono::steady_clock::time_point::max()) {
      wait = std::min<std::chrono::steady_clock::duration>(wait, report_at - std::chrono::steady_clock::now());
    }
    if (wait > std::chrono::steady_clock::duration::zero()) maint_cv_.wait_for(lock, wait);
  }
}

void EngineCore::wake_maintenance() {
  {
    std::lock_guard lock(maint_mu_);
    ++maint_signals_;
  }
  maint_cv_.notify_one();
}

void EngineCore::ask_report(Run&) {
  report_due_.store(true);
  wake_maintenance();
}

void EngineCore::mark_look_up(QueueRuntime& q) {
  if (q.look_up.exchange(true)) return;  // already asked
  look_up_due_.store(true);
  wake_maintenance();
}

// Renews the leases of runs whose handler is still at work and within its
// time (a returned run's outcome is its group's, bounded by this lease; a
// timed-out handler that ignores its stop token must become rescuable),
// writing what they reported. `reports_only`: just the runs with a report.
void EngineCore::heartbeat_once(bool reports_only) {
  std::vector<std::shared_ptr<WorkerSlot>> slots;
  std::vector<Beat> beats;
  std::vector<std::size_t> uncounted;
  {
    std::shared_lock slots_lock(slots_mu_);
    for (auto& q : queues_) {
      for (auto& slot : q->slots) {
        std::lock_guard lock(slot->mu);
        Run& run = slot->run;
        if (!slot->active || run.returned.load() || run.reason() == StopReason::timeout) continue;
        if (reports_only && !run.report_pending.load()) continue;
        Beat beat{.lease = run.job.lease_ref()};
        uncounted.push_back(run.take_report(beat.report));
        beats.push_back(std::move(beat));
        slots.push_back(slot);
      }
    }
  }
  if (beats.empty()) return;
  const TimePoint until = saturating_add(now(), options_.lease_for);  // from before the call
  auto statuses = store_->heartbeat_with_reports(beats, options_.lease_for);
  for (std::size_t i = 0; i < beats.size(); ++i) {
    if (uncounted[i] > 0) write_uncounted(beats[i].lease, uncounted[i]);
  }
  if (!statuses) return;  // store trouble: the next heartbeat tries again; the watchdog minds the lease
  for (std::size_t i = 0; i < slots.size() && i < statuses->size(); ++i) {
    const LeaseStatus& s = (*statuses)[i];
    std::lock_guard lock(slots[i]->mu);
    Run& run = slots[i]->run;
    if (!slots[i]->active || run.job.lease_ref() != beats[i].lease) continue;  // finished meanwhile
    if (!s.held) {
      run.stop_for(StopReason::lease_lost);
    } else {
      run.renewed(until);
      if (s.cancel_requested) run.stop_for(StopReason::cancel);
    }
  }
}

// Item errors beyond the kept ones only count: the store has no room left
// for them, so blank entries from one shared block carry the count.
void EngineCore::write_uncounted(const LeaseRef& lease, std::size_t uncounted) {
  static const std::vector<ItemError> blanks(4096);
  while (uncounted > 0) {
    const std::size_t n = std::min(uncounted, blanks.size());
    if (!store_->add_item_errors(lease, std::span<const ItemError>(blanks.data(), n))) return;
    uncounted -= n;
  }
}

void EngineCore::rescue_once() {
  auto ids = store_->rescue_expired();
  if (!ids) {
    maintenance_failed("rescue of expired leases", ids.error());
    return;
  }
  if (ids->empty()) return;
  if (has_subscribers()) {
    std::vector<Event> events;
    const TimePoint at = now();
    for (JobId id : *ids) events.push_back(Event{.type = EventType::rescued, .job = id, .at = at});
    emit_all(events);
  }
  poke({});
}

// Tells the store this engine is alive and which kinds it handles on which
// queues (Stats::unhandled shows pending kinds that no live engine handles).
// At start and with every heartbeat; valid for one lease period.
void EngineCore::announce() {
  WorkerInfo info{.id = options_.worker_id, .kinds = claim_kinds_};
  for (const auto& q : options_.queues) info.queues.push_back(q.name);
  if (auto s = store_->announce(info, options_.lease_for); !s) maintenance_failed("announce", s.error());
}

// When the next job of each drained or requeued queue is due. A due job we
// could not claim (paused queue, or a race) is looked at again after a poll
// interval rather than in a spin.
void EngineCore::look_up_due(TimePoint t) {
  for (std::size_t i = 0; i < queues_.size(); ++i) {
    QueueRuntime& q = *queues_[i];
    if (!q.look_up.exchange(false)) continue;
    auto r = store_->next_run_at(q.options.name);
    std::optional<TimePoint> when = r ? *r : std::optional<TimePoint>(saturating_add(t, options_.poll_every));
    if (when && *when <= t) when = saturating_add(t, options_.poll_every);
    if (when && (!next_due_[i] || *when < *next_due_[i])) next_due_[i] = when;
  }
}

// --- watchdog ------------------------------------------------------------------------

// Fires a run's stop token when its KindOptions::timeout passes, and when
// its lease is about to expire because heartbeats keep failing: the handler
// hears it before another engine can rescue the job and run it alongside.
void EngineCore::watchdog_loop() {
  // Early enough that the handler can stop before the lease ends; late
  // enough that one heartbeat after the last renewal could still succeed.
  // (start() checked 0 < heartbeat_every < lease_for: no overflow.)
  const Duration margin = std::min(options_.heartbeat_every, (options_.lease_for - options_.heartbeat_every) / 2);
  std::unique_lock lock(watchdog_mu_);
  while (!watchdog_stop_) {
    const std::uint64_t seen = watchdog_signals_;
    lock.unlock();
    const TimePoint t = now();
    TimePoint next = saturating_add(t, options_.heartbeat_every);
    for_each_active_run([&](WorkerSlot& slot) {
      Run& run = slot.run;
      if (run.returned.load() || run.cancelled()) return;
      const TimePoint timeout_at{Duration(run.timeout_at.load())};
      const TimePoint lease_deadline = saturating_sub(run.lease_until(), margin);
      if (t >= timeout_at) {
        run.stop_for(StopReason::timeout);
      } else if (t >= lease_deadline) {
        run.stop_for(StopReason::lease_deadline);
      } else {
        next = std::min({next, timeout_at, lease_deadline});
      }
    });
    lock.lock();
    while (!watchdog_stop_ && watchdog_signals_ == seen) {
      const TimePoint now_t = now();
      if (now_t >= next) break;
      watchdog_cv_.wait_for(lock, wait_slice(next, now_t));
    }
  }
}

// A run started with a timeout: the watchdog recomputes its next wake-up.
void EngineCore::poke_watchdog() {
  {
    std::lock_guard lock(watchdog_mu_);
    ++watchdog_signals_;
  }
  watchdog_cv_.notify_all();
}

}  // namespace porter::detail
