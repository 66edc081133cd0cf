// porter_bench: the end-to-end harness. Runs whole workloads against a store
// through the Engine (what an application sees), and the same work on a
// minimal mutex + condition-variable thread pool in the same run, so every
// Porter figure comes with a ratio to that baseline measured side by side.
//
//   porter_bench [--store memory,sqlite,sqlite-normal] [--jobs N] [--repeat K] [--json FILE]
//                [--workloads W1,...,W9,MEM] [--workers 1,2,8] [--smoke]
//
// Workloads (see bench/RESULTS.md for what each measures and the targets):
//   W1 enqueue  N no-op jobs with small JSON args, one at a time and in batches
//   W2 drain    N queued jobs run by one Engine with C workers, start() to last completion
//   W3 latency  idle workers, one job every few ms: enqueue to handler start
//   W4 mixed    producers and workers at once over several queues and priorities
//   W5 scale    claim latency with 10k / 100k / 1M jobs queued
//   W6 admin    W2's drain while an administrator polls stats and two listings every 100 ms,
//               against the plain drain in the same run (the ratio is the slowdown)
//   W7 single   enqueue one job per call from 1 and from 8 threads at once
//   W8 remote   enqueue-to-start when the producer is another process (one job
//               every 10 ms; stores with a file only)
//   W9 schedule claim latency behind 200,000 future jobs at a better priority,
//               against the same claim with no schedule
//   MEM         bytes per queued job (in-memory store), measured in a fresh process
// Each row is the median over --repeat runs, with min and max. Machines are
// noisy: compare ratios from one run, not absolute figures across runs.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace porter::bench {
namespace {

// --mem-probe N: queue N jobs in a fresh in-memory store and print bytes per
// job beyond the args (RSS delta minus the args' bytes, over N).
int mem_probe(std::int64_t n) {
  TempDir dir;
  auto store = must(open_store("memory", dir.path()), "open memory");
  const auto before = rss_bytes();
  fill(*store, n, 1000);
  const auto after = rss_bytes();
  std::int64_t args_bytes = 0;
  for (std::int64_t i = 0; i < n; ++i) args_bytes += static_cast<std::int64_t>(small_args(i).size());
  std::printf("%.1f\n", static_cast<double>(after - before - args_bytes) / static_cast<double>(n));
  return 0;
}

std::string command_line(int argc, char** argv) {
  std::string line = "porter_bench";
  for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
  return line;
}

int run(int argc, char** argv) {
  Options options = parse_options(argc, argv);
  if (options.mem_probe > 0) return mem_probe(options.mem_probe);
  if (!options.producer_path.empty()) return run_remote_producer(options);
  const auto built = available_stores();
  if (options.stores.empty()) options.stores = built;
  if (options.stores.empty()) {
    std::printf("no store is built into this binary yet: nothing to measure\n");
    return 0;
  }
  for (const auto& s : options.stores) {
    if (std::find(built.begin(), built.end(), s) == built.end()) {
      throw std::invalid_argument("store '" + s + "' is not built into this binary");
    }
  }
  std::printf("porter_bench: jobs=%lld repeat=%d workers=", static_cast<long long>(options.jobs), options.repeat);
  for (int w : options.workers) std::printf("%d ", w);
  std::printf("hardware threads=%u%s\n", std::thread::hardware_concurrency(), options.smoke ? " (smoke run)" : "");
  std::printf("each row: median over repeats [min, max]; baseline = mutex+condvar thread pool, same run; "
              "ratio = porter / baseline\n");

  std::vector<Row> rows;
  const double load_before = load_average();
  const auto started = now_ns();
  for (const auto& store : options.stores) {
    print_header(store);
    std::deque<Row> store_rows;
    run_enqueue_workloads(options, store, store_rows);
    run_drain_workloads(options, store, store_rows);
    run_latency_workloads(options, store, store_rows);
    run_claim_workloads(options, store, store_rows);
    for (auto& row : store_rows) rows.push_back(std::move(row));
  }
  const double elapsed = seconds_between(started, now_ns());
  const auto peak = peak_rss_bytes();
  const double load_after = load_average();
  std::printf("\npeak RSS (VmHWM): %.1f MiB; wall time %.1f s; load average %.2f before, %.2f after\n",
              static_cast<double>(peak) / (1 << 20), elapsed, load_before, load_after);

  int met = 0;
  int missed = 0;
  for (const auto& row : rows) {
    if (auto m = row.met()) (*m ? met : missed)++;
  }
  std::printf("targets: %d met, %d not met%s\n", met, missed, options.smoke ? " (smoke sizes: not meaningful)" : "");

  if (!options.json_path.empty()) {
    nlohmann::json out;
    out["command"] = command_line(argc, argv);
    out["smoke"] = options.smoke;
    out["jobs"] = options.jobs;
    out["repeat"] = options.repeat;
    out["hardware_threads"] = std::thread::hardware_concurrency();
    out["peak_rss_bytes"] = peak;
    out["wall_seconds"] = elapsed;
    out["load_average_before"] = load_before;
    out["load_average_after"] = load_after;
    out["rows"] = nlohmann::json::array();
    for (const auto& row : rows) out["rows"].push_back(to_json(row));
    std::ofstream file(options.json_path);
    file << out.dump(2) << "\n";
    if (!file) throw std::runtime_error("cannot write " + options.json_path);
  }
  return 0;
}

}  // namespace
}  // namespace porter::bench

int main(int argc, char** argv) {
  try {
    return porter::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "porter_bench: %s\n", e.what());
    return 1;
  }
}
