// SqliteStore: the Store contract (porter/store.h) over one SQLite file.
//
// Concurrency. Every Store method is one transaction. Writes begin with
// BEGIN IMMEDIATE, which takes the database's write lock up front, so two
// processes (or two connections) can never both read a job as pending and
// both lease it. Inside one process SQLite serializes writers anyway, so the
// store keeps ONE write connection guarded by `mu_`: a second one would only
// add lock handoffs. Reads (get, list, stats, next_run_at) have a connection
// of their own (`reader_`, guarded by `read_mu_`, PRAGMA query_only): in WAL
// mode a reader never waits for a writer, so an administrator's page or a
// wait_for() never queues behind a write that waits for another process's
// write lock, and never holds up this process's claims. An in-memory
// database (no WAL, and private to its connection) reads on the writer.
//
// Busy. busy_timeout makes SQLite wait for another process's write lock; if
// it still reports SQLITE_BUSY the whole transaction is rolled back and run
// again (kBusyRetries times), then the call fails with `unavailable`. Nothing
// was changed, so the caller may retry; the job itself is never affected.
//
// Durability (WAL mode): Durability::power_loss sets synchronous=FULL, so the
// WAL is fsynced at every commit: a committed enqueue survives a power cut.
// Durability::process_crash sets synchronous=NORMAL: a commit survives the
// process being killed at any moment (the WAL is in the OS page cache), but a
// power loss or kernel crash may roll back the last commits (never corrupts).
//
// Checkpoints (WAL back into the main file) never run on a caller's
// commit: SQLite's automatic checkpoint would make about one write in a
// hundred pay for copying the WAL (the claim p99 of ~4 ms). Instead the
// WAL hook wakes a background thread once the WAL holds kCheckpointPages
// pages; it runs a PASSIVE checkpoint on its own connection, which copies
// what no reader still needs without taking the write lock, so claims and
// finishes go on meanwhile. Bound: past kBackstopPages the committing call
// checkpoints itself, as SQLite's auto-checkpoint would (so the WAL exceeds
// ~kBackstopPages pages only while a reader in some process pins an old
// snapshot, as with any WAL database); journal_size_limit truncates the file
// back to kBackstopPages pages after the WAL restarts.
//
// Time comes from the injected clock, stored as int64 microseconds since the
// Unix epoch.
//
// Transitions. What finish, cancel, rescue, retry_job and insert placement
// mean is decided in src/rules/, shared with every store; this file maps it
// onto rows (SqliteTx below is the rules' transaction adapter).
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <tuple>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>
#include <unordered_map>

#include "core/callback_set.h"
#include "core/bounds.h"
#include "rules/rules.h"
#include "porter/sqlite_store.h"
#include "stores/sqlite/db.h"
#include "stores/maintenance_checks.h"
#include "stores/sqlite/schema.h"

namespace porter {

namespace {

using detail::Db;
using detail::Query;
using detail::SqliteError;

constexpr int kBusyRetries = 3;
constexpr int kCheckpointPages = 1000;   // wake the checkpointer (SQLite's default auto-checkpoint size)
constexpr int kBackstopPages = 16384;    // SQLite's auto-checkpoint, on the committing call: 64 MiB of 4 KiB pages
constexpr int kOpenFlags =
    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI | SQLITE_OPEN_EXRESCODE;

// The background checkpointer (see the header comment): one thread and one
// connection of its own, woken by the store connection's WAL hook.
class Checkpointer {
 public:
  explicit Checkpointer(std::string path) : path_(std::move(path)) {
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
  }
  ~Checkpointer() {
    thread_.request_stop();
    {
      std::lock_guard lock(mu_);
      cv_.notify_all();
    }
    thread_.join();
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // From the WAL hook, on the committing thread: must be cheap.
  void wal_grew(int pages) {
    if (pages < kCheckpointPages) return;
    std::lock_guard lock(mu_);
    if (!wanted_) {
      wanted_ = true;
      cv_.notify_one();
    }
  }

 private:
  void run(std::stop_token stop) {
    std::unique_ptr<Db> db;
    while (true) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return wanted_ || stop.stop_requested(); });
        if (stop.stop_requested()) return;
        wanted_ = false;
      }
      try {
        if (!db) {
          db = std::make_unique<Db>(path_, kOpenFlags);
          db->exec("PRAGMA busy_timeout = 0");
        }
        // PASSIVE never waits for locks; busy (another checkpointer) only means "not now".
        sqlite3_wal_checkpoint_v2(db->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      } catch (const SqliteError&) {
        db.reset();  // retried at the next wake-up; the backstop bounds the WAL meanwhile
      }
    }
  }

  std::string path_;
  std::mutex mu_;                 // guards wanted_
  std::condition_variable cv_;
  bool wanted_ = false;
  std::jthread thread_;           // last: started after, and joined before, the fields it uses
};

// The WAL hook (which replaces SQLite's auto-checkpoint hook): wakes the
// checkpointer, and checkpoints on the committing call itself only past the
// backstop, as SQLite's own auto-checkpoint would.
int on_wal_commit(void* checkpointer, sqlite3* db, const char* name, int pages) {
  static_cast<Checkpointer*>(checkpointer)->wal_grew(pages);
  if (pages >= kBackstopPages) sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  return SQLITE_OK;
}

