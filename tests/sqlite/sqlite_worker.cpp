// A worker process for the SQLite store's multi-process tests. Several of
// these share one database file; the tests kill them at random moments.
//
//   porter_sqlite_worker claim <db> <queue> <out> <lease_ms>
//     Claims and completes jobs until the queue is empty; appends
//     "<id> <token>" to <out> for every job it claimed.
//   porter_sqlite_worker run <db> <queue> <log> <stale_log> <lease_ms> <reaper_ms>
//     Runs forever: rescues expired leases every <reaper_ms>, claims a batch,
//     "runs" each job by appending "<id> <token> <started_us>" to <log> (one
//     O_APPEND write per line, the side effect), then finishes the batch;
//     finishes rejected as stale are appended to <stale_log>.
//   porter_sqlite_worker engine <db> <queue> <log> <stale_log> <lease_ms> <reaper_ms>
//     The same job, run by a real porter::Engine (2 workers, heartbeats,
//     reaper, prefetch): what an application's worker process is.
//     <stale_log> stays empty: the engine drops rejected finishes itself.
//   porter_sqlite_worker insert <db> <n>
//     Inserts <n> jobs one at a time (a commit each) and exits: another
//     process's commits, for the wake-up tests.
//
// The first two are plain claim/finish/rescue loops over the Store API (what
// the Engine does, minus the threads), so the tests exercise the store's
// guarantees directly; the third proves the same of engines.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "porter/engine.h"
#include "porter/sqlite_store.h"

namespace {

int open_log(const char* path) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path);
    std::exit(2);
  }
  return fd;
}

void append(int fd, const std::string& line) {
  // One write per line: O_APPEND makes concurrent lines from many processes land whole.
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::perror("write");
    std::exit(2);
  }
}

std::shared_ptr<porter::Store> open_store(const char* path) {
  porter::SqliteOptions options;
  options.durability = porter::Durability::process_crash;  // the tests kill processes, not the power
  auto store = porter::open_sqlite_store(path, options);
  if (!store) {
    std::fprintf(stderr, "worker: %s\n", store.error().to_string().c_str());
    std::exit(3);
  }
  return *store;
}

int claim_mode(char** argv) {
  auto store = open_store(argv[2]);
  std::string queue = argv[3];
  int fd = open_log(argv[4]);
  auto lease = std::chrono::milliseconds(std::atoi(argv[5]));
  std::string worker = "claimer:" + std::to_string(::getpid());
  for (;;) {
    auto jobs = store->claim({.queue = queue, .worker = worker, .limit = 4, .lease_for = lease});
    if (!jobs) {
      std::fprintf(stderr, "claim: %s\n", jobs.error().to_string().c_str());
      return 4;
    }
    if (jobs->empty()) return 0;
    std::vector<porter::Outcome> outcomes;
    for (const auto& j : *jobs) {
      append(fd, std::to_string(j.id) + " " + std::to_string(j.lease->token) + "\n");
      outcomes.push_back({.lease = j.lease_ref(), .kind = porter::OutcomeKind::complete});
    }
    auto done = store->finish(outcomes);
    if (!done) {
      std::fprintf(stderr, "finish: %s\n", done.error().to_string().c_str());
      return 4;
    }
    for (const auto& r : *done) {
      if (!r.status) {
        std::fprintf(stderr, "finish rejected with live leases: %s\n", r.status.error().to_string().c_str());
        return 5;
      }
    }
  }
}

int run_mode(char** argv) {
  auto store = open_store(argv[2]);
  std::string queue = argv[3];
  int log = open_log(argv[4]);
  int stale_log = open_log(argv[5]);
  auto lease = std::chrono::milliseconds(std::atoi(argv[6]));
  auto reaper_every = std::chrono::milliseconds(std::atoi(argv[7]));
  std::string worker = "runner:" + std::to_string(::getpid());
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  auto last_rescue = std::chrono::steady_clock::time_point{};
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_rescue >= reaper_every) {
      last_rescue = now;
      if (auto r = store->rescue_expired(); !r) std::fprintf(stderr, "rescue: %s\n", r.error().to_string().c_str());
    }
    auto jobs = store->claim({.queue = queue, .worker = worker, .limit = 8, .lease_for = lease});
    if (!jobs) {
      std::fprintf(stderr, "claim: %s\n", jobs.error().to_string().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (jobs->empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // idle poll between processes
      continue;
    }
    std::vector<porter::Outcome> outcomes;
    for (const auto& j : *jobs) {
      // The job's work: a little time (so kills land mid-batch) and one side effect.
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 8000));
      append(log, std::to_string(j.id) + " " + std::to_string(j.lease->token) + " " +
                      std::to_string(j.started_at->time_since_epoch().count()) + "\n");
      outcomes.push_back({.lease = j.lease_ref(), .kind = porter::OutcomeKind::complete});
    }
    auto done = store->finish(outcomes);
    if (!done) {
      std::fprintf(stderr, "finish: %s\n", done.error().to_string().c_str());
      continue;  // the leases expire and the jobs are rescued
    }
    for (std::size_t i = 0; i < done->size(); ++i) {
      if (!(*done)[i].status) {
        append(stale_log, std::to_string(outcomes[i].lease.id) + " " + std::to_string(outcomes[i].lease.token) + "\n");
      }
    }
  }
}

int engine_mode(char** argv) {
  auto store = open_store(argv[2]);
  std::string queue = argv[3];
  int log = open_log(argv[4]);
  auto lease = std::chrono::milliseconds(std::atoi(argv[6]));
  auto reaper_every = std::chrono::milliseconds(std::atoi(argv[7]));
  porter::Engine engine(store, {.queues = {{queue, 2}},
                                .lease_for = lease,
                                .heartbeat_every = lease / 4,
                                .reaper_every = reaper_every,
                                .poll_every = std::chrono::milliseconds(20)});
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::mutex rng_mu;
  auto registered = engine.register_handler("crash", [&](porter::JobContext& ctx) {
    unsigned pause_us = 0;
    {
      std::lock_guard lock(rng_mu);
      pause_us = rng() % 8000;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
    const porter::Job& j = ctx.job();
    append(log, std::to_string(j.id) + " " + std::to_string(j.lease->token) + " " +
                    std::to_string(j.started_at->time_since_epoch().count()) + "\n");
  });
  if (!registered || !engine.start()) {
    std::fprintf(stderr, "engine: could not start\n");
    return 4;
  }
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));  // until the test kills this process
}

int insert_mode(char** argv) {
  auto store = open_store(argv[2]);
  for (int i = 0, n = std::atoi(argv[3]); i < n; ++i) {
    porter::NewJob job{.kind = "from-elsewhere"};
    if (auto r = store->insert(std::span<const porter::NewJob>(&job, 1)); !r) {
      std::fprintf(stderr, "insert: %s\n", r.error().to_string().c_str());
      return 4;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "claim" && argc == 6) return claim_mode(argv);
  if (mode == "run" && argc == 8) return run_mode(argv);
  if (mode == "engine" && argc == 8) return engine_mode(argv);
  if (mode == "insert" && argc == 4) return insert_mode(argv);
  std::fprintf(stderr, "usage: %s claim <db> <queue> <out> <lease_ms> | run|engine <db> <queue> <log> <stale_log> <lease_ms> <reaper_ms> | insert <db> <n>\n",
               argv[0]);
  return 1;
}
