// What every part of the server shares: the store, Admin over it, the
// options, the SSE hub, the throughput samples and this process's counters.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "porter/admin.h"
#include "porter/http.h"

namespace httplib {
class Server;
class Request;
class Response;
class DataSink;
}  // namespace httplib

namespace porter::http::detail {

class EventHub;

// Cumulative counts of this process's engine events since the server started
// (Prometheus counters; present only with ServerOptions::engine).
struct KindCounters {
  std::int64_t completed = 0, failed = 0, retried = 0;
};
struct Counters {
  std::mutex mu;
  std::map<std::string, KindCounters> by_kind;  // guarded by mu
};

// Completed and failed per sampling interval, for the page's charts.
struct Sample {
  TimePoint at{};
  std::int64_t completed = 0, failed = 0;
};
class Sampler {
 public:
  static constexpr std::size_t kKept = 90;
  void start(Store& store, Duration every);
  void stop();
  std::deque<Sample> samples() const;

 private:
  void run(Store& store, Duration every);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;      // guarded by mu_
  std::deque<Sample> kept_;    // guarded by mu_
  std::thread thread_;
};

struct Context {
  Context(std::shared_ptr<Store> s, ServerOptions o);  // in server.cpp, where EventHub is complete
  ~Context();
  std::shared_ptr<Store> store;
  Admin admin;
  ServerOptions options;
  Counters counters;
  Sampler sampler;
  std::unique_ptr<EventHub> hub;
};

// The Principal for a request, or nullopt after writing the 401 response.
std::optional<Principal> authenticate(Context& ctx, const httplib::Request& req, httplib::Response& res);
// Whether a mutating request is safe to act on (CSRF defence); writes 403 when not.
bool allow_mutation(Context& ctx, const httplib::Request& req, httplib::Response& res);

void send_json(httplib::Response& res, int status, const std::string& body);
void send_error(httplib::Response& res, const Error& error);

void add_job_routes(httplib::Server& server, Context& ctx);
void add_queue_routes(httplib::Server& server, Context& ctx);
void add_event_routes(httplib::Server& server, Context& ctx);
void add_asset_routes(httplib::Server& server, Context& ctx);

// Prometheus text exposition of `stats` (+ counters when an engine is attached).
std::string prometheus_text(const Stats& stats, Context& ctx);

}  // namespace porter::http::detail