std::int64_t us(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint tp(std::int64_t v) { return TimePoint(Duration(v)); }
int state_int(JobState s) { return static_cast<int>(s); }

// The job columns in the order read_job expects.
#define PORTER_JOB_COLUMNS                                                                               \
  "id, kind, args, queue, priority, state, run_at, attempt, max_attempts, owner, unique_key, "          \
  "description, parent_id, on_failure, created_at, started_at, finished_at, lease_token, lease_worker, " \
  "lease_expires, cancel_requested, callback_pending, children_total, children_unfinished, "            \
  "dependencies_unfinished, progress_done, progress_total, progress_message, item_error_count, result, " \
  "error_count, dependency_count, dependency_mode"

struct JobRow {
  Job job;
  std::int64_t error_count = 0;
  std::int64_t dependency_count = 0;
};

JobRow read_job(const Query& q) {
  JobRow r;
  Job& j = r.job;
  j.id = q.i64(0);
  j.kind = q.text(1);
  j.args = q.text(2);
  j.queue = q.text(3);
  j.priority = q.i32(4);
  j.state = static_cast<JobState>(q.i32(5));
  j.run_at = tp(q.i64(6));
  j.attempt = q.i32(7);
  j.max_attempts = q.i32(8);
  j.owner = q.text(9);
  j.unique_key = q.text(10);
  j.description = q.text(11);
  if (!q.is_null(12)) j.parent_id = q.i64(12);
  j.on_failure = static_cast<ChildFailurePolicy>(q.i32(13));
  j.created_at = tp(q.i64(14));
  if (!q.is_null(15)) j.started_at = tp(q.i64(15));
  if (!q.is_null(16)) j.finished_at = tp(q.i64(16));
  if (j.state == JobState::running && !q.is_null(18)) {
    j.lease = Lease{static_cast<std::uint64_t>(q.i64(17)), q.text(18), tp(q.i64(19))};
  }
  j.cancel_requested = q.flag(20);
  j.callback_pending = q.flag(21);
  j.children_total = q.i32(22);
  j.children_unfinished = q.i32(23);
  j.dependencies_unfinished = q.i32(24);
  j.progress.done = q.i64(25);
  j.progress.total = q.i64(26);
  j.progress.message = q.text(27);
  j.item_error_count = q.i64(28);
  j.result = q.text(29);
  r.error_count = q.i64(30);
  r.dependency_count = q.i64(31);
  j.dependency_mode = static_cast<DependencyMode>(q.i32(32));
  return r;
}

// An event recorded inside a transaction, delivered after commit.
struct PendingEvent {
  StoreEvent::Type type;
  std::string queue;
  JobId job = 0;
  JobState state = JobState::pending;
  std::uint64_t token = 0;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Db> db, std::unique_ptr<Db> reader, std::shared_ptr<Clock> clock, std::string path,
              bool wal)
      : db_(std::move(db)), reader_(std::move(reader)), clock_(std::move(clock)), path_(std::move(path)) {
    if (wal) {
      checkpointer_ = std::make_unique<Checkpointer>(path_);
      sqlite3_wal_hook(db_->handle(), on_wal_commit, checkpointer_.get());
    }
  }
  ~SqliteStore() override {
    if (checkpointer_) sqlite3_wal_hook(db_->handle(), nullptr, nullptr);
  }

  const Clock& clock() const noexcept override { return *clock_; }

  Result<std::vector<InsertResult>> insert(std::span<const NewJob> jobs) override;
  Result<std::vector<Job>> claim(const ClaimRequest& request) override;
  Result<std::vector<LeaseStatus>> heartbeat(std::span<const LeaseRef> leases, Duration extend_by) override;
  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override;
  Result<std::vector<InsertResult>> spawn(const LeaseRef& parent, std::span<const NewJob> children) override;
  Status report_progress(const LeaseRef& lease, const Progress& progress) override;
  Status add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) override;
  Result<std::vector<LeaseStatus>> heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) override;
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

 private:
  enum class TxKind { read, write };

  // Inside a write transaction.
  LeaseStatus extend_lease(const LeaseRef& lease, Duration extend_by);
  void store_progress(JobId id, const Progress& progress);
  void store_item_errors(JobId id, std::span<const ItemError> errors);
  void apply_report(JobId id, const RunReport& report);

  // Runs `fn` (returning Result<T>) in one transaction under mu_, retrying
  // on SQLITE_BUSY; commits when fn succeeds, rolls back when it returns an
  // error or SQLite fails. Events recorded by fn are delivered after commit,
  // outside the lock.
  template <class Fn>
  auto transact(TxKind kind, std::string_view what, Fn&& fn) -> decltype(fn());
  // Runs `fn(db, now)` (returning Result<T>) in one read transaction on the
  // read connection (under read_mu_ only), or on the writer when there is none.
  template <class Fn>
  auto read(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<Db&>(), TimePoint{}));

  // The rules' transaction adapter over this store's rows (mu_ held).
  class SqliteTx final : public rules::Tx {
   public:
    explicit SqliteTx(SqliteStore& store) : store_(store) {}
    // Forgets what an earlier transaction left (it may have ended by an exception).
    void begin() {
      finals.clear();
      run_ = {};
    }
    TimePoint now() const override { return store_.now_; }
    std::optional<rules::JobHead> read(JobId id) override { return store_.head(id); }
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

   private:
    SqliteStore& store_;
    struct Run {
      JobId id = 0;
      Duration run_time{0};
      Duration latency{0};
    } run_;  // recorded by record_run, stored by the next write of that job
  };

  // --- helpers run inside a transaction (mu_ held) ---
  Result<InsertResult> insert_one(const NewJob& job, std::optional<JobId> parent);
  Result<std::vector<InsertResult>> insert_all(std::span<const NewJob> jobs, std::optional<JobId> parent);
  void insert_plain(std::span<const NewJob> jobs, std::optional<JobId> parent, std::vector<InsertResult>& out);
  const char* plain_insert_sql(std::size_t rows);
  std::optional<rules::JobHead> head(JobId id);
  std::optional<rules::JobHead> live(const LeaseRef& ref);
  JobState current_state(JobId id);
  static Job load_details(Db& db, JobRow row);
  void delete_job(JobId id);
  void emit(StoreEvent::Type type, std::string_view queue, JobId job, JobState state = JobState::pending,
            std::uint64_t token = 0) {
    events_.push_back({type, std::string(queue), job, state, token});
  }

  void deliver(std::vector<PendingEvent>& events);

  std::mutex mu_;                    // guards db_, now_ and events_ (every statement and transaction)
  std::unique_ptr<Db> db_;
  std::mutex read_mu_;               // guards reader_ (never held with mu_)
  std::unique_ptr<Db> reader_;       // the read connection; null for an in-memory database
  TimePoint now_{};                  // the clock read once at the start of the transaction
  std::vector<PendingEvent> events_; // events of the running transaction
  SqliteTx tx_{*this};               // the rules' adapter; its worklist is per transaction
  std::unordered_map<JobId, std::string> queue_of_;  // queues of the jobs read in this transaction (for events)
  // The multi-row INSERT texts of insert_plain, one per chunk size in
  // kPlainInsertRows, built on first use; their c_str() is the statement
  // cache's key, so they live as long as the store (guarded by mu_).
  std::vector<std::string> plain_insert_sql_;
  std::shared_ptr<Clock> clock_;
  std::string path_;
  std::unique_ptr<Checkpointer> checkpointer_;  // null when the database is not in WAL mode (memory)

  detail::CallbackSet<StoreEvent> listeners_;  // its own lock, never held with mu_
};

// Several jobs of one queue made available in one transaction: one wake-up is enough.
void coalesce_available(std::vector<PendingEvent>& events) {
  std::set<std::string> seen;
  std::erase_if(events, [&](const PendingEvent& e) {
    return e.type == StoreEvent::Type::available && !seen.insert(e.queue).second;
  });
}

template <class T>
struct IsResult : std::false_type {};
template <class T>
struct IsResult<Result<T>> : std::true_type {};

template <class Fn>
auto SqliteStore::transact(TxKind kind, std::string_view what, Fn&& fn) -> decltype(fn()) {
  using R = decltype(fn());
  static_assert(IsResult<R>::value);
  std::vector<PendingEvent> delivered;
  for (int attempt = 0;; ++attempt) {
    std::unique_lock lock(mu_);
    detail::Transaction tx(*db_);  // rolls back on any exit that does not commit, exceptions included
    try {
      tx.begin(kind == TxKind::write ? "BEGIN IMMEDIATE" : "BEGIN");
      now_ = clock_->now();
      events_.clear();
      tx_.begin();
      queue_of_.clear();
      R result = fn();
      if (!result.has_value()) {
        tx.abandon();
        events_.clear();
        return result;
      }
      rules::run_effects(tx_);
      coalesce_available(events_);
      tx.commit();
      delivered.swap(events_);
      lock.unlock();
      deliver(delivered);
      return result;
    } catch (const SqliteError& e) {
      tx.abandon();
      events_.clear();
      if (e.busy() && attempt + 1 < kBusyRetries) continue;
      return detail::to_error(e, std::string(what) + " on '" + path_ + "'");
    }
  }
}

template <class Fn>
auto SqliteStore::read(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<Db&>(), TimePoint{})) {
  if (!reader_) return transact(TxKind::read, what, [&] { return fn(*db_, now_); });
  for (int attempt = 0;; ++attempt) {
    std::lock_guard lock(read_mu_);
    // Ends the read transaction on every exit, exceptions of any kind included.
    struct EndRead {
      Db& db;
      ~EndRead() {
        if (!sqlite3_get_autocommit(db.handle())) sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      }
    } end{*reader_};
    try {
      reader_->exec("BEGIN");
      return fn(*reader_, clock_->now());
    } catch (const SqliteError& e) {
      if (e.busy() && attempt + 1 < kBusyRetries) continue;
      return detail::to_error(e, std::string(what) + " on '" + path_ + "'");
    }
  }
}

void SqliteStore::deliver(std::vector<PendingEvent>& events) {
  listeners_.notify(events, [](const PendingEvent& e) { return StoreEvent{e.type, e.queue, e.job, e.state, e.token}; });
}

