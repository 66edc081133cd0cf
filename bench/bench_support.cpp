// Helpers shared by the component benchmarks and the harness (see bench_support.h).
#include "bench_support.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

#if PORTER_WITH_SQLITE
#include "porter/sqlite_store.h"
#endif
#if PORTER_WITH_POSTGRES
#include <unistd.h>

#include "porter/postgres_store.h"
#endif

namespace porter::bench {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/porter-bench-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::vector<std::string> available_stores() {
  std::vector<std::string> names;
  names.emplace_back("memory");
#if PORTER_WITH_SQLITE
  names.emplace_back("sqlite");
  names.emplace_back("sqlite-normal");
#endif
#if PORTER_WITH_POSTGRES
  if (std::getenv("PORTER_BENCH_PG") != nullptr) names.emplace_back("postgres");  // a conninfo: the server to measure
#endif
  return names;
}

Result<std::shared_ptr<Store>> open_store(std::string_view name, const std::string& dir) {
  if (name == "memory") return make_memory_store();
#if PORTER_WITH_SQLITE
  if (name == "sqlite" || name == "sqlite-normal") {
    // A fresh file per call, so every measurement starts from an empty database.
    // "sqlite" is the durable default (power_loss: synchronous=FULL); "sqlite-normal"
    // trades the last commits on power loss for speed (process_crash: synchronous=NORMAL).
    static std::atomic<int> counter{0};
    return open_store_file(name, dir + "/bench-" + std::to_string(counter.fetch_add(1)) + ".db");
  }
#endif
#if PORTER_WITH_POSTGRES
  if (name == "postgres" && std::getenv("PORTER_BENCH_PG") != nullptr) {
    // A fresh schema per call on the server PORTER_BENCH_PG names (left there: a throwaway server).
    static std::atomic<int> counter{0};
    PostgresOptions options;
    options.schema = "bench_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
    return open_postgres_store(std::getenv("PORTER_BENCH_PG"), options);
  }
#endif
  (void)dir;
  return make_error(ErrorCode::unsupported, "store '" + std::string(name) + "' is not built into this binary");
}

Result<std::shared_ptr<Store>> open_store_file(std::string_view name, const std::string& path) {
#if PORTER_WITH_SQLITE
  if (name == "sqlite" || name == "sqlite-normal") {
    return open_sqlite_store(path, {.durability = name == "sqlite" ? Durability::power_loss
                                                                   : Durability::process_crash});
  }
#endif
  (void)path;
  return make_error(ErrorCode::unsupported, "store '" + std::string(name) + "' has no file another process can open");
}

std::string small_args(std::int64_t n) {
  // About the size of a typical job's arguments: an id, an address, a flag.
  return R"({"user_id":)" + std::to_string(n) + R"(,"to":"user@example.com","urgent":false})";
}

NewJob noop_job(std::int64_t n, std::string queue, int priority) {
  NewJob job;
  job.kind = std::string(kNoopKind);
  job.args = small_args(n);
  job.queue = std::move(queue);
  job.priority = priority;
  return job;
}

void fill(Store& store, std::int64_t count, int batch, std::string queue, int priorities) {
  std::vector<NewJob> jobs;
  jobs.reserve(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < count; ++i) {
    const int priority = priorities > 1 ? static_cast<int>((i * 7919) % priorities) : 0;
    jobs.push_back(noop_job(i, queue, priority));
    if (static_cast<int>(jobs.size()) == batch || i + 1 == count) {
      must(store.insert(jobs), "insert");
      jobs.clear();
    }
  }
}

namespace {
std::int64_t proc_status_kb(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return 0;
}
}  // namespace

std::int64_t rss_bytes() { return proc_status_kb("VmRSS") * 1024; }
std::int64_t peak_rss_bytes() { return proc_status_kb("VmHWM") * 1024; }

double percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  // Nearest rank: the smallest sample with at least p% of the samples at or below it.
  const auto n = static_cast<double>(samples.size());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n));
  rank = std::clamp<std::size_t>(rank, 1, samples.size());
  return samples[rank - 1];
}

double median(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const std::size_t n = samples.size();
  return n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double one_minute = 0;
  in >> one_minute;
  return one_minute;
}

void throw_error(const Error& error, std::string_view what) {
  throw std::runtime_error(std::string(what) + ": " + error.to_string());
}

}  // namespace porter::bench
