// PgStore: transactions, opening, producers and workers (see pg_store.h).
#include "stores/postgres/pg_store.h"

#include <set>

#include "core/bounds.h"
#include "rules/rules.h"
#include "stores/postgres/pg_schema.h"
#include "stores/postgres/pg_transact.h"

namespace porter::detail {

using namespace pg_tx;

namespace {

Error stale(const LeaseRef& ref) {
  return make_error(ErrorCode::stale_lease, "job " + std::to_string(ref.id) + " is not held by lease token " +
                                                std::to_string(ref.token));
}

Status check_claim(const ClaimRequest& request) {
  if (request.limit < 1) return make_error(ErrorCode::invalid_argument, "claim limit must be >= 1");
  if (request.lease_for <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "lease_for must be positive");
  return {};
}

}  // namespace

PgStore::PgStore(std::string conninfo, PostgresOptions options)
    : conninfo_(std::move(conninfo)),
      options_(std::move(options)),
      channel_(channel_for(options_.schema)),
      pool_(conninfo_, options_.schema, options_.pool_size, options_.pool_wait, options_.connect_timeout) {
  if (options_.clock) {
    clock_ = options_.clock;
  } else {
    auto server = std::make_shared<ServerClock>();
    server_clock_ = server.get();
    clock_ = std::move(server);
  }
}

PgStore::~PgStore() { ear_.reset(); }

void PgStore::start_listening() {
  ear_ = std::make_unique<NotifyListener>(conninfo_, channel_, pool_, [this](StoreEvent::Type type, std::string_view queue) {
    std::vector<PgEvent> events{{type, std::string(queue)}};
    deliver(events);
  });
}

void PgStore::deliver(std::vector<PgEvent>& events) {
  listeners_.notify(events, [](const PgEvent& e) { return StoreEvent{e.type, e.queue, e.job, e.state, e.token}; });
}

std::uint64_t PgStore::add_listener(Listener listener) { return listeners_.add(std::move(listener)); }

void PgStore::remove_listener(std::uint64_t id) { listeners_.remove(id); }

TimePoint PgStore::begin(Conn& conn, const char* begin_sql) {
  if (!server_clock_) {
    conn.simple(begin_sql);
    return clock_->now();
  }
  auto rows = conn.simple(begin_sql == kBeginRead ? kBeginReadNow : kBeginWriteNow);
  TimePoint now = tp(rows.i64(0, 0));
  server_clock_->observe(now);
  return now;
}

// --- producers ---------------------------------------------------------------

Result<std::vector<InsertResult>> PgStore::insert(std::span<const NewJob> jobs) {
  if (auto s = rules::validate_batch(jobs); !s) return s.error();
  if (jobs.empty()) return std::vector<InsertResult>{};
  return transact("insert", [&](Session& s) -> Result<std::vector<InsertResult>> {
    if (auto st = rules::check_dependencies_exist(s, jobs); !st) return st.error();
    return s.insert_all(jobs, std::nullopt);
  });
}

Result<std::vector<InsertResult>> PgStore::spawn(const LeaseRef& parent, std::span<const NewJob> children) {
  if (auto s = rules::validate_batch(children); !s) return s.error();
  return transact("spawn", [&](Session& s) -> Result<std::vector<InsertResult>> {
    if (!s.live(parent)) return stale(parent);
    if (auto st = rules::check_dependencies_exist(s, children); !st) return st.error();
    if (auto st = rules::check_no_cycle(s, parent.id, children); !st) return st.error();
    return s.insert_all(children, parent.id);
  });
}

// --- workers -----------------------------------------------------------------

Result<std::vector<Job>> PgStore::claim(const ClaimRequest& request) {
  if (auto s = check_claim(request); !s) return s.error();
  // One statement in its own transaction: no BEGIN, one round trip.
  for (int attempt = 0;; ++attempt) {
    auto lease = pool_.acquire();
    if (!lease) return std::move(lease).error();
    try {
      Session s(**lease, server_clock_ ? TimePoint{} : clock_->now(), options_.schema);
      return s.claim(request, server_clock_ != nullptr);
    } catch (const PgError& e) {
      if (e.connection_lost()) pool_.drop_idle();
      // A claim lost with its connection may have leased jobs: they are rescued when the lease expires.
      if ((e.retryable() || e.connection_lost()) && attempt + 1 < kRetries) continue;
      return to_error(e, "claim");
    }
  }
}

namespace {

// Extends every lease of `leases` in one statement; returns held and
// cancel_requested per lease, in order.
std::vector<LeaseStatus> extend_all(Session& s, std::span<const LeaseRef> leases, Duration extend_by) {
  std::vector<std::int64_t> ids, tokens;
  for (const auto& l : leases) {
    ids.push_back(l.id);
    tokens.push_back(static_cast<std::int64_t>(l.token));
  }
  auto q = s.conn().exec(
      "UPDATE jobs j SET lease_expires = $3 FROM unnest($1::int8[], $2::int8[]) AS l(id, token) "
      "WHERE j.id = l.id AND j.state = 1 AND j.lease_token = l.token RETURNING j.id, j.lease_token, j.cancel_requested",
      Params().ids(ids).ids(tokens).i64(us(saturating_add(s.now(), extend_by))));
  std::vector<LeaseStatus> out(leases.size());
  for (int r = 0; r < q.size(); ++r) {
    for (std::size_t i = 0; i < leases.size(); ++i) {
      if (leases[i].id == q.i64(r, 0) && static_cast<std::int64_t>(leases[i].token) == q.i64(r, 1)) {
        out[i] = {true, q.flag(r, 2)};
      }
    }
  }
  return out;
}

}  // namespace

Result<std::vector<LeaseStatus>> PgStore::heartbeat(std::span<const LeaseRef> leases, Duration extend_by) {
  if (extend_by <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "extend_by must be positive");
  if (leases.empty()) return std::vector<LeaseStatus>{};
  return transact("heartbeat", [&](Session& s) -> Result<std::vector<LeaseStatus>> {
    return extend_all(s, leases, extend_by);
  });
}

Result<std::vector<LeaseStatus>> PgStore::heartbeat_with_reports(std::span<const Beat> beats, Duration extend_by) {
  if (extend_by <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "extend_by must be positive");
  if (beats.empty()) return std::vector<LeaseStatus>{};
  return transact("heartbeat", [&](Session& s) -> Result<std::vector<LeaseStatus>> {
    std::vector<LeaseRef> leases;
    for (const auto& b : beats) leases.push_back(b.lease);
    auto out = extend_all(s, leases, extend_by);
    for (std::size_t i = 0; i < beats.size(); ++i) {
      if (out[i].held && !beats[i].report.empty()) s.apply_report(beats[i].lease.id, beats[i].report);
    }
    return out;
  });
}

FinishResult PgStore::finish_one(Session& s, const Outcome& o) {
  auto h = s.live(o.lease);
  if (!h) return {stale(o.lease), s.current_state(o.lease.id)};
  s.apply_report(o.lease.id, o.report);
  return {Status{}, rules::apply_outcome(s, *h, o)};
}

std::vector<FinishResult> PgStore::finish_all(Session& s, std::span<const Outcome> outcomes) {
  std::vector<JobId> ids;
  for (const auto& o : outcomes) ids.push_back(o.lease.id);
  s.lock_in_order(ids);
  std::vector<FinishResult> out;
  out.reserve(outcomes.size());
  for (const auto& o : outcomes) out.push_back(finish_one(s, o));
  // Effects may move a job again (a child failing its parent): report the
  // state after the whole transaction.
  const bool effects = !s.finals.empty();
  rules::run_effects(s);
  for (std::size_t i = 0; effects && i < outcomes.size(); ++i) {
    if (out[i].status) out[i].state = s.current_state(outcomes[i].lease.id);
  }
  return out;
}

Result<std::vector<FinishResult>> PgStore::finish(std::span<const Outcome> outcomes) {
  if (outcomes.empty()) return std::vector<FinishResult>{};
  return transact("finish", [&](Session& s) -> Result<std::vector<FinishResult>> { return finish_all(s, outcomes); });
}

Result<FinishAndClaim> PgStore::finish_and_claim(std::span<const Outcome> outcomes, const ClaimRequest& next) {
  const bool claiming = next.limit != 0;
  Status claim_ok = claiming ? check_claim(next) : Status{};
  if (outcomes.empty() && !claiming) return FinishAndClaim{};
  if (outcomes.empty() && claim_ok) {
    auto claimed = claim(next);
    if (!claimed) return std::move(claimed).error();
    return FinishAndClaim{{}, std::move(*claimed), {}};
  }
  return transact("finish_and_claim", [&](Session& s) -> Result<FinishAndClaim> {
    FinishAndClaim out;
    out.finished = finish_all(s, outcomes);
    if (!claiming) return out;
    if (!claim_ok) {
      out.claim_status = claim_ok;
    } else {
      out.claimed = s.claim(next, false);
    }
    return out;
  });
}

Status PgStore::report_progress(const LeaseRef& lease, const Progress& progress) {
  if (auto s = rules::check_progress(progress); !s) return s;
  return transact("report_progress", [&](Session& s) -> Status {
    if (!s.live(lease)) return stale(lease);
    s.store_progress(lease.id, progress);
    return {};
  });
}

Status PgStore::add_item_errors(const LeaseRef& lease, std::span<const ItemError> errors) {
  return transact("add_item_errors", [&](Session& s) -> Status {
    if (!s.live(lease)) return stale(lease);
    s.store_item_errors(lease.id, errors);
    return {};
  });
}

Result<std::vector<JobId>> PgStore::rescue_expired() {
  return transact("rescue_expired", [&](Session& s) -> Result<std::vector<JobId>> {
    std::vector<JobId> ids;
    {
      // Rows another transaction holds are left for the next round (never waited for).
      auto q = s.conn().exec(
          "SELECT id FROM jobs WHERE state = 1 AND lease_expires <= $1 ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED",
          Params().i64(us(s.now())));
      for (int i = 0; i < q.size(); ++i) ids.push_back(q.i64(i, 0));
    }
    std::vector<JobId> rescued;
    for (JobId id : ids) {
      auto h = s.head(id);
      if (!h || h->state != JobState::running) continue;
      rules::give_up_lease(s, *h, "lease expired");
      rescued.push_back(id);
    }
    return rescued;
  });
}

Result<std::optional<TimePoint>> PgStore::next_run_at(std::string_view queue) {
  return read("next_run_at", [&](Conn& conn, TimePoint) -> Result<std::optional<TimePoint>> {
    auto q = conn.exec("SELECT min(run_at) FROM jobs WHERE state = 0 AND queue = $1", Params().bytes(queue));
    if (q.empty() || q.is_null(0, 0)) return std::optional<TimePoint>();
    return std::optional<TimePoint>(tp(q.i64(0, 0)));
  });
}

}  // namespace porter::detail

namespace porter {

Result<std::shared_ptr<Store>> open_postgres_store(const std::string& conninfo, PostgresOptions options) {
  if (auto s = detail::check_schema_name(options.schema); !s) return s.error();
  if (auto s = detail::check_count("pool_size", options.pool_size, 1, 1000); !s) return s.error();
  if (options.pool_wait < std::chrono::milliseconds(0)) {
    return make_error(ErrorCode::invalid_argument, "pool_wait must not be negative");
  }
  if (options.connect_timeout < std::chrono::seconds(1)) {
    return make_error(ErrorCode::invalid_argument, "connect_timeout must be at least 1 s");
  }
  auto conn = detail::connect_pg(conninfo, "", options.connect_timeout);
  if (!conn) return std::move(conn).error();
  if (auto s = detail::open_schema(**conn, options.schema); !s) return s.error();
  conn->reset();
  const bool listen = options.listen;
  auto store = std::make_shared<detail::PgStore>(conninfo, std::move(options));
  if (listen) store->start_listening();
  return std::shared_ptr<Store>(std::move(store));
}

}  // namespace porter