std::uint64_t SqliteStore::add_listener(Listener listener) { return listeners_.add(std::move(listener)); }

void SqliteStore::remove_listener(std::uint64_t id) { listeners_.remove(id); }

// --- helpers -----------------------------------------------------------------

std::optional<rules::JobHead> SqliteStore::head(JobId id) {
  auto q = db_->query(
      "SELECT state, run_at, started_at, finished_at, attempt, max_attempts, cancel_requested, callback_pending, "
      "parent_id, on_failure, children_total, children_unfinished, dependencies_unfinished, dependent_count, queue, "
      "lease_token, dependency_mode FROM jobs WHERE id = ?");
  q.bind(0, id);
  if (!q.step()) return std::nullopt;
  rules::JobHead h;
  h.id = id;
  h.state = static_cast<JobState>(q.i32(0));
  h.run_at = tp(q.i64(1));
  if (!q.is_null(2)) h.started_at = tp(q.i64(2));
  if (!q.is_null(3)) h.finished_at = tp(q.i64(3));
  h.attempt = q.i32(4);
  h.max_attempts = q.i32(5);
  h.cancel_requested = q.flag(6);
  h.callback_pending = q.flag(7);
  h.parent_id = q.opt_i64(8).value_or(0);
  h.on_failure = static_cast<ChildFailurePolicy>(q.i32(9));
  h.dependency_mode = static_cast<DependencyMode>(q.i32(16));
  h.children_total = q.i32(10);
  h.children_unfinished = q.i32(11);
  h.dependencies_unfinished = q.i32(12);
  h.has_dependents = q.i64(13) > 0;
  queue_of_.try_emplace(id, q.text(14));
  h.token = static_cast<std::uint64_t>(q.i64(15));
  return h;
}

JobState SqliteStore::current_state(JobId id) {
  auto q = db_->query("SELECT state FROM jobs WHERE id = ?");
  q.bind(0, id);
  return q.step() ? static_cast<JobState>(q.i32(0)) : JobState::pending;
}

Error not_found(JobId id) { return make_error(ErrorCode::not_found, "no job " + std::to_string(id)); }

Error stale(const LeaseRef& ref) {
  return make_error(ErrorCode::stale_lease, "job " + std::to_string(ref.id) + " is not held by lease token " +
                                                std::to_string(ref.token));
}

// The job when `ref` is its live lease: running with that token. An expired
// lease nobody rescued yet is still live (the token decides).
std::optional<rules::JobHead> SqliteStore::live(const LeaseRef& ref) {
  auto h = head(ref.id);
  if (!h || h->state != JobState::running || h->token != ref.token) return std::nullopt;
  return h;
}

// --- the rules' adapter --------------------------------------------------------

// Leaving `running` drops the lease (the token stays: it only grows). A run
// recorded just before (record_run) is stored by the same statement.
#define PORTER_HEAD_UPDATE                                                                                      \
  "UPDATE jobs SET state = ?2, run_at = ?3, attempt = ?4, max_attempts = ?5, cancel_requested = ?6, "         \
  "callback_pending = ?7, children_unfinished = ?8, dependencies_unfinished = ?9, finished_at = ?10, "        \
  "lease_worker = CASE WHEN ?2 = 1 THEN lease_worker END, lease_expires = CASE WHEN ?2 = 1 THEN lease_expires " \
  "END"

void SqliteStore::SqliteTx::write(const rules::JobHead& h) {
  const bool with_run = run_.id == h.id;
  auto q = store_.db_->query(with_run ? PORTER_HEAD_UPDATE ", run_time = ?11, queue_latency = ?12 WHERE id = ?1"
                                      : PORTER_HEAD_UPDATE " WHERE id = ?1");
  if (with_run) {
    q.bind(10, static_cast<std::int64_t>(run_.run_time.count())).bind(11, static_cast<std::int64_t>(run_.latency.count()));
    run_ = {};
  }
  q.bind(0, h.id).bind(1, state_int(h.state)).bind(2, us(h.run_at)).bind(3, h.attempt).bind(4, h.max_attempts);
  q.bind(5, h.cancel_requested).bind(6, h.callback_pending).bind(7, h.children_unfinished);
  q.bind(8, h.dependencies_unfinished);
  q.bind(9, h.finished_at ? std::optional<std::int64_t>(us(*h.finished_at)) : std::nullopt);
  q.run();
}

void SqliteStore::SqliteTx::unfinished_children(JobId id, std::vector<JobId>& out) {
  auto q = store_.db_->query("SELECT id FROM jobs WHERE parent_id = ? AND state IN (0, 1, 2) ORDER BY id");
  q.bind(0, id);
  while (q.step()) out.push_back(q.i64(0));
}

void SqliteStore::SqliteTx::dependents(JobId id, std::vector<JobId>& out) {
  auto q = store_.db_->query("SELECT job_id FROM dependencies WHERE depends_on = ?");
  q.bind(0, id);
  while (q.step()) out.push_back(q.i64(0));
}

void SqliteStore::SqliteTx::dependencies(JobId id, std::vector<JobId>& out) {
  auto q = store_.db_->query("SELECT depends_on FROM dependencies WHERE job_id = ? ORDER BY seq");
  q.bind(0, id);
  while (q.step()) out.push_back(q.i64(0));
}

void SqliteStore::SqliteTx::add_children(JobId parent, int n) {
  auto q = store_.db_->query(
      "UPDATE jobs SET children_total = children_total + ?2, children_unfinished = children_unfinished + ?2 "
      "WHERE id = ?1");
  q.bind(0, parent).bind(1, n);
  q.run();
}

std::string SqliteStore::SqliteTx::kind_of(JobId id) {
  auto q = store_.db_->query("SELECT kind FROM jobs WHERE id = ?");
  q.bind(0, id);
  return q.step() ? q.text(0) : std::string();
}

std::string SqliteStore::SqliteTx::last_error(JobId id) {
  auto q = store_.db_->query("SELECT message FROM attempt_errors WHERE job_id = ? ORDER BY seq DESC LIMIT 1");
  q.bind(0, id);
  return q.step() ? q.text(0) : std::string();
}

void SqliteStore::SqliteTx::add_error(const rules::JobHead& h, std::string_view message, bool permanent,
                                      bool retried) {
  std::string clipped = clip_message(message);
  {
    auto q = store_.db_->query(
        "INSERT INTO attempt_errors(job_id, seq, attempt, at, message, permanent, retried) "
        "SELECT ?1, error_count, ?6, ?2, ?3, ?4, ?5 FROM jobs WHERE id = ?1");
    q.bind(0, h.id).bind(1, us(store_.now_)).bind(2, clipped).bind(3, permanent).bind(4, retried).bind(5, h.attempt);
    q.run();
  }
  auto q = store_.db_->query("UPDATE jobs SET error_count = error_count + 1 WHERE id = ?");
  q.bind(0, h.id);
  q.run();
}

void SqliteStore::SqliteTx::set_result(JobId id, std::string_view result) {
  auto q = store_.db_->query("UPDATE jobs SET result = ? WHERE id = ?");
  q.bind(0, result).bind(1, id);
  q.run();
}

// Retried runs are counted from attempt_errors.retried; final runs keep their times.
void SqliteStore::SqliteTx::record_run(const rules::JobHead& h, rules::RunEnd end, Duration run_time,
                                       Duration latency) {
  if (end == rules::RunEnd::retried) return;
  run_ = {h.id, run_time, latency};  // stored by the write() that follows
}

void SqliteStore::SqliteTx::emit(StoreEvent::Type type, const rules::JobHead& h) {
  auto it = store_.queue_of_.find(h.id);
  if (it == store_.queue_of_.end()) {
    auto q = store_.db_->query("SELECT queue FROM jobs WHERE id = ?");
    q.bind(0, h.id);
    it = store_.queue_of_.try_emplace(h.id, q.step() ? q.text(0) : std::string()).first;
  }
  store_.emit(type, it->second, h.id, h.state, h.token);
}

