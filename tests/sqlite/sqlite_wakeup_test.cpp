// Cross-process wake-ups: a commit by another process on the same file
// reaches this process's listeners as StoreEvent::changed_elsewhere (the
// store watches the -wal file), while this process's own commits do not.
// The other process is a real one (fork + exec of porter_sqlite_worker).
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "porter/sqlite_store.h"
#include "sqlite/sqlite_test_support.h"

using namespace porter;
using namespace std::chrono_literals;
using porter::test::TempFile;

namespace {

// Runs the worker binary with `args` and waits for it to exit; its exit code.
int run_worker(const std::vector<std::string>& args) {
  std::vector<std::string> all{PORTER_SQLITE_WORKER_PATH};
  all.insert(all.end(), args.begin(), args.end());
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Counts the changed_elsewhere events a store delivers (on the store's
// threads: no Catch assertion there, it is not thread-safe).
struct ElsewhereCounter {
  std::mutex mu;
  std::condition_variable cv;
  int seen = 0;
  int with_queue = 0;  // events that named a queue: must stay 0
  void on(const StoreEvent& e) {
    if (e.type != StoreEvent::Type::changed_elsewhere) return;
    std::lock_guard lock(mu);
    ++seen;
    if (!e.queue.empty()) ++with_queue;
    cv.notify_all();
  }
  // Waits (bounded: a deadline, not a timing check) until `n` were seen.
  int wait_for(int n) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 20s, [&] { return seen >= n; });
    return seen;
  }
  int count() {
    std::lock_guard lock(mu);
    return seen;
  }
};

std::shared_ptr<Store> open_store(const std::string& path) {
  SqliteOptions options;
  options.durability = Durability::process_crash;
  auto store = open_sqlite_store(path, options);
  if (!store) FAIL("open failed: " << store.error().to_string());
  return *store;
}

}  // namespace

TEST_CASE("sqlite a commit in another process reaches this process's listeners", "[sqlite][multiprocess][wakeup]") {
  TempFile f;
  auto store = open_store(f.path);
  ElsewhereCounter counter;
  auto id = store->add_listener([&](const StoreEvent& e) { counter.on(e); });

  REQUIRE(run_worker({"insert", f.path, "1"}) == 0);
  CHECK(counter.wait_for(1) == 1);

  // This process's own commits are not another process's: no event for them.
  for (int i = 0; i < 30; ++i) {
    NewJob j{.kind = "own"};
    REQUIRE(store->insert(std::span<const NewJob>(&j, 1)).has_value());
  }
  auto claimed = store->claim(ClaimRequest{"default", "w", 10, 30s});
  REQUIRE(claimed.has_value());
  REQUIRE(run_worker({"insert", f.path, "1"}) == 0);
  CHECK(counter.wait_for(2) == 2);
  store->remove_listener(id);
  CHECK(counter.with_queue == 0);

  auto st = store->stats(1h);
  REQUIRE(st.has_value());
  REQUIRE(st->queues.size() == 1);
  CHECK(st->queues[0].pending + st->queues[0].running == 32);
}

TEST_CASE("sqlite a store whose listeners are gone stops cleanly and hears nothing more", "[sqlite][multiprocess][wakeup]") {
  TempFile f;
  ElsewhereCounter counter, again;
  {
    auto store = open_store(f.path);
    auto id = store->add_listener([&](const StoreEvent& e) { counter.on(e); });
    REQUIRE(run_worker({"insert", f.path, "1"}) == 0);
    CHECK(counter.wait_for(1) == 1);
    store->remove_listener(id);
    REQUIRE(run_worker({"insert", f.path, "2"}) == 0);
    // Re-armed by a new listener: the next commit elsewhere is heard again.
    store->add_listener([&](const StoreEvent& e) { again.on(e); });
    REQUIRE(run_worker({"insert", f.path, "1"}) == 0);
    CHECK(again.wait_for(1) >= 1);
  }  // the store (and its watcher thread) goes with a listener still registered
  CHECK(counter.count() == 1);
}
