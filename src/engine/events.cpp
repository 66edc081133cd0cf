// Events both ways: engine events to subscribers (built only when somebody
// subscribed, delivered a batch per call), and store events to the engine
// (available and changed_elsewhere poke the queues' idle workers; cancel and
// lease_lost stop runs; finished wakes whoever waits on the job).
#include "engine/engine_core.h"

#include "core/diagnose.h"

namespace porter::detail {

void EngineCore::emit_all(const std::vector<Event>& events) {
  if (events.empty()) return;
  subscribers_.notify(events, [](const Event& e) -> const Event& { return e; });
}

void EngineCore::emit_enqueued(const std::vector<NewJob>& jobs, const std::vector<InsertResult>& results) {
  if (!has_subscribers()) return;
  std::vector<Event> events;
  events.reserve(results.size());
  const TimePoint at = now();
  for (std::size_t i = 0; i < jobs.size() && i < results.size(); ++i) {
    if (results[i].duplicate) continue;
    events.push_back(
        Event{.type = EventType::enqueued, .job = results[i].id, .kind = jobs[i].kind, .queue = jobs[i].queue, .at = at});
  }
  emit_all(events);
}

void EngineCore::maintenance_failed(std::string_view what, const Error& error) {
  diagnose(Severity::warning, std::string(what) + " failed", {{"error", error.to_string()}});
  if (!has_subscribers()) return;
  emit(Event{.type = EventType::maintenance_failed, .message = std::string(what) + " failed: " + error.to_string(),
             .at = now()});
}

void EngineCore::diagnose(Severity severity, std::string message, std::vector<DiagnosticField> fields) const noexcept {
  try {
    fields.insert(fields.begin(), DiagnosticField{"worker", options_.worker_id});
  } catch (...) {
    // Said without the worker id rather than not at all.
  }
  detail::diagnose(options_.diagnostics, severity, "engine", std::move(message), std::move(fields));
}

void EngineCore::on_store_event(const StoreEvent& ev) {
  switch (ev.type) {
    case StoreEvent::Type::available:
      poke(ev.queue);
      break;
    case StoreEvent::Type::changed_elsewhere: {
      // Another process committed: jobs may be claimable on any queue, and
      // jobs somebody waits on may have finished there.
      poke({});
      {
        std::lock_guard lock(watch_mu_);
        ++watch_generation_;
        sweep_now_ = true;
      }
      watch_cv_.notify_all();
      break;
    }
    case StoreEvent::Type::cancel_requested:
    case StoreEvent::Type::lease_lost: {
      // lease_lost (Admin::expire_stuck, a rescue): the handler hears it now,
      // not at its next heartbeat, so two runs overlap as little as possible.
      const bool lost = ev.type == StoreEvent::Type::lease_lost;
      for_each_active_run([&](WorkerSlot& slot) {
        const Job& job = slot.run.job;
        if (job.id != ev.job) return;
        // A lost lease stops only the run that held it, never a later claim of the job.
        if (lost && job.lease_ref().token != ev.token) return;
        slot.run.stop_for(lost ? StopReason::lease_lost : StopReason::cancel);
      });
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

void EngineCore::poke(std::string_view queue) {
  if (!queues_ready_.load(std::memory_order_acquire)) return;
  for (auto& q : queues_) {
    if (queue.empty() || q->options.name == queue) poke(*q);
  }
}

// One idle worker is asked to claim; its claim counts every idle worker, so
// one is enough. Busy workers claim anyway when they finish, and a leader
// whose claim raced this wake-up sees `signals` move and looks again.
void EngineCore::poke(QueueRuntime& q) {
  WorkerSlot* wake = nullptr;
  {
    std::lock_guard lock(q.mu);
    ++q.signals;
    if (q.idle.empty()) return;
    WorkerSlot* w = q.idle.back();
    if (w->poked) return;
    w->poked = true;
    if (w->parked && !q.leading) wake = w;
  }
  // Outside the lock (slots live as long as the engine; waits re-check).
  if (wake != nullptr) wake->cv.notify_one();
}

}  // namespace porter::detail
