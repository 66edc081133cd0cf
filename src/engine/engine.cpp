// Engine: the public facade. What an engine is lives in EngineCore
// (engine_core.h); this file checks what a caller passes and forwards.
//
// The parts, one file each: lifecycle.cpp (start, stop), worker.cpp (the
// worker loop), leader.cpp (the group: one finish_and_claim per batch),
// maintenance.cpp (heartbeats, reports, rescue, retention, watchdog),
// scheduling.cpp (cron), events.cpp (events both ways), waiting.cpp
// (wait_for, on_finished), run_context.cpp (the handler's JobContext).
#include "porter/engine.h"

#include <stdexcept>

#include "engine/engine_core.h"

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

struct Engine::Impl final : detail::EngineCore {
  using EngineCore::EngineCore;
};

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
