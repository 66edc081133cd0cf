// ListenerSet: the in-process listeners of a Store (Store::add_listener),
// shared by every store so they all keep the same promise: listeners are
// called outside the store's own lock, and remove() returns only once no call
// to that listener is in flight, so the remover may destroy what the listener
// captured right away. A listener must not add or remove listeners from
// inside its call (store.h already forbids calling back into the store).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "porter/store.h"

namespace porter::detail {

class ListenerSet {
 public:
  std::uint64_t add(Store::Listener listener) {
    std::unique_lock lock(mu_);
    const std::uint64_t id = ++last_id_;
    listeners_.emplace(id, std::move(listener));
    count_.store(listeners_.size(), std::memory_order_release);
    return id;
  }

  // Exclusive: waits for calls in flight.
  void remove(std::uint64_t id) {
    std::unique_lock lock(mu_);
    listeners_.erase(id);
    count_.store(listeners_.size(), std::memory_order_release);
  }

  // Lets a store skip building events nobody will hear.
  bool empty() const noexcept { return count_.load(std::memory_order_acquire) == 0; }

  // Calls every listener with every event; `to_event` maps a store's own
  // pending-event record to a StoreEvent.
  template <class Range, class ToEvent>
  void notify(const Range& events, ToEvent&& to_event) const {
    if (empty()) return;
    std::shared_lock lock(mu_);  // held shared while listeners run
    for (const auto& e : events) {
      const StoreEvent ev = to_event(e);
      for (const auto& [id, listener] : listeners_) listener(ev);
    }
  }

 private:
  mutable std::shared_mutex mu_;  // guards listeners_ and last_id_
  std::map<std::uint64_t, Store::Listener> listeners_;
  std::uint64_t last_id_ = 0;
  std::atomic<std::size_t> count_{0};
};

}  // namespace porter::detail
