// A SQLite transaction ends on every exit path: an exception that is not a
// SqliteError (here std::bad_alloc, injected at every allocation in turn)
// rolls back instead of leaving BEGIN IMMEDIATE open, which would hold the
// file's write lock against every other process.
// The replacement operator new/delete below pair malloc with free; GCC 12
// loses that through inlining and warns about a mismatch that is not there.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include "porter/sqlite_store.h"

namespace {

// 0: off; n > 0: the n-th allocation from now on this thread throws.
thread_local long allocations_until_failure = 0;

}  // namespace

// Allocation failure injection for this test binary; a plain malloc otherwise.
// Every unaligned form is replaced, so each pairs with its own delete
// (sanitizers check the pairing).
void* operator new(std::size_t n) {
  if (allocations_until_failure > 0 && --allocations_until_failure == 0) throw std::bad_alloc();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n == 0 ? 1 : n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n == 0 ? 1 : n); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

namespace fs = std::filesystem;

std::shared_ptr<porter::Store> open_store(const std::string& path) {
  porter::SqliteOptions options;
  options.busy_timeout = std::chrono::milliseconds(0);  // a held write lock fails at once
  auto s = porter::open_sqlite_store(path, options);
  INFO((s ? std::string() : s.error().to_string()));
  REQUIRE(s.has_value());
  return *s;
}

std::vector<porter::NewJob> batch(int round) {
  porter::NewJob a{.kind = "a"};
  porter::NewJob b{.kind = "b"};
  b.unique_key = "u" + std::to_string(round);
  b.description = "not a plain job: written row by row";
  return {a, b};
}

}  // namespace

TEST_CASE("sqlite: an exception other than SqliteError inside a transaction rolls it back", "[sqlite][fault]") {
  auto dir = fs::temp_directory_path() / ("porter-tx-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "tx.db").string();
  {
    auto store = open_store(path);
    auto other = open_store(path);  // another connection, as another process would have
    REQUIRE(store->insert(batch(0)).has_value());
    int threw = 0;
    bool completed = false;
    for (long n = 1; n < 5000 && !completed; ++n) {
      INFO("failing allocation " << n);
      allocations_until_failure = n;
      try {
        auto r = store->insert(batch(static_cast<int>(n)));
        completed = r.has_value();
      } catch (const std::bad_alloc&) {
        ++threw;
      }
      allocations_until_failure = 0;
      // Whatever happened, no transaction was left open: both connections write at once.
      auto o = other->insert(std::vector<porter::NewJob>{{.kind = "other"}});
      INFO((o ? std::string() : o.error().to_string()));
      REQUIRE(o.has_value());
      auto again = store->insert(std::vector<porter::NewJob>{{.kind = "again"}});
      INFO((again ? std::string() : again.error().to_string()));
      REQUIRE(again.has_value());
    }
    CHECK(completed);
    CHECK(threw > 0);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}
