// SQLite group commit: finish_and_claim in one transaction, the one-statement
// completion of a lone job (it must read exactly like the rules' path), and
// concurrent single inserts gathered into shared transactions. Commits are
// counted in the WAL file itself (sqlite_test_support.h), not timed.
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "porter/sqlite_store.h"
#include "sqlite/sqlite_test_support.h"

using namespace porter;
using namespace std::chrono_literals;
using porter::test::TempFile;
using porter::test::wal_commits;

namespace {

std::shared_ptr<Store> open_store(const std::string& path, std::shared_ptr<Clock> clock = nullptr,
                                  Durability durability = Durability::process_crash) {
  SqliteOptions options;
  options.clock = std::move(clock);
  options.durability = durability;
  auto store = open_sqlite_store(path, options);
  if (!store) FAIL("open failed: " << store.error().to_string());
  return *store;
}

NewJob job(std::string kind = "k") {
  NewJob j;
  j.kind = std::move(kind);
  return j;
}

JobId add(Store& store, const NewJob& j) {
  auto r = store.insert(std::span<const NewJob>(&j, 1));
  REQUIRE(r.has_value());
  return (*r)[0].id;
}

std::vector<Job> claim(Store& store, int n) {
  auto r = store.claim(ClaimRequest{"default", "w", n, 30s});
  REQUIRE(r.has_value());
  return *r;
}

Outcome completed(const Job& j) {
  Outcome o;
  o.lease = LeaseRef{j.id, j.lease->token};
  o.kind = OutcomeKind::complete;
  return o;
}

}  // namespace

TEST_CASE("sqlite finish_and_claim commits the outcomes and the next claim together", "[sqlite][group]") {
  TempFile f;
  auto store = open_store(f.path);
  for (int i = 0; i < 4; ++i) add(*store, job());
  auto held = claim(*store, 2);
  REQUIRE(held.size() == 2);
  std::vector<Outcome> outs{completed(held[0]), completed(held[1])};
  int before = wal_commits(f.path);
  auto r = store->finish_and_claim(outs, ClaimRequest{"default", "w", 2, 30s});
  REQUIRE(r.has_value());
  CHECK(wal_commits(f.path) == before + 1);
  REQUIRE(r->finished.size() == 2);
  CHECK(r->finished[0].state == JobState::completed);
  CHECK(r->finished[1].state == JobState::completed);
  CHECK(r->claimed.size() == 2);
  CHECK(r->claim_status.has_value());
}

TEST_CASE("sqlite finish_and_claim with a bad claim request still applies the outcomes", "[sqlite][group]") {
  TempFile f;
  auto store = open_store(f.path);
  add(*store, job());
  auto held = claim(*store, 1);
  Outcome o = completed(held[0]);
  auto r = store->finish_and_claim(std::span<const Outcome>(&o, 1), ClaimRequest{"default", "w", -1, 30s});
  REQUIRE(r.has_value());
  REQUIRE_FALSE(r->claim_status.has_value());
  CHECK(r->claim_status.error().code() == ErrorCode::invalid_argument);
  CHECK(store->get(held[0].id)->state == JobState::completed);
}

// The lone job takes the one-statement path; the job with a dependent takes
// the rules' path. Everything a reader sees of them must be alike.
TEST_CASE("sqlite a lone job completed in one statement reads like one completed by the rules", "[sqlite][group]") {
  TempFile f;
  auto clock = std::make_shared<ManualClock>();
  auto store = open_store(f.path, clock);
  NewJob a = job("same");
  a.run_at = clock->now() - 3s;  // a queue latency to record
  NewJob b = a;
  JobId lone = add(*store, a);
  JobId related = add(*store, b);
  NewJob dependent = job("later");
  dependent.depends_on = {related};
  JobId after = add(*store, dependent);
  auto held = claim(*store, 2);
  REQUIRE(held.size() == 2);
  clock->advance(250ms);
  std::vector<Outcome> outs;
  for (const Job& j : held) {
    Outcome o = completed(j);
    o.result = R"({"ok":true})";
    o.report.progress = Progress{3, 3, "done"};
    o.report.item_errors = {{"row 1", "bad"}, {"row 2", "worse"}};
    outs.push_back(o);
  }
  outs[1].ran_for = 40ms;
  outs[0].ran_for = 40ms;
  auto r = store->finish(outs);
  REQUIRE(r.has_value());
  Job x = *store->get(lone);
  Job y = *store->get(related);
  for (const Job* j : {&x, &y}) {
    CHECK(j->state == JobState::completed);
    CHECK(j->finished_at == clock->now());
    CHECK_FALSE(j->lease.has_value());
    CHECK(j->result == R"({"ok":true})");
    CHECK(j->progress.done == 3);
    CHECK(j->progress.total == 3);
    CHECK(j->progress.message == "done");
    CHECK(j->item_error_count == 2);
    CHECK(j->item_errors.size() == 2);
    CHECK_FALSE(j->callback_pending);
  }
  CHECK(store->get(after)->state == JobState::pending);
  auto st = store->stats(1h);
  REQUIRE(st.has_value());
  REQUIRE(st->kinds.size() == 1);
  CHECK(st->kinds[0].completed == 2);
  CHECK(st->kinds[0].p50 == 40ms);
  CHECK(st->kinds[0].p99 == 40ms);
  CHECK(st->kinds[0].latency_p50 == 3s);
  CHECK(st->kinds[0].latency_p99 == 3s);
}

