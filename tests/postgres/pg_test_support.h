// Helpers of the PostgreSQL store's tests: child processes, the side-effect
// log, a private cluster for tests that restart the server, and the check
// that a crowd of engine processes lost no job and completed each once.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "porter/postgres_store.h"
#include "support/postgres_support.h"

namespace porter::test {

inline pid_t spawn(const std::vector<std::string>& args) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

inline int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline int run_command(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

inline std::vector<std::vector<std::int64_t>> read_lines(const std::string& path) {
  std::vector<std::vector<std::int64_t>> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::int64_t> v;
    std::int64_t x = 0;
    while (fields >> x) v.push_back(x);
    lines.push_back(std::move(v));
  }
  return lines;
}

inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// A folder next to the fixture's cluster, removed at the end.
struct TestDir {
  std::filesystem::path path;
  explicit TestDir(const std::string& name) {
    path = std::filesystem::path(test_pg_dir()).parent_path() / (name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A cluster of the test's own (for restarts), stopped and removed at the end.
struct PrivateCluster {
  std::string dir;
  explicit PrivateCluster(std::string d) : dir(std::move(d)) {
    REQUIRE(run_command("bash " PORTER_PG_CLUSTER_SCRIPT " start " + dir + " >/dev/null") == 0);
  }
  ~PrivateCluster() { run_command("bash " PORTER_PG_CLUSTER_SCRIPT " stop " + dir); }
  void control(const std::string& what, const std::string& mode = "") {
    REQUIRE(run_command("bash " PORTER_PG_CLUSTER_SCRIPT " " + what + " " + dir + " " + mode) == 0);
  }
  std::string conninfo() const { return test_pg_conninfo(dir); }
};

inline std::shared_ptr<Store> open_pg(const std::string& conninfo, const std::string& schema) {
  PostgresOptions options;
  options.schema = schema;
  auto store = open_postgres_store(conninfo, options);
  if (!store) FAIL("open failed: " << store.error().to_string());
  return *store;
}

inline bool unfinished(Store& store) {
  JobFilter f;
  f.states = {JobState::pending, JobState::running, JobState::waiting};
  auto page = store.list(f, std::nullopt, 1);
  return !page || !page->jobs.empty();  // an unreachable server: not known to be done
}

inline std::int64_t completed_count(Store& store) {
  auto st = store.stats(std::chrono::hours(1));
  if (!st) return 0;
  std::int64_t n = 0;
  for (const auto& q : st->queues) n += q.completed;
  return n;
}

// Every one of `jobs` jobs completed, by a claim whose side effect is in
// `log`, each claim's side effect logged at most once.
inline void check_each_completed_once(Store& store, const std::string& log, int jobs, int lease_ms) {
  std::map<JobId, Job> final_jobs;
  std::optional<JobId> cursor;
  do {
    auto page = store.list({}, cursor, 1000);
    REQUIRE(page.has_value());
    for (auto& j : page->jobs) final_jobs.emplace(j.id, j);
    cursor = page->next;
  } while (cursor);
  REQUIRE(final_jobs.size() == static_cast<std::size_t>(jobs));
  std::map<JobId, std::map<std::int64_t, std::int64_t>> runs;  // id -> token -> started_us
  for (const auto& l : read_lines(log)) {
    REQUIRE(l.size() == 3);
    CHECK(runs[l[0]].emplace(l[1], l[2]).second);  // a token is one claim: never run twice
  }
  std::int64_t reruns = 0;
  for (const auto& [id, j] : final_jobs) {
    INFO("job " << id);
    REQUIRE(j.state == JobState::completed);
    CHECK(static_cast<int>(j.errors.size()) == j.attempt - 1);  // every earlier claim ended in an error
    auto& tokens = runs[id];
    CHECK(tokens.count(j.attempt) == 1);  // the accepted completion's side effect is logged
    CHECK(tokens.rbegin()->first == j.attempt);  // and no later claim ran
    reruns += static_cast<std::int64_t>(tokens.size()) - 1;
    for (const auto& e : j.errors) {
      if (e.message != "lease expired") continue;
      auto it = tokens.find(e.attempt);
      if (it == tokens.end()) continue;  // killed between claim and side effect
      // Never rescued before its lease (at least lease_ms after the start) ran out.
      CHECK(e.at.time_since_epoch().count() - it->second >= std::int64_t{lease_ms} * 1000);
    }
  }
  WARN(jobs << " jobs, " << reruns << " re-runs after faults");
}

}  // namespace porter::test
