// SQLite-specific tests: opening damaged, foreign, newer and unreachable
// databases (a clear error and the file left untouched), hostile input,
// durability across processes, and several processes sharing one file -
// including a crash test that SIGKILLs workers at random moments.
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "porter/sqlite_store.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using porter::ErrorCode;
using porter::JobState;

#include "sqlite/sqlite_test_support.h"

using porter::test::raw_sql;
using porter::test::read_bytes;
using porter::test::TempDir;
using porter::test::write_bytes;

namespace {

std::shared_ptr<porter::Store> open_ok(const std::string& path, std::shared_ptr<porter::Clock> clock = nullptr) {
  porter::SqliteOptions options;
  options.clock = std::move(clock);
  auto store = porter::open_sqlite_store(path, options);
  if (!store) FAIL("open failed: " << store.error().to_string());
  return *store;
}


// Opening must fail with `code`, leave the file's bytes as they were and
// create no WAL beside it.
void expect_refused(const std::string& path, ErrorCode code) {
  std::string before = read_bytes(path);
  auto store = porter::open_sqlite_store(path);
  REQUIRE_FALSE(store.has_value());
  INFO(store.error().to_string());
  CHECK(store.error().code() == code);
  CHECK_FALSE(store.error().message().empty());
  CHECK(read_bytes(path) == before);
  CHECK_FALSE(fs::exists(path + "-wal"));
}

porter::NewJob job(std::string kind = "work", std::string queue = "default") {
  porter::NewJob j;
  j.kind = std::move(kind);
  j.queue = std::move(queue);
  return j;
}

porter::JobId insert_one(porter::Store& store, const porter::NewJob& j) {
  auto r = store.insert(std::span(&j, 1));
  REQUIRE(r.has_value());
  return r->front().id;
}

}  // namespace

TEST_CASE("opening a new file creates a Porter database that reopens", "[sqlite]") {
  TempDir dir;
  auto path = dir.file("jobs.db");
  {
    auto store = open_ok(path);
    insert_one(*store, job());
  }
  auto store = open_ok(path);
  auto page = store->list({}, std::nullopt, 10);
  REQUIRE(page.has_value());
  CHECK(page->jobs.size() == 1);
}

