// Several engine processes on one PostgreSQL database: SIGKILLed, frozen
// and restarted at random moments, and the server itself restarted (fast
// and immediate) under them. Every job ends completed, none is lost, and
// each completion is accepted once, for the claim whose side effect ran.
#include <random>
#include <thread>

#include "postgres/pg_test_support.h"

using namespace std::chrono_literals;
using namespace porter::test;

namespace {

constexpr int kLeaseMs = 600;
constexpr int kReaperMs = 100;

std::vector<porter::NewJob> effect_jobs(int n, const std::string& queue) {
  porter::NewJob j;
  j.kind = "effect";
  j.queue = queue;
  return std::vector<porter::NewJob>(static_cast<std::size_t>(n), j);
}

struct Workers {
  std::string conninfo, schema, queue, log;
  std::vector<pid_t> pids;
  pid_t start() {
    return spawn({PORTER_PG_WORKER_PATH, conninfo, schema, queue, log, std::to_string(kLeaseMs),
                  std::to_string(kReaperMs)});
  }
  void start_all(int n) {
    for (int i = 0; i < n; ++i) pids.push_back(start());
  }
  ~Workers() {
    for (pid_t p : pids) {
      ::kill(p, SIGKILL);
      wait_exit(p);
    }
  }
};

}  // namespace

TEST_CASE("postgres: engines in killed and frozen processes lose no job and complete each once", "[postgres][multiprocess]") {
  TestDir dir("pg-kill");
  const std::string conninfo = test_pg_conninfo();
  const std::string schema = "kill_" + std::to_string(::getpid());
  const int jobs = env_int("PORTER_PG_CRASH_JOBS", 2000);
  auto store = open_pg(conninfo, schema);
  REQUIRE(store->insert(effect_jobs(jobs, "crash")).has_value());

  Workers w{conninfo, schema, "crash", dir.file("effects.log")};
  w.start_all(3);
  std::mt19937 rng(7);
  int kills = 0, pauses = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(env_int("PORTER_PG_CRASH_SECONDS", 50));
  while (unfinished(*store)) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    // The interval between faults is the test's pace, not a wait for a condition.
    std::this_thread::sleep_for(std::chrono::milliseconds(60 + rng() % 200));
    auto& victim = w.pids[rng() % w.pids.size()];
    if (rng() % 4 == 0) {
      // Frozen past its lease: its jobs are rescued and run elsewhere; its late outcomes are stale.
      ::kill(victim, SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(kLeaseMs + 3 * kReaperMs));
      ::kill(victim, SIGCONT);
      ++pauses;
    } else {
      ::kill(victim, SIGKILL);
      wait_exit(victim);
      victim = w.start();
      ++kills;
    }
  }
  check_each_completed_once(*store, w.log, jobs, kLeaseMs);
  WARN(kills << " kills, " << pauses << " pauses");
  CHECK(kills >= 2);  // a run that drained before any fault proved nothing
  store.reset();
  drop_test_schema(conninfo, schema);
}

TEST_CASE("postgres: engines ride out server restarts, fast and immediate, losing nothing", "[postgres][multiprocess][restart]") {
  TestDir dir("pg-restart");
  PrivateCluster cluster(dir.file("server"));
  const std::string conninfo = cluster.conninfo();
  const int jobs = env_int("PORTER_PG_RESTART_JOBS", 1500);
  auto store = open_pg(conninfo, "porter");
  REQUIRE(store->insert(effect_jobs(jobs, "restart")).has_value());

  Workers w{conninfo, "porter", "restart", dir.file("effects.log")};
  w.start_all(3);
  const auto deadline = std::chrono::steady_clock::now() + 50s;
  auto wait_completed = [&](std::int64_t n) {
    while (completed_count(*store) < n && unfinished(*store)) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(20ms);  // polling the outcome, not a timing assertion
    }
  };
  wait_completed(jobs / 4);
  cluster.control("restart", "fast");
  wait_completed(jobs / 2);
  cluster.control("restart", "immediate");  // a crash: committed work survives (fsync, synchronous_commit on)
  wait_completed(3 * jobs / 4);

  // While the server is down every call is a clear `unavailable`, never a hang.
  cluster.control("halt");
  porter::NewJob extra;
  extra.kind = "effect";
  extra.queue = "elsewhere";
  auto down = store->insert(std::span(&extra, 1));
  REQUIRE_FALSE(down.has_value());
  CHECK(down.error().code() == porter::ErrorCode::unavailable);
  cluster.control("resume");

  while (unfinished(*store)) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(20ms);
  }
  check_each_completed_once(*store, w.log, jobs, kLeaseMs);
  // The store itself reconnected too.
  CHECK(store->insert(std::span(&extra, 1)).has_value());
}
