// PgStore's transaction templates (see pg_store.h), shared by its .cpp files.
#pragma once

#include <set>

#include "rules/rules.h"
#include "stores/postgres/pg_store.h"

namespace porter::detail {

namespace pg_tx {

inline constexpr int kRetries = 4;
inline constexpr const char* kBeginWrite = "BEGIN";
inline constexpr const char* kBeginWriteNow = "BEGIN; SELECT (extract(epoch from now()) * 1000000)::int8";
inline constexpr const char* kBeginRead = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
inline constexpr const char* kBeginReadNow =
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT (extract(epoch from now()) * 1000000)::int8";

// Rolls back on every exit path that did not commit, exceptions included.
struct RollbackGuard {
  Conn& conn;
  bool armed = true;
  ~RollbackGuard() {
    if (armed && PQtransactionStatus(conn.handle()) != PQTRANS_IDLE) PQclear(PQexec(conn.handle(), "ROLLBACK"));
  }
};

// Several jobs of one queue made available in one transaction: one wake-up is enough.
inline void coalesce_available(std::vector<PgEvent>& events) {
  std::set<std::string> seen;
  std::erase_if(events, [&](const PgEvent& e) {
    return e.type == StoreEvent::Type::available && !seen.insert(e.queue).second;
  });
}

template <class T>
struct IsResult : std::false_type {};
template <class T>
struct IsResult<Result<T>> : std::true_type {};

}  // namespace pg_tx

template <class Fn>
auto PgStore::transact(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<Session&>())) {
  using R = decltype(fn(std::declval<Session&>()));
  static_assert(pg_tx::IsResult<R>::value);
  for (int attempt = 0;; ++attempt) {
    auto lease = pool_.acquire();
    if (!lease) return std::move(lease).error();
    Conn& conn = **lease;
    bool committing = false;
    try {
      pg_tx::RollbackGuard guard{conn};
      Session s(conn, begin(conn, pg_tx::kBeginWrite), options_.schema);
      R result = fn(s);
      if (!result.has_value()) return result;
      rules::run_effects(s);
      pg_tx::coalesce_available(s.events);
      if (options_.listen) s.notify_others(channel_);
      committing = true;
      conn.simple("COMMIT");
      guard.armed = false;
      deliver(s.events);
      return result;
    } catch (const PgError& e) {
      // A dead connection before COMMIT changed nothing: run again on a fresh one.
      if (e.connection_lost()) pool_.drop_idle();
      const bool again = e.retryable() || (e.connection_lost() && !committing);
      if (again && attempt + 1 < pg_tx::kRetries) continue;
      return to_error(e, std::string(what));
    }
  }
}

template <class Fn>
auto PgStore::read(std::string_view what, Fn&& fn) -> decltype(fn(std::declval<Conn&>(), TimePoint{})) {
  for (int attempt = 0;; ++attempt) {
    auto lease = pool_.acquire();
    if (!lease) return std::move(lease).error();
    Conn& conn = **lease;
    try {
      pg_tx::RollbackGuard guard{conn};
      TimePoint now = begin(conn, pg_tx::kBeginRead);
      return fn(conn, now);
    } catch (const PgError& e) {
      if (e.connection_lost()) pool_.drop_idle();
      if ((e.retryable() || e.connection_lost()) && attempt + 1 < pg_tx::kRetries) continue;
      return to_error(e, std::string(what));
    }
  }
}

}  // namespace porter::detail