TEST_CASE("a file that is not a database is refused untouched", "[sqlite]") {
  TempDir dir;
  SECTION("text") {
    auto path = dir.file("notes.txt");
    write_bytes(path, "just some text, not a database\n");
    expect_refused(path, ErrorCode::corruption);
  }
  SECTION("random bytes") {
    auto path = dir.file("random.bin");
    std::mt19937 rng(7);
    std::string bytes(8192, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    write_bytes(path, bytes);
    expect_refused(path, ErrorCode::corruption);
  }
  SECTION("random bytes behind a SQLite header") {
    auto path = dir.file("fake.db");
    std::string bytes("SQLite format 3\0", 16);
    std::mt19937 rng(11);
    for (int i = 0; i < 8192; ++i) bytes.push_back(static_cast<char>(rng()));
    write_bytes(path, bytes);
    expect_refused(path, ErrorCode::corruption);
  }
}

TEST_CASE("a SQLite database that is not Porter's is refused untouched", "[sqlite]") {
  TempDir dir;
  auto path = dir.file("app.db");
  raw_sql(path, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada');");
  expect_refused(path, ErrorCode::corruption);
}

TEST_CASE("a Porter database with a newer schema version is refused untouched", "[sqlite]") {
  TempDir dir;
  auto path = dir.file("jobs.db");
  { open_ok(path); }
  raw_sql(path, "PRAGMA user_version = 99;");
  expect_refused(path, ErrorCode::unsupported);
}

TEST_CASE("a truncated or damaged Porter database gives a corruption error", "[sqlite]") {
  TempDir dir;
  auto path = dir.file("jobs.db");
  {
    auto store = open_ok(path);
    std::vector<porter::NewJob> jobs(2000, job());
    for (auto& j : jobs) j.args = R"({"payload":"some bytes to fill a few pages of the database file"})";
    REQUIRE(store->insert(jobs).has_value());
  }
  REQUIRE_FALSE(fs::exists(path + "-wal"));  // closed cleanly: everything is in the main file
  auto original = read_bytes(path);
  REQUIRE(original.size() > 16 * 4096);

  SECTION("truncated to half") {
    write_bytes(path, original.substr(0, original.size() / 2));
    expect_refused(path, ErrorCode::corruption);
  }
  SECTION("pages overwritten with garbage") {
    std::string damaged = original;
    std::mt19937 rng(3);
    for (std::size_t i = 4096; i < damaged.size(); ++i) damaged[i] = static_cast<char>(rng());
    write_bytes(path, damaged);
    auto before = read_bytes(path);
    auto store = porter::open_sqlite_store(path);
    if (store) {
      // The damage lies beyond what opening reads: the first full read reports it.
      auto page = (*store)->list({}, std::nullopt, 5000);
      REQUIRE_FALSE(page.has_value());
      CHECK(page.error().code() == ErrorCode::corruption);
    } else {
      INFO(store.error().to_string());
      CHECK(store.error().code() == ErrorCode::corruption);
      CHECK(read_bytes(path) == before);
    }
  }
}

TEST_CASE("an unreachable location gives an unavailable error", "[sqlite]") {
  TempDir dir;
  SECTION("missing directory") {
    auto path = dir.file("no/such/dir/jobs.db");
    auto store = porter::open_sqlite_store(path);
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().code() == ErrorCode::unavailable);
    CHECK_FALSE(fs::exists(dir.file("no")));
  }
  SECTION("a directory where no file can be created") {
    // Root ignores permission bits, so use a place no one can create files in:
    // /proc refuses new files even to root. Without root, a 0555 directory works too.
    std::string path = "/proc/porter-test-" + std::to_string(::getpid()) + ".db";
    if (::geteuid() != 0) {
      auto ro = dir.file("ro");
      fs::create_directory(ro);
      fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
      path = ro + "/jobs.db";
    }
    auto store = porter::open_sqlite_store(path);
    REQUIRE_FALSE(store.has_value());
    INFO(store.error().to_string());
    CHECK(store.error().code() == ErrorCode::unavailable);
    CHECK_FALSE(fs::exists(path));
  }
  SECTION("a database opened read-only fails on its first write and keeps its data") {
    auto path = dir.file("jobs.db");
    porter::JobId id = 0;
    {
      auto store = open_ok(path);
      id = insert_one(*store, job());
    }
    auto before = read_bytes(path);
    auto store = porter::open_sqlite_store("file:" + path + "?mode=ro");
    REQUIRE(store.has_value());
    auto got = (*store)->get(id);
    REQUIRE(got.has_value());
    CHECK(got->kind == "work");
    auto j = job();
    auto r = (*store)->insert(std::span(&j, 1));
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().to_string());
    CHECK(r.error().code() == ErrorCode::unavailable);
    auto claimed = (*store)->claim({.queue = "default", .worker = "w"});
    REQUIRE_FALSE(claimed.has_value());
    CHECK(claimed.error().code() == ErrorCode::unavailable);
    store = porter::make_error(ErrorCode::internal, "closed");
    CHECK(read_bytes(path) == before);
  }
}

TEST_CASE("hostile names and arguments round-trip or are rejected whole", "[sqlite]") {
  TempDir dir;
  auto store = open_ok(dir.file("jobs.db"));
  const std::string evil = "'); DROP TABLE jobs; --";
  SECTION("quotes, semicolons and SQL in every name round-trip") {
    porter::NewJob j = job(evil + "\"kind\"", "q';\"" + evil);
    j.owner = "o'wner; " + evil;
    j.unique_key = "key\"'; " + evil;
    j.description = evil;
    j.args = R"({"sql":"'); DROP TABLE jobs; --","quote":"\"","nul":"\u0000"})";
    auto id = insert_one(*store, j);
    auto got = store->get(id);
    REQUIRE(got.has_value());
    CHECK(got->kind == j.kind);
    CHECK(got->queue == j.queue);
    CHECK(got->owner == j.owner);
    CHECK(got->unique_key == j.unique_key);
    CHECK(got->description == evil);
    CHECK(got->args == j.args);
    // Filters bind the same strings as parameters.
    porter::JobFilter f;
    f.queue = j.queue;
    f.kind = j.kind;
    f.owner = j.owner;
    auto page = store->list(f, std::nullopt, 10);
    REQUIRE(page.has_value());
    REQUIRE(page->jobs.size() == 1);
    CHECK(page->jobs[0].id == id);
    // A duplicate is found by the same key.
    auto dup = store->insert(std::span(&j, 1));
    REQUIRE(dup.has_value());
    CHECK(dup->front().duplicate);
    auto claimed = store->claim({.queue = j.queue, .worker = evil});
    REQUIRE(claimed.has_value());
    REQUIRE(claimed->size() == 1);
    CHECK(claimed->front().lease->worker == evil);
    auto fin = store->finish(std::vector<porter::Outcome>{
        {.lease = claimed->front().lease_ref(), .kind = porter::OutcomeKind::fail, .error = evil}});
    REQUIRE(fin.has_value());
    got = store->get(id);
    REQUIRE(got.has_value());
    REQUIRE(got->errors.size() == 1);
    CHECK(got->errors[0].message == evil);
  }
  SECTION("invalid or oversized args reject the whole batch") {
    std::vector<porter::NewJob> jobs{job(), job(), job()};
    jobs[1].args = GENERATE(std::string("{not json"), std::string("{\"a\":1}x"),
                            std::string(porter::kMaxArgsBytes + 1, ' '));
    auto r = store->insert(jobs);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ErrorCode::invalid_argument);
    CHECK(r.error().message().find("job 1") != std::string::npos);
    auto page = store->list({}, std::nullopt, 10);
    REQUIRE(page.has_value());
    CHECK(page->jobs.empty());
  }
  SECTION("args of exactly the limit are stored whole") {
    porter::NewJob j = job();
    j.args = "\"" + std::string(porter::kMaxArgsBytes - 2, 'x') + "\"";
    auto id = insert_one(*store, j);
    auto got = store->get(id);
    REQUIRE(got.has_value());
    CHECK(got->args == j.args);
  }
}

