// libFuzzer target: open a damaged Porter database. At start-up it builds a
// small valid database (jobs pending, scheduled, failed with errors, a parent
// with children, a dependency, progress and item errors) and keeps its bytes.
// Each input is a list of patches written over a copy of those bytes:
//   [offset: 2 bytes, little endian][length: 1 byte][length bytes] ...
// (a patch may run past the end and grow the file; a last, short patch sets
// the file's length to its offset, truncating it). open_sqlite_store must
// then answer an error or a store on which reads and a worker's round trip
// answer values or errors: never a crash, a sanitizer report or a hang.
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "porter/sqlite_store.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "sqlite_open_fuzz: %s\n", what.c_str());
  std::abort();
}

porter::SqliteOptions options() {
  return {.durability = porter::Durability::process_crash, .busy_timeout = std::chrono::milliseconds(100)};
}

// A directory of this process's own (in memory where /dev/shm exists), removed at exit.
const fs::path& work_dir() {
  struct Dir {
    fs::path path;
    Dir() {
      const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
      path = base / ("porter_sqlite_fuzz_" + std::to_string(getpid()));
      fs::create_directories(path);
    }
    ~Dir() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
    Dir(const Dir&) = delete;
    Dir& operator=(const Dir&) = delete;
  };
  static const Dir dir;
  return dir.path;
}

void remove_database(const fs::path& db) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(db.string() + suffix, ignored);
}

// A small database with a bit of every kind of row, closed and checkpointed.
std::vector<char> make_seed() {
  const fs::path db = work_dir() / "seed.db";
  remove_database(db);
  {
    auto store = porter::open_sqlite_store(db.string(), options());
    if (!store) broken("cannot create the seed database: " + store.error().to_string());
    porter::Store& s = **store;
    std::vector<porter::NewJob> jobs = {
        {.kind = "mail", .args = R"({"to":"ada@example.com"})", .owner = "ada"},
        {.kind = "mail", .args = R"([1,2,3])", .priority = -5, .unique_key = "u1"},
        {.kind = "report", .queue = "slow", .delay = 1h, .description = "later"},
        {.kind = "parent", .args = R"({"n":1})"},
    };
    auto ids = s.insert(jobs).value();
    (void)s.insert(std::vector<porter::NewJob>{{.kind = "after", .depends_on = {ids[0].id}}}).value();
    auto claimed = s.claim({.queue = "default", .worker = "seed", .limit = 3}).value();
    std::vector<porter::Outcome> outcomes;
    for (const porter::Job& job : claimed) {
      if (job.kind == "parent") {
        (void)s.spawn(job.lease_ref(), std::vector<porter::NewJob>{{.kind = "child"}, {.kind = "child"}}).value();
        (void)s.report_progress(job.lease_ref(), {.done = 1, .total = 2, .message = "half"});
        std::vector<porter::ItemError> errors = {{.item = "row 7", .message = "bad e-mail"}};
        (void)s.add_item_errors(job.lease_ref(), errors);
        outcomes.push_back({.lease = job.lease_ref(), .kind = porter::OutcomeKind::wait_children});
      } else {
        outcomes.push_back({.lease = job.lease_ref(), .kind = porter::OutcomeKind::retry, .error = "timeout"});
      }
    }
    (void)s.finish(outcomes).value();
  }
  std::ifstream in(db, std::ios::binary);
  std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (bytes.empty() || (fs::exists(db.string() + "-wal") && fs::file_size(db.string() + "-wal") > 0)) {
    broken("the seed database was not checkpointed into its file");
  }
  return bytes;
}

std::vector<char> damaged(const std::vector<char>& seed, const std::uint8_t* data, std::size_t size) {
  std::vector<char> bytes = seed;
  while (size >= 3) {
    const std::size_t offset = data[0] | (std::size_t{data[1]} << 8);
    const std::size_t length = data[2];
    data += 3;
    size -= 3;
    if (length > size) {  // a short last patch truncates the file
      bytes.resize(std::min(offset, bytes.size()));
      break;
    }
    if (bytes.size() < offset + length) bytes.resize(offset + length);
    std::copy(data, data + length, bytes.begin() + static_cast<std::ptrdiff_t>(offset));
    data += length;
    size -= length;
  }
  return bytes;
}

// Reads and one worker round trip; each answers a value or an error.
void exercise(porter::Store& s) {
  for (porter::JobId id = 1; id <= 8; ++id) (void)s.get(id);
  (void)s.stats(1h);
  (void)s.next_run_at("default");
  (void)s.rescue_expired();
  (void)s.insert(std::vector<porter::NewJob>{{.kind = "new", .unique_key = "u1"}});
  auto claimed = s.claim({.queue = "default", .worker = "fuzz", .limit = 4});
  if (!claimed) return;
  std::vector<porter::Outcome> outcomes;
  for (const porter::Job& job : *claimed) outcomes.push_back({.lease = job.lease_ref(), .result = R"({"ok":true})"});
  (void)s.finish(outcomes);
  (void)s.cancel(1, "fuzz");
  (void)s.retry_job(2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<char> seed = make_seed();
  const fs::path db = work_dir() / "damaged.db";
  remove_database(db);
  {
    const std::vector<char> bytes = damaged(seed, data, size);
    std::ofstream out(db, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto store = porter::open_sqlite_store(db.string(), options());
  if (!store) {
    if (store.error().message().empty()) broken("an error without a message");
    if (size == 0) broken("the undamaged seed does not open: " + store.error().to_string());
    return 0;
  }
  exercise(**store);
  return 0;
}