// Several threads insert one job at a time: callers queue behind a leader
// that commits for all of them, so there are fewer commits than inserts
// (without the group every insert is a commit of its own).
TEST_CASE("sqlite concurrent single inserts share commits", "[sqlite][group]") {
  TempFile f;
  auto store = open_store(f.path, nullptr, Durability::power_loss);
  constexpr int kThreads = 8, kEach = 15;  // few enough that no checkpoint restarts the WAL
  int before = wal_commits(f.path);
  std::vector<std::vector<JobId>> ids(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          NewJob j = job();
          j.args = R"({"t":)" + std::to_string(t) + R"(,"i":)" + std::to_string(i) + "}";
          auto r = store->insert(std::span<const NewJob>(&j, 1));
          if (r && r->size() == 1) ids[t].push_back((*r)[0].id);
        }
      });
    }
  }
  int commits = wal_commits(f.path) - before;
  INFO(commits << " commits for " << kThreads * kEach << " inserts");
  CHECK(commits < kThreads * kEach);
  // Every caller got its own jobs' ids back.
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(ids[t].size() == static_cast<std::size_t>(kEach));
    for (int i = 0; i < kEach; ++i) {
      auto j = store->get(ids[t][i]);
      REQUIRE(j.has_value());
      CHECK(j->args == R"({"t":)" + std::to_string(t) + R"(,"i":)" + std::to_string(i) + "}");
    }
  }
}

// Callers that share a transaction still get their own outcome: an invalid
// job, a missing dependency or a duplicate affects its caller only.
TEST_CASE("sqlite concurrent inserts fail or deduplicate only their own caller", "[sqlite][group]") {
  TempFile f;
  auto store = open_store(f.path, nullptr, Durability::power_loss);
  JobId existing = add(*store, [] {
    NewJob j = job();
    j.unique_key = "taken";
    return j;
  }());
  constexpr int kThreads = 6, kRounds = 20;
  std::atomic<int> wrong{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kRounds; ++i) {
          NewJob j = job();
          switch (t) {
            case 0: j.kind = ""; break;                   // invalid
            case 1: j.depends_on = {1'000'000 + i}; break;  // missing dependency
            case 2: j.unique_key = "taken"; break;          // duplicate
            default: break;                                 // fine
          }
          auto r = store->insert(std::span<const NewJob>(&j, 1));
          bool right = false;
          switch (t) {
            case 0: right = !r && r.error().code() == ErrorCode::invalid_argument; break;
            case 1: right = !r && r.error().code() == ErrorCode::not_found; break;
            case 2: right = r && (*r)[0].duplicate && (*r)[0].id == existing; break;
            default: right = r && !(*r)[0].duplicate && store->get((*r)[0].id).has_value(); break;
          }
          if (!right) ++wrong;
        }
      });
    }
  }
  CHECK(wrong == 0);
  auto st = store->stats(1h);
  REQUIRE(st.has_value());
  REQUIRE(st->queues.size() == 1);
  CHECK(st->queues[0].pending == 1 + (kThreads - 3) * kRounds);
}

// Workers on several threads finishing and claiming at once share commits
// too, and each job is still leased to one of them only.
TEST_CASE("sqlite concurrent finish_and_claim calls share commits and lease each job once", "[sqlite][group]") {
  TempFile f;
  auto store = open_store(f.path, nullptr, Durability::power_loss);
  constexpr int kThreads = 6, kJobs = 120;  // few enough that no checkpoint restarts the WAL
  std::vector<NewJob> jobs(kJobs, job());
  REQUIRE(store->insert(jobs).has_value());
  int before = wal_commits(f.path);
  std::atomic<int> calls{0};
  std::vector<std::vector<JobId>> ran(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<Job> held;
        for (;;) {
          std::vector<Outcome> outs;
          for (const Job& j : held) outs.push_back(completed(j));
          auto r = store->finish_and_claim(outs, ClaimRequest{"default", "w" + std::to_string(t), 2, 30s});
          ++calls;
          if (!r) return;
          for (const auto& fr : r->finished) {
            if (!fr.status) return;  // a stale lease: the test fails below
          }
          held = r->claimed;
          for (const Job& j : held) ran[t].push_back(j.id);
          if (held.empty()) return;
        }
      });
    }
  }
  int commits = wal_commits(f.path) - before;
  INFO(commits << " commits for " << calls.load() << " calls");
  CHECK(commits < calls.load());
  std::set<JobId> all;
  std::size_t total = 0;
  for (const auto& ids : ran) {
    total += ids.size();
    all.insert(ids.begin(), ids.end());
  }
  CHECK(total == static_cast<std::size_t>(kJobs));
  CHECK(all.size() == static_cast<std::size_t>(kJobs));
  auto st = store->stats(1h);
  REQUIRE(st.has_value());
  CHECK(st->queues[0].completed == kJobs);
}

// Plain claim and finish calls on several threads (an engine's claimer and
// completer) go through the same write group.
TEST_CASE("sqlite concurrent claim and finish calls share commits", "[sqlite][group]") {
  TempFile f;
  auto store = open_store(f.path, nullptr, Durability::power_loss);
  constexpr int kThreads = 6, kJobs = 90;  // few enough that no checkpoint restarts the WAL
  std::vector<NewJob> jobs(kJobs, job());
  REQUIRE(store->insert(jobs).has_value());
  int before = wal_commits(f.path);
  std::atomic<int> calls{0}, done{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (;;) {
          auto got = store->claim(ClaimRequest{"default", "w" + std::to_string(t), 2, 30s});
          ++calls;
          if (!got || got->empty()) return;
          std::vector<Outcome> outs;
          for (const Job& j : *got) outs.push_back(completed(j));
          auto r = store->finish(outs);
          ++calls;
          if (!r) return;
          for (const auto& fr : *r) done += fr.status ? 1 : 0;
        }
      });
    }
  }
  int commits = wal_commits(f.path) - before;
  INFO(commits << " commits for " << calls.load() << " calls");
  CHECK(commits < calls.load());
  CHECK(done == kJobs);
}