TEST_CASE("a big mixed batch keeps every job's fields, its order and its unique checks", "[sqlite]") {
  // Plain jobs are written in multi-row chunks (128, 16, 4, 1 rows); jobs with
  // a unique key or dependencies one by one, in order, in between.
  TempDir dir;
  auto store = open_ok(dir.file("jobs.db"));
  auto dep = insert_one(*store, job("dep"));
  std::vector<porter::NewJob> batch;
  for (int i = 0; i < 301; ++i) {
    auto j = job(i % 3 ? "plain" : "other", i % 2 ? "q1" : "q2");
    j.args = "{\"n\":" + std::to_string(i) + "}";
    j.priority = i % 7 - 3;
    j.max_attempts = i % 4;
    j.owner = "owner" + std::to_string(i % 5);
    j.description = "d" + std::to_string(i);
    j.delay = std::chrono::seconds(i % 2);
    if (i == 150 || i == 201) j.unique_key = "u";  // same kind: the second one matches the first
    if (i == 170) j.depends_on = {dep};
    batch.push_back(j);
  }
  auto r = store->insert(batch);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == batch.size());
  CHECK((*r)[201].duplicate);
  CHECK((*r)[201].id == (*r)[150].id);
  porter::JobId prev = dep;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    INFO("job " << i);
    if (i == 201) continue;
    CHECK_FALSE((*r)[i].duplicate);
    CHECK((*r)[i].id > prev);  // ids grow in batch order
    prev = (*r)[i].id;
    auto got = store->get((*r)[i].id);
    REQUIRE(got.has_value());
    CHECK(got->kind == batch[i].kind);
    CHECK(got->queue == batch[i].queue);
    CHECK(got->args == batch[i].args);
    CHECK(got->priority == batch[i].priority);
    CHECK(got->max_attempts == (batch[i].max_attempts > 0 ? batch[i].max_attempts : porter::kDefaultMaxAttempts));
    CHECK(got->owner == batch[i].owner);
    CHECK(got->description == batch[i].description);
    CHECK(got->run_at - got->created_at == *batch[i].delay);
    CHECK(got->state == (i == 170 ? JobState::waiting : JobState::pending));
  }
}

