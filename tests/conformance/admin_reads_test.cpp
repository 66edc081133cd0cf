// Conformance: the administrator's reads off the hot path. Stats comes from
// counters the stores keep as jobs move (not a scan), so it must agree with
// the jobs themselves after every kind of transition; listings by owner and
// filtered listings page correctly across many jobs (the memory store scans
// in slices, SQLite uses an owner index).
#include "conformance/conformance.h"

#include <array>
#include <atomic>
#include <thread>
#include <map>

using namespace porter;
using namespace porter::test;

namespace {

// Every stored job, through list().
std::vector<Job> all_jobs(Store& store) {
  std::vector<Job> out;
  std::optional<JobId> cursor;
  do {
    auto page = store.list(JobFilter{}, cursor, 500);
    REQUIRE(page.has_value());
    out.insert(out.end(), page->jobs.begin(), page->jobs.end());
    cursor = page->next;
  } while (cursor);
  return out;
}

// stats().queues must equal the counts derived from the jobs themselves.
void check_counts_agree(Store& store, TimePoint now) {
  std::map<std::string, std::array<std::int64_t, 7>> expected;  // 6 states + scheduled (pending not due)
  for (const Job& j : all_jobs(store)) {
    auto& c = expected[j.queue];
    if (j.state == JobState::pending && j.run_at > now) {
      ++c[6];
    } else {
      ++c[static_cast<std::size_t>(j.state)];
    }
  }
  auto stats = store.stats(std::chrono::minutes(5));
  REQUIRE(stats.has_value());
  std::map<std::string, std::array<std::int64_t, 7>> got;
  for (const auto& q : stats->queues) {
    got[q.name] = {q.pending, q.running, q.waiting, q.completed, q.failed, q.cancelled, q.scheduled};
  }
  for (auto& [name, c] : expected) {
    INFO("queue " << name);
    CHECK(got[name] == c);
  }
  for (auto& [name, c] : got) {
    if (!expected.contains(name)) CHECK(c == std::array<std::int64_t, 7>{});
  }
}

}  // namespace

TEST_CASE("stats queue counts agree with the jobs after every kind of transition", "[admin-reads]") {
  PORTER_STORE_UNDER_TEST();
  // A spread of jobs over two queues, some scheduled, some unique, some dependent.
  std::vector<JobId> plain;
  for (int i = 0; i < 6; ++i) plain.push_back(add(*store, new_job("w", i % 2 ? "a" : "b")));
  NewJob later = new_job("w", "a");
  later.delay = std::chrono::minutes(10);
  add(*store, later);
  NewJob unique = new_job("u", "a");
  unique.unique_key = "k";
  add(*store, unique);
  add(*store, unique);  // duplicate: not stored
  JobId dep = add_after(*store, {plain[0]}, "after");
  check_counts_agree(*store, clock->now());

  // Every outcome.
  auto a = claim(*store, "a", 10);
  REQUIRE(a.size() >= 4);
  finish_ok(*store, a[0], OutcomeKind::complete);
  finish_ok(*store, a[1], OutcomeKind::fail, "no");
  finish_ok(*store, a[2], OutcomeKind::retry, "again", std::chrono::minutes(1));
  finish_ok(*store, a[3], OutcomeKind::snooze, {}, std::chrono::minutes(1));
  check_counts_agree(*store, clock->now());

  // A parent waiting on children, a dependency failing, cancel, retry, discard, rescue.
  auto b = claim(*store, "b", 1);
  REQUIRE(b.size() == 1);
  REQUIRE(b[0].id == plain[0]);
  auto kids = store->spawn(b[0].lease_ref(), std::vector<NewJob>{new_job("kid", "b"), new_job("kid", "b")});
  REQUIRE(kids.has_value());
  finish_ok(*store, b[0], OutcomeKind::wait_children);
  check_counts_agree(*store, clock->now());
  auto kid = claim(*store, "b", 1, std::chrono::seconds(5));
  REQUIRE(kid.size() == 1);
  REQUIRE(store->cancel((*kids)[1].id, "stop").has_value());
  check_counts_agree(*store, clock->now());
  clock->advance(std::chrono::seconds(10));
  REQUIRE(store->rescue_expired().has_value());
  check_counts_agree(*store, clock->now());
  REQUIRE(store->retry_job(a[1].id).has_value());
  REQUIRE(store->discard(a[0].id).has_value());
  (void)dep;
  check_counts_agree(*store, clock->now());

  clock->advance(std::chrono::minutes(20));  // scheduled jobs are due now
  check_counts_agree(*store, clock->now());
  while (true) {
    auto more = claim(*store, "a", 10);
    auto more_b = claim(*store, "b", 10);
    if (more.empty() && more_b.empty()) break;
    for (const auto& j : more) finish_ok(*store, j, OutcomeKind::complete);
    for (const auto& j : more_b) finish_ok(*store, j, OutcomeKind::fail, "x");
  }
  check_counts_agree(*store, clock->now());
  clock->advance(std::chrono::minutes(1));
  REQUIRE(store->prune(PruneRequest{.finished_before = clock->now()}).has_value());
  check_counts_agree(*store, clock->now());
}

