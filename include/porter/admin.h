// Admin: the administrator's view of the job system, as a library API (a CLI
// or dashboard is a thin layer on top). Every call takes a Principal: an
// administrator sees and acts on every job; any other user only on the jobs
// they own (NewJob::owner), as in the seeds' Superadmin / Power User split.
// Acting on someone else's job is permission_denied; system-wide operations
// (expire stuck jobs, clear stale locks, pause queues, prune, metrics) are
// for administrators only.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "porter/job.h"
#include "porter/status.h"
#include "porter/store.h"

namespace porter {

struct Principal {
  std::string user;
  bool admin = false;
  static Principal administrator(std::string name = "admin") { return {std::move(name), true}; }
  static Principal owner(std::string name) { return {std::move(name), false}; }
};

// One job as the admin page shows it.
struct JobDetails {
  Job job;
  std::vector<Job> children;            // direct children, newest first
  std::optional<double> percent;        // progress, when the total is known
  std::optional<Duration> running_for;  // running: since started; final: its last run's duration
  std::optional<Duration> lease_age;    // running: how long the current lease has been held
};

class Admin {
 public:
  explicit Admin(std::shared_ptr<Store> store);

  // A non-admin's filter is narrowed to their own jobs (an owner filter naming
  // someone else is permission_denied). limit in 1..1000.
  Result<JobPage> list(const Principal& who, JobFilter filter, std::optional<JobId> cursor = {}, int limit = 50);
  Result<JobDetails> get(const Principal& who, JobId id);

  Result<CancelResult> cancel(const Principal& who, JobId id);
  Status retry(const Principal& who, JobId id);    // failed or cancelled -> pending
  Status discard(const Principal& who, JobId id);  // deletes a final job

  // "Notify me when finished", durably: enqueues `notification` (a job of a
  // kind the application handles: e-mail, chat, in-app) to run once job `id`
  // is final, however it ended. It is a job depending on `id`
  // (DependencyMode::all_final), so it survives restarts of every process and
  // becomes runnable in the same transaction that makes `id` final (at once
  // if it already is). Its handler reads the watched job from
  // Job::depends_on. The notification belongs to `who` (a non-admin cannot
  // set another owner); asking twice for the same (job, user, kind) returns
  // the first notification (duplicate). depends_on must be empty.
  Result<InsertResult> notify_when_finished(const Principal& who, JobId id, NewJob notification);

  // Administrators only.
  Result<std::vector<JobId>> expire_stuck(const Principal& who, Duration running_longer_than);
  Result<std::vector<JobId>> clear_stale_locks(const Principal& who);
  Status pause_queue(const Principal& who, std::string_view queue);
  Status resume_queue(const Principal& who, std::string_view queue);
  // Deletes every final job that finished more than `retention` ago (unless
  // its parent is unfinished), in batches of PruneRequest::limit jobs, each
  // one short transaction. Returns how many. Duration::max(): none.
  Result<std::int64_t> prune(const Principal& who, Duration retention);
  // The same for chosen states and cutoff; request.limit is the batch size.
  Result<std::int64_t> prune(const Principal& who, const PruneRequest& request);
  // Queue depths, per-kind figures over `window`, lease ages, and the pending
  // jobs no live engine handles (Stats::unhandled).
  Result<Stats> metrics(const Principal& who, Duration window = std::chrono::minutes(5));

 private:
  Status check_access(const Principal& who, const Job& job) const;
  std::shared_ptr<Store> store_;
};

}  // namespace porter
