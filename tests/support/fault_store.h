// Test doubles around a real Store (after leveldb's fault_injection_test):
//
//  - ForwardingStore passes every call to the wrapped store; subclass it and
//    override only what a test needs to intercept.
//  - FaultStore makes chosen calls fail with ErrorCode::unavailable, the
//    error a database gives when it is busy or unreachable: the next N calls,
//    or a seeded 1-in-N, optionally only for some operations. A failed call
//    does not reach the wrapped store, so nothing changes, as the Store
//    contract promises for an error.
//
// Thread-safe like any Store: the fault plan is guarded by a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "porter/store.h"

namespace porter::test {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(std::shared_ptr<Store> inner) : inner_(std::move(inner)) {}

  Store& inner() noexcept { return *inner_; }
  const std::shared_ptr<Store>& inner_ptr() const noexcept { return inner_; }

  const Clock& clock() const noexcept override { return inner_->clock(); }
  Result<std::vector<InsertResult>> insert(std::span<const NewJob> jobs) override { return inner_->insert(jobs); }
  Result<std::vector<Job>> claim(const ClaimRequest& request) override { return inner_->claim(request); }
  Result<std::vector<LeaseStatus>> heartbeat(std::span<const LeaseRef> leases, Duration extend_by) override {
    return inner_->heartbeat(leases, extend_by);
  }
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    return inner_->finish(outcomes);
  }
  Result<std::vector<InsertResult>> spawn(const LeaseRef& parent, std::span<const NewJob> children) override {
    return inner_->spawn(parent, children);
  }
  Status report_progress(const LeaseRef& lease, const Progress& progress) override {
    return inner_->report_progress(lease, progress);
  }
  Status add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) override {
    return inner_->add_item_errors(lease, errors);
  }
  Result<std::vector<JobId>> rescue_expired() override { return inner_->rescue_expired(); }
  Result<std::optional<TimePoint>> next_run_at(std::string_view queue) override { return inner_->next_run_at(queue); }
  Result<CancelResult> cancel(JobId id, std::string_view reason) override { return inner_->cancel(id, reason); }
  Result<std::vector<JobId>> expire_stuck(Duration older_than) override { return inner_->expire_stuck(older_than); }
  Status retry_job(JobId id) override { return inner_->retry_job(id); }
  Status discard(JobId id) override { return inner_->discard(id); }
  Status set_queue_paused(std::string_view queue, bool paused) override {
    return inner_->set_queue_paused(queue, paused);
  }
  Result<std::int64_t> prune(const PruneRequest& request) override { return inner_->prune(request); }
  Status announce(const WorkerInfo& worker, Duration ttl) override { return inner_->announce(worker, ttl); }
  Status retire(std::string_view worker_id) override { return inner_->retire(worker_id); }
  Result<Job> get(JobId id) override { return inner_->get(id); }
  Result<JobPage> list(const JobFilter& filter, std::optional<JobId> cursor, int limit) override {
    return inner_->list(filter, cursor, limit);
  }
  Result<Stats> stats(Duration window) override { return inner_->stats(window); }
  std::uint64_t add_listener(Listener listener) override { return inner_->add_listener(std::move(listener)); }
  void remove_listener(std::uint64_t id) override { inner_->remove_listener(id); }

 private:
  std::shared_ptr<Store> inner_;
};

// The operations a FaultStore can fail (every Store method that returns an error).
enum class StoreOp : std::uint8_t {
  insert, claim, heartbeat, finish, spawn, report_progress, add_item_errors, rescue_expired, next_run_at,
  cancel, expire_stuck, retry_job, discard, set_queue_paused, prune, get, list, stats,
};
inline constexpr std::size_t kStoreOpCount = static_cast<std::size_t>(StoreOp::stats) + 1;

class FaultStore final : public ForwardingStore {
 public:
  explicit FaultStore(std::shared_ptr<Store> inner, std::uint64_t seed = 1)
      : ForwardingStore(std::move(inner)), rng_(seed) {}

  // The next `n` calls of `only` (every operation when empty) fail.
  void fail_next(int n, std::vector<StoreOp> only = {}) {
    std::lock_guard lock(mu_);
    fail_next_ = n;
    next_ops_ = mask_of(only);
  }
  // From now on each call of `only` (every operation when empty) fails with
  // probability 1/n, drawn from the seeded generator. n <= 0 turns it off.
  void fail_one_in(int n, std::vector<StoreOp> only = {}) {
    std::lock_guard lock(mu_);
    one_in_ = n;
    random_ops_ = mask_of(only);
  }
  // No more faults.
  void heal() {
    std::lock_guard lock(mu_);
    fail_next_ = 0;
    one_in_ = 0;
  }
  // Faults injected so far, and calls seen per operation (failed ones included).
  std::int64_t injected() const {
    std::lock_guard lock(mu_);
    return injected_;
  }
  std::int64_t calls(StoreOp op) const {
    std::lock_guard lock(mu_);
    return calls_[static_cast<std::size_t>(op)];
  }

