// PgStore: control, the worker registry and reads (see pg_store.h).
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "core/bounds.h"
#include "rules/rules.h"
#include "stores/maintenance_checks.h"
#include "stores/postgres/pg_store.h"
#include "stores/postgres/pg_transact.h"

namespace porter::detail {

namespace {

Error not_found(JobId id) { return make_error(ErrorCode::not_found, "no job " + std::to_string(id)); }

Duration percentile(std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return Duration(0);
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return Duration(sorted[rank - 1]);
}

// Run-time percentiles come from at most this many of the window's most
// recent finishes (as in the other stores).
constexpr std::int64_t kStatsSample = std::int64_t{1} << 16;

}  // namespace

// --- control -----------------------------------------------------------------

Result<CancelResult> PgStore::cancel(JobId id, std::string_view reason) {
  return transact("cancel", [&](Session& s) -> Result<CancelResult> {
    auto h = s.head(id);
    if (!h) return not_found(id);
    return rules::cancel(s, *h, reason);
  });
}

Result<std::vector<JobId>> PgStore::expire_stuck(Duration older_than) {
  if (older_than < Duration::zero()) return make_error(ErrorCode::invalid_argument, "older_than must not be negative");
  return transact("expire_stuck", [&](Session& s) -> Result<std::vector<JobId>> {
    std::vector<std::pair<JobId, std::int64_t>> stuck;
    {
      auto q = s.conn().exec("SELECT id, started_at FROM jobs WHERE state = 1 AND started_at < $1 ORDER BY id",
                             Params().i64(us(saturating_sub(s.now(), older_than))));
      for (int i = 0; i < q.size(); ++i) stuck.emplace_back(q.i64(i, 0), q.i64(i, 1));
    }
    std::vector<JobId> ids;
    for (auto [id, started] : stuck) {
      auto h = s.head(id);
      if (!h || h->state != JobState::running) continue;
      rules::give_up_lease(s, *h, "expired as stuck after " + rules::format_age(saturating_diff(s.now(), tp(started))));
      ids.push_back(id);
    }
    return ids;
  });
}

Status PgStore::retry_job(JobId id) {
  return transact("retry_job", [&](Session& s) -> Status {
    auto h = s.head(id);
    if (!h) return not_found(id);
    return rules::retry(s, *h);
  });
}

Status PgStore::discard(JobId id) {
  return transact("discard", [&](Session& s) -> Status {
    auto h = s.head(id);
    if (!h) return not_found(id);
    if (!is_final(h->state)) {
      return make_error(ErrorCode::wrong_state, "job " + std::to_string(id) + " is " + std::string(to_string(h->state)) +
                                                    "; only final jobs can be discarded");
    }
    s.delete_job(id);
    return {};
  });
}

Status PgStore::set_queue_paused(std::string_view queue, bool paused) {
  if (auto s = validate(NewJob{.kind = "queue", .queue = std::string(queue)}); !s) return s;
  return transact("set_queue_paused", [&](Session& s) -> Status {
    auto old = s.conn().exec("SELECT paused FROM queues WHERE name = $1 FOR UPDATE", Params().bytes(queue));
    const bool was_paused = !old.empty() && old.flag(0, 0);
    s.conn().exec(
        "INSERT INTO queues(name, paused) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
        Params().bytes(queue).flag(paused));
    if (was_paused && !paused) s.emit(StoreEvent::Type::available, queue, 0);
    return {};
  });
}

Result<std::int64_t> PgStore::prune(const PruneRequest& request) {
  if (auto s = check_prune_request(request); !s) return s.error();
  std::vector<std::int64_t> states;
  for (JobState st : request.states) states.push_back(static_cast<int>(st));
  return transact("prune", [&](Session& s) -> Result<std::int64_t> {
    std::vector<JobId> ids;
    {
      auto q = s.conn().exec(
          "SELECT j.id FROM jobs j WHERE j.finished_at < $1 AND j.state = ANY ($2::int4[]) AND j.state IN (3, 4, 5) "
          "AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.id = j.parent_id AND p.state IN (0, 1, 2)) "
          "ORDER BY j.finished_at LIMIT $3 FOR UPDATE OF j SKIP LOCKED",
          Params().i64(us(request.finished_before)).ids(states).i64(request.limit));
      for (int i = 0; i < q.size(); ++i) ids.push_back(q.i64(i, 0));
    }
    if (ids.empty()) return std::int64_t{0};
    for (const char* sql : {"DELETE FROM attempt_errors WHERE job_id = ANY ($1::int8[])",
                            "DELETE FROM item_errors WHERE job_id = ANY ($1::int8[])",
                            "DELETE FROM dependencies WHERE job_id = ANY ($1::int8[])",
                            "DELETE FROM jobs WHERE id = ANY ($1::int8[])"}) {
      s.conn().exec(sql, Params().ids(ids));
    }
    return static_cast<std::int64_t>(ids.size());
  });
}

// --- worker registry ---------------------------------------------------------

Status PgStore::announce(const WorkerInfo& worker, Duration ttl) {
  if (auto s = check_worker(worker, ttl); !s) return s;
  return transact("announce", [&](Session& s) -> Status {
    auto& c = s.conn();
    const auto now = us(s.now());
    c.exec("DELETE FROM worker_kinds WHERE worker IN (SELECT id FROM workers WHERE expires <= $1 OR id = $2)",
           Params().i64(now).bytes(worker.id));
    c.exec("DELETE FROM workers WHERE expires <= $1 OR id = $2", Params().i64(now).bytes(worker.id));
    c.exec("INSERT INTO workers(id, expires) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET expires = excluded.expires",
           Params().bytes(worker.id).i64(us(saturating_add(s.now(), ttl))));
    std::vector<std::string> queues, kinds;
    for (const auto& q : worker.queues) {
      for (const auto& k : worker.kinds) {
        queues.push_back(q);
        kinds.push_back(k);
      }
    }
    if (!queues.empty()) {
      c.exec("INSERT INTO worker_kinds(queue, kind, worker) SELECT q, k, $3 FROM unnest($1::bytea[], $2::bytea[]) AS "
             "x(q, k) ON CONFLICT DO NOTHING",
             Params().byte_array(queues).byte_array(kinds).bytes(worker.id));
    }
    return {};
  });
}

Status PgStore::retire(std::string_view worker_id) {
  return transact("retire", [&](Session& s) -> Status {
    s.conn().exec("DELETE FROM worker_kinds WHERE worker = $1", Params().bytes(worker_id));
    s.conn().exec("DELETE FROM workers WHERE id = $1", Params().bytes(worker_id));
    return {};
  });
}

// --- reads -------------------------------------------------------------------

Result<Job> PgStore::get(JobId id) {
  return read("get", [&](Conn& conn, TimePoint) -> Result<Job> {
    PgJobRow row;
    {
      auto q = conn.exec("SELECT " PORTER_PG_JOB_COLUMNS " FROM jobs WHERE id = $1", Params().i64(id));
      if (q.empty()) return not_found(id);
      row = read_job(q, 0);
    }
    return load_details(conn, std::move(row));
  });
}

Result<JobPage> PgStore::list(const JobFilter& filter, std::optional<JobId> cursor, int limit) {
  if (limit < 1) return make_error(ErrorCode::invalid_argument, "limit must be >= 1");
  // The WHERE clause is built from fixed fragments; every value is a parameter.
  std::string sql = "SELECT " PORTER_PG_JOB_COLUMNS " FROM jobs WHERE true";
  Params p;
  auto param = [&]() { return "$" + std::to_string(p.size()); };
  if (!filter.states.empty()) {
    std::vector<std::int64_t> states;
    for (auto st : filter.states) states.push_back(static_cast<int>(st));
    p.ids(states);
    sql += " AND state = ANY (" + param() + "::int4[])";
  }
  if (filter.queue) {
    p.bytes(*filter.queue);
    sql += " AND queue = " + param();
  }
  if (filter.kind) {
    p.bytes(*filter.kind);
    sql += " AND kind = " + param();
  }
  if (filter.owner) {
    p.bytes(*filter.owner);
    sql += " AND owner = " + param();
    if (!filter.owner->empty()) sql += " AND owner <> ''";  // lets the planner use jobs_owner
  }
  if (filter.parent_id) {
    p.i64(*filter.parent_id);
    sql += " AND parent_id = " + param();
  }
  if (filter.created_after) {
    p.i64(us(*filter.created_after));
    sql += " AND created_at >= " + param();
  }
  if (filter.created_before) {
    p.i64(us(*filter.created_before));
    sql += " AND created_at < " + param();
  }
  if (cursor) {
    p.i64(*cursor);
    sql += " AND id < " + param() + "::int8";
  }
  p.i64(static_cast<std::int64_t>(limit) + 1);
  sql += " ORDER BY id DESC LIMIT " + param() + "::int8";
  return read("list", [&](Conn& conn, TimePoint) -> Result<JobPage> {
    JobPage page;
    std::vector<PgJobRow> rows;
    {
      auto q = conn.exec_dynamic(sql, p);
      for (int i = 0; i < q.size(); ++i) rows.push_back(read_job(q, i));
    }
    const bool more = static_cast<int>(rows.size()) > limit;
    if (more) rows.resize(static_cast<std::size_t>(limit));
    for (auto& r : rows) page.jobs.push_back(load_details(conn, std::move(r)));
    if (more) page.next = page.jobs.back().id;
    return page;
  });
}

Result<Stats> PgStore::stats(Duration window) {
  return read("stats", [&](Conn& conn, TimePoint now) -> Result<Stats> {
    Stats st;
    st.at = now;
    std::map<std::string, QueueInfo> queues;
    {
      auto q = conn.exec("SELECT name, paused FROM queues");
      for (int i = 0; i < q.size(); ++i) queues[q.bytes(i, 0)].paused = q.flag(i, 1);
    }
    std::set<std::pair<std::string, std::string>> handled;
    {
      auto q = conn.exec("SELECT k.queue, k.kind FROM worker_kinds k JOIN workers w ON w.id = k.worker WHERE w.expires > $1",
                         Params().i64(us(now)));
      for (int i = 0; i < q.size(); ++i) handled.emplace(q.bytes(i, 0), q.bytes(i, 1));
    }
    {
      auto q = conn.exec(
          "SELECT queue, kind, state, (state = 0 AND run_at > $1) AS later, count(*)::int8 FROM jobs "
          "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3",
          Params().i64(us(now)));
      std::map<std::pair<std::string, std::string>, std::int64_t> unhandled;
      for (int i = 0; i < q.size(); ++i) {
        std::pair<std::string, std::string> key{q.bytes(i, 0), q.bytes(i, 1)};
        auto& qi = queues[key.first];
        const std::int64_t c = q.i64(i, 4);
        switch (static_cast<JobState>(q.i32(i, 2))) {
          case JobState::pending:
            (q.flag(i, 3) ? qi.scheduled : qi.pending) += c;
            if (!handled.contains(key)) unhandled[key] += c;
            break;
          case JobState::running: qi.running += c; break;
          case JobState::waiting: qi.waiting += c; break;
          case JobState::completed: qi.completed += c; break;
          case JobState::failed: qi.failed += c; break;
          case JobState::cancelled: qi.cancelled += c; break;
        }
      }
      for (const auto& [key, n] : unhandled) st.unhandled.push_back({key.first, key.second, n});
    }
    for (auto& [name, qi] : queues) {
      qi.name = name;
      auto stored = qi.pending + qi.scheduled + qi.running + qi.waiting + qi.completed + qi.failed + qi.cancelled;
      if (stored > 0 || qi.paused) st.queues.push_back(qi);
    }

    const std::int64_t since = us(saturating_sub(now, window));
    struct KindAcc {
      KindStats s;
      std::vector<std::int64_t> runs;
      std::vector<std::int64_t> latencies;
    };
    std::map<std::string, KindAcc> kinds;
    {
      auto q = conn.exec(
          "SELECT kind, state, started_at, finished_at, run_time, queue_latency FROM jobs "
          "WHERE finished_at >= $1 AND finished_at <= $2 AND state IN (3, 4) ORDER BY finished_at DESC LIMIT $3",
          Params().i64(since).i64(us(now)).i64(kStatsSample));
      for (int i = 0; i < q.size(); ++i) {
        auto& k = kinds[q.bytes(i, 0)];
        (static_cast<JobState>(q.i32(i, 1)) == JobState::completed ? k.s.completed : k.s.failed) += 1;
        k.runs.push_back(!q.is_null(i, 4) ? q.i64(i, 4) : q.is_null(i, 2) ? 0 : q.i64(i, 3) - q.i64(i, 2));
        k.latencies.push_back(q.is_null(i, 5) ? 0 : q.i64(i, 5));
      }
    }
    {
      auto q = conn.exec(
          "SELECT j.kind, count(*)::int8 FROM attempt_errors e JOIN jobs j ON j.id = e.job_id "
          "WHERE e.at >= $1 AND e.retried GROUP BY j.kind",
          Params().i64(since));
      for (int i = 0; i < q.size(); ++i) kinds[q.bytes(i, 0)].s.retried += q.i64(i, 1);
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
      auto q = conn.exec(
          "SELECT min(started_at), count(*) FILTER (WHERE lease_expires <= $1)::int8, count(*)::int8 FROM jobs "
          "WHERE state = 1",
          Params().i64(us(now)));
      if (!q.empty() && q.i64(0, 2) > 0) {
        if (!q.is_null(0, 0)) st.oldest_lease_age = saturating_diff(now, tp(q.i64(0, 0)));
        st.expired_leases = q.i64(0, 1);
      }
    }
    return st;
  });
}

}  // namespace porter::detail
