// Conformance: operations from many threads at once. Sized to stay quick
// under sanitizers; the properties, not the timings, are checked.
#include "conformance/conformance.h"

#include <atomic>
#include <set>
#include <thread>

using namespace porter;
using namespace porter::test;

TEST_CASE("four threads claiming at once never get the same job", "[concurrency][claim]") {
  PORTER_STORE_UNDER_TEST();
  constexpr int kJobs = 2000;
  std::vector<NewJob> batch(kJobs, new_job());
  REQUIRE(store->insert(batch).has_value());
  std::vector<std::vector<JobId>> got(4);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (;;) {
        auto jobs = store->claim(ClaimRequest{"default", "w" + std::to_string(t), 16, 30s});
        if (!jobs) {
          ++errors;
          return;
        }
        if (jobs->empty()) return;
        std::vector<Outcome> outs;
        for (const auto& j : *jobs) {
          got[static_cast<std::size_t>(t)].push_back(j.id);
          outs.push_back(outcome(j, OutcomeKind::complete));
        }
        if (!store->finish(outs)) ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  std::set<JobId> all;
  std::size_t total = 0;
  for (const auto& v : got) {
    total += v.size();
    all.insert(v.begin(), v.end());
  }
  CHECK(total == static_cast<std::size_t>(kJobs));
  CHECK(all.size() == static_cast<std::size_t>(kJobs));
}

TEST_CASE("a unique enqueue racing from 8 threads yields one job", "[concurrency][unique]") {
  PORTER_STORE_UNDER_TEST();
  NewJob u = new_job("sync");
  u.unique_key = "tenant-1";
  std::vector<JobId> ids(8);
  std::vector<int> dup(8);  // not vector<bool>: its bits share words across threads
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (std::size_t t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      auto r = store->insert(std::span<const NewJob>(&u, 1));
      if (r) {
        ids[t] = (*r)[0].id;
        dup[t] = (*r)[0].duplicate;
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  CHECK(std::count(dup.begin(), dup.end(), 0) == 1);
  CHECK(std::set<JobId>(ids.begin(), ids.end()).size() == 1);
  CHECK(ids[0] > 0);
  auto page = store->list({}, std::nullopt, 100);
  REQUIRE(page.has_value());
  CHECK(page->jobs.size() == 1);
}

TEST_CASE("children finished from several threads wake their parent exactly once", "[concurrency][workflow]") {
  PORTER_STORE_UNDER_TEST();
  JobId pid = add(*store, new_job("parent", "p"));
  Job p = claim_one(*store, "p");
  std::vector<NewJob> kids(400, new_job("child", "k"));
  REQUIRE(store->spawn(p.lease_ref(), kids).has_value());
  REQUIRE(finish_ok(*store, p, OutcomeKind::wait_children) == JobState::waiting);

  std::atomic<int> callback_claims{0};
  std::atomic<int> children_done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        auto jobs = store->claim(ClaimRequest{"k", "w", 8, 30s});
        if (!jobs || jobs->empty()) break;
        std::vector<Outcome> outs;
        for (const auto& j : *jobs) outs.push_back(outcome(j, OutcomeKind::complete));
        if (store->finish(outs)) children_done += static_cast<int>(outs.size());
        // Everyone also looks for the parent's callback, racing the others.
        auto cb = store->claim(ClaimRequest{"p", "w", 8, 30s});
        if (cb) {
          for (const auto& j : *cb) callback_claims += j.callback_pending ? 1 : 100;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  callback_claims += static_cast<int>(claim(*store, "p", 8).size());
  CHECK(children_done == 400);
  CHECK(callback_claims == 1);
  Job parent = get(*store, pid);
  CHECK(parent.children_unfinished == 0);
  CHECK(parent.state == JobState::running);
  CHECK(parent.callback_pending);
}

TEST_CASE("rescue_expired from several nodes at once rescues each job once", "[concurrency][lease]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch(200, new_job());
  REQUIRE(store->insert(batch).has_value());
  REQUIRE(claim(*store, "default", 200, 10s).size() == 200);
  clock->advance(11s);
  std::vector<std::vector<JobId>> got(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto r = store->rescue_expired();
      if (r) got[t] = *r;
    });
  }
  for (auto& th : threads) th.join();
  std::multiset<JobId> all;
  for (const auto& v : got) all.insert(v.begin(), v.end());
  CHECK(all.size() == 200);
  CHECK(std::set<JobId>(all.begin(), all.end()).size() == 200);
  for (JobId id : {JobId{1}, JobId{100}, JobId{200}}) {
    Job j = get(*store, id);
    CHECK(j.state == JobState::pending);
    CHECK(j.errors.size() == 1);
  }
}

TEST_CASE("cancel racing with completion: each job ends exactly one way, its parent woken once", "[concurrency][cancel]") {
  PORTER_STORE_UNDER_TEST();
  constexpr int kJobs = 200;
  add(*store, new_job("parent"));
  Job parent = claim_one(*store);
  NewJob kid = new_job("child", "kids");
  kid.on_failure = ChildFailurePolicy::callback;  // a cancelled child must not cancel its siblings here
  std::vector<NewJob> kids(kJobs, kid);
  auto spawned = store->spawn(parent.lease_ref(), kids);
  REQUIRE(spawned.has_value());
  REQUIRE(store->finish(std::vector<Outcome>{outcome(parent, OutcomeKind::wait_children)}).has_value());
  auto running = claim(*store, "kids", kJobs);
  REQUIRE(running.size() == static_cast<std::size_t>(kJobs));

  // One thread completes every child while another cancels every child.
  std::vector<Result<FinishResult>> finished(kJobs, make_error(ErrorCode::internal, "not run"));
  std::vector<Result<CancelResult>> cancelled(kJobs, make_error(ErrorCode::internal, "not run"));
  std::thread completer([&] {
    for (int i = 0; i < kJobs; ++i) {
      auto r = store->finish(std::vector<Outcome>{outcome(running[static_cast<std::size_t>(i)], OutcomeKind::complete)});
      if (r) finished[static_cast<std::size_t>(i)] = (*r)[0];
    }
  });
  std::thread canceller([&] {
    for (int i = 0; i < kJobs; ++i) {
      cancelled[static_cast<std::size_t>(i)] = store->cancel(running[static_cast<std::size_t>(i)].id, "racing");
    }
  });
  completer.join();
  canceller.join();

  int ended_completed = 0, ended_cancelled = 0;
  for (int i = 0; i < kJobs; ++i) {
    const auto k = static_cast<std::size_t>(i);
    INFO("child " << running[k].id);
    REQUIRE(finished[k].has_value());
    REQUIRE(cancelled[k].has_value());
    REQUIRE(finished[k]->status.has_value());  // the lease was live: the finish was applied
    Job j = get(*store, running[k].id);
    if (j.state == JobState::completed) {
      // The completion won: the cancel came too late and said so.
      CHECK(*cancelled[k] == CancelResult::already_finished);
      ++ended_completed;
    } else {
      // The cancel won: the handler's completion is overridden.
      REQUIRE(j.state == JobState::cancelled);
      CHECK(*cancelled[k] == CancelResult::requested);
      CHECK(finished[k]->state == JobState::cancelled);
      ++ended_cancelled;
    }
  }
  CHECK(ended_completed + ended_cancelled == kJobs);
  // Every child is final: the parent was woken for its callback exactly once.
  Job p = get(*store, parent.id);
  CHECK(p.children_unfinished == 0);
  CHECK(p.state == JobState::pending);
  CHECK(p.callback_pending);
  CHECK(claim(*store, "default", 10).size() == 1);
  CHECK(claim(*store, "default", 10).empty());
}