  Result<std::vector<InsertResult>> insert(std::span<const NewJob> jobs) override {
    if (auto e = fault(StoreOp::insert)) return *e;
    return ForwardingStore::insert(jobs);
  }
  Result<std::vector<Job>> claim(const ClaimRequest& request) override {
    if (auto e = fault(StoreOp::claim)) return *e;
    return ForwardingStore::claim(request);
  }
  Result<std::vector<LeaseStatus>> heartbeat(std::span<const LeaseRef> leases, Duration extend_by) override {
    if (auto e = fault(StoreOp::heartbeat)) return *e;
    return ForwardingStore::heartbeat(leases, extend_by);
  }
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    if (auto e = fault(StoreOp::finish)) return *e;
    return ForwardingStore::finish(outcomes);
  }
  Result<std::vector<InsertResult>> spawn(const LeaseRef& parent, std::span<const NewJob> children) override {
    if (auto e = fault(StoreOp::spawn)) return *e;
    return ForwardingStore::spawn(parent, children);
  }
  Status report_progress(const LeaseRef& lease, const Progress& progress) override {
    if (auto e = fault(StoreOp::report_progress)) return *e;
    return ForwardingStore::report_progress(lease, progress);
  }
  Status add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) override {
    if (auto e = fault(StoreOp::add_item_errors)) return *e;
    return ForwardingStore::add_item_errors(lease, errors);
  }
  Result<std::vector<JobId>> rescue_expired() override {
    if (auto e = fault(StoreOp::rescue_expired)) return *e;
    return ForwardingStore::rescue_expired();
  }
  Result<std::optional<TimePoint>> next_run_at(std::string_view queue) override {
    if (auto e = fault(StoreOp::next_run_at)) return *e;
    return ForwardingStore::next_run_at(queue);
  }
  Result<CancelResult> cancel(JobId id, std::string_view reason) override {
    if (auto e = fault(StoreOp::cancel)) return *e;
    return ForwardingStore::cancel(id, reason);
  }
  Result<std::vector<JobId>> expire_stuck(Duration older_than) override {
    if (auto e = fault(StoreOp::expire_stuck)) return *e;
    return ForwardingStore::expire_stuck(older_than);
  }
  Status retry_job(JobId id) override {
    if (auto e = fault(StoreOp::retry_job)) return *e;
    return ForwardingStore::retry_job(id);
  }
  Status discard(JobId id) override {
    if (auto e = fault(StoreOp::discard)) return *e;
    return ForwardingStore::discard(id);
  }
  Status set_queue_paused(std::string_view queue, bool paused) override {
    if (auto e = fault(StoreOp::set_queue_paused)) return *e;
    return ForwardingStore::set_queue_paused(queue, paused);
  }
  Result<std::int64_t> prune(const PruneRequest& request) override {
    if (auto e = fault(StoreOp::prune)) return *e;
    return ForwardingStore::prune(request);
  }
  Result<Job> get(JobId id) override {
    if (auto e = fault(StoreOp::get)) return *e;
    return ForwardingStore::get(id);
  }
  Result<JobPage> list(const JobFilter& filter, std::optional<JobId> cursor, int limit) override {
    if (auto e = fault(StoreOp::list)) return *e;
    return ForwardingStore::list(filter, cursor, limit);
  }
  Result<Stats> stats(Duration window) override {
    if (auto e = fault(StoreOp::stats)) return *e;
    return ForwardingStore::stats(window);
  }

 private:
  using OpMask = std::uint32_t;
  static_assert(kStoreOpCount <= 32);

  static OpMask mask_of(const std::vector<StoreOp>& ops) {
    if (ops.empty()) return ~OpMask{0};
    OpMask m = 0;
    for (StoreOp op : ops) m |= OpMask{1} << static_cast<unsigned>(op);
    return m;
  }

  // The error to return instead of calling the wrapped store, if this call fails.
  std::optional<Error> fault(StoreOp op) {
    std::lock_guard lock(mu_);
    ++calls_[static_cast<std::size_t>(op)];
    const OpMask bit = OpMask{1} << static_cast<unsigned>(op);
    bool fail = false;
    if (fail_next_ > 0 && (next_ops_ & bit)) {
      --fail_next_;
      fail = true;
    } else if (one_in_ > 0 && (random_ops_ & bit)) {
      fail = std::uniform_int_distribution<int>(1, one_in_)(rng_) == 1;
    }
    if (!fail) return std::nullopt;
    ++injected_;
    return make_error(ErrorCode::unavailable, "injected fault #" + std::to_string(injected_));
  }

  mutable std::mutex mu_;  // guards everything below
  int fail_next_ = 0;
  OpMask next_ops_ = 0;
  int one_in_ = 0;
  OpMask random_ops_ = 0;
  std::mt19937_64 rng_;
  std::int64_t injected_ = 0;
  std::int64_t calls_[kStoreOpCount] = {};
};

}  // namespace porter::test
