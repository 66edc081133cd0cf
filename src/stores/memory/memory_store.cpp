// MemoryStore: the in-process Store. No durability; the hot path of the
// fastest configuration (tests, ephemeral work, benchmarks).
//
// Locking. One mutex (`mu_`) guards all job data. Every operation is one short
// critical section, which is what makes each Store operation atomic, workflow
// bookkeeping included (a parent is woken inside the same critical section as
// its last child's transition). The hot operations take batches (claim N,
// finish N, insert N), so the engine pays one lock round-trip per batch, not
// per job. Sharding by queue was considered and rejected: parents, children
// and dependencies cross queues, so a sharded store would need multi-lock
// transactions on exactly the paths that must be atomic. A throwaway
// measurement on the 2-core dev box (1M queued jobs, RelWithDebInfo, machine
// busy with other builds) gave with this one mutex: 2 threads draining with
// claim(64)+finish(64) 2.0-2.9M jobs/s, batch insert (1,000 per call)
// 3.4M jobs/s of CPU time, 234 bytes of RSS per queued job, stats() over a
// full finish ring about 1 ms. One mutex is far from the bottleneck, so it
// stays until a benchmark says otherwise. No lock is held
// while listeners run; listeners have their own reader/writer lock so
// remove_listener() returns only once no call to that listener is in flight.
//
// Layout. Ids are dense and increasing, so jobs live in fixed-size chunks
// indexed by id (a chunk is freed once every job in it was pruned or
// discarded). A job record keeps only what the hot path needs inline;
// strings that repeat (kind, owner, worker) are interned, and the rarely
// used heavy parts (errors, item errors, progress, result, children,
// dependency lists, unique key, description) live behind one pointer that
// stays null for a plain job. Each queue has a `ready` set ordered by
// (priority, run_at, id) holding pending jobs that are due, and a
// `scheduled` set ordered by (run_at, id) for pending jobs due later; claim
// first moves the due part of `scheduled` into `ready` (each job moves once),
// so a claim costs O(log n) per job and never scans future jobs. Running jobs
// are indexed by lease expiry for rescue_expired().
//
// What a transition means (finish, cancel, rescue, retry, where a new job
// starts, what a final job does to its relatives) is decided in src/rules/,
// shared with every store; this file maps it onto the containers above (the
// `Op` of each operation is the rules' transaction adapter). A plain job
// finishing with no relatives takes no lookup beyond its own record.
//
// Choices of this store alone:
//  - next_run_at ignores pauses: it answers about jobs, not about the queue.
//  - Stats over a window come from a ring of the most recent kStatsRing
//    finishes; a window reaching further back sees only those.
//  - prune() walks one log per final state of (finished_at, id) in finish
//    order (a deque: an append per finish, no allocation per job), so a
//    batch costs O(limit) plus the entries it skips (a job retried or
//    discarded since is skipped; one whose parent is still unfinished is
//    moved to the back for a later pass).
//  - list() scans ids newest first in slices of kListSlice ids, releasing
//    the lock between slices, so an administrator's listing never holds up
//    claims for long; a listing by owner walks that owner's ids only. A page
//    is therefore not one snapshot: a job may change while it is assembled.
//  - claim() with kinds skips the queue's ready jobs of other kinds (they
//    keep their place); Stats::unhandled comes from per-queue pending counts
//    by kind kept by set_state(), and the worker registry (announce/retire).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "core/callback_set.h"
#include "core/bounds.h"
#include "rules/rules.h"
#include "porter/store.h"
#include "stores/maintenance_checks.h"

namespace porter {
namespace {

constexpr TimePoint kNever = TimePoint::min();
constexpr std::size_t kChunkBits = 12;
constexpr std::size_t kChunkSize = std::size_t{1} << kChunkBits;
constexpr std::size_t kStatsRing = std::size_t{1} << 16;
constexpr JobId kListSlice = 4096;  // ids list() visits per hold of the lock

// Ready order: priority, then run_at, then id (member order = comparison order).
struct ReadyKey {
  int priority;
  TimePoint run_at;
  JobId id;
  friend bool operator<(const ReadyKey& a, const ReadyKey& b) {
    if (a.priority != b.priority) return a.priority < b.priority;
    if (a.run_at != b.run_at) return a.run_at < b.run_at;
    return a.id < b.id;
  }
};

// Inserts `key`; keys usually arrive in order (new jobs have the largest id
// and the latest run_at), so try the end first: O(1) instead of a descent.
template <class Set, class Key>
void insert_ordered(Set& set, const Key& key) {
  if (set.empty() || *set.rbegin() < key) {
    set.emplace_hint(set.end(), key);
  } else {
    set.insert(key);
  }
}
using TimeKey = std::pair<TimePoint, JobId>;

struct Queue {
  std::string name;
  bool paused = false;
  std::set<ReadyKey> ready;     // pending and due (run_at <= now when it was put here)
  std::set<TimeKey> scheduled;  // pending and due later
  std::array<std::int64_t, 6> counts{};  // stored jobs by JobState
  std::unordered_map<const std::string*, std::int64_t> pending_by_kind;  // interned kind -> pending jobs
  std::int64_t stored() const {
    std::int64_t n = 0;
    for (auto c : counts) n += c;
    return n;
  }
};

// The parts of a job most jobs never use. Null until one of them is needed.
struct Extra {
  std::string unique_key;
  std::string description;
  std::string result;
  std::vector<JobId> depends_on;
  std::vector<JobId> dependents;  // jobs waiting on this one (may include deleted ids)
  std::vector<JobId> children;    // ascending ids
  Progress progress;
  std::vector<AttemptError> errors;
  std::int64_t item_error_count = 0;
  std::vector<ItemError> item_errors;
};

struct Rec {
  JobId id = 0;  // 0: free slot (not yet used, pruned or discarded)
  Queue* queue = nullptr;
  const std::string* kind = nullptr;
  const std::string* owner = nullptr;
  const std::string* worker = nullptr;  // lease holder while running
  std::string args;
  TimePoint run_at{};
  TimePoint created_at{};
  TimePoint started_at = kNever;
  TimePoint finished_at = kNever;
  TimePoint lease_expires = kNever;
  std::uint64_t token = 0;  // grows with every claim; the live lease while running
  JobId parent_id = 0;
  int priority = 0;
  int attempt = 0;
  int max_attempts = kDefaultMaxAttempts;
  int children_total = 0;
  int children_unfinished = 0;
  int deps_unfinished = 0;
  JobState state = JobState::pending;
  ChildFailurePolicy on_failure = ChildFailurePolicy::fail_parent;
  DependencyMode dependency_mode = DependencyMode::all_completed;
  bool cancel_requested = false;
  bool callback_pending = false;
  std::unique_ptr<Extra> extra;