// Deletes a job with its history (its rows in every table).
void SqliteStore::delete_job(JobId id) {
  for (const char* sql : {"DELETE FROM attempt_errors WHERE job_id = ?", "DELETE FROM item_errors WHERE job_id = ?",
                          "DELETE FROM dependencies WHERE job_id = ?", "DELETE FROM jobs WHERE id = ?"}) {
    auto q = db_->query(sql);
    q.bind(0, id);
    q.run();
  }
}

Job SqliteStore::load_details(Db& db, JobRow row) {
  Job& j = row.job;
  if (row.error_count > 0) {
    auto q = db.query("SELECT attempt, at, message, permanent FROM attempt_errors WHERE job_id = ? ORDER BY seq");
    q.bind(0, j.id);
    while (q.step()) j.errors.push_back({q.i32(0), tp(q.i64(1)), q.text(2), q.flag(3)});
  }
  if (row.dependency_count > 0) {
    auto q = db.query("SELECT depends_on FROM dependencies WHERE job_id = ? ORDER BY seq");
    q.bind(0, j.id);
    while (q.step()) j.depends_on.push_back(q.i64(0));
  }
  if (j.item_error_count > 0) {
    auto q = db.query("SELECT item, message FROM item_errors WHERE job_id = ? ORDER BY seq");
    q.bind(0, j.id);
    while (q.step()) j.item_errors.push_back({q.text(0), q.text(1)});
  }
  return std::move(row.job);
}

// --- producers ---------------------------------------------------------------

Result<InsertResult> SqliteStore::insert_one(const NewJob& job, std::optional<JobId> parent) {
  if (!job.unique_key.empty()) {
    // The newest job with the key that is within the new job's scope.
    const char* sql = nullptr;
    switch (job.unique_scope) {
      case UniqueScope::active:
        sql = "SELECT id FROM jobs WHERE kind = ?1 AND unique_key = ?2 AND state IN (0, 1, 2) ORDER BY id DESC LIMIT 1";
        break;
      case UniqueScope::period:
        sql = "SELECT id FROM jobs WHERE kind = ?1 AND unique_key = ?2 AND created_at > ?3 ORDER BY id DESC LIMIT 1";
        break;
      case UniqueScope::always:
        sql = "SELECT id FROM jobs WHERE kind = ?1 AND unique_key = ?2 ORDER BY id DESC LIMIT 1";
        break;
    }
    auto q = db_->query(sql);
    q.bind(0, job.kind).bind(1, job.unique_key);
    if (job.unique_scope == UniqueScope::period) q.bind(2, us(detail::saturating_sub(now_, job.unique_period)));
    if (q.step()) return InsertResult{q.i64(0), true};
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
    auto q = db_->query(
        "INSERT INTO jobs(kind, args, queue, priority, state, run_at, max_attempts, owner, unique_key, description, "
        "parent_id, on_failure, created_at, dependency_count, dependency_mode) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
    q.bind(0, job.kind).bind(1, job.args).bind(2, job.queue).bind(3, job.priority).bind(4, state_int(h.state));
    q.bind(5, us(h.run_at)).bind(6, h.max_attempts).bind(7, job.owner).bind_text_or_null(8, job.unique_key);
    q.bind(9, job.description).bind(10, parent).bind(11, static_cast<int>(job.on_failure)).bind(12, us(now_));
    q.bind(13, static_cast<std::int64_t>(deps.size())).bind(14, static_cast<int>(job.dependency_mode));
    q.run();
    h.id = db_->last_insert_rowid();
  }
  queue_of_.try_emplace(h.id, job.queue);
  for (std::size_t i = 0; i < deps.size(); ++i) {
    {
      auto q = db_->query("INSERT INTO dependencies(job_id, depends_on, seq) VALUES (?, ?, ?)");
      q.bind(0, h.id).bind(1, deps[i]).bind(2, static_cast<std::int64_t>(i));
      q.run();
    }
    auto q = db_->query("UPDATE jobs SET dependent_count = dependent_count + 1 WHERE id = ?");
    q.bind(0, deps[i]);
    q.run();
  }
  if (parent) tx_.add_children(*parent, 1);
  rules::place_new_job(tx_, h, deps);
  return InsertResult{h.id, false};
}

// A job with no unique key and no dependencies needs no lookup before its
// row is written and no rows besides it: such "plain" jobs are written with
// multi-row INSERTs of up to kPlainInsertRows[0] rows (one statement
// execution per chunk instead of per job, the bulk of a batch insert's cost).
// The chunk sizes are a few fixed ones so the statements stay prepared; a
// run of n plain jobs takes the largest chunks first. Rows of one statement
// get consecutive ids in VALUES order (AUTOINCREMENT under the write lock),
// so the last rowid gives every id.
constexpr std::size_t kPlainInsertRows[] = {128, 16, 4, 1};
constexpr int kPlainRowParams = 9;   // kind, args, queue, priority, run_at, max_attempts, owner, description, on_failure
constexpr int kPlainSharedParams = 2;  // ?1 created_at, ?2 parent_id: the same for every row

const char* SqliteStore::plain_insert_sql(std::size_t rows) {
  std::size_t slot = 0;
  while (kPlainInsertRows[slot] != rows) ++slot;
  if (plain_insert_sql_.empty()) plain_insert_sql_.resize(std::size(kPlainInsertRows));
  std::string& sql = plain_insert_sql_[slot];
  if (sql.empty()) {
    sql =
        "INSERT INTO jobs(kind, args, queue, priority, run_at, max_attempts, owner, description, on_failure, "
        "state, created_at, parent_id) VALUES ";
    int p = kPlainSharedParams + 1;
    for (std::size_t r = 0; r < rows; ++r) {
      sql += r ? ",(" : "(";
      for (int c = 0; c < kPlainRowParams; ++c, ++p) {
        // Appended piece by piece: GCC 12 -O3 reports a false -Wrestrict on "?" + std::string.
        sql += '?';
        sql += std::to_string(p);
        sql += ',';
      }
      sql += "0,?1,?2)";
    }
  }
  return sql.c_str();
}

void SqliteStore::insert_plain(std::span<const NewJob> jobs, std::optional<JobId> parent,
                               std::vector<InsertResult>& out) {
  std::size_t done = 0;
  const auto max_params = static_cast<std::size_t>(sqlite3_limit(db_->handle(), SQLITE_LIMIT_VARIABLE_NUMBER, -1));
  for (std::size_t rows : kPlainInsertRows) {
    // A SQLite built with a lower SQLITE_MAX_VARIABLE_NUMBER (999 before 3.32) skips the big chunks.
    if (rows > 1 && rows * kPlainRowParams + kPlainSharedParams > max_params) continue;
    for (; jobs.size() - done >= rows; done += rows) {
      auto q = db_->query(plain_insert_sql(rows));
      q.bind(0, us(now_)).bind(1, parent);
      for (std::size_t r = 0; r < rows; ++r) {
        const NewJob& job = jobs[done + r];
        const int p = kPlainSharedParams + static_cast<int>(r) * kPlainRowParams;
        q.bind(p, job.kind).bind(p + 1, job.args).bind(p + 2, job.queue).bind(p + 3, job.priority);
        q.bind(p + 4, us(resolve_run_at(job, now_)));
        q.bind(p + 5, job.max_attempts > 0 ? job.max_attempts : kDefaultMaxAttempts);
        q.bind(p + 6, job.owner).bind(p + 7, job.description).bind(p + 8, static_cast<int>(job.on_failure));
      }
      q.run();
      JobId first = db_->last_insert_rowid() - static_cast<JobId>(rows) + 1;
      for (std::size_t r = 0; r < rows; ++r) out.push_back(InsertResult{first + static_cast<JobId>(r), false});
    }
  }
  if (jobs.empty()) return;
  if (parent) tx_.add_children(*parent, static_cast<int>(jobs.size()));
  // One wake-up per queue is all listeners get after coalescing anyway.
  std::string_view last_queue;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (i == 0 || jobs[i].queue != last_queue) {
      emit(StoreEvent::Type::available, jobs[i].queue, out[out.size() - jobs.size() + i].id);
    }
    last_queue = jobs[i].queue;
  }
}

