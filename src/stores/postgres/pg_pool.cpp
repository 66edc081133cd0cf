// The connection pool of pg_pool.h.
#include "stores/postgres/pg_pool.h"

#include "core/bounds.h"

namespace porter::detail {

Result<std::unique_ptr<Conn>> connect_pg(const std::string& conninfo, const std::string& schema,
                                         std::chrono::seconds connect_timeout) {
  // Later keywords win: the timeout is a default the conninfo may override.
  const std::string timeout = std::to_string(connect_timeout.count());
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "porter", conninfo.c_str(), nullptr};
  PGconn* raw = PQconnectdbParams(keys, values, 1);
  if (!raw) return make_error(ErrorCode::unavailable, "connecting to PostgreSQL: out of memory");
  // The server's notices (and its "terminating connection" farewell) are not printed on stderr: a
  // lost connection surfaces as the failing call's error instead.
  PQsetNoticeProcessor(raw, [](void*, const char*) {}, nullptr);
  auto conn = std::make_unique<Conn>(raw, true, true);
  if (PQstatus(raw) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(raw);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    bool auth = msg.find("authentication failed") != std::string::npos ||
                msg.find("password") != std::string::npos || msg.find("no pg_hba.conf entry") != std::string::npos;
    return make_error(auth ? ErrorCode::permission_denied : ErrorCode::unavailable,
                      "connecting to PostgreSQL: " + msg);
  }
  try {
    conn->simple("SET client_min_messages = warning");
    if (!schema.empty()) {
      Params p;
      p.text(quote_ident(schema));
      conn->exec_dynamic("SELECT set_config('search_path', $1, false)", p);
    }
  } catch (const PgError& e) {
    return to_error(e, "setting up a PostgreSQL connection");
  }
  return conn;
}

Result<Pool::Lease> Pool::acquire() {
  std::unique_lock lock(mu_);
  const auto deadline = steady_deadline(std::chrono::steady_clock::now(), wait_);
  for (;;) {
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
    if (open_ < size_) break;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() && open_ >= size_) {
      return make_error(ErrorCode::unavailable, "no PostgreSQL connection came free within " +
                                                    std::to_string(wait_.count()) + " ms (pool of " +
                                                    std::to_string(size_) + ")");
    }
  }
  ++open_;
  lock.unlock();
  auto conn = connect_pg(conninfo_, schema_, connect_timeout_);
  lock.lock();
  if (!conn) {
    --open_;
    cv_.notify_one();
    return std::move(conn).error();
  }
  pids_.insert(PQbackendPID((*conn)->handle()));
  return Lease(this, std::move(*conn));
}

void Pool::give_back(std::unique_ptr<Conn> conn) {
  std::lock_guard lock(mu_);
  // A connection left inside a transaction (an exception escaped a rollback) is not reused either.
  if (conn->broken() || PQtransactionStatus(conn->handle()) != PQTRANS_IDLE) {
    if (auto it = pids_.find(PQbackendPID(conn->handle())); it != pids_.end()) pids_.erase(it);
    --open_;
    conn.reset();
  } else {
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

void Pool::drop_idle() {
  std::vector<std::unique_ptr<Conn>> dropped;
  {
    std::lock_guard lock(mu_);
    for (auto& c : idle_) {
      if (auto it = pids_.find(PQbackendPID(c->handle())); it != pids_.end()) pids_.erase(it);
      --open_;
    }
    dropped.swap(idle_);
    cv_.notify_all();
  }
}

bool Pool::own_backend(int pid) const {
  std::lock_guard lock(mu_);
  return pids_.contains(pid);
}

}  // namespace porter::detail