  Extra& ex() {
    if (!extra) extra = std::make_unique<Extra>();
    return *extra;
  }
  bool has_unique_key() const { return extra && !extra->unique_key.empty(); }
};

struct Chunk {
  std::array<Rec, kChunkSize> recs;
  std::size_t live = 0;
};

struct UniqueEntry {
  std::vector<JobId> ids;  // ascending
  int active = 0;          // how many of them are not final
};

// One finish (or retried attempt) for stats().
struct FinishRecord {
  TimePoint at{};
  const std::string* kind = nullptr;
  Duration run_time{0};  // the handler's own
  Duration latency{0};   // due -> started
  rules::RunEnd type = rules::RunEnd::completed;
};

struct PendingEvent {
  StoreEvent::Type type;
  const std::string* queue;
  JobId job;
  JobState state;
  std::uint64_t token = 0;
};

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(std::shared_ptr<Clock> clock) : clock_(clock ? std::move(clock) : system_clock()) {}

  const Clock& clock() const noexcept override { return *clock_; }

  Result<std::vector<InsertResult>> insert(std::span<const NewJob> jobs) override {
    if (auto s = rules::validate_batch(jobs); !s) return s.error();
    Op op(*this);
    if (auto s = rules::check_dependencies_exist(op, jobs); !s) return s.error();
    std::vector<InsertResult> out;
    out.reserve(jobs.size());
    for (const NewJob& job : jobs) out.push_back(insert_one(job, 0, op));
    return out;
  }

  Result<std::vector<Job>> claim(const ClaimRequest& request) override {
    if (request.limit < 1) return make_error(ErrorCode::invalid_argument, "claim limit must be >= 1");
    if (request.lease_for <= Duration::zero()) {
      return make_error(ErrorCode::invalid_argument, "lease_for must be positive");
    }
    std::vector<Job> out;
    Op op(*this);
    auto it = queues_.find(request.queue);
    if (it == queues_.end() || it->second.paused) return out;
    Queue& q = it->second;
    promote_due(q, op.now());
    const std::string* worker = intern(request.worker);
    out.reserve(std::min<std::size_t>(static_cast<std::size_t>(request.limit), q.ready.size()));
    // The kinds asked for, interned (a kind never stored cannot match), and
    // how many pending jobs they have: the scan stops once none can be left.
    std::vector<const std::string*> kinds;
    std::int64_t wanted = 0;
    for (const auto& k : request.kinds) {
      auto interned = strings_.find(k);
      if (interned == strings_.end() || std::find(kinds.begin(), kinds.end(), &*interned) != kinds.end()) continue;
      kinds.push_back(&*interned);
      if (auto n = q.pending_by_kind.find(&*interned); n != q.pending_by_kind.end()) wanted += n->second;
    }
    if (!request.kinds.empty() && wanted == 0) return out;
    auto node = q.ready.begin();
    auto may_match_more = [&] { return request.kinds.empty() || static_cast<std::int64_t>(out.size()) < wanted; };
    while (out.size() < static_cast<std::size_t>(request.limit) && node != q.ready.end() && may_match_more()) {
      Rec& r = *find(node->id);
      if (!request.kinds.empty() && std::find(kinds.begin(), kinds.end(), r.kind) == kinds.end()) {
        ++node;  // another engine's kind: it keeps its place in the queue
        continue;
      }
      node = q.ready.erase(node);
      set_state(r, JobState::running);
      ++r.attempt;
      ++r.token;
      r.worker = worker;
      r.started_at = op.now();
      r.lease_expires = detail::saturating_add(op.now(), request.lease_for);
      insert_ordered(leases_, TimeKey{r.lease_expires, r.id});
      out.push_back(to_job(r));
    }
    return out;
  }

  Result<std::vector<LeaseStatus>> heartbeat(std::span<const LeaseRef> leases, Duration extend_by) override {
    if (extend_by <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "extend_by must be positive");
    std::vector<LeaseStatus> out;
    out.reserve(leases.size());
    Op op(*this);
    for (const LeaseRef& ref : leases) {
      Rec* r = live(ref);
      if (!r) {
        out.push_back({});
        continue;
      }
      set_lease_expiry(*r, detail::saturating_add(op.now(), extend_by));
      out.push_back({true, r->cancel_requested});
    }
    return out;
  }

