// The PostgreSQL store's ear for other processes: one dedicated connection
// that LISTENs on the schema's channel and turns each notification from
// another process into a StoreEvent (available for a queue, or
// changed_elsewhere when jobs finished). When the connection is lost it
// reconnects with a bounded backoff and then reports changed_elsewhere,
// since notifications sent meanwhile are gone; the engine's polling covers
// the gap until then.
#pragma once

#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "porter/store.h"

namespace porter::detail {

class Pool;

class NotifyListener {
 public:
  using Sink = std::function<void(StoreEvent::Type type, std::string_view queue)>;
  // `pool` tells the store's own notifications apart (skipped: delivered in-process already).
  NotifyListener(std::string conninfo, std::string channel, const Pool& pool, Sink sink);
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

 private:
  void run(std::stop_token stop);
  // Waits for notifications on a connected session until it breaks or stop.
  void listen(void* conn, std::stop_token stop);

  const std::string conninfo_;
  const std::string channel_;
  const Pool& pool_;
  Sink sink_;
  int wake_[2] = {-1, -1};  // a pipe: the destructor wakes the poll
  std::jthread thread_;     // last: started after the fields it uses
};

}  // namespace porter::detail
