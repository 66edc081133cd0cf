// The stores under test. Each entry makes a fresh, empty store on a manual
// clock; backends that need a database create a throwaway one per store.
#include "support/store_factories.h"

#ifdef PORTER_WITH_SQLITE
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "porter/sqlite_store.h"
#endif

#ifdef PORTER_WITH_POSTGRES
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>

#include "porter/postgres_store.h"
#include "support/postgres_support.h"
#endif

namespace porter::test {

#ifdef PORTER_WITH_POSTGRES
namespace {

// A fresh schema per store on the cluster the CTest fixture started, dropped
// when the store goes. A missing server fails the case (never a skip).
std::shared_ptr<Store> make_postgres_store(std::shared_ptr<ManualClock> clock) {
  // The suite tests semantics, not durability (as the SQLite factory): commits do not wait for fsync.
  const std::string conninfo = test_pg_conninfo() + " options='-c synchronous_commit=off'";
  static std::atomic<int> counter{0};
  PostgresOptions options;
  options.schema = "conf_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  options.clock = std::move(clock);
  options.pool_size = 4;
  options.listen = false;  // in-process events only; tests/postgres covers notifications
  auto opened = open_postgres_store(conninfo, options);
  if (!opened) throw BadResultAccess(opened.error());
  std::shared_ptr<Store> store = std::move(*opened);
  Store* raw = store.get();
  return std::shared_ptr<Store>(raw, [store = std::move(store), conninfo, schema = options.schema](Store*) mutable {
    store.reset();
    drop_test_schema(conninfo, schema);
  });
}

}  // namespace
#endif

#ifdef PORTER_WITH_SQLITE
namespace {

// A new database file per store, deleted (with its WAL) when the store goes.
// process_crash durability: the suite tests semantics, not fsync.
std::shared_ptr<Store> make_sqlite_store(std::shared_ptr<ManualClock> clock) {
  static std::atomic<int> counter{0};
  auto path = (std::filesystem::temp_directory_path() /
               ("porter-conformance-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".db"))
                  .string();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  SqliteOptions options;
  options.durability = Durability::process_crash;
  options.clock = std::move(clock);
  auto opened = open_sqlite_store(path, options);
  if (!opened) throw BadResultAccess(opened.error());
  std::shared_ptr<Store> store = std::move(*opened);
  Store* raw = store.get();
  return std::shared_ptr<Store>(raw, [store = std::move(store), path](Store*) mutable {
    store.reset();
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
  });
}

}  // namespace
#endif

const std::vector<StoreFactory>& all_store_factories() {
  static const std::vector<StoreFactory> factories = {
      {"memory", [](std::shared_ptr<ManualClock> clock) { return make_memory_store(std::move(clock)); }},
#ifdef PORTER_WITH_SQLITE
      {"sqlite", make_sqlite_store},
#endif
#ifdef PORTER_WITH_POSTGRES
      {"postgres", make_postgres_store},
#endif
  };
  return factories;
}

}  // namespace porter::test
