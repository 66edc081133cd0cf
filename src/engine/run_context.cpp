// RunContext: what a handler sees of its run. Reports are buffered in the
// Run and written by the engine (promptly, coalesced, or with the outcome);
// spawn goes to the store at once under the run's lease.
#include "engine/run_context.h"

#include <algorithm>
#include <limits>
#include <random>
#include <shared_mutex>

#include "engine/engine_core.h"

namespace porter::detail {
namespace {

double unit_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

class RunContext final : public JobContext {
 public:
  // The store and the gate outlive the engine for an abandoned handler
  // (its worker thread holds them), so references do.
  RunContext(const std::shared_ptr<EngineGate>& gate, Store& store, Run& run) : gate_(gate), store_(store), run_(run) {}

  const Job& job() const noexcept override { return run_.job; }
  bool cancelled() const noexcept override { return run_.cancelled(); }
  std::stop_token stop_token() const noexcept override { return run_.stop.get_token(); }

  void progress(std::int64_t done, std::int64_t total, std::string message) override {
    // Saturated into what the store accepts (0 <= done <= total when total is
    // known), so a report is never dropped for a count that overshot.
    total = std::max<std::int64_t>(total, 0);
    done = std::clamp<std::int64_t>(done, 0, total > 0 ? total : std::numeric_limits<std::int64_t>::max());
    {
      std::lock_guard lock(run_.mu);
      run_.progress = Progress{done, total, std::move(message)};
    }
    ask_report();
  }

  void item_error(std::string item, std::string message) override {
    {
      std::lock_guard lock(run_.mu);
      if (run_.item_errors.size() < kMaxStoredItemErrors) {
        run_.item_errors.push_back(ItemError{std::move(item), clip_message(message)});
      } else {
        ++run_.item_errors_uncounted;  // the store would only count it: so do we, without keeping it
      }
    }
    ask_report();
  }

  Result<std::vector<InsertResult>> spawn(std::vector<NewJob> children) override {
    std::shared_lock lock(gate_->mu);
    if (gate_->core == nullptr) {
      return make_error(ErrorCode::wrong_state,
                        "the engine is gone: this handler overran the shutdown and was abandoned");
    }
    EngineCore& engine = *gate_->core;
    if (auto s = engine.prepare_all(children); !s) return s.error();
    auto r = store_.spawn(run_.job.lease_ref(), children);
    if (r) engine.emit_enqueued(children, *r);
    return r;
  }

  void wait_for_children() override { wait_children_ = true; }

  Result<std::vector<Job>> children() const override {
    std::vector<Job> out;
    JobFilter filter;
    filter.parent_id = run_.job.id;
    std::optional<JobId> cursor;
    do {
      auto page = store_.list(filter, cursor, 500);
      if (!page) return std::move(page).error();
      for (auto& j : page->jobs) out.push_back(std::move(j));
      cursor = page->next;
    } while (cursor);
    std::sort(out.begin(), out.end(), [](const Job& a, const Job& b) { return a.id < b.id; });
    return out;
  }

  void set_result(std::string json) override { result_ = std::move(json); }
  void snooze(Duration delay) override { snooze_ = std::max(delay, Duration::zero()); }

  // The outcome of a handler that returned normally.
  Outcome outcome() {
    Outcome o{.lease = run_.job.lease_ref()};
    if (snooze_) {
      o.kind = OutcomeKind::snooze;
      o.delay = *snooze_;
    } else if (wait_children_) {
      o.kind = OutcomeKind::wait_children;
      o.result = std::move(result_);
    } else {
      o.kind = OutcomeKind::complete;
      o.result = std::move(result_);
    }
    return o;
  }

 private:
  // The first report since the last write asks for a prompt one; later
  // reports ride on it (one atomic exchange each).
  void ask_report() {
    if (run_.report_pending.exchange(true)) return;
    std::shared_lock lock(gate_->mu);
    if (gate_->core != nullptr) gate_->core->ask_report(run_);
  }

  const std::shared_ptr<EngineGate>& gate_;
  Store& store_;
  Run& run_;
  std::string result_;
  bool wait_children_ = false;
  std::optional<Duration> snooze_;
};

}  // namespace

std::string describe(Duration d) {
  using namespace std::chrono;
  if (d % seconds(1) == Duration::zero()) return std::to_string(duration_cast<seconds>(d).count()) + "s";
  if (d % milliseconds(1) == Duration::zero()) return std::to_string(duration_cast<milliseconds>(d).count()) + "ms";
  return std::to_string(d.count()) + "us";
}

Outcome transient_outcome(const Job& job, const RetryPolicy& policy, std::string message) {
  try {
    return Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::retry, .error = clip_message(message),
                   .delay = policy.delay_after(job.attempt, unit_random())};
  } catch (const std::exception& e) {
    message += std::string("; the retry policy threw (") + e.what() + "), so the job is failed instead of retried";
  } catch (...) {
    message += "; the retry policy threw an exception, so the job is failed instead of retried";
  }
  return Outcome{.lease = job.lease_ref(), .kind = OutcomeKind::fail, .error = clip_message(message)};
}

Outcome run_handler(const KindEntry& entry, Run& run, Store& store, const std::shared_ptr<EngineGate>& gate) {
  const auto started = std::chrono::steady_clock::now();
  Outcome outcome;
  RunContext ctx(gate, store, run);
  try {
    entry.handler(ctx);
    outcome = ctx.outcome();
  } catch (const PermanentError& e) {
    outcome = Outcome{.lease = run.job.lease_ref(), .kind = OutcomeKind::fail, .error = clip_message(e.what())};
  } catch (const std::exception& e) {
    outcome = transient_outcome(run.job, entry.retry, e.what());
  } catch (...) {
    outcome = transient_outcome(run.job, entry.retry, "the handler threw an exception that is not a std::exception");
  }
  outcome.ran_for = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - started);
  return outcome;
}

}  // namespace porter::detail
