// An engine process for the PostgreSQL store's multi-process tests: several
// of these share one database; the tests kill, freeze and restart them, and
// restart the server under them.
//
//   porter_pg_worker <conninfo> <schema> <queue> <log> <lease_ms> <reaper_ms>
//     A real porter::Engine (2 workers, heartbeats, reaper) whose handler
//     appends "<id> <token> <started_us>" to <log> (one O_APPEND write per
//     line: the side effect) and completes. Runs until killed.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "porter/engine.h"
#include "porter/postgres_store.h"

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s <conninfo> <schema> <queue> <log> <lease_ms> <reaper_ms>\n", argv[0]);
    return 1;
  }
  porter::PostgresOptions options;
  options.schema = argv[2];
  options.pool_size = 4;
  std::shared_ptr<porter::Store> store;
  // The server may be restarting when this process starts: keep trying (bounded).
  for (int attempt = 0; !store; ++attempt) {
    auto opened = porter::open_postgres_store(argv[1], options);
    if (opened) {
      store = *opened;
    } else if (attempt >= 300) {
      std::fprintf(stderr, "worker: %s\n", opened.error().to_string().c_str());
      return 3;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  const std::string queue = argv[3];
  int log = ::open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    std::perror(argv[4]);
    return 2;
  }
  auto lease = std::chrono::milliseconds(std::atoi(argv[5]));
  auto reaper_every = std::chrono::milliseconds(std::atoi(argv[6]));
  porter::Engine engine(store, {.queues = {{queue, 2}},
                                .lease_for = lease,
                                .heartbeat_every = lease / 4,
                                .reaper_every = reaper_every,
                                .poll_every = std::chrono::milliseconds(50)});
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::mutex rng_mu;
  auto registered = engine.register_handler("effect", [&](porter::JobContext& ctx) {
    unsigned pause_us = 0;
    {
      std::lock_guard lock(rng_mu);
      pause_us = rng() % 4000;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));  // so kills land mid-run
    const porter::Job& j = ctx.job();
    std::string line = std::to_string(j.id) + " " + std::to_string(j.lease->token) + " " +
                       std::to_string(j.started_at->time_since_epoch().count()) + "\n";
    if (::write(log, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
  });
  if (!registered || !engine.start()) {
    std::fprintf(stderr, "worker: the engine could not start\n");
    return 4;
  }
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));  // until the test kills this process
}