TEST_CASE("jobs, leases and errors written by another process survive reopening", "[sqlite]") {
  TempDir dir;
  auto path = dir.file("jobs.db");
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Child: write, then die without closing anything.
    int code = 0;
    {
      auto store = porter::open_sqlite_store(path);
      if (!store) ::_exit(10);
      std::vector<porter::NewJob> jobs(3, job("durable"));
      jobs[2].queue = "other";
      if (!(*store)->insert(jobs)) ::_exit(11);
      auto claimed = (*store)->claim({.queue = "default", .worker = "child", .limit = 2, .lease_for = 1h});
      if (!claimed || claimed->size() != 2) ::_exit(12);
      auto fin = (*store)->finish(std::vector<porter::Outcome>{
          {.lease = (*claimed)[0].lease_ref(), .kind = porter::OutcomeKind::retry, .error = "boom"}});
      if (!fin || !fin->front().status) ::_exit(13);
      if (!(*store)->report_progress((*claimed)[1].lease_ref(), {.done = 3, .total = 9, .message = "a third"})) code = 14;
      std::vector<porter::ItemError> items{{"row 1", "bad"}, {"row 2", "worse"}};
      if (!(*store)->add_item_errors((*claimed)[1].lease_ref(), items)) code = 15;
      ::_exit(code);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  auto store = open_ok(path);
  auto retried = store->get(1);
  REQUIRE(retried.has_value());
  CHECK(retried->state == JobState::pending);
  REQUIRE(retried->errors.size() == 1);
  CHECK(retried->errors[0].message == "boom");
  CHECK(retried->attempt == 1);
  auto running = store->get(2);
  REQUIRE(running.has_value());
  CHECK(running->state == JobState::running);
  REQUIRE(running->lease.has_value());
  CHECK(running->lease->worker == "child");
  CHECK(running->progress.done == 3);
  CHECK(running->progress.message == "a third");
  CHECK(running->item_error_count == 2);
  REQUIRE(running->item_errors.size() == 2);
  CHECK(running->item_errors[1].item == "row 2");
  // The lease is still live in the new process: its token finishes the job.
  auto fin = store->finish(std::vector<porter::Outcome>{{.lease = running->lease_ref()}});
  REQUIRE(fin.has_value());
  CHECK(fin->front().status.has_value());
  CHECK(fin->front().state == JobState::completed);
  auto other = store->get(3);
  REQUIRE(other.has_value());
  CHECK(other->queue == "other");
  CHECK(other->state == JobState::pending);
}

namespace {

pid_t spawn(const std::vector<std::string>& args) {
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

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::vector<std::int64_t>> read_lines(const std::string& path) {
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

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

}  // namespace

TEST_CASE("several processes on one file never claim a job twice", "[sqlite][multiprocess]") {
  TempDir dir;
  auto path = dir.file("jobs.db");
  const int jobs = env_int("PORTER_SQLITE_MP_JOBS", 2000);
  const int workers = 4;
  {
    auto store = open_ok(path);
    std::vector<porter::NewJob> batch(static_cast<std::size_t>(jobs), job("mp", "shared"));
    REQUIRE(store->insert(batch).has_value());
  }
  auto out = dir.file("claims.log");
  std::vector<pid_t> pids;
  for (int i = 0; i < workers; ++i) {
    pids.push_back(spawn({PORTER_SQLITE_WORKER_PATH, "claim", path, "shared", out, "60000"}));
  }
  for (pid_t p : pids) CHECK(wait_exit(p) == 0);

  std::map<std::int64_t, int> claims;
  for (const auto& l : read_lines(out)) {
    REQUIRE(l.size() == 2);
    ++claims[l[0]];
    CHECK(l[1] == 1);  // the first and only lease of the job
  }
  CHECK(claims.size() == static_cast<std::size_t>(jobs));
  for (const auto& [id, n] : claims) {
    INFO("job " << id);
    CHECK(n == 1);
  }
  auto store = open_ok(path);
  auto st = store->stats(1h);
  REQUIRE(st.has_value());
  REQUIRE(st->queues.size() == 1);
  CHECK(st->queues[0].completed == jobs);
}

// Starts `workers` worker processes of `mode` ("run": a store loop, "engine":
// a porter::Engine) on one file, SIGKILLs and restarts or SIGSTOPs them at
// random moments until every job is final, then checks that no job was lost
// and each completed exactly once, by the claim whose side effect is logged.
void crash_test(const std::string& mode, int default_jobs) {
  TempDir dir;
  auto path = dir.file("jobs.db");
  const int jobs = env_int("PORTER_SQLITE_CRASH_JOBS", default_jobs);
  const int workers = 4;
  const int lease_ms = 400;
  const int reaper_ms = 100;
  {
    porter::SqliteOptions options;
    options.durability = porter::Durability::process_crash;
    auto store = porter::open_sqlite_store(path, options);
    REQUIRE(store.has_value());
    std::vector<porter::NewJob> batch(static_cast<std::size_t>(jobs), job("crash", "crash"));
    REQUIRE((*store)->insert(batch).has_value());
  }
  auto log = dir.file("effects.log");
  auto stale_log = dir.file("stale.log");
  auto start_worker = [&] {
    return spawn({PORTER_SQLITE_WORKER_PATH, mode, path, "crash", log, stale_log, std::to_string(lease_ms),
                  std::to_string(reaper_ms)});
  };
  std::vector<pid_t> pids;
  for (int i = 0; i < workers; ++i) pids.push_back(start_worker());

  auto store = open_ok(path);
  std::mt19937 rng(42);
  int kills = 0, pauses = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(env_int("PORTER_SQLITE_CRASH_SECONDS", 50));
  auto unfinished = [&] {
    porter::JobFilter f;
    f.states = {JobState::pending, JobState::running, JobState::waiting};
    auto page = store->list(f, std::nullopt, 1);
    REQUIRE(page.has_value());
    return !page->jobs.empty();
  };
  while (unfinished()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    // The interval between faults is the test's pace, not a wait for a condition.
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 120));
    auto& victim = pids[rng() % pids.size()];
    if (rng() % 5 == 0) {
      // Freeze a worker past its lease: its jobs are rescued and re-run
      // elsewhere, and its late finishes must be rejected as stale.
      ::kill(victim, SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(lease_ms + 2 * reaper_ms));
      ::kill(victim, SIGCONT);
      ++pauses;
    } else {
      ::kill(victim, SIGKILL);
      wait_exit(victim);
      victim = start_worker();
      ++kills;
    }
  }
  for (pid_t p : pids) {
    ::kill(p, SIGKILL);
    wait_exit(p);
  }

  // Every job completed exactly once.
  std::map<porter::JobId, porter::Job> final_jobs;
  std::optional<porter::JobId> cursor;
  do {
    auto page = store->list({}, cursor, 1000);
    REQUIRE(page.has_value());
    for (auto& j : page->jobs) final_jobs.emplace(j.id, j);
    cursor = page->next;
  } while (cursor);
  REQUIRE(final_jobs.size() == static_cast<std::size_t>(jobs));

  // The side-effect log: who ran which claim, and when it started.
  std::map<porter::JobId, std::map<std::int64_t, std::int64_t>> runs;  // id -> token -> started_us
  for (const auto& l : read_lines(log)) {
    REQUIRE(l.size() == 3);
    CHECK(runs[l[0]].emplace(l[1], l[2]).second);  // a token is one claim: never run twice
  }
  std::int64_t reruns = 0, rescues = 0, self_stops = 0;
  std::int64_t worst_rescue_us = 0;
  for (const auto& [id, j] : final_jobs) {
    INFO("job " << id);
    REQUIRE(j.state == JobState::completed);
    // Each claim increments attempt and token alike; every earlier claim was
    // rescued after its lease expired, which left one error each.
    CHECK(static_cast<int>(j.errors.size()) == j.attempt - 1);
    auto& tokens = runs[id];
    // The accepted completion came from the last claim, whose side effect is logged.
    CHECK(tokens.count(j.attempt) == 1);
    CHECK(tokens.rbegin()->first == j.attempt);
    reruns += static_cast<std::int64_t>(tokens.size()) - 1;
    for (const auto& e : j.errors) {
      // An engine that was frozen past its heartbeats stops its own run when
      // it wakes, while its lease is still live (the watchdog's lease
      // deadline): a retry under the live token, not a rescue.
      if (e.message.rfind("stopped: the lease could not be renewed", 0) == 0) {
        CHECK(mode == "engine");
        ++self_stops;
        continue;
      }
      CHECK(e.message == "lease expired");
      ++rescues;
      auto it = tokens.find(e.attempt);
      if (it == tokens.end()) continue;  // killed between claim and side effect
      // The lease (never extended here) expired at start + lease: a rescue
      // before that would break "one live lease per job".
      std::int64_t late = e.at.time_since_epoch().count() - (it->second + lease_ms * 1000);
      CHECK(late >= 0);
      worst_rescue_us = std::max(worst_rescue_us, late);
    }
  }
  // Late finishes of frozen workers: rejected, and always for an older claim.
  std::int64_t stale = 0;
  for (const auto& l : read_lines(stale_log)) {
    REQUIRE(l.size() == 2);
    CHECK(l[1] < final_jobs.at(l[0]).attempt);
    ++stale;
  }
  WARN("crash test (" << mode << "): " << jobs << " jobs, " << kills << " kills, " << pauses << " pauses, " << rescues
                      << " rescues, " << self_stops << " runs stopped at their lease deadline, " << reruns
                      << " re-runs, " << stale << " stale finishes rejected, worst rescue "
                      << worst_rescue_us / 1000 << " ms after lease expiry");
  // Rescue delay is bounded by the reaper interval plus scheduling noise; a
  // generous bound keeps slow sanitizer builds green while catching a reaper
  // that never ran.
  CHECK(worst_rescue_us <= (reaper_ms + 10'000) * 1000);
  CHECK(kills >= 2);  // a run that drained before any fault proved nothing
}

TEST_CASE("crash test: workers killed at random moments lose no job and finish each once", "[sqlite][multiprocess]") {
  crash_test("run", 3000);
}

TEST_CASE("crash test: engines in killed processes lose no job and finish each once", "[sqlite][multiprocess]") {
  // Heartbeats extend leases here, so a frozen engine's jobs are rescued only
  // once its last extension runs out; the bounds above still hold.
  crash_test("engine", 8000);  // engines drain faster: more jobs, so faults land
}
