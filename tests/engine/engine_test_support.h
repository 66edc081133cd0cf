// Helpers shared by the engine tests: an event recorder and a bounded wait
// for a condition that other threads make true.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "porter/engine.h"

namespace porter::test {

// Records every engine event it hears.
class EventLog {
 public:
  explicit EventLog(Engine& engine) : engine_(engine) {
    id_ = engine.subscribe([this](const Event& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    });
  }
  ~EventLog() { engine_.unsubscribe(id_); }
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  std::vector<Event> all() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<Event> of(EventType type, JobId job = 0) const {
    std::lock_guard lock(mu_);
    std::vector<Event> out;
    for (const auto& e : events_) {
      if (e.type == type && (job == 0 || e.job == job)) out.push_back(e);
    }
    return out;
  }
  std::size_t count(EventType type, JobId job = 0) const { return of(type, job).size(); }

 private:
  Engine& engine_;
  std::uint64_t id_ = 0;
  mutable std::mutex mu_;
  std::vector<Event> events_;
};

// Enqueues one job and waits for it to be final.
inline Result<Job> enqueue_and_wait(Engine& engine, NewJob job,
                                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto id = engine.enqueue(std::move(job));
  if (!id) return id.error();
  return engine.wait_for(id->id, limit);
}

// Polls `condition` until it holds or `limit` passes; returns whether it held.
// For conditions other threads make true with no event to wait on; never a
// stand-in for a timing assertion.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace porter::test
