// A worker process for the StopOnSignals test: one engine on a SQLite file,
// one job, and porter::StopOnSignals waiting for SIGTERM or SIGINT.
//   porter_signal_worker <db> hand-back   the handler runs until its stop token fires (grace 200 ms)
//   porter_signal_worker <db> finish      the handler finishes 300 ms after the signal (grace 20 s)
// Prints "ready <job id>" once the handler runs, "stopped <signal>" when the engine has stopped.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "porter/porter.h"
#include "porter/signals.h"
#include "porter/sqlite_store.h"

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <db> hand-back|finish\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[2];
  const bool hand_back = mode == "hand-back";
  auto store = porter::open_sqlite_store(argv[1]).value();
  porter::Engine engine(store, {.queues = {{"default", 1}},
                                .shutdown_grace = hand_back ? porter::Duration(200ms) : porter::Duration(20s)});
  std::atomic<bool> signalled{false};
  engine.register_handler("long", [&](porter::JobContext& ctx) {
    std::printf("ready %lld\n", static_cast<long long>(ctx.id()));
    std::fflush(stdout);
    if (hand_back) {
      while (!ctx.cancelled()) std::this_thread::sleep_for(5ms);
      return;
    }
    while (!signalled.load()) std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(300ms);  // still within the grace: it completes
  }).value();
  auto id = engine.enqueue({.kind = "long"}).value().id;
  (void)id;
  porter::StopOnSignals on_signal(engine);
  engine.start().value();
  // The handler learns of the signal through a watcher of its own here
  // (finish mode): the engine lets it run on within the grace.
  std::thread watch([&] {
    while (on_signal.received() == 0) std::this_thread::sleep_for(2ms);
    signalled.store(true);
  });
  const int sig = on_signal.wait();
  watch.join();
  std::printf("stopped %d running=%d\n", sig, engine.running() ? 1 : 0);
  return 0;
}
