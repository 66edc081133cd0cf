// Waiting for jobs: wait_for (blocks the caller) and on_finished (callbacks
// on the notifier thread). Both wake on this process's `finished` events and
// on changed_elsewhere, and fall back to reading the store: wait_for every
// poll slice, the notifier by a sweep of at most kSweepBatch watched jobs
// per poll interval, so thousands of outstanding callbacks cost little.
#include <algorithm>

#include "engine/engine_core.h"

namespace porter::detail {

std::chrono::steady_clock::duration EngineCore::poll_slice() const {
  return std::clamp<std::chrono::steady_clock::duration>(clock().real_wait(std::min(options_.poll_every, kLongestWait)),
                                                         std::chrono::milliseconds(1), std::chrono::seconds(1));
}

Result<Job> EngineCore::wait_for(JobId id, std::chrono::milliseconds timeout) {
  const auto deadline = steady_deadline(std::chrono::steady_clock::now(), saturating_cast(timeout));
  {
    std::lock_guard lock(watch_mu_);
    if (++waiters_[id] == 1) gate_->watched.fetch_add(1);
  }
  struct Unwatch {
    EngineCore& core;
    JobId id;
    ~Unwatch() {
      std::lock_guard lock(core.watch_mu_);
      if (--core.waiters_[id] == 0) {
        core.waiters_.erase(id);
        core.gate_->watched.fetch_sub(1);
        if (core.callbacks_.count(id) == 0) core.fired_.erase(id);
      }
    }
  } unwatch{*this, id};

  while (true) {
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(watch_mu_);
      generation = watch_generation_;
    }
    auto job = store_->get(id);
    // A store that is briefly unavailable is waited out like an unfinished job.
    if (!job && job.error().code() != ErrorCode::unavailable) return job;
    if (job && is_final(job->state)) return job;
    std::unique_lock lock(watch_mu_);
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      if (!job) return job;
      return make_error(ErrorCode::timeout, "job " + std::to_string(id) + " is still " +
                                                std::string(to_string(job->state)) + " after " +
                                                std::to_string(timeout.count()) + " ms");
    }
    // A `finished` event or another process's commit wakes us; the bounded poll is the fallback.
    const auto slice = std::min<std::chrono::steady_clock::duration>(left, poll_slice());
    watch_cv_.wait_for(lock, slice, [&] { return fired_.count(id) != 0 || watch_generation_ != generation; });
    if (callbacks_.count(id) == 0) fired_.erase(id);
  }
}

Status EngineCore::on_finished(JobId id, std::function<void(const Job&)> callback) {
  if (!callback) return make_error(ErrorCode::invalid_argument, "on_finished needs a callback");
  {
    // Watched before the read, so a `finished` event between the two is not lost.
    std::lock_guard lock(watch_mu_);
    gate_->watched.fetch_add(1);
  }
  struct Unwatch {
    EngineCore& core;
    ~Unwatch() { core.gate_->watched.fetch_sub(1); }
  } unwatch{*this};
  auto job = store_->get(id);
  if (!job) return job.error();
  if (is_final(job->state)) {
    callback(*job);
    return {};
  }
  {
    std::lock_guard lock(watch_mu_);
    auto [it, added] = callbacks_.try_emplace(id);
    if (added) {
      it->second.seen = std::move(*job);
      gate_->watched.fetch_add(1);
    }
    it->second.callbacks.push_back(std::move(callback));
    fired_.insert(id);  // it may have finished between get() and now: have the notifier look once
    if (!notifier_.joinable()) notifier_ = std::thread([this] { notifier_loop(); });
  }
  watch_cv_.notify_all();
  return {};
}

void EngineCore::notifier_loop() {
  auto next_sweep = std::chrono::steady_clock::now();
  JobId swept_to = 0;  // the sweep goes round the watched ids in order
  std::unique_lock lock(watch_mu_);
  while (!notifier_stop_) {
    const auto has_fired = [&] {
      return std::any_of(fired_.begin(), fired_.end(), [&](JobId id) { return callbacks_.count(id) != 0; });
    };
    while (!notifier_stop_ && !sweep_now_ && !has_fired() && std::chrono::steady_clock::now() < next_sweep) {
      watch_cv_.wait_until(lock, std::min(next_sweep, std::chrono::steady_clock::now() + kMaxBlock));
    }
    if (notifier_stop_) return;
    std::vector<JobId> check;
    for (JobId id : fired_) {
      if (callbacks_.count(id) != 0) check.push_back(id);
    }
    if (sweep_now_ || std::chrono::steady_clock::now() >= next_sweep) {
      sweep_now_ = false;
      auto it = callbacks_.upper_bound(swept_to);
      for (std::size_t n = 0; n < kSweepBatch && !callbacks_.empty(); ++n) {
        if (it == callbacks_.end()) it = callbacks_.begin();
        if (it->first == swept_to && n > 0) break;  // fewer watched jobs than a batch: all seen
        check.push_back(it->first);
        swept_to = it->first;
        ++it;
      }
      next_sweep = std::chrono::steady_clock::now() + poll_slice();
    }
    for (JobId id : check) {
      if (waiters_.count(id) == 0) fired_.erase(id);
    }
    lock.unlock();
    std::sort(check.begin(), check.end());
    check.erase(std::unique(check.begin(), check.end()), check.end());
    for (JobId id : check) notify_if_final(id);
    lock.lock();
  }
}

void EngineCore::notify_if_final(JobId id) {
  auto job = store_->get(id);
  if (job && !is_final(job->state)) return;
  if (!job && job.error().code() != ErrorCode::not_found) return;  // store trouble: next look
  Watch watch;
  {
    std::lock_guard lock(watch_mu_);
    auto it = callbacks_.find(id);
    if (it == callbacks_.end()) return;
    if (!job && !it->second.final_state && !it->second.missing_once) {
      // Our own `finished` event may still be on its way (the store calls
      // listeners just after its write): look once more before giving up.
      it->second.missing_once = true;
      return;
    }
    watch = std::move(it->second);
    callbacks_.erase(it);
    gate_->watched.fetch_sub(1);
  }
  if (!job) {
    // Deleted (discarded, pruned) before we could read it. Its final state
    // is known if this process finished it: report the record as it was
    // seen when on_finished was called, with that state. Otherwise there
    // is nothing true to report.
    if (!watch.final_state) return;
    watch.seen.state = *watch.final_state;
    watch.seen.lease.reset();
    job = std::move(watch.seen);
  }
  for (auto& cb : watch.callbacks) {
    try {
      cb(*job);
    } catch (...) {
      // A callback's exception must not kill the notifier.
    }
  }
}

}  // namespace porter::detail