  Result<std::vector<FinishResult>> finish(std::span<const Outcome> outcomes) override {
    std::vector<FinishResult> out;
    out.reserve(outcomes.size());
    Op op(*this);
    for (const Outcome& o : outcomes) {
      Rec* r = live(o.lease);
      if (!r) {
        out.push_back({stale(o.lease), current_state(o.lease.id)});
        continue;
      }
      apply_report(*r, o.report);
      rules::JobHead h = head_of(*r);
      out.push_back({{}, rules::apply_outcome(op, h, o)});
    }
    rules::run_effects(op);
    // Effects may move a job again (a child failing its parent), so report the
    // state after the whole transaction.
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      if (out[i].status) out[i].state = current_state(outcomes[i].lease.id);
    }
    return out;
  }

  Result<std::vector<InsertResult>> spawn(const LeaseRef& parent, std::span<const NewJob> children) override {
    Op op(*this);
    Rec* p = live(parent);
    if (!p) return stale(parent);
    if (auto s = rules::validate_batch(children); !s) return s.error();
    if (auto s = rules::check_dependencies_exist(op, children); !s) return s.error();
    if (auto s = rules::check_no_cycle(op, p->id, children); !s) return s.error();
    std::vector<InsertResult> out;
    out.reserve(children.size());
    for (const NewJob& job : children) out.push_back(insert_one(job, p->id, op));
    return out;
  }

  Status report_progress(const LeaseRef& lease, const Progress& progress) override {
    if (auto s = rules::check_progress(progress); !s) return s;
    Op op(*this);
    Rec* r = live(lease);
    if (!r) return stale(lease);
    store_progress(*r, progress);
    return {};
  }