bool is_plain(const NewJob& job) { return job.unique_key.empty() && job.depends_on.empty(); }

// Jobs in order: runs of plain jobs in bulk, the others one by one (a unique
// job may match one inserted just before it in the same batch).
Result<std::vector<InsertResult>> SqliteStore::insert_all(std::span<const NewJob> jobs, std::optional<JobId> parent) {
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

Result<std::vector<InsertResult>> SqliteStore::insert(std::span<const NewJob> jobs) {
  if (auto s = rules::validate_batch(jobs); !s) return s.error();
  if (jobs.empty()) return std::vector<InsertResult>{};
  return transact(TxKind::write, "insert", [&]() -> Result<std::vector<InsertResult>> {
    if (auto s = rules::check_dependencies_exist(tx_, jobs); !s) return s.error();
    return insert_all(jobs, std::nullopt);
  });
}

Result<std::vector<InsertResult>> SqliteStore::spawn(const LeaseRef& parent, std::span<const NewJob> children) {
  if (auto s = rules::validate_batch(children); !s) return s.error();
  return transact(TxKind::write, "spawn", [&]() -> Result<std::vector<InsertResult>> {
    if (!live(parent)) return stale(parent);
    if (auto s = rules::check_dependencies_exist(tx_, children); !s) return s.error();
    if (auto s = rules::check_no_cycle(tx_, parent.id, children); !s) return s.error();
    return insert_all(children, parent.id);
  });
}

// --- workers -----------------------------------------------------------------

// ["a","b"]: a list of names bound as one parameter and read with json_each.
std::string json_array(const std::vector<std::string>& names) {
  std::string out = "[";
  for (const auto& name : names) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (unsigned char c : name) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      } else {
        out += static_cast<char>(c);
      }
    }
    out += '"';
  }
  return out + "]";
}

Result<std::vector<Job>> SqliteStore::claim(const ClaimRequest& request) {
  if (request.limit < 1) return make_error(ErrorCode::invalid_argument, "claim limit must be >= 1");
  if (request.lease_for <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "lease_for must be positive");
  const std::string kinds_json = request.kinds.empty() ? std::string() : json_array(request.kinds);
  return transact(TxKind::write, "claim", [&]() -> Result<std::vector<Job>> {
    std::vector<Job> out;
    {
      auto q = db_->query("SELECT paused FROM queues WHERE name = ?");
      q.bind(0, request.queue);
      if (q.step() && q.flag(0)) return out;
    }
    std::vector<JobRow> rows;
    {
      // One statement picks the head of the queue from the partial index and
      // leases it; BEGIN IMMEDIATE makes the pick and the update one step.
      // INDEXED BY: the planner would otherwise take jobs_next_run for the
      // run_at range and sort the whole queue for the priority order. With
      // kinds, the kind (the index's last column) is tested in the index:
      // jobs of other kinds are stepped over without reading their rows.
      auto q = db_->query(
          kinds_json.empty()
              ? "UPDATE jobs SET state = 1, attempt = attempt + 1, lease_token = lease_token + 1, lease_worker = ?1, "
                "lease_expires = ?2, started_at = ?3 "
                "WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim WHERE state = 0 AND queue = ?4 AND run_at <= ?3 "
                "ORDER BY priority, run_at, id LIMIT ?5) RETURNING " PORTER_JOB_COLUMNS
              : "UPDATE jobs SET state = 1, attempt = attempt + 1, lease_token = lease_token + 1, lease_worker = ?1, "
                "lease_expires = ?2, started_at = ?3 "
                "WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim WHERE state = 0 AND queue = ?4 AND run_at <= ?3 "
                "AND kind IN (SELECT value FROM json_each(?6)) "
                "ORDER BY priority, run_at, id LIMIT ?5) RETURNING " PORTER_JOB_COLUMNS);
      q.bind(0, request.worker).bind(1, us(detail::saturating_add(now_, request.lease_for))).bind(2, us(now_));
      q.bind(3, request.queue).bind(4, request.limit);
      if (!kinds_json.empty()) q.bind(5, std::string_view(kinds_json));
      while (q.step()) rows.push_back(read_job(q));
    }
    std::sort(rows.begin(), rows.end(), [](const JobRow& a, const JobRow& b) {
      return std::tie(a.job.priority, a.job.run_at, a.job.id) < std::tie(b.job.priority, b.job.run_at, b.job.id);
    });
    out.reserve(rows.size());
    for (auto& r : rows) out.push_back(load_details(*db_, std::move(r)));
    return out;
  });
}

Result<std::vector<LeaseStatus>> SqliteStore::heartbeat(std::span<const LeaseRef> leases, Duration extend_by) {
  if (extend_by <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "extend_by must be positive");
  return transact(TxKind::write, "heartbeat", [&]() -> Result<std::vector<LeaseStatus>> {
    std::vector<LeaseStatus> out;
    out.reserve(leases.size());
    for (const auto& l : leases) out.push_back(extend_lease(l, extend_by));
    return out;
  });
}

LeaseStatus SqliteStore::extend_lease(const LeaseRef& lease, Duration extend_by) {
  auto q = db_->query(
      "UPDATE jobs SET lease_expires = ?3 WHERE id = ?1 AND state = 1 AND lease_token = ?2 "
      "RETURNING cancel_requested");
  q.bind(0, lease.id).bind(1, static_cast<std::int64_t>(lease.token)).bind(2, us(detail::saturating_add(now_, extend_by)));
  LeaseStatus st;
  if (q.step()) {
    st.held = true;
    st.cancel_requested = q.flag(0);
  }
  return st;
}

Result<std::vector<FinishResult>> SqliteStore::finish(std::span<const Outcome> outcomes) {
  return transact(TxKind::write, "finish", [&]() -> Result<std::vector<FinishResult>> {
    std::vector<FinishResult> out;
    out.reserve(outcomes.size());
    for (const auto& o : outcomes) {
      auto h = live(o.lease);
      if (!h) {
        out.push_back({stale(o.lease), current_state(o.lease.id)});
        continue;
      }
      apply_report(o.lease.id, o.report);
      out.push_back({Status{}, rules::apply_outcome(tx_, *h, o)});
    }
    // Effects may move a job again (a child failing its parent), so report
    // the state after the whole transaction.
    bool effects = !tx_.finals.empty();
    rules::run_effects(tx_);
    for (std::size_t i = 0; effects && i < outcomes.size(); ++i) {
      if (out[i].status) out[i].state = current_state(outcomes[i].lease.id);
    }
    return out;
  });
}

Status SqliteStore::report_progress(const LeaseRef& lease, const Progress& progress) {
  if (auto s = rules::check_progress(progress); !s) return s;
  return transact(TxKind::write, "report_progress", [&]() -> Status {
    if (!live(lease)) return stale(lease);
    store_progress(lease.id, progress);
    return {};
  });
}

Status SqliteStore::add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) {
  return transact(TxKind::write, "add_item_errors", [&]() -> Status {
    if (!live(lease)) return stale(lease);
    store_item_errors(lease.id, errors);
    return {};
  });
}

