// Run: one claimed job inside the engine, from its claim until the store has
// applied its outcome, and the buffer of what its handler reported meanwhile.
//
// Each worker owns one Run and reuses it for every job it takes (the pool is
// the workers themselves: a worker holds at most one job), so the hot path
// allocates nothing per job for it; the stop source is replaced only after a
// run whose token fired, because a fired std::stop_source cannot be reset.
//
// Thread safety: `job` and the lease are written only while the owning
// WorkerSlot's mutex is held and no handler runs; other threads (store
// events, heartbeats, the watchdog) read them under that mutex. The report
// buffer has its own mutex (the handler writes it while it runs).
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <stop_token>
#include <vector>

#include "porter/store.h"

namespace porter::detail {

// Why a run's stop token fired; the first reason wins and decides the outcome.
enum class StopReason : std::uint8_t {
  none,
  cancel,          // an administrator cancelled the job: it ends cancelled
  lease_lost,      // the store took the lease away: the outcome will be stale anyway
  shutdown,        // stop() past the grace: handed back, attempt not consumed
  lease_deadline,  // heartbeats failed and the lease is about to expire: a transient failure
  timeout,         // KindOptions::timeout passed: a transient failure ("timed out after ...")
};

struct Run {
  Job job;
  // Fired on a cancel request, a lost lease, a lease deadline, a timeout or
  // shutdown. The one source of truth for "stopped": the handler's
  // stop_token, cancelled() and the outcome the engine applies never disagree.
  std::stop_source stop;

  // Makes this Run hold `j`, as claimed with a lease running to `lease_until`.
  void reset(Job j, TimePoint lease_until) {
    job = std::move(j);
    if (stop.stop_requested()) stop = std::stop_source();  // only after a fired run
    reason_.store(StopReason::none);
    lease_until_.store(lease_until.time_since_epoch().count());
    timeout_at.store(std::numeric_limits<Duration::rep>::max());
    returned.store(false);
    std::lock_guard lock(mu);
    progress.reset();
    item_errors.clear();
    item_errors_uncounted = 0;
    report_pending.store(false);
  }

  bool cancelled() const noexcept { return stop.stop_requested(); }
  void stop_for(StopReason why) {
    StopReason none = StopReason::none;
    reason_.compare_exchange_strong(none, why);  // before the token: whoever sees it fired sees a reason
    stop.request_stop();
  }
  StopReason reason() const noexcept { return reason_.load(); }

  // When the lease runs out unless renewed (as of the last successful claim
  // or heartbeat, measured from before that store call).
  TimePoint lease_until() const noexcept { return TimePoint(Duration(lease_until_.load())); }
  void renewed(TimePoint until) noexcept { lease_until_.store(until.time_since_epoch().count()); }

  // Set by the worker before the handler call (store clock); max: no timeout.
  std::atomic<Duration::rep> timeout_at{std::numeric_limits<Duration::rep>::max()};
  // The handler returned: its lease is no longer renewed, so an outcome the
  // store keeps refusing ends, at the latest, when the lease would expire.
  std::atomic<bool> returned{false};

  // --- the report buffer -------------------------------------------------------
  std::mutex mu;  // guards progress, item_errors, item_errors_uncounted
  std::optional<Progress> progress;  // not yet written
  // Not yet written: at most kMaxStoredItemErrors (the store keeps no more
  // than that per job), and how many more were reported beyond them.
  std::vector<ItemError> item_errors;
  std::size_t item_errors_uncounted = 0;
  // Something is buffered and a prompt write was asked for: later reports
  // ride on that write instead of asking again (coalescing).
  std::atomic<bool> report_pending{false};

  // Moves the buffer out: what rides on a heartbeat or the outcome, and how
  // many item errors beyond it are only to be counted.
  std::size_t take_report(RunReport& out) {
    std::lock_guard lock(mu);
    report_pending.store(false);
    if (progress) {
      out.progress = std::move(progress);
      progress.reset();
    }
    out.item_errors.swap(item_errors);
    item_errors.clear();
    const std::size_t uncounted = item_errors_uncounted;
    item_errors_uncounted = 0;
    return uncounted;
  }

 private:
  std::atomic<StopReason> reason_{StopReason::none};
  std::atomic<Duration::rep> lease_until_{0};
};

}  // namespace porter::detail
