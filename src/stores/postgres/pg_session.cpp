// The Session of pg_session.h: the rules' adapter and row helpers.
#include "stores/postgres/pg_session.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "core/bounds.h"
#include "stores/postgres/pg_schema.h"

namespace porter::detail {

namespace {

int state_int(JobState s) { return static_cast<int>(s); }

// Column positions of PORTER_PG_JOB_COLUMNS.
enum Col : int {
  kId, kKind, kArgs, kQueue, kPriority, kState, kRunAt, kAttempt, kMaxAttempts, kOwner, kUniqueKey,
  kDescription, kParentId, kOnFailure, kCreatedAt, kStartedAt, kFinishedAt, kLeaseToken, kLeaseWorker,
  kLeaseExpires, kCancelRequested, kCallbackPending, kChildrenTotal, kChildrenUnfinished,
  kDependenciesUnfinished, kProgressDone, kProgressTotal, kProgressMessage, kItemErrorCount, kResult,
  kErrorCount, kDependencyCount, kDependencyMode,
};

// Column positions of the head query.
enum HeadCol : int {
  hState, hRunAt, hStartedAt, hFinishedAt, hAttempt, hMaxAttempts, hCancelRequested, hCallbackPending,
  hParentId, hOnFailure, hChildrenTotal, hChildrenUnfinished, hDependenciesUnfinished, hDependentCount,
  hQueue, hLeaseToken, hId, hDependencyMode,
};

std::string hex_of(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

// FNV-1a over the parts, NUL-separated: the unique-key lock's second key.
std::int32_t key_hash(std::initializer_list<std::string_view> parts) {
  std::uint32_t h = 2166136261u;
  for (auto part : parts) {
    for (unsigned char c : part) h = (h ^ c) * 16777619u;
    h = (h ^ 0u) * 16777619u;
  }
  return static_cast<std::int32_t>(h);
}

}  // namespace

PgJobRow read_job(const Rows& q, int r) {
  PgJobRow row;
  Job& j = row.job;
  j.id = q.i64(r, kId);
  j.kind = q.bytes(r, kKind);
  j.args = q.bytes(r, kArgs);
  j.queue = q.bytes(r, kQueue);
  j.priority = q.i32(r, kPriority);
  j.state = static_cast<JobState>(q.i32(r, kState));
  j.run_at = tp(q.i64(r, kRunAt));
  j.attempt = q.i32(r, kAttempt);
  j.max_attempts = q.i32(r, kMaxAttempts);
  j.owner = q.bytes(r, kOwner);
  if (!q.is_null(r, kUniqueKey)) j.unique_key = q.bytes(r, kUniqueKey);
  j.description = q.bytes(r, kDescription);
  if (!q.is_null(r, kParentId)) j.parent_id = q.i64(r, kParentId);
  j.on_failure = static_cast<ChildFailurePolicy>(q.i32(r, kOnFailure));
  j.created_at = tp(q.i64(r, kCreatedAt));
  if (!q.is_null(r, kStartedAt)) j.started_at = tp(q.i64(r, kStartedAt));
  if (!q.is_null(r, kFinishedAt)) j.finished_at = tp(q.i64(r, kFinishedAt));
  if (j.state == JobState::running && !q.is_null(r, kLeaseWorker)) {
    j.lease = Lease{static_cast<std::uint64_t>(q.i64(r, kLeaseToken)), q.bytes(r, kLeaseWorker),
                    tp(q.i64(r, kLeaseExpires))};
  }
  j.cancel_requested = q.flag(r, kCancelRequested);
  j.callback_pending = q.flag(r, kCallbackPending);
  j.children_total = q.i32(r, kChildrenTotal);
  j.children_unfinished = q.i32(r, kChildrenUnfinished);
  j.dependencies_unfinished = q.i32(r, kDependenciesUnfinished);
  j.progress.done = q.i64(r, kProgressDone);
  j.progress.total = q.i64(r, kProgressTotal);
  j.progress.message = q.bytes(r, kProgressMessage);
  j.item_error_count = q.i64(r, kItemErrorCount);
  j.result = q.bytes(r, kResult);
  row.error_count = q.i64(r, kErrorCount);
  row.dependency_count = q.i64(r, kDependencyCount);
  j.dependency_mode = static_cast<DependencyMode>(q.i32(r, kDependencyMode));
  return row;
}

Job load_details(Conn& conn, PgJobRow row) {
  Job& j = row.job;
  if (row.error_count > 0) {
    auto q = conn.exec("SELECT attempt, at, message, permanent FROM attempt_errors WHERE job_id = $1 ORDER BY seq",
                       Params().i64(j.id));
    for (int i = 0; i < q.size(); ++i) j.errors.push_back({q.i32(i, 0), tp(q.i64(i, 1)), q.bytes(i, 2), q.flag(i, 3)});
  }
  if (row.dependency_count > 0) {
    auto q = conn.exec("SELECT depends_on FROM dependencies WHERE job_id = $1 ORDER BY seq", Params().i64(j.id));
    for (int i = 0; i < q.size(); ++i) j.depends_on.push_back(q.i64(i, 0));
  }
  if (j.item_error_count > 0) {
    auto q = conn.exec("SELECT item, message FROM item_errors WHERE job_id = $1 ORDER BY seq", Params().i64(j.id));
    for (int i = 0; i < q.size(); ++i) j.item_errors.push_back({q.bytes(i, 0), q.bytes(i, 1)});
  }
  return std::move(row.job);
}

// --- heads and leases -----------------------------------------------------------

#define PORTER_PG_HEAD_COLUMNS                                                                                 \
  "state, run_at, started_at, finished_at, attempt, max_attempts, cancel_requested, callback_pending, parent_id, " \
  "on_failure, children_total, children_unfinished, dependencies_unfinished, dependent_count, queue, lease_token, id, " \
  "dependency_mode"

std::optional<rules::JobHead> Session::head(JobId id) {
  if (auto it = heads_.find(id); it != heads_.end()) return it->second;
  auto q = conn_.exec("SELECT " PORTER_PG_HEAD_COLUMNS " FROM jobs WHERE id = $1 FOR UPDATE", Params().i64(id));
  if (q.empty()) return std::nullopt;
  return head_from(q, 0, id);
}

std::optional<rules::JobHead> Session::head_from(const Rows& q, int r, JobId id) {
  rules::JobHead h;
  h.id = id;
  h.state = static_cast<JobState>(q.i32(r, hState));
  h.run_at = tp(q.i64(r, hRunAt));
  if (!q.is_null(r, hStartedAt)) h.started_at = tp(q.i64(r, hStartedAt));
  if (!q.is_null(r, hFinishedAt)) h.finished_at = tp(q.i64(r, hFinishedAt));
  h.attempt = q.i32(r, hAttempt);
  h.max_attempts = q.i32(r, hMaxAttempts);
  h.cancel_requested = q.flag(r, hCancelRequested);
  h.callback_pending = q.flag(r, hCallbackPending);
  h.parent_id = q.opt_i64(r, hParentId).value_or(0);
  h.on_failure = static_cast<ChildFailurePolicy>(q.i32(r, hOnFailure));
  h.children_total = q.i32(r, hChildrenTotal);
  h.children_unfinished = q.i32(r, hChildrenUnfinished);
  h.dependencies_unfinished = q.i32(r, hDependenciesUnfinished);
  h.has_dependents = q.i64(r, hDependentCount) > 0;
  queue_of_.try_emplace(id, q.bytes(r, hQueue));
  h.token = static_cast<std::uint64_t>(q.i64(r, hLeaseToken));
  h.dependency_mode = static_cast<DependencyMode>(q.i32(r, hDependencyMode));
  return h;
}

std::optional<rules::JobHead> Session::live(const LeaseRef& ref) {
  auto h = head(ref.id);
  if (!h || h->state != JobState::running || h->token != ref.token) return std::nullopt;
  return h;
}

JobState Session::current_state(JobId id) {
  auto q = conn_.exec("SELECT state FROM jobs WHERE id = $1", Params().i64(id));
  return q.empty() ? JobState::pending : static_cast<JobState>(q.i32(0, 0));
}

void Session::lock_in_order(std::vector<JobId> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  auto q = conn_.exec("SELECT " PORTER_PG_HEAD_COLUMNS " FROM jobs WHERE id = ANY ($1::int8[]) ORDER BY id FOR UPDATE",
                      Params().ids(ids));
  for (int r = 0; r < q.size(); ++r) {
    const JobId id = q.i64(r, hId);
    heads_[id] = *head_from(q, r, id);
  }
}

// --- the rules' adapter -----------------------------------------------------------

// Leaving `running` drops the lease (the token stays: it only grows). A run
// recorded just before (record_run) is stored by the same statement.
#define PORTER_PG_HEAD_UPDATE                                                                                 \
  "UPDATE jobs SET state = $2, run_at = $3, attempt = $4, max_attempts = $5, cancel_requested = $6, "        \
  "callback_pending = $7, children_unfinished = $8, dependencies_unfinished = $9, finished_at = $10, "       \
  "scheduled = $11, lease_worker = CASE WHEN $2 = 1 THEN lease_worker END, "                                  \
  "lease_expires = CASE WHEN $2 = 1 THEN lease_expires END"

void Session::write(const rules::JobHead& h) {
  if (auto it = heads_.find(h.id); it != heads_.end()) {
    // Kept as the row now is: write() stores every field the rules change.
    const int total = it->second.children_total;
    const bool dependents = it->second.has_dependents;
    it->second = h;
    it->second.children_total = total;
    it->second.has_dependents = dependents;
  }
  const bool with_run = run_.id == h.id;
  Params p;
  p.i64(h.id).i64(state_int(h.state)).i64(us(h.run_at)).i64(h.attempt).i64(h.max_attempts);
  p.flag(h.cancel_requested).flag(h.callback_pending).i64(h.children_unfinished).i64(h.dependencies_unfinished);
  p.opt(h.finished_at ? std::optional<std::int64_t>(us(*h.finished_at)) : std::nullopt);
  p.flag(h.state == JobState::pending && h.run_at > now_);
  if (with_run) {
    p.i64(run_.run_time.count()).i64(run_.latency.count());
    run_ = {};
    conn_.exec(PORTER_PG_HEAD_UPDATE ", run_time = $12, queue_latency = $13 WHERE id = $1", p);
  } else {
    conn_.exec(PORTER_PG_HEAD_UPDATE " WHERE id = $1", p);
  }
}

void Session::unfinished_children(JobId id, std::vector<JobId>& out) {
  auto q = conn_.exec("SELECT id FROM jobs WHERE parent_id = $1 AND state IN (0, 1, 2) ORDER BY id", Params().i64(id));
  for (int i = 0; i < q.size(); ++i) out.push_back(q.i64(i, 0));
}

void Session::dependents(JobId id, std::vector<JobId>& out) {
  auto q = conn_.exec("SELECT job_id FROM dependencies WHERE depends_on = $1 ORDER BY job_id", Params().i64(id));
  for (int i = 0; i < q.size(); ++i) out.push_back(q.i64(i, 0));
}

void Session::dependencies(JobId id, std::vector<JobId>& out) {
  auto q = conn_.exec("SELECT depends_on FROM dependencies WHERE job_id = $1 ORDER BY seq", Params().i64(id));
  for (int i = 0; i < q.size(); ++i) out.push_back(q.i64(i, 0));
}

void Session::add_children(JobId parent, int n) {
  heads_.erase(parent);
  conn_.exec(
      "UPDATE jobs SET children_total = children_total + $2, children_unfinished = children_unfinished + $2 "
      "WHERE id = $1",
      Params().i64(parent).i64(n));
}

std::string Session::kind_of(JobId id) {
  auto q = conn_.exec("SELECT kind FROM jobs WHERE id = $1", Params().i64(id));
  return q.empty() ? std::string() : q.bytes(0, 0);
}

std::string Session::last_error(JobId id) {
  auto q = conn_.exec("SELECT message FROM attempt_errors WHERE job_id = $1 ORDER BY seq DESC LIMIT 1",
                      Params().i64(id));
  return q.empty() ? std::string() : q.bytes(0, 0);
}

void Session::add_error(const rules::JobHead& h, std::string_view message, bool permanent, bool retried) {
  conn_.exec(
      "WITH n AS (UPDATE jobs SET error_count = error_count + 1 WHERE id = $1 RETURNING error_count - 1 AS seq) "
      "INSERT INTO attempt_errors(job_id, seq, attempt, at, message, permanent, retried) "
      "SELECT $1, seq, $2, $3, $4, $5, $6 FROM n",
      Params().i64(h.id).i64(h.attempt).i64(us(now_)).bytes(clip_message(message)).flag(permanent).flag(retried));
}

void Session::set_result(JobId id, std::string_view result) {
  conn_.exec("UPDATE jobs SET result = $2 WHERE id = $1", Params().i64(id).bytes(result));
}

// Retried runs are counted from attempt_errors.retried; final runs keep their times.
void Session::record_run(const rules::JobHead& h, rules::RunEnd end, Duration run_time, Duration latency) {
  if (end == rules::RunEnd::retried) return;
  run_ = {h.id, run_time, latency};  // stored by the write() that follows
}

void Session::emit(StoreEvent::Type type, const rules::JobHead& h) {
  auto it = queue_of_.find(h.id);
  if (it == queue_of_.end()) {
    auto q = conn_.exec("SELECT queue FROM jobs WHERE id = $1", Params().i64(h.id));
    it = queue_of_.try_emplace(h.id, q.empty() ? std::string() : q.bytes(0, 0)).first;
  }
  emit(type, it->second, h.id, h.state, h.token);
}

void Session::delete_job(JobId id) {
  heads_.erase(id);
  for (const char* sql : {"DELETE FROM attempt_errors WHERE job_id = $1", "DELETE FROM item_errors WHERE job_id = $1",
                          "DELETE FROM dependencies WHERE job_id = $1", "DELETE FROM jobs WHERE id = $1"}) {
    conn_.exec(sql, Params().i64(id));
  }
}

void Session::notify_others(const std::string& channel) {
  std::set<std::string> payloads;
  for (const auto& e : events) {
    if (e.type == StoreEvent::Type::available) payloads.insert("a" + hex_of(e.queue));
    if (e.type == StoreEvent::Type::finished) payloads.insert("f");
  }
  if (payloads.empty()) return;
  std::string array = "{";
  for (const auto& p : payloads) array += (array.size() > 1 ? "," : "") + p;
  array += "}";
  conn_.exec("SELECT pg_notify($1, p) FROM unnest($2::text[]) p", Params().text(channel).text(array));
}

// --- producers ----------------------------------------------------------------------

// Two processes inserting the same unique key serialize on an advisory lock
// of (schema, kind, key), taken in hash order for the whole batch, so the
// lookup below and the insert are one step across machines.
void Session::lock_unique_keys(std::span<const NewJob> jobs) {
  std::vector<std::int32_t> keys;
  for (const auto& j : jobs) {
    if (!j.unique_key.empty()) keys.push_back(key_hash({schema_, j.kind, j.unique_key}));
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  for (auto k : keys) {
    conn_.exec("SELECT pg_advisory_xact_lock($1::int4, $2::int4)", Params().i64(kPgUniqueLock).i64(k));
  }
}

Result<InsertResult> Session::insert_one(const NewJob& job, std::optional<JobId> parent) {
  if (!job.unique_key.empty()) {
    // The newest job with the key that is within the new job's scope.
    const char* sql = nullptr;
    switch (job.unique_scope) {
      case UniqueScope::active:
        sql = "SELECT id FROM jobs WHERE kind = $1 AND unique_key = $2 AND state IN (0, 1, 2)"
              " ORDER BY id DESC LIMIT 1";
        break;
      case UniqueScope::period:
        sql = "SELECT id FROM jobs WHERE kind = $1 AND unique_key = $2 AND created_at > $3 ORDER BY id DESC LIMIT 1";
        break;
      case UniqueScope::always:
        sql = "SELECT id FROM jobs WHERE kind = $1 AND unique_key = $2"
              " ORDER BY id DESC LIMIT 1";
        break;
    }
    Params p;
    p.bytes(job.kind).bytes(job.unique_key);
    if (job.unique_scope == UniqueScope::period) p.i64(us(saturating_sub(now_, job.unique_period)));
    auto q = conn_.exec(sql, p);
    if (!q.empty()) return InsertResult{q.i64(0, 0), true};
  }

  // Stored waiting with no counts; the rules place it (rules::place_new_job).
  std::vector<JobId> deps;
  for (JobId d : job.depends_on) {
    if (std::find(deps.begin(), deps.end(), d) == deps.end()) deps.push_back(d);
  }
  rules::JobHead h;
  h.state = JobState::waiting;
  h.run_at = resolve_run_at(job, now_);
  h.max_attempts = job.max_attempts > 0 ? job.max_attempts : kDefaultMaxAttempts;
  h.parent_id = parent.value_or(0);
  h.on_failure = job.on_failure;
  h.dependency_mode = job.dependency_mode;
  {
    Params p;
    p.bytes(job.kind).bytes(job.args).bytes(job.queue).i64(job.priority).i64(state_int(h.state));
    p.i64(us(h.run_at)).i64(h.max_attempts).bytes(job.owner);
    if (job.unique_key.empty()) {
      p.null();
    } else {
      p.bytes(job.unique_key);
    }
    p.bytes(job.description).opt(parent).i64(static_cast<int>(job.on_failure)).i64(us(now_));
    p.i64(static_cast<std::int64_t>(deps.size())).i64(static_cast<int>(job.dependency_mode));
    auto q = conn_.exec(
        "INSERT INTO jobs(kind, args, queue, priority, state, run_at, max_attempts, owner, unique_key, description, "
        "parent_id, on_failure, created_at, dependency_count, dependency_mode) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        p);
    h.id = q.i64(0, 0);
  }
  queue_of_.try_emplace(h.id, job.queue);
  for (std::size_t i = 0; i < deps.size(); ++i) {
    conn_.exec("INSERT INTO dependencies(job_id, depends_on, seq) VALUES ($1, $2, $3)",
               Params().i64(h.id).i64(deps[i]).i64(static_cast<std::int64_t>(i)));
    conn_.exec("UPDATE jobs SET dependent_count = dependent_count + 1 WHERE id = $1", Params().i64(deps[i]));
    heads_.erase(deps[i]);
  }
  if (parent) add_children(*parent, 1);
  rules::place_new_job(*this, h, deps);
  return InsertResult{h.id, false};
}

// A job with no unique key and no dependencies needs no lookup and no rows
// besides its own: such "plain" jobs are written with multi-row INSERTs of a
// few fixed sizes (each statement prepared once), largest chunks first. Ids
// are taken from the sequence first, in order, so the batch's ids follow its
// order (FIFO among equals) whatever order the server writes rows in.
constexpr std::size_t kPlainInsertRows[] = {256, 32, 4, 1};
constexpr int kPlainRowParams = 11;   // id, kind, args, queue, priority, run_at, max_attempts, owner, description, on_failure, scheduled
constexpr int kPlainSharedParams = 2;  // $1 created_at, $2 parent_id

const char* plain_insert_sql(std::size_t rows) {
  static const std::vector<std::string> texts = [] {
    std::vector<std::string> out;
    for (std::size_t n : kPlainInsertRows) {
      std::string sql =
          "INSERT INTO jobs(id, kind, args, queue, priority, run_at, max_attempts, owner, description, on_failure, "
          "scheduled, state, created_at, parent_id) VALUES ";
      int p = kPlainSharedParams + 1;
      for (std::size_t r = 0; r < n; ++r) {
        sql += r ? ",(" : "(";
        for (int c = 0; c < kPlainRowParams; ++c, ++p) {
          sql += '$';
          sql += std::to_string(p);
          sql += c == 0 ? "::int8," : ",";
        }
        sql += "0,$1::int8,$2::int8)";
      }
      out.push_back(std::move(sql));
    }
    return out;
  }();
  std::size_t slot = 0;
  while (kPlainInsertRows[slot] != rows) ++slot;
  return texts[slot].c_str();
}

void Session::insert_plain(std::span<const NewJob> jobs, std::optional<JobId> parent, std::vector<InsertResult>& out) {
  if (jobs.empty()) return;
  std::vector<JobId> ids;
  {
    auto q = conn_.exec("SELECT nextval('jobs_id_seq') FROM generate_series(1, $1::int4)",
                        Params().i64(static_cast<std::int64_t>(jobs.size())));
    for (int i = 0; i < q.size(); ++i) ids.push_back(q.i64(i, 0));
    std::sort(ids.begin(), ids.end());
  }
  std::size_t done = 0;
  for (std::size_t rows : kPlainInsertRows) {
    for (; jobs.size() - done >= rows; done += rows) {
      Params p;
      p.i64(us(now_)).opt(parent);
      for (std::size_t r = 0; r < rows; ++r) {
        const NewJob& job = jobs[done + r];
        const TimePoint run_at = resolve_run_at(job, now_);
        p.i64(ids[done + r]).bytes(job.kind).bytes(job.args).bytes(job.queue).i64(job.priority).i64(us(run_at));
        p.i64(job.max_attempts > 0 ? job.max_attempts : kDefaultMaxAttempts).bytes(job.owner).bytes(job.description);
        p.i64(static_cast<int>(job.on_failure)).flag(run_at > now_);
      }
      conn_.exec(plain_insert_sql(rows), p);
    }
  }
  for (JobId id : ids) out.push_back(InsertResult{id, false});
  if (parent) add_children(*parent, static_cast<int>(jobs.size()));
  std::string_view last_queue;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (i == 0 || jobs[i].queue != last_queue) emit(StoreEvent::Type::available, jobs[i].queue, ids[i]);
    last_queue = jobs[i].queue;
  }
}

Result<std::vector<InsertResult>> Session::insert_all(std::span<const NewJob> jobs, std::optional<JobId> parent) {
  lock_unique_keys(jobs);
  auto is_plain = [](const NewJob& j) {
    return j.unique_key.empty() && j.depends_on.empty() && j.dependency_mode == DependencyMode::all_completed;
  };
  std::vector<InsertResult> out;
  out.reserve(jobs.size());
  std::size_t i = 0;
  while (i < jobs.size()) {
    std::size_t run = i;
    while (run < jobs.size() && is_plain(jobs[run])) ++run;
    insert_plain(jobs.subspan(i, run - i), parent, out);
    if (run == jobs.size()) break;
    auto r = insert_one(jobs[run], parent);
    if (!r) return std::move(r).error();
    out.push_back(*r);
    i = run + 1;
  }
  return out;
}

// --- workers ------------------------------------------------------------------------

std::vector<Job> Session::claim(const ClaimRequest& request, bool server_now) {
  Params p;
  if (server_now) {
    p.null();
  } else {
    p.i64(us(now_));
  }
  p.bytes(request.queue).i64(request.limit).bytes(request.worker).i64(request.lease_for.count());
  if (request.kinds.empty()) {
    p.null();
  } else {
    p.byte_array(request.kinds);
  }
  auto q = conn_.exec("SELECT " PORTER_PG_JOB_COLUMNS
                      " FROM claim($1::int8, $2::bytea, $3::int4, $4::bytea, $5::int8, $6::bytea[])",
                      p);
  std::vector<PgJobRow> rows;
  rows.reserve(static_cast<std::size_t>(q.size()));
  for (int i = 0; i < q.size(); ++i) rows.push_back(read_job(q, i));
  std::sort(rows.begin(), rows.end(), [](const PgJobRow& a, const PgJobRow& b) {
    return std::tie(a.job.priority, a.job.run_at, a.job.id) < std::tie(b.job.priority, b.job.run_at, b.job.id);
  });
  std::vector<Job> out;
  out.reserve(rows.size());
  for (auto& r : rows) out.push_back(load_details(conn_, std::move(r)));
  return out;
}

LeaseStatus Session::extend_lease(const LeaseRef& lease, Duration extend_by) {
  auto q = conn_.exec(
      "UPDATE jobs SET lease_expires = $3 WHERE id = $1 AND state = 1 AND lease_token = $2 RETURNING cancel_requested",
      Params().i64(lease.id).i64(static_cast<std::int64_t>(lease.token)).i64(us(saturating_add(now_, extend_by))));
  LeaseStatus st;
  if (!q.empty()) {
    st.held = true;
    st.cancel_requested = q.flag(0, 0);
  }
  return st;
}

void Session::store_progress(JobId id, const Progress& progress) {
  conn_.exec("UPDATE jobs SET progress_done = $2, progress_total = $3, progress_message = $4 WHERE id = $1",
             Params().i64(id).i64(progress.done).i64(progress.total).bytes(clip_message(progress.message)));
}

void Session::store_item_errors(JobId id, std::span<const ItemError> errors) {
  if (errors.empty()) return;
  auto q = conn_.exec(
      "UPDATE jobs SET item_error_count = item_error_count + $2 WHERE id = $1 RETURNING item_error_count - $2",
      Params().i64(id).i64(static_cast<std::int64_t>(errors.size())));
  std::int64_t count = q.empty() ? 0 : q.i64(0, 0);
  for (const auto& e : errors) {
    if (count >= static_cast<std::int64_t>(kMaxStoredItemErrors)) break;
    conn_.exec("INSERT INTO item_errors(job_id, seq, item, message) VALUES ($1, $2, $3, $4)",
               Params().i64(id).i64(count).bytes(clip_message(e.item)).bytes(clip_message(e.message)));
    ++count;
  }
}

void Session::apply_report(JobId id, const RunReport& report) {
  if (report.progress && rules::check_progress(*report.progress)) store_progress(id, *report.progress);
  store_item_errors(id, report.item_errors);
}

}  // namespace porter::detail
