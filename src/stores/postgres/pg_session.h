// One transaction of the PostgreSQL store: the rules' adapter (rules::Tx)
// over Porter's rows, and the row-level helpers the Store methods share
// (heads, leases, inserts, reports). A Session never begins or commits:
// the store does, or, for a transactional enqueue, the host application.
//
// Locking: a job's head is read FOR UPDATE, so two processes finishing,
// rescuing or cancelling the same job serialize on its row; batches lock
// their jobs in id order first (lock_in_order) so they never deadlock with
// each other. Claims skip locked rows instead of waiting for them.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "porter/store.h"
#include "rules/rules.h"
#include "stores/postgres/pg_conn.h"

namespace porter::detail {

// An event recorded inside a transaction, delivered after commit.
struct PgEvent {
  StoreEvent::Type type;
  std::string queue;
  JobId job = 0;
  JobState state = JobState::pending;
  std::uint64_t token = 0;
};

struct PgJobRow {
  Job job;
  std::int64_t error_count = 0;
  std::int64_t dependency_count = 0;
};

// The job columns in the order read_job expects.
#define PORTER_PG_JOB_COLUMNS                                                                            \
  "id, kind, args, queue, priority, state, run_at, attempt, max_attempts, owner, unique_key, "          \
  "description, parent_id, on_failure, created_at, started_at, finished_at, lease_token, lease_worker, " \
  "lease_expires, cancel_requested, callback_pending, children_total, children_unfinished, "            \
  "dependencies_unfinished, progress_done, progress_total, progress_message, item_error_count, result, " \
  "error_count, dependency_count, dependency_mode"

PgJobRow read_job(const Rows& rows, int row);
// Errors, dependencies and item errors of a job read by read_job.
Job load_details(Conn& conn, PgJobRow row);

inline std::int64_t us(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint tp(std::int64_t v) { return TimePoint(Duration(v)); }

class Session final : public rules::Tx {
 public:
  // `schema` keys the unique-job advisory locks.
  Session(Conn& conn, TimePoint now, std::string schema) : conn_(conn), now_(now), schema_(std::move(schema)) {}

  TimePoint now() const override { return now_; }
  std::optional<rules::JobHead> read(JobId id) override { return head(id); }
  void write(const rules::JobHead& h) override;
  void unfinished_children(JobId id, std::vector<JobId>& out) override;
  void dependents(JobId id, std::vector<JobId>& out) override;
  void dependencies(JobId id, std::vector<JobId>& out) override;
  void add_children(JobId parent, int n) override;
  std::string kind_of(JobId id) override;
  std::string last_error(JobId id) override;
  void add_error(const rules::JobHead& h, std::string_view message, bool permanent, bool retried) override;
  void set_result(JobId id, std::string_view result) override;
  void record_run(const rules::JobHead& h, rules::RunEnd end, Duration run_time, Duration latency) override;
  void emit(StoreEvent::Type type, const rules::JobHead& h) override;

  Conn& conn() { return conn_; }
  // The head of a job, its row locked until the transaction ends.
  std::optional<rules::JobHead> head(JobId id);
  // The job when `ref` is its live lease (running with that token).
  std::optional<rules::JobHead> live(const LeaseRef& ref);
  JobState current_state(JobId id);
  // Locks the rows of `ids` in id order (a batch never deadlocks with another)
  // and keeps their heads, so the batch's head() calls need no round trip.
  void lock_in_order(std::vector<JobId> ids);

  // Inserts jobs (validated, dependencies checked) in order.
  Result<std::vector<InsertResult>> insert_all(std::span<const NewJob> jobs, std::optional<JobId> parent);
  // Leases up to request.limit jobs (see Store::claim), sorted in claim order.
  // `server_now`: let the server's clock decide (no BEGIN needed).
  std::vector<Job> claim(const ClaimRequest& request, bool server_now);
  LeaseStatus extend_lease(const LeaseRef& lease, Duration extend_by);
  void apply_report(JobId id, const RunReport& report);
  void store_progress(JobId id, const Progress& progress);
  void store_item_errors(JobId id, std::span<const ItemError> errors);
  void delete_job(JobId id);
  void emit(StoreEvent::Type type, std::string_view queue, JobId job, JobState state = JobState::pending,
            std::uint64_t token = 0) {
    events.push_back({type, std::string(queue), job, state, token});
  }
  // Queues pg_notify for other processes (sent by the server at commit).
  void notify_others(const std::string& channel);

  std::vector<PgEvent> events;

 private:
  Result<InsertResult> insert_one(const NewJob& job, std::optional<JobId> parent);
  void insert_plain(std::span<const NewJob> jobs, std::optional<JobId> parent, std::vector<InsertResult>& out);
  void lock_unique_keys(std::span<const NewJob> jobs);

  Conn& conn_;
  TimePoint now_;
  std::string schema_;
  std::optional<rules::JobHead> head_from(const Rows& q, int row, JobId id);
  std::unordered_map<JobId, std::string> queue_of_;  // queues of the jobs read here (for events)
  // Heads read by lock_in_order (rows locked by this transaction), kept up to
  // date by write(); add_children drops the parent's (it changes counts in SQL).
  std::unordered_map<JobId, rules::JobHead> heads_;
  struct Run {
    JobId id = 0;
    Duration run_time{0};
    Duration latency{0};
  } run_;  // recorded by record_run, stored by the next write of that job
};

}  // namespace porter::detail
