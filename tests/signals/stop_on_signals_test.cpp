// StopOnSignals (porter/signals.h) in a real process: SIGTERM and SIGINT
// stop the engine gracefully; a job that ends within the grace completes, one
// that does not is handed back with its attempt not consumed.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <string>

#include "cli/run_process.h"
#include "porter/engine.h"
#include "porter/signals.h"
#include "porter/sqlite_store.h"

using namespace porter;

namespace {

std::string temp_db(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("porter-signals-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::filesystem::remove(path);
  return path.string();
}

JobId ready_id(const std::string& line) {
  REQUIRE(line.rfind("ready ", 0) == 0);
  return std::stoll(line.substr(6));
}

}  // namespace

TEST_CASE("signals: SIGTERM hands back a job that does not finish within the grace", "[signals][process]") {
  const std::string db = temp_db("hand_back.db");
  test::Process worker({PORTER_SIGNAL_WORKER, db, "hand-back"});
  const JobId id = ready_id(worker.read_line());
  worker.signal(SIGTERM);
  const auto r = worker.wait();
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("stopped 15 running=0") != std::string::npos);
  auto store = open_sqlite_store(db).value();
  auto job = store->get(id).value();
  CHECK(job.state == JobState::pending);
  CHECK(job.attempt == 0);  // handed back: the attempt is not consumed
  CHECK(job.errors.empty());
}

TEST_CASE("signals: SIGINT lets a job that ends within the grace complete", "[signals][process]") {
  const std::string db = temp_db("finish.db");
  test::Process worker({PORTER_SIGNAL_WORKER, db, "finish"});
  const JobId id = ready_id(worker.read_line());
  worker.signal(SIGINT);
  const auto r = worker.wait();
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("stopped 2 running=0") != std::string::npos);
  auto store = open_sqlite_store(db).value();
  CHECK(store->get(id).value().state == JobState::completed);
}

TEST_CASE("signals: one StopOnSignals per process, and the dispositions come back after it", "[signals]") {
  auto store = make_memory_store();
  Engine engine(store, {.diagnostics = discard_diagnostics()});
  struct sigaction before {};
  ::sigaction(SIGTERM, nullptr, &before);
  {
    StopOnSignals first(engine);
    struct sigaction during {};
    ::sigaction(SIGTERM, nullptr, &during);
    CHECK(during.sa_handler != before.sa_handler);
    CHECK_THROWS_AS(StopOnSignals(engine), std::logic_error);
    CHECK(first.received() == 0);
  }
  struct sigaction after {};
  ::sigaction(SIGTERM, nullptr, &after);
  CHECK(after.sa_handler == before.sa_handler);
  StopOnSignals again(engine);  // the first one is gone: allowed
}