Result<std::vector<LeaseStatus>> SqliteStore::heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) {
  if (extend_by <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "extend_by must be positive");
  return transact(TxKind::write, "heartbeat", [&]() -> Result<std::vector<LeaseStatus>> {
    std::vector<LeaseStatus> out;
    out.reserve(beats.size());
    for (const Beat& beat : beats) {
      LeaseStatus st = extend_lease(beat.lease, extend_by);
      if (st.held) apply_report(beat.lease.id, beat.report);
      out.push_back(st);
    }
    return out;
  });
}

// --- reports, inside a write transaction -------------------------------------

void SqliteStore::store_progress(JobId id, const Progress& progress) {
  std::string message = clip_message(progress.message);
  auto q = db_->query("UPDATE jobs SET progress_done = ?2, progress_total = ?3, progress_message = ?4 WHERE id = ?1");
  q.bind(0, id).bind(1, progress.done).bind(2, progress.total).bind(3, message);
  q.run();
}

void SqliteStore::store_item_errors(JobId id, std::span<const ItemError> errors) {
  if (errors.empty()) return;
  std::int64_t count = 0;
  {
    auto q = db_->query("SELECT item_error_count FROM jobs WHERE id = ?");
    q.bind(0, id);
    if (q.step()) count = q.i64(0);
  }
  for (const auto& e : errors) {
    if (count >= static_cast<std::int64_t>(kMaxStoredItemErrors)) break;
    std::string item = clip_message(e.item);
    std::string message = clip_message(e.message);
    auto q = db_->query("INSERT INTO item_errors(job_id, seq, item, message) VALUES (?, ?, ?, ?)");
    q.bind(0, id).bind(1, count).bind(2, item).bind(3, message);
    q.run();
    ++count;
  }
  auto q = db_->query("UPDATE jobs SET item_error_count = item_error_count + ? WHERE id = ?");
  q.bind(0, static_cast<std::int64_t>(errors.size())).bind(1, id);
  q.run();
}

void SqliteStore::apply_report(JobId id, const RunReport& report) {
  if (report.progress && rules::check_progress(*report.progress)) store_progress(id, *report.progress);
  store_item_errors(id, report.item_errors);
}

Result<std::vector<JobId>> SqliteStore::rescue_expired() {
  return transact(TxKind::write, "rescue_expired", [&]() -> Result<std::vector<JobId>> {
    std::vector<JobId> ids;
    {
      auto q = db_->query("SELECT id FROM jobs WHERE state = 1 AND lease_expires <= ? ORDER BY lease_expires, id");
      q.bind(0, us(now_));
      while (q.step()) ids.push_back(q.i64(0));
    }
    for (JobId id : ids) {
      if (auto h = head(id); h && h->state == JobState::running) rules::give_up_lease(tx_, *h, "lease expired");
    }
    return ids;
  });
}

Result<std::optional<TimePoint>> SqliteStore::next_run_at(std::string_view queue) {
  return read("next_run_at", [&](Db& db, TimePoint) -> Result<std::optional<TimePoint>> {
    // One seek in jobs_next_run (queue, run_at) WHERE state = 0.
    auto q = db.query("SELECT run_at FROM jobs WHERE state = 0 AND queue = ? ORDER BY run_at LIMIT 1");
    q.bind(0, queue);
    if (q.step() && !q.is_null(0)) return std::optional<TimePoint>(tp(q.i64(0)));
    return std::optional<TimePoint>();
  });
}

// --- control -----------------------------------------------------------------

Result<CancelResult> SqliteStore::cancel(JobId id, std::string_view reason) {
  return transact(TxKind::write, "cancel", [&]() -> Result<CancelResult> {
    auto h = head(id);
    if (!h) return not_found(id);
    return rules::cancel(tx_, *h, reason);
  });
}

Result<std::vector<JobId>> SqliteStore::expire_stuck(Duration older_than) {
  if (older_than < Duration::zero()) return make_error(ErrorCode::invalid_argument, "older_than must not be negative");
  return transact(TxKind::write, "expire_stuck", [&]() -> Result<std::vector<JobId>> {
    std::vector<std::pair<JobId, std::int64_t>> stuck;
    {
      auto q = db_->query(
          "SELECT id, started_at FROM jobs WHERE state = 1 AND started_at < ? ORDER BY lease_expires, id");
      q.bind(0, us(detail::saturating_sub(now_, older_than)));
      while (q.step()) stuck.emplace_back(q.i64(0), q.i64(1));
    }
    std::vector<JobId> ids;
    for (auto [id, started] : stuck) {
      auto h = head(id);
      if (!h || h->state != JobState::running) continue;
      rules::give_up_lease(tx_, *h, "expired as stuck after " + rules::format_age(detail::saturating_diff(now_, tp(started))));
      ids.push_back(id);
    }
    return ids;
  });
}

Status SqliteStore::retry_job(JobId id) {
  return transact(TxKind::write, "retry_job", [&]() -> Status {
    auto h = head(id);
    if (!h) return not_found(id);
    return rules::retry(tx_, *h);
  });
}

Status SqliteStore::discard(JobId id) {
  return transact(TxKind::write, "discard", [&]() -> Status {
    auto h = head(id);
    if (!h) return not_found(id);
    if (!is_final(h->state)) {
      return make_error(ErrorCode::wrong_state, "job " + std::to_string(id) + " is " +
                                                    std::string(to_string(h->state)) + "; only final jobs can be discarded");
    }
    delete_job(id);
    return {};
  });
}

Status SqliteStore::set_queue_paused(std::string_view queue, bool paused) {
  if (auto s = validate(NewJob{.kind = "queue", .queue = std::string(queue)}); !s) return s;
  return transact(TxKind::write, "set_queue_paused", [&]() -> Status {
    bool was_paused = false;
    {
      auto q = db_->query("SELECT paused FROM queues WHERE name = ?");
      q.bind(0, queue);
      was_paused = q.step() && q.flag(0);
    }
    auto q = db_->query(
        "INSERT INTO queues(name, paused) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET paused = excluded.paused");
    q.bind(0, queue).bind(1, paused);
    q.run();
    if (was_paused && !paused) emit(StoreEvent::Type::available, queue, 0);
    return {};
  });
}

Result<std::int64_t> SqliteStore::prune(const PruneRequest& request) {
  if (auto s = detail::check_prune_request(request); !s) return s.error();
  std::int64_t states = 0;  // a bit per JobState
  for (JobState st : request.states) states |= std::int64_t{1} << state_int(st);
  return transact(TxKind::write, "prune", [&]() -> Result<std::int64_t> {
    std::vector<JobId> ids;
    {
      // The oldest finishes first, from jobs_finished (which holds state too).
      auto q = db_->query(
          "SELECT j.id FROM jobs j INDEXED BY jobs_finished WHERE j.finished_at < ?1 AND ((1 << j.state) & ?2) <> 0 "
          "AND j.state IN (3, 4, 5) AND NOT EXISTS "
          "(SELECT 1 FROM jobs p WHERE p.id = j.parent_id AND p.state IN (0, 1, 2)) ORDER BY j.finished_at LIMIT ?3");
      q.bind(0, us(request.finished_before)).bind(1, states).bind(2, request.limit);
      while (q.step()) ids.push_back(q.i64(0));
    }
    for (JobId id : ids) delete_job(id);
    return static_cast<std::int64_t>(ids.size());
  });
}

// --- worker registry ---------------------------------------------------------

