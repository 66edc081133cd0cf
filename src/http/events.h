// EventHub: live updates for the page as Server-Sent Events.
//
// Each stream belongs to one principal. Job ids arrive from the attached
// engine's events (or this process's store events when there is no engine);
// the stream re-reads each job through Admin (so scoping holds: another
// user's job is never sent) and writes `event: job`. Every poll_every it also
// re-reads the principal's running jobs (progress, and jobs that other
// processes start or finish) and the newest job id (`event: new` when a job
// was enqueued). A stream whose client went away ends at its next write.
//
// Lock order: EventHub::mu_ before Stream::mu. Counters::mu is separate.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "http/context.h"
#include "porter/engine.h"

namespace porter::http::detail {

class EventHub {
 public:
  explicit EventHub(Context& ctx) : ctx_(ctx) {}

  void on_engine_event(const Event& event);
  void on_store_event(const StoreEvent& event);

  // Runs one stream until the client leaves or stop(); `write` returns false
  // once the client is gone.
  struct Stream;
  std::shared_ptr<Stream> join();  // nullptr: max_event_clients reached
  void run(const std::shared_ptr<Stream>& stream, const Principal& who,
           const std::function<bool(const std::string&)>& write);
  void leave(const std::shared_ptr<Stream>& stream);

  void stop();
  int clients() const noexcept { return clients_.load(); }

 private:
  void publish(JobId id);
  Context& ctx_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Stream>> streams_;  // guarded by mu_
  bool stopping_ = false;                         // guarded by mu_
  std::atomic<int> clients_{0};
};

}  // namespace porter::http::detail
