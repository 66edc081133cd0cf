// Component benchmarks (Google Benchmark): the store operations on the hot
// path, one at a time and in batches, for every store built in (memory, and
// SQLite on a temporary file), plus the retry policy's delay computation.
//
//   ./porter_bench_components                      # everything
//   ./porter_bench_components --benchmark_filter='memory/claim'
//
// Throughput is reported as items_per_second (jobs); a batch call counts
// each job it handles. Claims that would run out of queued jobs refill the
// store with the timer paused, so every timed claim finds work.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_support.h"
#include "porter/retry.h"
#include "porter/store.h"

namespace porter::bench {
namespace {

// One temporary directory for the process: every SQLite store gets its own file in it.
TempDir& temp_dir() {
  static TempDir dir;
  return dir;
}

std::shared_ptr<Store> fresh_store(const std::string& name) {
  return must(open_store(name, temp_dir().path()), "open " + name);
}

ClaimRequest claim_request(int limit) {
  return ClaimRequest{.queue = "default", .worker = "bench", .limit = limit};
}

std::vector<Outcome> completions(const std::vector<Job>& jobs, OutcomeKind kind = OutcomeKind::complete) {
  std::vector<Outcome> outcomes;
  outcomes.reserve(jobs.size());
  for (const auto& job : jobs) outcomes.push_back(Outcome{.lease = job.lease_ref(), .kind = kind});
  return outcomes;
}

// Keeps at least `need` runnable jobs queued, refilling (timer paused) in chunks.
class Refiller {
 public:
  Refiller(Store& store, std::int64_t chunk) : store_(store), chunk_(chunk) {}
  void ensure(benchmark::State& state, std::int64_t need) {
    if (queued_ >= need) return;
    state.PauseTiming();
    fill(store_, chunk_);
    queued_ += chunk_;
    state.ResumeTiming();
  }
  void took(std::int64_t n) { queued_ -= n; }

 private:
  Store& store_;
  std::int64_t chunk_;
  std::int64_t queued_ = 0;
};

void insert_one(benchmark::State& state, const std::string& store_name) {
  auto store = fresh_store(store_name);
  const NewJob job = noop_job(1);
  std::int64_t n = 0;
  for (auto _ : state) {
    auto r = store->insert(std::span<const NewJob>(&job, 1));
    if (!r) state.SkipWithError(r.error().to_string().c_str());
    ++n;
  }
  state.SetItemsProcessed(n);
}

void insert_batch(benchmark::State& state, const std::string& store_name) {
  auto store = fresh_store(store_name);
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::vector<NewJob> jobs;
  for (std::size_t i = 0; i < batch; ++i) jobs.push_back(noop_job(static_cast<std::int64_t>(i)));
  for (auto _ : state) {
    auto r = store->insert(jobs);
    if (!r) state.SkipWithError(r.error().to_string().c_str());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

void claim(benchmark::State& state, const std::string& store_name) {
  auto store = fresh_store(store_name);
  const auto limit = static_cast<int>(state.range(0));
  Refiller refill(*store, store_name.starts_with("sqlite") ? 20'000 : 100'000);
  std::int64_t claimed = 0;
  for (auto _ : state) {
    refill.ensure(state, limit);
    auto r = store->claim(claim_request(limit));
    if (!r || r->size() != static_cast<std::size_t>(limit)) {
      state.SkipWithError(r ? "claim returned fewer jobs than queued" : r.error().to_string().c_str());
      break;
    }
    refill.took(limit);
    claimed += limit;
  }
  state.SetItemsProcessed(claimed);
}

void finish(benchmark::State& state, const std::string& store_name) {
  auto store = fresh_store(store_name);
  const auto limit = static_cast<int>(state.range(0));
  Refiller refill(*store, store_name.starts_with("sqlite") ? 20'000 : 100'000);
  std::int64_t finished = 0;
  for (auto _ : state) {
    refill.ensure(state, limit);
    state.PauseTiming();
    auto claimed = must(store->claim(claim_request(limit)), "claim");
    refill.took(limit);
    const auto outcomes = completions(claimed);
    state.ResumeTiming();
    auto r = store->finish(outcomes);
    if (!r) state.SkipWithError(r.error().to_string().c_str());
    finished += limit;
  }
  state.SetItemsProcessed(finished);
}

void claim_finish(benchmark::State& state, const std::string& store_name) {
  auto store = fresh_store(store_name);
  const auto limit = static_cast<int>(state.range(0));
  Refiller refill(*store, store_name.starts_with("sqlite") ? 20'000 : 100'000);
  std::int64_t done = 0;
  for (auto _ : state) {
    refill.ensure(state, limit);
    auto claimed = must(store->claim(claim_request(limit)), "claim");
    refill.took(limit);
    auto r = store->finish(completions(claimed));
    if (!r) state.SkipWithError(r.error().to_string().c_str());
    done += limit;
  }
  state.SetItemsProcessed(done);
}

// Claim with many jobs of mixed priorities queued; each claimed job is handed
// back (release) so the queue keeps its size. Times claim + release.
void priority_claim(benchmark::State& state, const std::string& store_name) {
  auto store = fresh_store(store_name);
  const std::int64_t queued = state.range(0);
  fill(*store, queued, 1000, "default", 100);
  std::int64_t done = 0;
  for (auto _ : state) {
    auto claimed = must(store->claim(claim_request(1)), "claim");
    if (claimed.size() != 1) {
      state.SkipWithError("nothing to claim");
      break;
    }
    auto r = store->finish(completions(claimed, OutcomeKind::release));
    if (!r) state.SkipWithError(r.error().to_string().c_str());
    ++done;
  }
  state.SetItemsProcessed(done);
}

void retry_delay(benchmark::State& state) {
  RetryPolicy policy;
  int attempt = 1;
  double unit = 0.0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(policy.delay_after(attempt, unit));
    attempt = attempt % 20 + 1;
    unit = unit >= 0.9 ? 0.0 : unit + 0.1;
  }
  state.SetItemsProcessed(state.iterations());
}

void register_all() {
  for (const auto& name : available_stores()) {
    const bool sqlite = name.starts_with("sqlite");
    benchmark::RegisterBenchmark((name + "/insert_one").c_str(), insert_one, name);
    benchmark::RegisterBenchmark((name + "/insert_batch").c_str(), insert_batch, name)->Arg(10)->Arg(100)->Arg(1000);
    benchmark::RegisterBenchmark((name + "/claim").c_str(), claim, name)->Arg(1)->Arg(16)->Arg(64)->Arg(256);
    benchmark::RegisterBenchmark((name + "/finish").c_str(), finish, name)->Arg(1)->Arg(64);
    benchmark::RegisterBenchmark((name + "/claim_finish").c_str(), claim_finish, name)->Arg(1)->Arg(64);
    auto* prio = benchmark::RegisterBenchmark((name + "/priority_claim_release").c_str(), priority_claim, name);
    prio->Arg(1000)->Arg(100'000);
    if (!sqlite) prio->Arg(1'000'000);
  }
  benchmark::RegisterBenchmark("retry/delay_after", retry_delay);
}

}  // namespace
}  // namespace porter::bench

int main(int argc, char** argv) {
  porter::bench::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