Status SqliteStore::announce(const WorkerInfo& worker, Duration ttl) {
  if (auto s = detail::check_worker(worker, ttl); !s) return s;
  return transact(TxKind::write, "announce", [&]() -> Status {
    // Expired entries go first (a crashed engine's), then this worker's old ones.
    {
      auto q = db_->query("DELETE FROM worker_kinds WHERE worker IN (SELECT id FROM workers WHERE expires <= ?1 OR id = ?2)");
      q.bind(0, us(now_)).bind(1, worker.id);
      q.run();
    }
    {
      auto q = db_->query("DELETE FROM workers WHERE expires <= ?1 OR id = ?2");
      q.bind(0, us(now_)).bind(1, worker.id);
      q.run();
    }
    {
      auto q = db_->query("INSERT INTO workers(id, expires) VALUES (?, ?)");
      q.bind(0, worker.id).bind(1, us(detail::saturating_add(now_, ttl)));
      q.run();
    }
    for (const auto& queue : worker.queues) {
      for (const auto& kind : worker.kinds) {
        auto q = db_->query("INSERT OR IGNORE INTO worker_kinds(queue, kind, worker) VALUES (?, ?, ?)");
        q.bind(0, queue).bind(1, kind).bind(2, worker.id);
        q.run();
      }
    }
    return {};
  });
}

Status SqliteStore::retire(std::string_view worker_id) {
  return transact(TxKind::write, "retire", [&]() -> Status {
    for (const char* sql : {"DELETE FROM worker_kinds WHERE worker = ?", "DELETE FROM workers WHERE id = ?"}) {
      auto q = db_->query(sql);
      q.bind(0, worker_id);
      q.run();
    }
    return {};
  });
}

// --- reads -------------------------------------------------------------------

Result<Job> SqliteStore::get(JobId id) {
  return read("get", [&](Db& db, TimePoint) -> Result<Job> {
    JobRow row;
    {
      auto q = db.query("SELECT " PORTER_JOB_COLUMNS " FROM jobs WHERE id = ?");
      q.bind(0, id);
      if (!q.step()) return not_found(id);
      row = read_job(q);
    }
    return load_details(db, std::move(row));
  });
}

Result<JobPage> SqliteStore::list(const JobFilter& filter, std::optional<JobId> cursor, int limit) {
  if (limit < 1) return make_error(ErrorCode::invalid_argument, "limit must be >= 1");
  // The WHERE clause is built from fixed fragments; every value is a bound parameter.
  std::string sql = "SELECT " PORTER_JOB_COLUMNS " FROM jobs WHERE 1";
  int n = 0;
  std::vector<std::function<void(Query&)>> binds;
  auto param = [&](auto value) {
    int i = n++;
    binds.push_back([i, value](Query& q) { q.bind(i, value); });
    return "?" + std::to_string(i + 1);
  };
  if (filter.states.size() == 1 &&
      (filter.states[0] == JobState::failed || filter.states[0] == JobState::cancelled)) {
    // A literal, so the planner can use the partial index jobs_failed / jobs_cancelled.
    sql += filter.states[0] == JobState::failed ? " AND state = 4" : " AND state = 5";
  } else if (!filter.states.empty()) {
    sql += " AND state IN (";
    for (std::size_t i = 0; i < filter.states.size(); ++i) {
      sql += (i ? ", " : "") + param(static_cast<std::int64_t>(filter.states[i]));
    }
    sql += ")";
  }
  if (filter.queue) sql += " AND queue = " + param(std::string_view(*filter.queue));
  if (filter.kind) sql += " AND kind = " + param(std::string_view(*filter.kind));
  if (filter.owner) {
    // The literal lets the planner use the partial index jobs_owner (owner, id).
    sql += " AND owner = " + param(std::string_view(*filter.owner));
    if (!filter.owner->empty()) sql += " AND owner <> ''";
  }
  if (filter.parent_id) sql += " AND parent_id = " + param(*filter.parent_id);
  if (filter.created_after) sql += " AND created_at >= " + param(us(*filter.created_after));
  if (filter.created_before) sql += " AND created_at < " + param(us(*filter.created_before));
  if (cursor) sql += " AND id < " + param(*cursor);
  sql += " ORDER BY id DESC LIMIT " + param(static_cast<std::int64_t>(limit) + 1);
  return read("list", [&](Db& db, TimePoint) -> Result<JobPage> {
    JobPage page;
    std::vector<JobRow> rows;
    {
      auto q = db.prepare_once(sql);
      for (auto& b : binds) b(q);
      while (q.step()) rows.push_back(read_job(q));
    }
    bool more = static_cast<int>(rows.size()) > limit;
    if (more) rows.resize(static_cast<std::size_t>(limit));
    for (auto& r : rows) page.jobs.push_back(load_details(db, std::move(r)));
    if (more) page.next = page.jobs.back().id;
    return page;
  });
}

Duration percentile(std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return Duration(0);
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return Duration(sorted[rank - 1]);
}

// Run-time percentiles come from at most this many of the window's most
// recent finishes (the memory store keeps a ring of the same size), so a
// stats call costs the same however busy the window was.
constexpr std::int64_t kStatsSample = std::int64_t{1} << 16;

Result<Stats> SqliteStore::stats(Duration window) {
  return read("stats", [&](Db& db, TimePoint now) -> Result<Stats> {
    Stats st;
    st.at = now;
    std::map<std::string, QueueInfo> queues;
    {
      auto q = db.query("SELECT name, paused FROM queues");
      while (q.step()) queues[q.text(0)].paused = q.flag(1);
    }
    // Running jobs by (queue, kind): few, read through jobs_leases (state = 1).
    std::map<std::pair<std::string, std::string>, std::int64_t> running;
    {
      auto q = db.query("SELECT queue, kind, count(*) FROM jobs WHERE state = 1 GROUP BY queue, kind");
      while (q.step()) running[{q.text(0), q.text(1)}] = q.i64(2);
    }
    // Live workers' (queue, kind) pairs.
    std::set<std::pair<std::string, std::string>> handled;
    {
      auto q = db.query("SELECT k.queue, k.kind FROM worker_kinds k JOIN workers w ON w.id = k.worker WHERE w.expires > ?");
      q.bind(0, us(now));
      while (q.step()) handled.emplace(q.text(0), q.text(1));
    }
    {
      // job_counts is kept by triggers: a few rows, not a scan of the jobs.
      // Its state 0 counts pending and running jobs together (see schema.cpp).
      auto q = db.query("SELECT queue, kind, state, n FROM job_counts WHERE n > 0 ORDER BY queue, kind, state");
      while (q.step()) {
        std::pair<std::string, std::string> key{q.text(0), q.text(1)};
        auto& qi = queues[key.first];
        std::int64_t c = q.i64(3);
        switch (static_cast<JobState>(q.i32(2))) {
          case JobState::pending:
          case JobState::running: {
            std::int64_t run = 0;
            if (auto it = running.find(key); it != running.end()) run = it->second;
            qi.running += run;
            qi.pending += c - run;
            if (c - run > 0 && !handled.contains(key)) st.unhandled.push_back({key.first, key.second, c - run});
            break;
          }
          case JobState::waiting: qi.waiting += c; break;
          case JobState::completed: qi.completed += c; break;
          case JobState::failed: qi.failed += c; break;
          case JobState::cancelled: qi.cancelled += c; break;
        }
      }
    }
    for (auto& [name, qi] : queues) {
      qi.name = name;
      if (qi.pending > 0) {
        // Scheduled: an index range of jobs_next_run (queue, run_at) WHERE state = 0.
        auto q = db.query("SELECT count(*) FROM jobs INDEXED BY jobs_next_run WHERE state = 0 AND queue = ? AND run_at > ?");
        q.bind(0, name).bind(1, us(now));
        if (q.step()) qi.scheduled = q.i64(0);
        qi.pending -= qi.scheduled;
      }
      // Listed: every queue that has jobs or is paused.
      auto stored = qi.pending + qi.scheduled + qi.running + qi.waiting + qi.completed + qi.failed + qi.cancelled;
      if (stored > 0 || qi.paused) st.queues.push_back(qi);
    }

    std::int64_t since = us(detail::saturating_sub(now, window));
    struct KindAcc {
      KindStats s;
      std::vector<std::int64_t> runs;
      std::vector<std::int64_t> latencies;
    };
    std::map<std::string, KindAcc> kinds;
    {
      // Index-only: jobs_finished holds (finished_at, state, kind, started_at, run_time, queue_latency).
      auto q = db.query(
          "SELECT kind, state, started_at, finished_at, run_time, queue_latency FROM jobs INDEXED BY jobs_finished "
          "WHERE finished_at >= ?1 AND finished_at <= ?2 AND state IN (3, 4) ORDER BY finished_at DESC LIMIT ?3");
      q.bind(0, since).bind(1, us(now)).bind(2, kStatsSample);
      while (q.step()) {
        auto& k = kinds[q.text(0)];
        (static_cast<JobState>(q.i32(1)) == JobState::completed ? k.s.completed : k.s.failed) += 1;
        k.runs.push_back(!q.is_null(4) ? q.i64(4) : q.is_null(2) ? 0 : q.i64(3) - q.i64(2));
        k.latencies.push_back(q.is_null(5) ? 0 : q.i64(5));
      }
    }
    {
      auto q = db.query(
          "SELECT j.kind, count(*) FROM attempt_errors e JOIN jobs j ON j.id = e.job_id "
          "WHERE e.at >= ? AND e.retried = 1 GROUP BY j.kind");
      q.bind(0, since);
      while (q.step()) kinds[q.text(0)].s.retried += q.i64(1);
    }
    for (auto& [kind, k] : kinds) {
      k.s.kind = kind;
      auto done = k.s.completed + k.s.failed;
      k.s.failure_rate = done > 0 ? static_cast<double>(k.s.failed) / static_cast<double>(done) : 0.0;
      std::sort(k.runs.begin(), k.runs.end());
      k.s.p50 = percentile(k.runs, 0.50);
      k.s.p95 = percentile(k.runs, 0.95);
      k.s.p99 = percentile(k.runs, 0.99);
      std::sort(k.latencies.begin(), k.latencies.end());
      k.s.latency_p50 = percentile(k.latencies, 0.50);
      k.s.latency_p95 = percentile(k.latencies, 0.95);
      k.s.latency_p99 = percentile(k.latencies, 0.99);
      st.kinds.push_back(k.s);
    }
    {
      auto q = db.query(
          "SELECT min(started_at), sum(lease_expires <= ?1), count(*) FROM jobs WHERE state = 1");
      q.bind(0, us(now));
      if (q.step() && q.i64(2) > 0) {
        if (!q.is_null(0)) st.oldest_lease_age = detail::saturating_diff(now, tp(q.i64(0)));
        st.expired_leases = q.i64(1);
      }
    }
    return st;
  });
}

