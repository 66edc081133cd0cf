// Stress: many jobs enqueued from several threads, run on several queues and
// workers; with no failure injected every job must run exactly once.
// PORTER_STRESS_JOBS lowers the count for slow (sanitizer) builds. Default: 100000.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine_test_support.h"

using namespace std::chrono_literals;
using namespace porter;

namespace {

int stress_jobs() {
  if (const char* env = std::getenv("PORTER_STRESS_JOBS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return 100000;
}

}  // namespace

TEST_CASE("stress: every job runs exactly once across queues, producers and workers", "[engine][stress]") {
  const int total = stress_jobs();
  const std::vector<std::string> queues = {"alpha", "beta", "gamma"};
  Engine engine(make_memory_store(), {.queues = {{"alpha", 4}, {"beta", 3}, {"gamma", 2}}});
  auto runs = std::make_unique<std::atomic<int>[]>(static_cast<std::size_t>(total));
  std::atomic<int> done{0};
  std::atomic<int> wrong_queue{0};
  REQUIRE(engine.register_handler("count", [&](JobContext& ctx) {
    // args are the job's index as a JSON number.
    const int i = std::stoi(std::string(ctx.args()));
    if (ctx.job().queue != queues[static_cast<std::size_t>(i) % queues.size()]) ++wrong_queue;
    runs[static_cast<std::size_t>(i)].fetch_add(1);
    done.fetch_add(1);
  }));
  REQUIRE(engine.start());

  constexpr int kProducers = 4;
  std::atomic<int> enqueue_errors{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<NewJob> batch;
      for (int i = p; i < total; i += kProducers) {
        NewJob job{.kind = "count", .args = std::to_string(i),
                   .queue = queues[static_cast<std::size_t>(i) % queues.size()]};
        if (i % 7 == 0) {  // some one by one, most in batches
          if (!engine.enqueue(std::move(job))) ++enqueue_errors;
          continue;
        }
        batch.push_back(std::move(job));
        if (batch.size() == 200) {
          if (!engine.enqueue_batch(std::move(batch))) ++enqueue_errors;
          batch.clear();
        }
      }
      if (!batch.empty() && !engine.enqueue_batch(std::move(batch))) ++enqueue_errors;
    });
  }
  for (auto& t : producers) t.join();
  REQUIRE(enqueue_errors == 0);
  REQUIRE(porter::test::eventually([&] { return done.load() >= total; }, 300s));
  engine.stop();

  CHECK(done == total);
  CHECK(wrong_queue == 0);
  int not_once = 0;
  for (int i = 0; i < total; ++i) {
    if (runs[static_cast<std::size_t>(i)].load() != 1) ++not_once;
  }
  CHECK(not_once == 0);
  // And the store agrees: nothing left pending, running or failed.
  auto stats = engine.store().stats(1h);
  REQUIRE(stats);
  std::int64_t completed = 0;
  for (const auto& q : stats->queues) {
    CHECK(q.pending == 0);
    CHECK(q.running == 0);
    CHECK(q.failed == 0);
    completed += q.completed;
  }
  CHECK(completed == total);
}
