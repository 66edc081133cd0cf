// Admin: the administrator's view over a Store, with access scoping.
//
// Admin adds no state of its own: every call checks the principal, validates
// its input, and forwards to one Store operation (or a few reads for get()).
// The scoping rules, in one place:
//   - an administrator sees and acts on every job;
//   - any other principal (who must name a user) sees and acts only on jobs
//     whose owner is that user; their listings are narrowed to owner == user;
//   - system-wide operations (expire_stuck, clear_stale_locks, pause/resume,
//     prune, metrics) are for administrators only.
//
// Existence is not leaked: for a non-admin, a job that does not exist and a
// job owned by someone else give the same permission_denied error with the
// same message ("job 42 does not exist or is not yours"), so a user cannot
// probe which ids other owners have. Administrators get not_found for a
// missing job, as they may see everything anyway.
//
// The children of a job the principal owns are shown with it in get(): they
// were spawned by that job's handler and are part of the owner's workflow.
//
// Thread safety: Admin holds only the shared_ptr to the store (immutable after
// construction); every Store method is thread-safe, so Admin is too.
#include "porter/admin.h"

#include "core/bounds.h"
#include "porter/retention.h"

#include <stdexcept>
#include <string>
#include <utility>

namespace porter {

namespace {

constexpr int kMinListLimit = 1;
constexpr int kMaxListLimit = 1000;

Error not_yours(JobId id) {
  return make_error(ErrorCode::permission_denied, "job " + std::to_string(id) + " does not exist or is not yours");
}

Status require_admin(const Principal& who, std::string_view operation) {
  if (who.admin) return {};
  return make_error(ErrorCode::permission_denied,
                    std::string(operation) + " is for administrators only; user '" + who.user + "' is not one");
}

// A non-admin principal with no name would "own" every unowned job.
Status require_identified(const Principal& who) {
  if (who.admin || !who.user.empty()) return {};
  return make_error(ErrorCode::invalid_argument, "a non-admin principal must name a user");
}

Status require_non_negative(std::string_view what, Duration d) {
  if (d >= Duration::zero()) return {};
  return make_error(ErrorCode::invalid_argument, std::string(what) + " must not be negative");
}

Status require_queue_name(std::string_view queue) {
  if (queue.empty()) return make_error(ErrorCode::invalid_argument, "queue name must not be empty");
  if (queue.size() > kMaxNameBytes) {
    return make_error(ErrorCode::invalid_argument,
                      "queue name is longer than " + std::to_string(kMaxNameBytes) + " bytes");
  }
  return {};
}

}  // namespace

Admin::Admin(std::shared_ptr<Store> store) : store_(std::move(store)) {
  // A null store is a programming error, not an expected failure.
  if (!store_) throw std::invalid_argument("porter::Admin needs a store");
}

Status Admin::check_access(const Principal& who, const Job& job) const {
  if (who.admin || job.owner == who.user) return {};
  return not_yours(job.id);
}

namespace {

// Reads a job the principal may act on. A non-admin gets the same error for
// a missing job as for someone else's (see the top of the file).
Result<Job> load_for(Store& store, const Principal& who, JobId id) {
  if (auto s = require_identified(who); !s) return s.error();
  auto job = store.get(id);
  if (!job) {
    if (!who.admin && job.error().code() == ErrorCode::not_found) return not_yours(id);
    return job.error();
  }
  if (!who.admin && job->owner != who.user) return not_yours(id);
  return job;
}

}  // namespace

Result<JobPage> Admin::list(const Principal& who, JobFilter filter, std::optional<JobId> cursor, int limit) {
  if (auto s = require_identified(who); !s) return s.error();
  if (limit < kMinListLimit || limit > kMaxListLimit) {
    return make_error(ErrorCode::invalid_argument, "limit " + std::to_string(limit) + " is outside " +
                                                       std::to_string(kMinListLimit) + ".." +
                                                       std::to_string(kMaxListLimit));
  }
  if (filter.queue) {
    if (auto s = require_queue_name(*filter.queue); !s) return s.error();
  }
  if (filter.kind && filter.kind->empty()) {
    return make_error(ErrorCode::invalid_argument, "kind filter must not be empty");
  }
  if (!who.admin) {
    if (filter.owner && *filter.owner != who.user) {
      return make_error(ErrorCode::permission_denied,
                        "user '" + who.user + "' may list only their own jobs, not those of '" + *filter.owner + "'");
    }
    filter.owner = who.user;
  }
  return store_->list(filter, cursor, limit);
}

Result<JobDetails> Admin::get(const Principal& who, JobId id) {
  auto job = load_for(*store_, who, id);
  if (!job) return job.error();

  JobDetails details;
  details.job = std::move(*job);
  const Job& j = details.job;

  // Children, newest first (the store's list order), every page of them.
  JobFilter children_of;
  children_of.parent_id = j.id;
  std::optional<JobId> cursor;
  do {
    auto page = store_->list(children_of, cursor, kMaxListLimit);
    if (!page) return page.error();
    for (auto& child : page->jobs) details.children.push_back(std::move(child));
    cursor = page->next;
  } while (cursor);

  details.percent = j.progress.percent();
  const TimePoint now = store_->now();
  if (j.started_at) {
    if (j.state == JobState::running) {
      details.running_for = now - *j.started_at;
      // A lease is acquired by the claim that starts the run, and heartbeats
      // only extend it: the current lease has been held since started_at.
      if (j.lease) details.lease_age = now - *j.started_at;
    } else if (is_final(j.state) && j.finished_at) {
      details.running_for = *j.finished_at - *j.started_at;
    }
  }
  return details;
}

Result<CancelResult> Admin::cancel(const Principal& who, JobId id) {
  auto job = load_for(*store_, who, id);
  if (!job) return job.error();
  return store_->cancel(id, "cancelled by " + (who.user.empty() ? std::string("an administrator") : who.user));
}

Result<InsertResult> Admin::notify_when_finished(const Principal& who, JobId id, NewJob notification) {
  auto job = load_for(*store_, who, id);
  if (!job) return job.error();
  if (!notification.depends_on.empty()) {
    return make_error(ErrorCode::invalid_argument, "a notification depends on the watched job only; depends_on must be empty");
  }
  if (notification.owner.empty()) notification.owner = who.user;
  if (!who.admin && notification.owner != who.user) {
    return make_error(ErrorCode::permission_denied, "user '" + who.user + "' cannot notify on behalf of another user");
  }
  notification.depends_on = {id};
  notification.dependency_mode = DependencyMode::all_final;
  if (notification.unique_key.empty()) {
    notification.unique_key = "notify:" + std::to_string(id) + ":" + notification.owner;
    notification.unique_scope = UniqueScope::always;
  }
  auto inserted = store_->insert(std::span<const NewJob>(&notification, 1));
  if (!inserted) return inserted.error();
  return inserted->front();
}

Status Admin::retry(const Principal& who, JobId id) {
  auto job = load_for(*store_, who, id);
  if (!job) return job.error();
  return store_->retry_job(id);
}

Status Admin::discard(const Principal& who, JobId id) {
  auto job = load_for(*store_, who, id);
  if (!job) return job.error();
  return store_->discard(id);
}

Result<std::vector<JobId>> Admin::expire_stuck(const Principal& who, Duration running_longer_than) {
  if (auto s = require_admin(who, "expire_stuck"); !s) return s.error();
  if (auto s = require_non_negative("running_longer_than", running_longer_than); !s) return s.error();
  return store_->expire_stuck(running_longer_than);
}

Result<std::vector<JobId>> Admin::clear_stale_locks(const Principal& who) {
  if (auto s = require_admin(who, "clear_stale_locks"); !s) return s.error();
  return store_->rescue_expired();
}

Status Admin::pause_queue(const Principal& who, std::string_view queue) {
  if (auto s = require_admin(who, "pause_queue"); !s) return s;
  if (auto s = require_queue_name(queue); !s) return s;
  return store_->set_queue_paused(queue, true);
}

Status Admin::resume_queue(const Principal& who, std::string_view queue) {
  if (auto s = require_admin(who, "resume_queue"); !s) return s;
  if (auto s = require_queue_name(queue); !s) return s;
  return store_->set_queue_paused(queue, false);
}

Result<std::int64_t> Admin::prune(const Principal& who, Duration retention) {
  if (auto s = require_admin(who, "prune"); !s) return s.error();
  if (auto s = require_non_negative("retention", retention); !s) return s.error();
  if (retention == Duration::max()) return std::int64_t{0};  // kept forever
  return prune(who, PruneRequest{.finished_before = detail::saturating_sub(store_->now(), retention)});
}

Result<std::int64_t> Admin::prune(const Principal& who, const PruneRequest& request) {
  if (auto s = require_admin(who, "prune"); !s) return s.error();
  // Batches of request.limit, each its own short transaction: workers claim
  // and finish between them instead of waiting for one long delete.
  return prune_in_batches(*store_, request);
}

Result<Stats> Admin::metrics(const Principal& who, Duration window) {
  if (auto s = require_admin(who, "metrics"); !s) return s.error();
  if (window <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "metrics window must be positive");
  return store_->stats(window);
}

}  // namespace porter