  Status add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) override {
    Op op(*this);
    Rec* r = live(lease);
    if (!r) return stale(lease);
    store_item_errors(*r, errors);
    return {};
  }

  Result<std::vector<LeaseStatus>> heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) override {
    if (extend_by <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "extend_by must be positive");
    std::vector<LeaseStatus> out;
    out.reserve(beats.size());
    Op op(*this);
    for (const Beat& beat : beats) {
      Rec* r = live(beat.lease);
      if (!r) {
        out.push_back({});
        continue;
      }
      apply_report(*r, beat.report);
      set_lease_expiry(*r, detail::saturating_add(op.now(), extend_by));
      out.push_back({true, r->cancel_requested});
    }
    return out;
  }

  // --- reports (progress, item errors), under the lock -------------------------

  void store_progress(Rec& r, const Progress& progress) {
    Progress& p = r.ex().progress;
    p.done = progress.done;
    p.total = progress.total;
    p.message = clip_message(progress.message);
  }

  void store_item_errors(Rec& r, std::span<const ItemError> errors) {
    if (errors.empty()) return;
    Extra& x = r.ex();
    x.item_error_count += static_cast<std::int64_t>(errors.size());
    for (const ItemError& e : errors) {
      if (x.item_errors.size() >= kMaxStoredItemErrors) break;
      x.item_errors.push_back({clip_message(e.item), clip_message(e.message)});
    }
  }

  void apply_report(Rec& r, const RunReport& report) {
    if (report.progress && rules::check_progress(*report.progress)) store_progress(r, *report.progress);
    store_item_errors(r, report.item_errors);
  }

  Result<std::vector<JobId>> rescue_expired() override {
    std::vector<JobId> ids;
    Op op(*this);
    while (!leases_.empty() && leases_.begin()->first <= op.now()) {
      JobId id = leases_.begin()->second;
      rules::JobHead h = head_of(*find(id));
      rules::give_up_lease(op, h, "lease expired");
      ids.push_back(id);
    }
    return ids;
  }

  Result<std::optional<TimePoint>> next_run_at(std::string_view queue) override {
    Op op(*this);
    auto it = queues_.find(queue);
    if (it == queues_.end()) return std::optional<TimePoint>{};
    Queue& q = it->second;
    std::optional<TimePoint> best;
    if (!q.scheduled.empty()) best = q.scheduled.begin()->first;
    // `ready` is ordered by priority first: the earliest run_at is the first
    // entry of some priority, so visit one entry per distinct priority.
    for (auto r = q.ready.begin(); r != q.ready.end();
         r = q.ready.lower_bound(ReadyKey{r->priority + 1, kNever, 0})) {
      if (!best || r->run_at < *best) best = r->run_at;
    }
    return best;
  }

  Result<CancelResult> cancel(JobId id, std::string_view reason) override {
    Op op(*this);
    Rec* r = find(id);
    if (!r) return not_found(id);
    rules::JobHead h = head_of(*r);
    return rules::cancel(op, h, reason);
  }

  Result<std::vector<JobId>> expire_stuck(Duration older_than) override {
    if (older_than < Duration::zero()) return make_error(ErrorCode::invalid_argument, "older_than must not be negative");
    std::vector<JobId> ids;
    Op op(*this);
    for (const auto& [expires, id] : leases_) {
      if (detail::saturating_diff(op.now(), find(id)->started_at) > older_than) ids.push_back(id);
    }
    for (JobId id : ids) {
      rules::JobHead h = head_of(*find(id));
      rules::give_up_lease(op, h, "expired as stuck after " + rules::format_age(detail::saturating_diff(op.now(), *h.started_at)));
    }
    return ids;
  }

  Status retry_job(JobId id) override {
    Op op(*this);
    Rec* r = find(id);
    if (!r) return not_found(id);
    rules::JobHead h = head_of(*r);
    return rules::retry(op, h);
  }

  Status discard(JobId id) override {
    Op op(*this);
    Rec* r = find(id);
    if (!r) return not_found(id);
    if (!is_final(r->state)) {
      return make_error(ErrorCode::wrong_state, "job " + std::to_string(id) + " is " +
                                                    std::string(to_string(r->state)) + "; only final jobs can be discarded");
    }
    erase(*r);
    return {};
  }

  Status set_queue_paused(std::string_view queue, bool paused) override {
    if (auto s = validate(NewJob{.kind = "queue", .queue = std::string(queue)}); !s) return s;
    Op op(*this);
    Queue& q = queue_named(queue);
    bool resumed = q.paused && !paused;
    q.paused = paused;
    if (resumed && (!q.ready.empty() || !q.scheduled.empty())) op.available(q, 0);
    return {};
  }

  Result<std::int64_t> prune(const PruneRequest& request) override {
    if (auto s = detail::check_prune_request(request); !s) return s.error();
    Op op(*this);
    std::int64_t pruned = 0;
    for (JobState state : request.states) {
      auto& log = finished_log(state);
      // Entries looked at in this call: deleted, stale or put back. Bounded,
      // so a log full of jobs whose parent is unfinished costs one pass at most.
      std::size_t budget = log.size();
      while (pruned < request.limit && budget > 0 && !log.empty() && log.front().first < request.finished_before) {
        --budget;
        auto [finished_at, id] = log.front();
        log.pop_front();
        Rec* r = find(id);
        if (!r || r->state != state || r->finished_at != finished_at) continue;  // retried or deleted since
        if (const Rec* p = find(r->parent_id); p && !is_final(p->state)) {
          log.emplace_back(finished_at, id);  // its parent still needs it: look again later
          continue;
        }
        erase(*r);
        ++pruned;
      }
    }
    return pruned;
  }

  Status announce(const WorkerInfo& worker, Duration ttl) override {
    if (auto s = detail::check_worker(worker, ttl); !s) return s;
    Op op(*this);
    std::erase_if(workers_, [&](const auto& w) { return w.second.expires <= op.now(); });
    Worker& w = workers_[worker.id];
    w.expires = detail::saturating_add(op.now(), ttl);
    w.handles.clear();
    for (const auto& q : worker.queues) {
      for (const auto& k : worker.kinds) w.handles.emplace(q, k);
    }
    return {};
  }

  Status retire(std::string_view worker_id) override {
    Op op(*this);
    if (auto it = workers_.find(worker_id); it != workers_.end()) workers_.erase(it);
    return {};
  }

  Result<Job> get(JobId id) override {
    Op op(*this);
    const Rec* r = find(id);
    if (!r) return not_found(id);
    return to_job(*r);
  }

  Result<JobPage> list(const JobFilter& filter, std::optional<JobId> cursor, int limit) override {
    if (limit < 1) return make_error(ErrorCode::invalid_argument, "list limit must be >= 1");
    JobPage page;
    auto matches = [&](const Rec& r) {
      if (!filter.states.empty() &&
          std::find(filter.states.begin(), filter.states.end(), r.state) == filter.states.end()) {
        return false;
      }
      if (filter.queue && r.queue->name != *filter.queue) return false;
      if (filter.kind && *r.kind != *filter.kind) return false;
      if (filter.owner && (r.owner ? *r.owner : std::string()) != *filter.owner) return false;
      if (filter.parent_id && r.parent_id != *filter.parent_id) return false;
      if (filter.created_after && r.created_at < *filter.created_after) return false;
      if (filter.created_before && r.created_at >= *filter.created_before) return false;
      return true;
    };
    // Returns false once the page is full and one more match proves a next page.
    auto visit = [&](const Rec& r) {
      if (!matches(r)) return true;
      if (page.jobs.size() == static_cast<std::size_t>(limit)) {
        page.next = page.jobs.back().id;
        return false;
      }
      page.jobs.push_back(to_job(r));
      return true;
    };
    // Candidate ids below `below`, newest first, at most kListSlice per call;
    // returns false when there are none left.
    std::function<bool(JobId below, std::vector<JobId>& out)> candidates;
    if (filter.parent_id) {
      candidates = [&](JobId below, std::vector<JobId>& out) {
        // Children are listed by their parent: no scan of the whole store.
        Rec* p = find(*filter.parent_id);
        if (!p || !p->extra) return false;
        const auto& kids = p->extra->children;
        auto end = std::lower_bound(kids.begin(), kids.end(), below);
        for (auto it = end; it != kids.begin() && out.size() < kListSlice;) out.push_back(*--it);
        return !out.empty();
      };
    } else if (filter.owner && !filter.owner->empty()) {
      candidates = [&](JobId below, std::vector<JobId>& out) {
        auto owner = strings_.find(*filter.owner);
        if (owner == strings_.end()) return false;
        auto it = by_owner_.find(&*owner);
        if (it == by_owner_.end()) return false;
        const auto& ids = it->second.ids;
        auto end = std::lower_bound(ids.begin(), ids.end(), below);
        for (auto i = end; i != ids.begin() && out.size() < kListSlice;) out.push_back(*--i);
        return !out.empty();
      };
    } else {
      candidates = [&](JobId below, std::vector<JobId>& out) {
        for (JobId id = below - 1; id >= 1 && out.size() < kListSlice; --id) out.push_back(id);
        return !out.empty();
      };
    }
    std::vector<JobId> slice;
    slice.reserve(kListSlice);
    JobId below = cursor ? *cursor : std::numeric_limits<JobId>::max();
    for (bool more = true; more;) {
      std::unique_lock lock(mu_);  // one slice per hold: claims and finishes run between slices
      if (below > next_id_) below = next_id_;
      slice.clear();
      if (!candidates(below, slice)) break;
      for (JobId id : slice) {
        if (const Rec* r = find(id); r && !visit(*r)) {
          more = false;
          break;
        }
      }
      below = slice.back();
    }
    return page;
  }

  Result<Stats> stats(Duration window) override {
    Stats s;
    Op op(*this);
    s.at = op.now();
    for (auto& [name, q] : queues_) {
      if (q.stored() == 0 && !q.paused) continue;
      promote_due(q, op.now());
      QueueInfo info{.name = name, .paused = q.paused};
      info.pending = static_cast<std::int64_t>(q.ready.size());
      info.scheduled = static_cast<std::int64_t>(q.scheduled.size());
      info.running = q.counts[static_cast<std::size_t>(JobState::running)];
      info.waiting = q.counts[static_cast<std::size_t>(JobState::waiting)];
      info.completed = q.counts[static_cast<std::size_t>(JobState::completed)];
      info.failed = q.counts[static_cast<std::size_t>(JobState::failed)];
      info.cancelled = q.counts[static_cast<std::size_t>(JobState::cancelled)];
      s.queues.push_back(std::move(info));
    }
    // Per kind over the window, from the ring of recent finishes.
    struct Acc {
      KindStats stats;
      std::vector<Duration> run_times;
      std::vector<Duration> latencies;
    };
    std::unordered_map<const std::string*, Acc> by_kind;  // interned kind -> totals
    const TimePoint since = detail::saturating_sub(op.now(), window);
    // Newest first: the ring is in finish order, so stop at the first record
    // older than the window.
    for (std::size_t n = 0; n < ring_.size(); ++n) {
      const FinishRecord& f = ring_[(ring_next_ + ring_.size() - 1 - n) % ring_.size()];
      if (f.at < since) break;
      if (f.at > op.now()) continue;
      Acc& a = by_kind[f.kind];
      switch (f.type) {
        case rules::RunEnd::completed: ++a.stats.completed; break;
        case rules::RunEnd::failed: ++a.stats.failed; break;
        case rules::RunEnd::retried: ++a.stats.retried; continue;
      }
      a.run_times.push_back(f.run_time);
      a.latencies.push_back(f.latency);
    }
    std::map<std::string_view, Acc*> kinds;  // by name, for a stable order
    for (auto& [kind, a] : by_kind) kinds.emplace(*kind, &a);
    for (auto& [kind, acc] : kinds) {
      Acc& a = *acc;
      a.stats.kind = std::string(kind);
      auto finished = a.stats.completed + a.stats.failed;
      if (finished > 0) a.stats.failure_rate = static_cast<double>(a.stats.failed) / static_cast<double>(finished);
      a.stats.p50 = percentile(a.run_times, 0.50);
      a.stats.p95 = percentile(a.run_times, 0.95);
      a.stats.p99 = percentile(a.run_times, 0.99);
      a.stats.latency_p50 = percentile(a.latencies, 0.50);
      a.stats.latency_p95 = percentile(a.latencies, 0.95);
      a.stats.latency_p99 = percentile(a.latencies, 0.99);
      s.kinds.push_back(std::move(a.stats));
    }
    for (const auto& [expires, id] : leases_) {
      const Rec& r = *find(id);
      Duration age = detail::saturating_diff(op.now(), r.started_at);
      if (!s.oldest_lease_age || age > *s.oldest_lease_age) s.oldest_lease_age = age;
      if (expires <= op.now()) ++s.expired_leases;
    }
    std::set<std::pair<std::string_view, std::string_view>> handled;
    for (const auto& [id, w] : workers_) {
      if (w.expires > op.now()) handled.insert(w.handles.begin(), w.handles.end());
    }
    for (const auto& [name, q] : queues_) {
      std::map<std::string_view, std::int64_t> orphans;  // by kind, for a stable order
      for (const auto& [kind, n] : q.pending_by_kind) {
        if (n > 0 && !handled.contains({name, *kind})) orphans.emplace(*kind, n);
      }
      for (const auto& [kind, n] : orphans) s.unhandled.push_back({name, std::string(kind), n});
    }
    return s;
  }

  std::uint64_t add_listener(Listener listener) override { return listeners_.add(std::move(listener)); }
  void remove_listener(std::uint64_t id) override { listeners_.remove(id); }


 private:
  // One operation: holds the store lock for its lifetime, and is the rules'
  // transaction adapter (rules::Tx) over this store's containers. It applies
  // the workflow effects before unlocking and delivers events after.
  class Op final : public rules::Tx {
   public:
    explicit Op(MemoryStore& store) : store_(store), lock_(store.mu_), now_(store.clock_->now()) {}
    ~Op() {
      rules::run_effects(*this);
      lock_.unlock();
      store_.notify(events_);
    }
    Op(const Op&) = delete;
    Op& operator=(const Op&) = delete;

    TimePoint now() const override { return now_; }
    std::optional<rules::JobHead> read(JobId id) override {
      Rec* r = store_.find(id);
      if (!r) return std::nullopt;
      return head_of(*r);
    }
    void write(const rules::JobHead& h) override { store_.write(rec(h), h, now_); }
    void unfinished_children(JobId id, std::vector<JobId>& out) override {
      const Rec* r = store_.find(id);
      if (!r || !r->extra) return;
      for (JobId c : r->extra->children) {
        if (const Rec* k = store_.find(c); k && !is_final(k->state)) out.push_back(c);
      }
    }
    void dependents(JobId id, std::vector<JobId>& out) override {
      if (const Rec* r = store_.find(id); r && r->extra) {
        out.insert(out.end(), r->extra->dependents.begin(), r->extra->dependents.end());
      }
    }
    void dependencies(JobId id, std::vector<JobId>& out) override {
      if (const Rec* r = store_.find(id); r && r->extra) {
        out.insert(out.end(), r->extra->depends_on.begin(), r->extra->depends_on.end());
      }
    }
    void add_children(JobId parent, int n) override {
      Rec& p = *store_.find(parent);
      p.children_total += n;
      p.children_unfinished += n;
    }
    std::string kind_of(JobId id) override {
      const Rec* r = store_.find(id);
      return r ? *r->kind : std::string();
    }
    std::string last_error(JobId id) override {
      const Rec* r = store_.find(id);
      return r && r->extra && !r->extra->errors.empty() ? r->extra->errors.back().message : std::string();
    }
    void add_error(const rules::JobHead& h, std::string_view message, bool permanent, bool) override {
      rec(h).ex().errors.push_back({h.attempt, now_, clip_message(message), permanent});
    }
    void set_result(JobId id, std::string_view result) override { store_.find(id)->ex().result = result; }
    void record_run(const rules::JobHead& h, rules::RunEnd end, Duration run_time, Duration latency) override {
      store_.record_finish({now_, rec(h).kind, run_time, latency, end});
    }
    void emit(StoreEvent::Type type, const rules::JobHead& h) override {
      const Rec& r = rec(h);
      if (type == StoreEvent::Type::available) {
        available(*r.queue, r.id);
      } else {
        events_.push_back({type, &r.queue->name, r.id, h.state, h.token});
      }
    }

    void available(const Queue& q, JobId id) {
      for (const PendingEvent& e : events_) {
        if (e.type == StoreEvent::Type::available && e.queue == &q.name) return;  // one per queue is enough
      }
      events_.push_back({StoreEvent::Type::available, &q.name, id, JobState::pending});
    }

   private:
    // The record behind a head read in this operation (records never move while mu_ is held).
    Rec& rec(const rules::JobHead& h) { return h.handle ? *static_cast<Rec*>(h.handle) : *store_.find(h.id); }

    MemoryStore& store_;
    std::unique_lock<std::mutex> lock_;
    const TimePoint now_;
    std::vector<PendingEvent> events_;
  };

  static rules::JobHead head_of(Rec& r) {
    rules::JobHead h;
    h.handle = &r;
    h.id = r.id;
    h.state = r.state;
    h.run_at = r.run_at;
    if (r.started_at != kNever) h.started_at = r.started_at;
    if (r.finished_at != kNever) h.finished_at = r.finished_at;
    h.attempt = r.attempt;
    h.max_attempts = r.max_attempts;
    h.cancel_requested = r.cancel_requested;
    h.callback_pending = r.callback_pending;
    h.parent_id = r.parent_id;
    h.on_failure = r.on_failure;
    h.dependency_mode = r.dependency_mode;
    h.children_total = r.children_total;
    h.children_unfinished = r.children_unfinished;
    h.dependencies_unfinished = r.deps_unfinished;
    h.has_dependents = r.extra && !r.extra->dependents.empty();
    h.token = r.token;
    return h;
  }

  // Stores a head the rules wrote, keeping the queue indexes and leases in step.
  void write(Rec& r, const rules::JobHead& h, TimePoint now) {
    const bool becomes_final = !is_final(r.state) && is_final(h.state);
    if (r.state != h.state || (h.state == JobState::pending && r.run_at != h.run_at)) {
      if (r.state == JobState::pending) unqueue(r);
      if (r.state == JobState::running && h.state != JobState::running) drop_lease(r);
      set_state(r, h.state);
      r.run_at = h.run_at;
      if (h.state == JobState::pending) enqueue(r, now);
    } else {
      r.run_at = h.run_at;
    }
    r.attempt = h.attempt;
    r.max_attempts = h.max_attempts;
    r.cancel_requested = h.cancel_requested;
    r.callback_pending = h.callback_pending;
    r.children_unfinished = h.children_unfinished;
    r.deps_unfinished = h.dependencies_unfinished;
    r.finished_at = h.finished_at ? *h.finished_at : kNever;
    if (becomes_final) finished_log(h.state).emplace_back(r.finished_at, r.id);  // prune's order
  }

  // --- lookups (mu_ held) ----------------------------------------------------

  Rec* find(JobId id) {
    if (id <= 0 || id >= next_id_) return nullptr;
    auto index = static_cast<std::size_t>(id - 1);
    Chunk* c = chunks_[index >> kChunkBits].get();
    if (!c) return nullptr;
    Rec& r = c->recs[index & (kChunkSize - 1)];
    return r.id == 0 ? nullptr : &r;
  }

  // The job when `ref` is its live lease.
  Rec* live(const LeaseRef& ref) {
    Rec* r = find(ref.id);
    if (!r || r->state != JobState::running || r->token != ref.token) return nullptr;
    return r;
  }

  JobState current_state(JobId id) {
    const Rec* r = find(id);
    return r ? r->state : JobState::pending;
  }

  static Error not_found(JobId id) { return make_error(ErrorCode::not_found, "no job " + std::to_string(id)); }
  static Error stale(const LeaseRef& ref) {
    return make_error(ErrorCode::stale_lease, "job " + std::to_string(ref.id) + " is not held by lease token " +
                                                  std::to_string(ref.token));
  }

  const std::string* intern(const std::string& s) {
    if (auto it = strings_.find(s); it != strings_.end()) return &*it;  // no node allocated on the hot path
    return &*strings_.insert(s).first;
  }

  Queue& queue_named(std::string_view name) {
    auto it = queues_.find(name);
    if (it == queues_.end()) {
      it = queues_.emplace(std::string(name), Queue{}).first;
      it->second.name = it->first;
    }
    return it->second;
  }

  // --- state bookkeeping (mu_ held) -------------------------------------------

  // The one place a stored job changes state: keeps queue counts and unique
  // "active" counts in step.
  void set_state(Rec& r, JobState s) {
    --r.queue->counts[static_cast<std::size_t>(r.state)];
    ++r.queue->counts[static_cast<std::size_t>(s)];
    if ((r.state == JobState::pending) != (s == JobState::pending)) {
      r.queue->pending_by_kind[r.kind] += s == JobState::pending ? 1 : -1;
    }
    if (r.has_unique_key() && is_final(r.state) != is_final(s)) {
      unique_.at(unique_index_key(*r.kind, r.extra->unique_key)).active += is_final(s) ? -1 : 1;
    }
    r.state = s;
  }

  // Puts a pending job into its queue's ready or scheduled index.
  static void enqueue(Rec& r, TimePoint now) {
    if (r.run_at <= now) {
      insert_ordered(r.queue->ready, ReadyKey{r.priority, r.run_at, r.id});
    } else {
      insert_ordered(r.queue->scheduled, TimeKey{r.run_at, r.id});
    }
  }

  // Takes a pending job out of its queue's ready/scheduled index.
  static void unqueue(Rec& r) {
    if (r.queue->ready.erase({r.priority, r.run_at, r.id}) == 0) r.queue->scheduled.erase({r.run_at, r.id});
  }

  // Moves the jobs of `q` that are due by `now` from `scheduled` to `ready`.
  void promote_due(Queue& q, TimePoint now) {
    while (!q.scheduled.empty() && q.scheduled.begin()->first <= now) {
      auto [run_at, id] = *q.scheduled.begin();
      q.scheduled.erase(q.scheduled.begin());
      insert_ordered(q.ready, ReadyKey{find(id)->priority, run_at, id});
    }
  }

  void drop_lease(Rec& r) {
    leases_.erase({r.lease_expires, r.id});
    r.lease_expires = kNever;
    r.worker = nullptr;
  }

  void set_lease_expiry(Rec& r, TimePoint expires) {
    leases_.erase({r.lease_expires, r.id});
    r.lease_expires = expires;
    leases_.emplace(expires, r.id);
  }

  void record_finish(const FinishRecord& f) {
    if (ring_.size() < kStatsRing) {
      ring_.push_back(f);
    } else {
      ring_[ring_next_] = f;
    }
    ring_next_ = (ring_next_ + 1) % kStatsRing;  // the oldest record once the ring is full
  }

  // --- insertion (mu_ held) ---------------------------------------------------

  static std::string unique_index_key(std::string_view kind, std::string_view key) {
    std::string k;
    k.reserve(kind.size() + 1 + key.size());
    k.append(kind).push_back('\x1f');  // kinds have no control characters: unambiguous
    k.append(key);
    return k;
  }

  // The existing job that makes `job` a duplicate, if any.
  JobId find_duplicate(const NewJob& job, const UniqueEntry& e, TimePoint now) {
    for (auto it = e.ids.rbegin(); it != e.ids.rend(); ++it) {
      const Rec& r = *find(*it);
      switch (job.unique_scope) {
        case UniqueScope::always: return r.id;
        case UniqueScope::active:
          if (e.active == 0) return 0;
          if (!is_final(r.state)) return r.id;
          break;
        case UniqueScope::period:
          // Newest first; ids grow with created_at, so the first one outside the period ends the search.
          if (now < detail::saturating_add(r.created_at, job.unique_period)) return r.id;
          return 0;
      }
    }
    return 0;
  }

  std::deque<TimeKey>& finished_log(JobState s) {
    return finished_[static_cast<std::size_t>(s) - static_cast<std::size_t>(JobState::completed)];
  }

  // Deleted ids stay in their owner's list until they make up half of it;
  // then the list is compacted (amortized O(1) per deletion).
  void forget_owned(const Rec& r) {
    OwnerIds& o = by_owner_[r.owner];
    if (++o.deleted * 2 <= o.ids.size() || o.ids.size() < 64) return;
    std::erase_if(o.ids, [&](JobId id) { return id == r.id || find(id) == nullptr; });
    o.deleted = 0;
  }

  Rec& allocate() {
    auto index = static_cast<std::size_t>(next_id_ - 1);
    std::size_t ci = index >> kChunkBits;
    if (ci == chunks_.size()) chunks_.push_back(std::make_unique<Chunk>());
    Chunk& c = *chunks_[ci];
    ++c.live;
    Rec& r = c.recs[index & (kChunkSize - 1)];
    r.id = next_id_++;
    return r;
  }

  // Inserts one validated job (dependencies known to exist).
  InsertResult insert_one(const NewJob& job, JobId parent_id, Op& op) {
    UniqueEntry* unique = nullptr;
    if (!job.unique_key.empty()) {
      unique = &unique_[unique_index_key(job.kind, job.unique_key)];
      if (JobId dup = find_duplicate(job, *unique, op.now())) return {dup, true};
    }
    Rec& r = allocate();
    r.queue = &queue_named(job.queue);
    r.kind = intern(job.kind);
    r.owner = job.owner.empty() ? nullptr : intern(job.owner);
    if (r.owner) by_owner_[r.owner].ids.push_back(r.id);  // ids grow: stays sorted
    r.args = job.args;
    r.priority = job.priority;
    r.run_at = resolve_run_at(job, op.now());
    r.created_at = op.now();
    r.max_attempts = job.max_attempts > 0 ? job.max_attempts : kDefaultMaxAttempts;
    r.on_failure = job.on_failure;
    r.dependency_mode = job.dependency_mode;
    r.parent_id = parent_id;
    if (!job.unique_key.empty()) r.ex().unique_key = job.unique_key;
    if (!job.description.empty()) r.ex().description = job.description;
    // Counted as waiting until placed, so set_state() below keeps counts right.
    r.state = JobState::waiting;
    ++r.queue->counts[static_cast<std::size_t>(JobState::waiting)];
    if (unique) {
      unique->ids.push_back(r.id);
      ++unique->active;
    }
    if (parent_id != 0) {
      find(parent_id)->ex().children.push_back(r.id);
      op.add_children(parent_id, 1);
    }
    for (JobId d : job.depends_on) {
      Extra& x = r.ex();
      if (std::find(x.depends_on.begin(), x.depends_on.end(), d) != x.depends_on.end()) continue;
      x.depends_on.push_back(d);
      // Linked whatever its state: a retried job may wait for it again.
      find(d)->ex().dependents.push_back(r.id);
    }
    rules::JobHead h = head_of(r);
    std::span<const JobId> deps;
    if (r.extra) deps = r.extra->depends_on;
    rules::place_new_job(op, h, deps);
    return {r.id, false};
  }

  // Deletes a final job.
  void erase(Rec& r) {
    if (r.has_unique_key()) {
      auto it = unique_.find(unique_index_key(*r.kind, r.extra->unique_key));
      auto& ids = it->second.ids;
      ids.erase(std::find(ids.begin(), ids.end(), r.id));
      if (ids.empty()) unique_.erase(it);
    }
    if (Rec* p = find(r.parent_id); p && p->extra) {
      auto& kids = p->extra->children;
      if (auto it = std::lower_bound(kids.begin(), kids.end(), r.id); it != kids.end() && *it == r.id) kids.erase(it);
    }
    --r.queue->counts[static_cast<std::size_t>(r.state)];
    if (r.owner) forget_owned(r);
    auto index = static_cast<std::size_t>(r.id - 1);
    r = Rec{};
    std::size_t ci = index >> kChunkBits;
    Chunk& c = *chunks_[ci];
    // A chunk every id of which was handed out and deleted is freed.
    if (--c.live == 0 && static_cast<std::size_t>(next_id_ - 1) >= (ci + 1) * kChunkSize) chunks_[ci].reset();
  }

  Job to_job(const Rec& r) const {
    Job j;
    j.id = r.id;
    j.kind = *r.kind;
    j.args = r.args;
    j.queue = r.queue->name;
    j.priority = r.priority;
    j.state = r.state;
    j.run_at = r.run_at;
    j.attempt = r.attempt;
    j.max_attempts = r.max_attempts;
    if (r.owner) j.owner = *r.owner;
    if (r.parent_id != 0) j.parent_id = r.parent_id;
    j.on_failure = r.on_failure;
    j.dependency_mode = r.dependency_mode;
    j.created_at = r.created_at;
    if (r.started_at != kNever) j.started_at = r.started_at;
    if (r.finished_at != kNever) j.finished_at = r.finished_at;
    if (r.state == JobState::running) j.lease = Lease{r.token, r.worker ? *r.worker : std::string(), r.lease_expires};
    j.cancel_requested = r.cancel_requested;
    j.callback_pending = r.callback_pending;
    j.children_total = r.children_total;
    j.children_unfinished = r.children_unfinished;
    j.dependencies_unfinished = r.deps_unfinished;
    if (const Extra* x = r.extra.get()) {
      j.unique_key = x->unique_key;
      j.description = x->description;
      j.depends_on = x->depends_on;
      j.progress = x->progress;
      j.errors = x->errors;
      j.item_error_count = x->item_error_count;
      j.item_errors = x->item_errors;
      j.result = x->result;
    }
    return j;
  }

  static Duration percentile(std::vector<Duration>& v, double p) {
    if (v.empty()) return Duration{0};
    // Nearest rank: the smallest value with at least p of the values at or below it.
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    auto k = rank == 0 ? 0 : rank - 1;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
  }

  // --- listeners ----------------------------------------------------------------

  void notify(const std::vector<PendingEvent>& events) {
    listeners_.notify(events, [](const PendingEvent& e) { return StoreEvent{e.type, *e.queue, e.job, e.state, e.token}; });
  }

  const std::shared_ptr<Clock> clock_;

  std::mutex mu_;  // guards everything below down to listeners_
  std::vector<std::unique_ptr<Chunk>> chunks_;
  JobId next_id_ = 1;
  std::map<std::string, Queue, std::less<>> queues_;  // never erased: Rec::queue and event names point here
  std::unordered_set<std::string> strings_;           // interned kinds, owners, workers (node-stable)
  std::unordered_map<std::string, UniqueEntry> unique_;  // by unique_index_key(kind, key)
  std::set<TimeKey> leases_;                            // running jobs by lease expiry
  std::vector<FinishRecord> ring_;                      // recent finishes for stats()
  std::array<std::deque<TimeKey>, 3> finished_;         // completed, failed, cancelled: (finished_at, id) in finish order
  struct OwnerIds {
    std::vector<JobId> ids;    // ascending; may hold deleted ids
    std::size_t deleted = 0;   // deletions since the last compaction
  };
  std::unordered_map<const std::string*, OwnerIds> by_owner_;  // interned owner -> their jobs
  struct Worker {
    TimePoint expires{};
    std::set<std::pair<std::string, std::string>> handles;  // (queue, kind)
  };
  std::map<std::string, Worker, std::less<>> workers_;  // the registry, by worker id
  std::size_t ring_next_ = 0;

  detail::CallbackSet<StoreEvent> listeners_;  // its own lock, never held with mu_
};

}  // namespace

std::shared_ptr<Store> make_memory_store(std::shared_ptr<Clock> clock) {
  return std::make_shared<MemoryStore>(std::move(clock));
}

}  // namespace porter
