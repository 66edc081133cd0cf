#include "http/events.h"

#include <httplib.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "http/json.h"

namespace porter::http::detail {

namespace {
constexpr std::size_t kMaxQueued = 1000;  // per stream; beyond it the page reloads instead
constexpr int kRunningWatched = 200;      // running jobs re-read per poll
}  // namespace

struct EventHub::Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<JobId> queued;  // guarded by mu
  bool overflow = false;     // guarded by mu
  bool stopping = false;     // guarded by mu
};

void EventHub::publish(JobId id) {
  std::lock_guard lock(mu_);
  for (auto& s : streams_) {
    std::lock_guard slock(s->mu);
    if (s->queued.size() >= kMaxQueued) s->overflow = true;
    else s->queued.push_back(id);
    s->cv.notify_one();
  }
}

void EventHub::on_engine_event(const Event& event) {
  if (event.job != 0) publish(event.job);
  if (event.type == EventType::completed || event.type == EventType::failed || event.type == EventType::retried) {
    std::lock_guard lock(ctx_.counters.mu);
    auto& c = ctx_.counters.by_kind[event.kind];
    if (event.type == EventType::completed) ++c.completed;
    else if (event.type == EventType::failed) ++c.failed;
    else ++c.retried;
  }
}

void EventHub::on_store_event(const StoreEvent& event) {
  if (event.job != 0) publish(event.job);
}

std::shared_ptr<EventHub::Stream> EventHub::join() {
  std::lock_guard lock(mu_);
  if (stopping_ || static_cast<int>(streams_.size()) >= ctx_.options.max_event_clients) return nullptr;
  streams_.push_back(std::make_shared<Stream>());
  clients_.store(static_cast<int>(streams_.size()));
  return streams_.back();
}

void EventHub::leave(const std::shared_ptr<Stream>& stream) {
  std::lock_guard lock(mu_);
  std::erase(streams_, stream);
  clients_.store(static_cast<int>(streams_.size()));
}

void EventHub::stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  for (auto& s : streams_) {
    std::lock_guard slock(s->mu);
    s->stopping = true;
    s->cv.notify_one();
  }
}

void EventHub::run(const std::shared_ptr<Stream>& stream, const Principal& who,
                   const std::function<bool(const std::string&)>& write) {
  // What the client last saw of each running job: a change is sent again.
  using Seen = std::tuple<JobState, std::int64_t, std::string, std::size_t>;
  std::map<JobId, Seen> running;
  JobId newest = 0;
  auto send_job = [&](JobId id) {
    auto details = ctx_.admin.get(who, id);
    if (!details) return true;  // gone, or not this principal's: nothing to say
    const Job& job = details->job;
    running.erase(id);
    if (job.state == JobState::running)
      running[id] = {job.state, job.progress.done, job.progress.message, job.errors.size()};
    return write("event: job\ndata: " + job_summary(job, ctx_.store->now()).dump() + "\n\n");
  };
  auto poll = [&]() {
    auto page = ctx_.admin.list(who, JobFilter{.states = {JobState::running}}, std::nullopt, kRunningWatched);
    if (!page) return true;
    std::set<JobId> now_running;
    for (const auto& job : page->jobs) {
      now_running.insert(job.id);
      Seen seen{job.state, job.progress.done, job.progress.message, job.errors.size()};
      auto it = running.find(job.id);
      if (it != running.end() && it->second == seen) continue;
      running[job.id] = seen;
      if (!write("event: job\ndata: " + job_summary(job, ctx_.store->now()).dump() + "\n\n")) return false;
    }
    std::vector<JobId> left;
    for (const auto& [id, _] : running)
      if (!now_running.contains(id)) left.push_back(id);
    for (JobId id : left) {
      running.erase(id);
      if (!send_job(id)) return false;
    }
    auto latest = ctx_.admin.list(who, JobFilter{}, std::nullopt, 1);
    if (latest && !latest->jobs.empty()) {
      const JobId top = latest->jobs.front().id;
      if (newest != 0 && top > newest && !write("event: new\ndata: {\"id\":" + std::to_string(top) + "}\n\n"))
        return false;
      newest = std::max(newest, top);
    }
    return write(": ping\n\n");  // finds a client that went away
  };

  if (!write("retry: 2000\n\n") || !poll()) return;
  auto next_poll = std::chrono::steady_clock::now() + ctx_.options.poll_every;
  while (true) {
    std::vector<JobId> ids;
    bool overflow = false;
    {
      std::unique_lock lock(stream->mu);
      stream->cv.wait_until(lock, next_poll, [&] { return stream->stopping || !stream->queued.empty(); });
      if (stream->stopping) return;
      ids.assign(stream->queued.begin(), stream->queued.end());
      stream->queued.clear();
      overflow = std::exchange(stream->overflow, false);
    }
    if (overflow && !write("event: resync\ndata: {}\n\n")) return;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (JobId id : ids)
      if (!send_job(id)) return;
    if (std::chrono::steady_clock::now() >= next_poll) {
      if (!poll()) return;
      next_poll = std::chrono::steady_clock::now() + ctx_.options.poll_every;
    }
  }
}

void add_event_routes(httplib::Server& server, Context& ctx) {
  server.Get("/api/events", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto who = authenticate(ctx, req, res);
    if (!who) return;
    auto stream = ctx.hub->join();
    if (!stream) {
      send_error(res, make_error(ErrorCode::unavailable, "too many event streams open; try again later"));
      return;
    }
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&ctx, stream, principal = *who](std::size_t, httplib::DataSink& sink) {
          ctx.hub->run(stream, principal, [&sink](const std::string& text) {
            return sink.is_writable() && sink.write(text.data(), text.size());
          });
          sink.done();
          return true;
        },
        [&ctx, stream](bool) { ctx.hub->leave(stream); });
  });
}

}  // namespace porter::http::detail