TEST_CASE("list by owner pages newest first through many jobs of other owners", "[admin-reads]") {
  PORTER_STORE_UNDER_TEST();
  constexpr int kJobs = 9000;  // more than two of the memory store's list slices
  std::vector<NewJob> batch;
  for (int i = 0; i < kJobs; ++i) {
    NewJob n = new_job();
    n.owner = i % 10 == 0 ? "alice" : (i % 3 == 0 ? "" : "bob");
    batch.push_back(n);
  }
  auto ids = store->insert(batch);
  REQUIRE(ids.has_value());
  std::vector<JobId> alice;
  for (int i = kJobs - 1; i >= 0; --i) {
    if (i % 10 == 0) alice.push_back((*ids)[static_cast<std::size_t>(i)].id);
  }
  // Some of alice's jobs are discarded: the listing skips them.
  for (int i = 0; i < 3; ++i) finish_ok(*store, claim_one(*store), OutcomeKind::complete);  // ids 1..3
  REQUIRE(store->discard(alice.back()).has_value());
  alice.pop_back();

  JobFilter mine;
  mine.owner = "alice";
  std::vector<JobId> listed;
  std::optional<JobId> cursor;
  int pages = 0;
  do {
    auto page = store->list(mine, cursor, 250);
    REQUIRE(page.has_value());
    for (const auto& j : page->jobs) {
      CHECK(j.owner == "alice");
      listed.push_back(j.id);
    }
    cursor = page->next;
    ++pages;
  } while (cursor && pages < 100);
  CHECK(listed == alice);

  // A filter that matches only the oldest job crosses every slice.
  JobFilter oldest_state;
  oldest_state.states = {JobState::completed};
  auto page = store->list(oldest_state, std::nullopt, 10);
  REQUIRE(page.has_value());
  CHECK(ids_of(page->jobs) == std::vector<JobId>{(*ids)[2].id, (*ids)[1].id});
  oldest_state.owner = "bob";
  page = store->list(oldest_state, std::nullopt, 1);
  REQUIRE(page.has_value());
  CHECK(ids_of(page->jobs) == std::vector<JobId>{(*ids)[2].id});
  REQUIRE(page->next.has_value());
  page = store->list(oldest_state, page->next, 1);
  REQUIRE(page.has_value());
  CHECK(ids_of(page->jobs) == std::vector<JobId>{(*ids)[1].id});
  CHECK_FALSE(page->next.has_value());
}

TEST_CASE("admin reads run beside claims and finishes and every page is well formed", "[admin-reads]") {
  PORTER_STORE_UNDER_TEST();
  constexpr int kJobs = 6000;  // more than one memory list slice
  std::vector<NewJob> batch(kJobs, new_job());
  for (int i = 0; i < kJobs; i += 3) batch[static_cast<std::size_t>(i)].owner = "alice";
  REQUIRE(store->insert(batch).has_value());
  std::atomic<bool> done{false};
  std::atomic<int> bad_pages{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    JobFilter mine;
    mine.owner = "alice";
    while (!done.load() || reads.load() < 3) {
      for (const JobFilter& f : {JobFilter{}, mine}) {
        auto page = store->list(f, std::nullopt, 100);
        if (!page) {
          ++bad_pages;
          continue;
        }
        for (std::size_t i = 1; i < page->jobs.size(); ++i) {
          if (page->jobs[i].id >= page->jobs[i - 1].id) ++bad_pages;  // newest first, no repeats
        }
      }
      if (!store->stats(std::chrono::minutes(5))) ++bad_pages;
      ++reads;
    }
  });
  for (;;) {
    auto r = store->claim(ClaimRequest{.queue = "default", .worker = "w", .limit = 64});
    REQUIRE(r.has_value());
    if (r->empty()) break;
    std::vector<Outcome> outs;
    for (const auto& j : *r) outs.push_back(outcome(j, OutcomeKind::complete));
    REQUIRE(store->finish(outs).has_value());
  }
  done = true;
  reader.join();
  CHECK(bad_pages.load() == 0);
  check_counts_agree(*store, clock->now());
}
