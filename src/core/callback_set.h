// CallbackSet: registered callbacks that a component calls outside its own
// locks: a Store's listeners (Store::add_listener) and an Engine's event
// subscribers (Engine::subscribe). One implementation, so all keep the same
// promise: remove() returns only once no call to that callback is in flight,
// and the remover may destroy what the callback captured right away.
//
// A callback that removes itself (or another) from inside a call does not
// deadlock: from inside a call the removal marks the callback removed, it is
// never called again, and it is erased by a later add(), remove() or
// notify() outside a call; an add() from inside a call takes effect then too.
// Such a removal cannot wait for the caller's own call.
//
// "Inside a call" is per instance: a thread notifying set A that adds to or
// removes from set B is outside B's calls, so B's add takes effect at once and
// B's remove waits for B's calls in flight. A nested notify of the same set on
// the same thread runs under the shared lock its outer notify already holds:
// re-taking a shared_mutex shared could deadlock behind a waiting writer.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <vector>

namespace porter::detail {

// The callback sets this thread is notifying now, innermost last.
inline std::vector<const void*>& sets_notifying_on_this_thread() {
  thread_local std::vector<const void*> sets;
  return sets;
}

template <class Event>
class CallbackSet {
 public:
  using Callback = std::function<void(const Event&)>;

  std::uint64_t add(Callback callback) {
    std::uint64_t id = 0;
    {
      std::lock_guard lock(deferred_mu_);
      id = ++last_id_;
      if (inside_call()) {  // this thread holds mu_ shared: applied when its call ends
        deferred_adds_.emplace_back(id, std::move(callback));
        has_deferred_.store(true, std::memory_order_release);
        return id;
      }
    }
    std::unique_lock lock(mu_);
    callbacks_.emplace(id, std::move(callback));
    tidy();
    return id;
  }

  // Outside a call: exclusive, so it waits for calls in flight.
  void remove(std::uint64_t id) {
    if (inside_call()) {
      std::lock_guard lock(deferred_mu_);
      deferred_removals_.push_back(id);
      has_deferred_.store(true, std::memory_order_release);
      return;
    }
    std::unique_lock lock(mu_);
    callbacks_.erase(id);
    tidy();
  }

  // Lets the caller skip building events nobody will hear.
  bool empty() const noexcept { return count_.load(std::memory_order_acquire) == 0; }

  // Calls every callback with every event; `to_event` maps the caller's own
  // record to an Event.
  template <class Range, class ToEvent>
  void notify(const Range& records, ToEvent&& to_event) {
    if (empty()) return;
    const bool nested = inside_call();
    {
      // Held shared while callbacks run; a nested notify already holds it.
      std::shared_lock lock(mu_, std::defer_lock);
      if (!nested) lock.lock();
      auto& notifying = sets_notifying_on_this_thread();
      notifying.push_back(this);
      struct Pop {
        std::vector<const void*>& sets;
        ~Pop() { sets.pop_back(); }  // also when a callback throws
      } pop{notifying};
      for (const auto& record : records) {
        const Event event = to_event(record);
        for (const auto& [id, callback] : callbacks_) {
          if (!has_deferred_.load(std::memory_order_acquire) || !removed(id)) callback(event);
        }
      }
    }
    if (!nested && has_deferred_.load(std::memory_order_acquire)) {
      // Only if free now: waiting here could block this caller behind a slow
      // callback on another thread. Otherwise the next add/remove/notify tidies.
      std::unique_lock lock(mu_, std::try_to_lock);
      if (lock.owns_lock()) tidy();
    }
  }

  void notify(const Event& event) {
    const Event* one = &event;
    notify(std::span<const Event* const>(&one, 1), [](const Event* e) -> const Event& { return *e; });
  }

 private:
  bool inside_call() const {
    const auto& sets = sets_notifying_on_this_thread();
    return std::find(sets.begin(), sets.end(), static_cast<const void*>(this)) != sets.end();
  }

  bool removed(std::uint64_t id) {
    std::lock_guard lock(deferred_mu_);
    for (std::uint64_t r : deferred_removals_) {
      if (r == id) return true;
    }
    return false;
  }

  // mu_ held exclusively: applies what calls deferred, and recounts.
  void tidy() {
    std::lock_guard lock(deferred_mu_);
    for (std::uint64_t r : deferred_removals_) callbacks_.erase(r);
    deferred_removals_.clear();
    for (auto& [id, callback] : deferred_adds_) callbacks_.emplace(id, std::move(callback));
    deferred_adds_.clear();
    has_deferred_.store(false, std::memory_order_release);
    count_.store(callbacks_.size(), std::memory_order_release);
  }

  std::shared_mutex mu_;  // guards callbacks_; held shared while callbacks run
  std::map<std::uint64_t, Callback> callbacks_;
  std::mutex deferred_mu_;  // guards last_id_ and the deferred lists
  std::uint64_t last_id_ = 0;
  std::vector<std::uint64_t> deferred_removals_;
  std::vector<std::pair<std::uint64_t, Callback>> deferred_adds_;
  std::atomic<bool> has_deferred_{false};
  std::atomic<std::size_t> count_{0};
};

}  // namespace porter::detail
