// The group: workers of one queue hand in their outcomes and their wish for
// a next job; the first in line (the leader, as in leveldb's write path)
// takes everyone queued behind it, makes ONE Store::finish_and_claim call,
// and hands each follower its next job. Jobs claimed beyond the group go to
// the queue's idle workers: a claim asks for no more jobs than there are
// free workers, so every claimed job starts at once.
//
// Errors: `unavailable` is retried (nothing changed), with a growing pause,
// while the outcomes' leases last; an outcome whose lease ran out is dropped
// (the job is rescued anyway). Any other error is the finish part's: each
// outcome is then tried alone, once, so a bad one fails alone and never
// stalls the others, and the claim is made on its own.
#include <algorithm>
#include <thread>

#include "engine/engine_core.h"

namespace porter::detail {

void EngineCore::lead(QueueRuntime& q, std::unique_lock<std::mutex>& lock, WorkerSlot& self) {
  (void)self;  // at the head of the writers: the first of the batch
  q.leading = true;
  q.batch.clear();
  int wants = 0;
  for (WorkerSlot* w = q.head; w != nullptr && q.batch.size() < kMaxGroup; w = w->next) {
    q.batch.push_back(w);
    if (w->wants) ++wants;
  }
  int limit = 0;
  if (!q.stopping && wants > 0) {
    limit = std::min<int>(wants + static_cast<int>(q.idle.size()), options_.claim_batch);
  }
  const std::uint64_t seen = q.signals;
  lock.unlock();

  q.outcomes.clear();
  q.owners.clear();
  for (WorkerSlot* w : q.batch) {
    if (!w->has_outcome) continue;
    q.outcomes.push_back(std::move(w->outcome));
    q.owners.push_back(w);
  }
  q.request.limit = limit;
  // The lease runs from (at the latest) now: the store call comes after.
  const TimePoint lease_until = saturating_add(now(), options_.lease_for);
  StoreTurn turn = store_turn(q);
  if (has_subscribers()) turn_events(q, turn);
  bool requeued = false;
  for (const FinishResult& f : turn.finished) requeued |= f.status && f.state == JobState::pending;

  lock.lock();
  std::size_t next = 0;
  for (WorkerSlot* w : q.batch) {
    w->has_outcome = false;
    if (w->wants && next < turn.claimed.size()) {
      take_job(*w, std::move(turn.claimed[next++]), lease_until);
      w->assigned = true;
    } else {
      release_run(*w);
    }
  }
  while (next < turn.claimed.size() && !q.idle.empty()) {
    WorkerSlot* w = q.idle.back();
    q.idle.pop_back();
    w->idle = false;
    take_job(*w, std::move(turn.claimed[next++]), lease_until);
    w->assigned = true;
    if (w->parked) q.wake.push_back(w);
  }
  const bool short_claim = limit > 0 && !turn.claim_failed && static_cast<int>(turn.claimed.size()) < limit;
  const bool drained = short_claim && q.signals == seen;
  if (short_claim && !drained) {
    // Work came in while the store answered: whoever still has no job looks again.
    bool asked = false;
    for (WorkerSlot* w : q.batch) {
      if (w->wants && !w->assigned) w->poked = asked = true;
    }
    if (!asked && !q.idle.empty()) q.idle.back()->poked = true;
  }
  for (WorkerSlot* w : q.batch) {
    q.head = w->next;
    w->next = nullptr;
    w->done.store(true, std::memory_order_release);
    if (w->parked) q.wake.push_back(w);
  }
  if (q.head == nullptr) q.tail = nullptr;
  q.leading = false;
  if (q.head != nullptr && q.head->parked) q.wake.push_back(q.head);  // the next leader
  for (WorkerSlot* w : q.idle) {
    if (w->poked && w->parked) q.wake.push_back(w);  // poked while this claim was in flight
  }
  // Only stop() leaves claimed jobs over (the idle workers it counted left).
  std::vector<Job> left;
  for (; next < turn.claimed.size(); ++next) left.push_back(std::move(turn.claimed[next]));
  // Woken outside the lock, so a woken worker does not block on it at once.
  // Each waits in a predicate loop under q.mu, and a slot lives as long as
  // the engine: a late or extra notification is harmless.
  thread_local std::vector<WorkerSlot*> wake;  // this thread's, reused: no allocation per turn
  wake.swap(q.wake);
  lock.unlock();
  for (WorkerSlot* w : wake) w->cv.notify_one();
  wake.clear();
  if (drained || requeued) mark_look_up(q);
  if (!left.empty()) release_jobs(std::move(left));
  lock.lock();
}

EngineCore::StoreTurn EngineCore::store_turn(QueueRuntime& q) {
  StoreTurn turn;
  auto r = store_->finish_and_claim(q.outcomes, q.request);
  if (!r) {
    store_turn_slow(q, r.error(), turn);
    return turn;
  }
  turn.finished = std::move(r->finished);
  turn.claimed = std::move(r->claimed);
  turn.claim_failed = !r->claim_status;
  for (std::size_t i = 0; i < q.outcomes.size() && i < turn.finished.size(); ++i) {
    const Status& s = turn.finished[i].status;
    // stale_lease: another worker owns the job now. Anything else: the store
    // refused this one outcome; the job is rescued at lease expiry.
    if (!s && s.error().code() != ErrorCode::stale_lease) {
      report_dropped(q.owners[i]->run, q.outcomes[i].kind, "the store refused its outcome: " + s.error().message());
    }
  }
  return turn;
}

void EngineCore::store_turn_slow(QueueRuntime& q, Error error, StoreTurn& turn) {
  const std::size_t n = q.outcomes.size();
  // Dropped or not applied: stale_lease keeps them out of events and look-ups.
  turn.finished.assign(n, FinishResult{make_error(ErrorCode::stale_lease, "not applied"), JobState::running});
  std::vector<std::size_t> live(n);
  for (std::size_t i = 0; i < n; ++i) live[i] = i;
  Duration pause = std::chrono::milliseconds(5);
  while (error.code() == ErrorCode::unavailable) {
    const TimePoint t = now();
    std::erase_if(live, [&](std::size_t i) {
      if (q.owners[i]->run.lease_until() > t) return false;
      report_dropped(q.owners[i]->run, q.outcomes[i].kind,
                     "the store stayed unavailable until its lease expired: " + error.message());
      return true;
    });
    if (live.empty()) break;  // only the claim is left: made once below
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(clock().real_wait(pause), kMaxBlock));
    pause = std::min<Duration>(pause * 2, std::min<Duration>(options_.heartbeat_every, std::chrono::seconds(1)));
    std::vector<Outcome> send;
    send.reserve(live.size());
    for (std::size_t i : live) send.push_back(q.outcomes[i]);
    auto r = store_->finish_and_claim(send, q.request);
    if (r) {
      for (std::size_t k = 0; k < live.size() && k < r->finished.size(); ++k) {
        turn.finished[live[k]] = std::move(r->finished[k]);
        const Status& s = turn.finished[live[k]].status;
        if (!s && s.error().code() != ErrorCode::stale_lease) {
          report_dropped(q.owners[live[k]]->run, q.outcomes[live[k]].kind,
                         "the store refused its outcome: " + s.error().message());
        }
      }
      turn.claimed = std::move(r->claimed);
      turn.claim_failed = !r->claim_status;
      return;
    }
    error = r.error();
  }
  if (!live.empty()) {
    // Refused for good: each outcome alone, once.
    for (std::size_t i : live) {
      auto one = store_->finish(std::span<const Outcome>(&q.outcomes[i], 1));
      if (one && one->size() == 1) {
        turn.finished[i] = std::move(one->front());
        if (!turn.finished[i].status && turn.finished[i].status.error().code() != ErrorCode::stale_lease) {
          report_dropped(q.owners[i]->run, q.outcomes[i].kind,
                         "the store refused its outcome: " + turn.finished[i].status.error().message());
        }
      } else {
        report_dropped(q.owners[i]->run, q.outcomes[i].kind,
                       "the store refused its outcome: " + (one ? std::string("no result") : one.error().message()));
      }
    }
  }
  if (q.request.limit > 0) {
    auto claimed = store_->claim(q.request);
    if (claimed) {
      turn.claimed = std::move(*claimed);
    } else {
      turn.claim_failed = true;
    }
  }
}

