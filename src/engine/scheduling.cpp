// Cron: periodic jobs, inserted by the maintenance thread when their minute
// comes. Each run's unique key names its schedule and minute, so engines
// sharing a store never insert the same minute twice.
#include <algorithm>

#include "engine/engine_core.h"

namespace porter::detail {

void EngineCore::schedule_init(TimePoint start) {
  cron_next_.assign(run_schedules_.size(), TimePoint{});
  cron_pending_.assign(run_schedules_.size(), {});
  for (std::size_t i = 0; i < run_schedules_.size(); ++i) cron_next_[i] = run_schedules_[i].cron.next_after(start);
}

// Inserts the runs due by `t`; returns when it needs to look again.
TimePoint EngineCore::schedule_step(TimePoint t) {
  const TimePoint oldest = saturating_sub(t, std::chrono::minutes(kMaxCronCatchUp));
  bool retry_soon = false;
  for (std::size_t i = 0; i < run_schedules_.size(); ++i) {
    const ScheduleEntry& entry = run_schedules_[i];
    TimePoint& next = cron_next_[i];
    std::vector<NewJob>& pending = cron_pending_[i];
    // Scheduled minutes older than the catch-up window are skipped (a clock
    // jump or a long stall must not enqueue a flood of stale runs).
    if (next <= oldest) next = entry.cron.next_after(oldest);
    while (next <= t) {
      pending.push_back(cron_job(entry, next));
      next = entry.cron.next_after(next);
    }
    // Runs that stayed uninserted past the catch-up window are skipped,
    // like minutes missed while stalled: the list stays bounded.
    std::erase_if(pending, [&](const NewJob& j) { return *j.run_at <= oldest; });
    // Each schedule on its own: one that can no longer be inserted never holds up the others.
    if (!pending.empty()) retry_soon |= !insert_scheduled(entry, pending);
  }
  TimePoint deadline = TimePoint::max();
  for (TimePoint n : cron_next_) deadline = std::min(deadline, n);
  if (retry_soon) deadline = std::min(deadline, saturating_add(now(), options_.poll_every));
  return deadline;
}

// Inserts one schedule's due runs. False when the store is unavailable (kept
// to try again); any other error cannot be cured by retrying: the runs are
// reported (schedule_failed) and skipped, and the schedule carries on.
bool EngineCore::insert_scheduled(const ScheduleEntry& entry, std::vector<NewJob>& runs) {
  auto r = store_->insert(runs);
  if (r) {
    emit_enqueued(runs, *r);
    runs.clear();
    return true;
  }
  if (r.error().code() == ErrorCode::unavailable) return false;
  if (has_subscribers()) {
    std::vector<Event> events;
    const TimePoint at = now();
    for (const NewJob& job : runs) {
      const auto minute = std::chrono::duration_cast<std::chrono::seconds>(job.run_at->time_since_epoch()).count();
      events.push_back(Event{.type = EventType::schedule_failed, .kind = job.kind, .queue = job.queue,
                             .message = "schedule '" + entry.name + "': the run of minute " + std::to_string(minute) +
                                        " (Unix seconds) is skipped: " + r.error().message(),
                             .at = at});
    }
    emit_all(events);
  }
  runs.clear();
  return true;
}

NewJob EngineCore::cron_job(const ScheduleEntry& e, TimePoint minute) const {
  NewJob job = e.job;
  job.run_at = minute;
  job.delay.reset();
  const auto epoch = std::chrono::duration_cast<std::chrono::seconds>(minute.time_since_epoch()).count();
  job.unique_key = "porter:cron:" + e.name + ":" + std::to_string(epoch);
  job.unique_scope = UniqueScope::always;
  return job;
}

}  // namespace porter::detail
