// The PostgreSQL store's class (see porter/postgres_store.h for what it
// promises). pg_store.cpp holds transactions, producers and workers;
// pg_store_admin.cpp control, the worker registry and reads.
//
// Concurrency: every Store call takes a connection from the pool and runs
// one transaction on it (READ COMMITTED; rows locked as pg_session.h says).
// Calls from many threads run in parallel on different connections. A
// serialization failure or deadlock (40001, 40P01) reruns the transaction
// (kRetries times); a connection found dead before COMMIT is replaced and
// the transaction rerun; past that the call is `unavailable`.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/callback_set.h"
#include "porter/postgres_store.h"
#include "stores/postgres/pg_listener.h"
#include "stores/postgres/pg_pool.h"
#include "stores/postgres/pg_session.h"

namespace porter::detail {

// The server's clock as seen from here: the local clock plus the offset
// measured at every transaction that reads the server's now(). What engines
// wait on locally (poll intervals, cron minutes) follows it; what the store
// decides (leases, run_at) uses the server's now() itself.
class ServerClock final : public Clock {
 public:
  TimePoint now() const noexcept override {
    return system_.now() + Duration(offset_us_.load(std::memory_order_relaxed));
  }
  std::chrono::steady_clock::duration real_wait(Duration until_due) const noexcept override {
    return system_.real_wait(until_due);
  }
  void observe(TimePoint server_now) noexcept {
    offset_us_.store((server_now - system_.now()).count(), std::memory_order_relaxed);
  }

 private:
  SystemClock system_;
  std::atomic<std::int64_t> offset_us_{0};
};

class PgStore final : public Store {
 public:
  PgStore(std::string conninfo, PostgresOptions options);
  ~PgStore() override;
  // Starts the LISTEN thread (after construction: it calls back into this).
  void start_listening();

  const Clock& clock() const noexcept override { return *clock_; }

  Result<std::vector<InsertResult>> insert(std::span<const NewJob> jobs) override;
  Result<std::vector<Job>> claim(const ClaimRequest& request) override;
  Result<std::vector<LeaseStatus>> heartbeat(std::span<const LeaseRef> leases, Duration extend_by) override;
  Result<std::vector<LeaseStatus>> heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) override;
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override;
  Result<FinishAndClaim> finish_and_claim(std::span<const Outcome> outcomes, const ClaimRequest& next) override;
  Result<std::vector<InsertResult>> spawn(const LeaseRef& parent, std::span<const NewJob> children) override;
  Status report_progress(const LeaseRef& lease, const Progress& progress) override;
  Status add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) override;
  Result<std::vector<JobId>> rescue_expired() override;
  Result<std::optional<TimePoint>> next_run_at(std::string_view queue) override;
  Result<CancelResult> cancel(JobId id, std::string_view reason) override;
  Result<std::vector<JobId>> expire_stuck(Duration older_than) override;
  Status retry_job(JobId id) override;
  Status discard(JobId id) override;
  Status set_queue_paused(std::string_view queue, bool paused) override;
  Result<std::int64_t> prune(const PruneRequest& request) override;
  Status announce(const WorkerInfo& worker, Duration ttl) override;
  Status retire(std::string_view worker_id) override;
  Result<Job> get(JobId id) override;
  Result<JobPage> list(const JobFilter& filter, std::optional<JobId> cursor, int limit) override;
  Result<Stats> stats(Duration window) override;
  std::uint64_t add_listener(Listener listener) override;
  void remove_listener(std::uint64_t id) override;

  // The NOTIFY channel of a schema.
  static std::string channel_for(const std::string& schema) { return ("porter_" + schema).substr(0, 63); }

 private:
  // Runs `fn(Session&)` (returning Result<T>) in one write transaction,
  // retrying as the header says; commits when fn succeeds, rolls back when it
  // returns an error. Events are delivered after commit.
  template <class Fn>
  auto transact(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<Session&>()));
  // Runs `fn(Conn&, TimePoint now)` in one read-only snapshot.
  template <class Fn>
  auto read(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<Conn&>(), TimePoint{}));
  // BEGINs on `conn` and returns the transaction's now.
  TimePoint begin(Conn& conn, const char* begin_sql);
  void deliver(std::vector<PgEvent>& events);
  FinishResult finish_one(Session& s, const Outcome& o);
  std::vector<FinishResult> finish_all(Session& s, std::span<const Outcome> outcomes);

  const std::string conninfo_;
  const PostgresOptions options_;
  const std::string channel_;
  std::shared_ptr<Clock> clock_;       // options_.clock, or server_clock_
  ServerClock* server_clock_ = nullptr;  // null when a test clock drives time
  Pool pool_;
  CallbackSet<StoreEvent> listeners_;  // its own lock
  std::unique_ptr<NotifyListener> ear_;  // last: stopped first
};

}  // namespace porter::detail