// --- opening -----------------------------------------------------------------

// The first 16 bytes of every SQLite database file.
constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};

Status check_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) {
    return make_error(ErrorCode::unavailable, "cannot open '" + path + "': directory '" + dir.string() + "' does not exist");
  }
  auto size = fs::file_size(p, ec);
  if (ec || size == 0) return {};  // new (or empty) database
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error(ErrorCode::unavailable, "cannot read '" + path + "'");
  char header[16] = {};
  in.read(header, sizeof header);
  if (in.gcount() != static_cast<std::streamsize>(sizeof header) || std::string_view(header, 16) != kSqliteMagic) {
    return make_error(ErrorCode::corruption, "'" + path + "' is not a SQLite database; refusing to touch it");
  }
  // With no WAL beside it, the main file holds every page: a file shorter
  // than its header's page count was truncated.
  std::ifstream full(p, std::ios::binary);
  unsigned char h[100] = {};
  full.read(reinterpret_cast<char*>(h), sizeof h);
  if (full.gcount() == 100 && !fs::exists(path + "-wal", ec)) {
    std::uint32_t page_size = (std::uint32_t{h[16]} << 8) | h[17];
    if (page_size == 1) page_size = 65536;
    auto be32 = [&](int o) {
      return (std::uint32_t{h[o]} << 24) | (std::uint32_t{h[o + 1]} << 16) | (std::uint32_t{h[o + 2]} << 8) | h[o + 3];
    };
    std::uint32_t pages = be32(28);
    bool header_size_valid = pages != 0 && be32(24) == be32(92);
    if (header_size_valid && size < static_cast<std::uintmax_t>(pages) * page_size) {
      return make_error(ErrorCode::corruption, "'" + path + "' is truncated: " + std::to_string(size) + " bytes, " +
                                                   std::to_string(pages) + " pages of " + std::to_string(page_size) +
                                                   " expected");
    }
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<Store>> open_sqlite_store(const std::string& path, SqliteOptions options) {
  if (path.empty()) return make_error(ErrorCode::invalid_argument, "the database path is empty");
  if (options.busy_timeout < std::chrono::milliseconds(0)) {
    return make_error(ErrorCode::invalid_argument, "busy_timeout must not be negative");
  }
  bool is_uri = path.rfind("file:", 0) == 0;
  if (!is_uri) {
    if (auto s = check_file(path); !s) return s.error();
  }
  std::unique_ptr<Db> db;
  bool wal = false;
  try {
    db = std::make_unique<Db>(path, kOpenFlags);
    db->exec(("PRAGMA busy_timeout = " + std::to_string(options.busy_timeout.count())).c_str());
    // Validation reads only; journal mode and schema come after it passed.
    if (auto s = detail::check_database(*db, path); !s) return s.error();
    for (int attempt = 0;; ++attempt) {
      try {
        // Switching to WAL takes a lock another opening process may hold.
        // In-memory databases stay in mode "memory".
        auto q = db->query("PRAGMA journal_mode = WAL");
        wal = q.step() && q.text(0) == "wal";
        break;
      } catch (const SqliteError& e) {
        if (!e.busy() || attempt + 1 >= kBusyRetries) throw;
      }
    }
    db->exec(options.durability == Durability::power_loss ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    // A bigger page cache keeps the claim index and hot job pages in memory
    // (SQLite's default is 2 MB); sorts and temporaries stay in memory too.
    db->exec("PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY");
    db->exec("PRAGMA foreign_keys = OFF");
    db->exec(("PRAGMA journal_size_limit = " + std::to_string(std::int64_t{kBackstopPages} * 4096)).c_str());
    // A current schema needs no write, so a read-only database still opens
    // (and its first write fails with `unavailable`).
    for (int attempt = 0; detail::needs_migration(*db); ++attempt) {
      detail::Transaction tx(*db);  // rolled back on any exit that does not commit
      try {
        tx.begin("BEGIN IMMEDIATE");
        auto s = detail::migrate(*db);
        if (!s) return s.error();
        tx.commit();
        break;
      } catch (const SqliteError& e) {
        tx.abandon();
        if (!e.busy() || attempt + 1 >= kBusyRetries) throw;
      }
    }
  } catch (const SqliteError& e) {
    return detail::to_error(e, "opening '" + path + "'");
  }
  std::unique_ptr<Db> reader;
  if (wal) {
    try {
      // The read connection (see the top of the file): query_only, so it can never write.
      reader = std::make_unique<Db>(path, kOpenFlags);
      reader->exec(("PRAGMA busy_timeout = " + std::to_string(options.busy_timeout.count())).c_str());
      reader->exec("PRAGMA query_only = 1; PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY");
    } catch (const SqliteError& e) {
      return detail::to_error(e, "opening the read connection to '" + path + "'");
    }
  }
  auto clock = options.clock ? options.clock : system_clock();
  return std::shared_ptr<Store>(
      std::make_shared<SqliteStore>(std::move(db), std::move(reader), std::move(clock), path, wal));
}

}  // namespace porter
