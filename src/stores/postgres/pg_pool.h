// A small pool of connections for the PostgreSQL store. Connections open on
// demand up to `size`; a caller waits at most `wait` for a free one
// (`unavailable` after that: nothing waits forever). A connection found
// broken (server restarted, network gone) is dropped when handed back, and
// the next acquire opens a fresh one, so the store rides out a restart.
//
// Thread safety: acquire() and the Lease may be used from any thread; one
// Lease is one thread's at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "porter/status.h"
#include "stores/postgres/pg_conn.h"

namespace porter::detail {

// Opens one connection with search_path set to `schema` (empty: left alone).
// Errors: permission_denied for rejected credentials, unavailable otherwise.
// The conninfo (which may hold a password) is never repeated in messages.
Result<std::unique_ptr<Conn>> connect_pg(const std::string& conninfo, const std::string& schema,
                                         std::chrono::seconds connect_timeout);

class Pool {
 public:
  Pool(std::string conninfo, std::string schema, int size, std::chrono::milliseconds wait,
       std::chrono::seconds connect_timeout)
      : conninfo_(std::move(conninfo)), schema_(std::move(schema)), size_(size), wait_(wait),
        connect_timeout_(connect_timeout) {}

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Conn> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& o) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease() {
      if (conn_) pool_->give_back(std::move(conn_));
    }
    Conn& operator*() const { return *conn_; }
    Conn* operator->() const { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Conn> conn_;
  };

  Result<Lease> acquire();
  // Whether `pid` is the server process of one of this pool's connections
  // (a notification this process sent itself).
  bool own_backend(int pid) const;
  // Closes the idle connections (one was found dead: the server restarted,
  // so the others are likely dead too).
  void drop_idle();

 private:
  void give_back(std::unique_ptr<Conn> conn);

  const std::string conninfo_;
  const std::string schema_;
  const int size_;
  const std::chrono::milliseconds wait_;
  const std::chrono::seconds connect_timeout_;
  mutable std::mutex mu_;  // guards idle_, open_, pids_
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;           // connections open or being opened (idle or lent)
  std::multiset<int> pids_;
};

}  // namespace porter::detail
