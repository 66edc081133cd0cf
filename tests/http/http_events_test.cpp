// Server-Sent Events over real HTTP: scoped live job events, a bound on
// streams, and a client that disconnects mid-stream. And /metrics through
// promtool. Waits are for a condition with a generous limit, never timings.
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "http/http_harness.h"
#include "http/tsan_suppressions.h"

using porter::test::HttpHarness;
using namespace porter;
using porter::test::kAliceToken;
using porter::test::kRootToken;

namespace {

// An SSE stream read on its own thread until stop() or the server ends it.
class Stream {
 public:
  Stream(HttpHarness& h, const char* token) : client_("127.0.0.1", h.server->port()) {
    client_.set_read_timeout(30, 0);
    thread_ = std::thread([this, token] {
      auto r = client_.Get("/api/events", HttpHarness::as(token),
                           [this](const httplib::Response& res) {
                             status_ = res.status;
                             return true;
                           },
                           [this](const char* data, std::size_t n) {
                             std::lock_guard lock(mu_);
                             text_.append(data, n);
                             return !stop_.load();
                           });
      if (r && status_ == 0) status_ = r->status;
      done_ = true;
    });
  }
  ~Stream() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }
  // Waits (up to 20 s) until `pred(text)` holds.
  bool wait_for(const std::function<bool(const std::string&)>& pred) {
    for (int i = 0; i < 2000; ++i) {
      if (pred(text())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  int status() const { return status_; }
  bool done() const { return done_; }

 private:
  httplib::Client client_;
  std::thread thread_;
  std::mutex mu_;
  std::string text_;
  std::atomic<bool> stop_{false};
  std::atomic<int> status_{0};
  std::atomic<bool> done_{false};
};

bool eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string id_field(JobId id) { return "\"id\":" + std::to_string(id) + ","; }

}  // namespace

TEST_CASE("sse: a user's stream carries their jobs' changes live, and never another user's") {
  HttpHarness h;
  const JobId mine = h.add("alice");
  const JobId theirs = h.add("bob");
  Stream stream(h, kAliceToken);
  REQUIRE(stream.wait_for([](const std::string& t) { return t.find(": ping") != std::string::npos; }));
  REQUIRE(h.store->cancel(theirs, "test").has_value());
  REQUIRE(h.store->cancel(mine, "test").has_value());
  REQUIRE(stream.wait_for([&](const std::string& t) {
    return t.find(id_field(mine)) != std::string::npos && t.find("\"state\":\"cancelled\"") != std::string::npos;
  }));
  CHECK(stream.text().find("event: job") != std::string::npos);
  CHECK(stream.text().find(id_field(theirs)) == std::string::npos);
}

TEST_CASE("sse: progress of a running job reaches the stream without a request") {
  HttpHarness h;
  h.add("alice");
  const Job job = h.claim();
  Stream stream(h, kAliceToken);
  REQUIRE(h.store->report_progress(job.lease_ref(), {.done = 3, .total = 10, .message = "row 3"}).has_value());
  CHECK(stream.wait_for([](const std::string& t) { return t.find("\"message\":\"row 3\"") != std::string::npos; }));
}

TEST_CASE("sse: a client that disconnects mid-stream frees its slot, and streams are bounded") {
  HttpHarness h([](http::ServerOptions& o) { o.max_event_clients = 1; });
  {
    Stream first(h, kRootToken);
    REQUIRE(eventually([&] { return h.server->event_clients() == 1; }));
    Stream second(h, kRootToken);
    REQUIRE(eventually([&] { return second.done(); }));
    CHECK(second.status() == 503);
    first.stop();  // the client goes away mid-stream
  }
  REQUIRE(eventually([&] { return h.server->event_clients() == 0; }));
  Stream again(h, kRootToken);
  CHECK(eventually([&] { return h.server->event_clients() == 1; }));
  // The server keeps answering while streams come and go.
  CHECK(h.get("/api/jobs", kRootToken)->status == 200);
}

TEST_CASE("sse: stop() ends open streams") {
  HttpHarness h;
  Stream stream(h, kRootToken);
  REQUIRE(eventually([&] { return h.server->event_clients() == 1; }));
  h.server->stop();
  CHECK(eventually([&] { return stream.done(); }));
}

TEST_CASE("metrics: /metrics passes promtool check metrics") {
  HttpHarness h;
  h.add("alice", "mail", "send \"quoted\" kind");
  h.add("bob", "video", "transcode");
  const Job running = h.claim("video");
  Outcome done{.lease = running.lease_ref(), .kind = OutcomeKind::complete};
  REQUIRE(h.store->finish(std::span<const Outcome>(&done, 1)).has_value());
  REQUIRE(h.store->set_queue_paused("mail", true).has_value());
  auto r = h.get("/metrics", kRootToken);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->body.find("porter_jobs{queue=\"video\",state=\"completed\"} 1") != std::string::npos);
  CHECK(r->body.find("porter_queue_paused{queue=\"mail\"} 1") != std::string::npos);
  CHECK(r->body.find("porter_job_run_seconds{kind=\"transcode\",quantile=\"0.99\"}") != std::string::npos);
  CHECK(r->body.find("porter_expired_leases 0") != std::string::npos);

  const std::string file = "porter_metrics_" + std::to_string(h.server->port()) + ".txt";
  std::ofstream(file) << r->body;
  const std::string promtool = PORTER_PROMTOOL;
  INFO("promtool: " << promtool << " (Debian package prometheus)");
  REQUIRE(!promtool.empty());
  const int rc = std::system((promtool + " check metrics < " + file).c_str());
  std::remove(file.c_str());
  CHECK(rc == 0);
}