// One batch of events for the whole turn: how each outcome ended, and the
// jobs that start now.
void EngineCore::turn_events(QueueRuntime& q, const StoreTurn& turn) {
  std::vector<Event> events;
  events.reserve(turn.finished.size() + turn.claimed.size());
  const TimePoint at = now();
  for (std::size_t i = 0; i < q.outcomes.size() && i < turn.finished.size(); ++i) {
    const FinishResult& fr = turn.finished[i];
    if (!fr.status) continue;
    const Outcome& outcome = q.outcomes[i];
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
    const Job& job = q.owners[i]->run.job;
    events.push_back(Event{.type = *type, .job = job.id, .kind = job.kind, .queue = job.queue,
                           .attempt = job.attempt, .message = outcome.error, .ran_for = outcome.ran_for, .at = at});
  }
  for (const Job& job : turn.claimed) {
    events.push_back(Event{.type = EventType::started, .job = job.id, .kind = job.kind, .queue = job.queue,
                           .attempt = job.attempt, .at = at});
  }
  emit_all(events);
}

// An outcome that will not be stored: say so; the lease expires and the
// job is rescued (the attempt is consumed, with "lease expired" recorded).
void EngineCore::report_dropped(const Run& run, OutcomeKind kind, std::string why) {
  diagnose(Severity::error, "outcome dropped",
           {{"job", std::to_string(run.job.id)}, {"kind", run.job.kind}, {"queue", run.job.queue},
            {"outcome", std::string(to_string(kind))}, {"why", why}});
  if (!has_subscribers()) return;
  emit(Event{.type = EventType::outcome_dropped, .job = run.job.id, .kind = run.job.kind, .queue = run.job.queue,
             .attempt = run.job.attempt,
             .message = "outcome '" + std::string(to_string(kind)) + "' dropped: " + std::move(why), .at = now()});
}

// Jobs claimed as stop() began, for workers that have left: handed back at
// once, attempt not consumed.
void EngineCore::release_jobs(std::vector<Job> jobs) {
  std::vector<Outcome> outcomes;
  outcomes.reserve(jobs.size());
  for (const Job& j : jobs) outcomes.push_back(Outcome{.lease = j.lease_ref(), .kind = OutcomeKind::release});
  if (auto r = store_->finish(outcomes); !r) {
    for (const Job& j : jobs) {
      if (!has_subscribers()) break;
      emit(Event{.type = EventType::outcome_dropped, .job = j.id, .kind = j.kind, .queue = j.queue,
                 .attempt = j.attempt, .message = "outcome 'release' dropped: " + r.error().message(), .at = now()});
    }
  }
}

}  // namespace porter::detail
