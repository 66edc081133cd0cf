// Conformance: engines with different handler sets on one queue (a rolling
// deploy). claim takes only the kinds asked for, leaving the others in
// place; the worker registry (announce/retire, entries expire at their ttl)
// lets Stats::unhandled show pending jobs no live engine can run.
#include "conformance/conformance.h"

#include <algorithm>
#include <tuple>

using namespace porter;
using namespace porter::test;

namespace {

std::vector<Job> claim_kinds(Store& store, std::vector<std::string> kinds, int limit = 10,
                             std::string queue = "default") {
  auto r = store.claim(ClaimRequest{.queue = std::move(queue), .worker = "w", .limit = limit, .kinds = std::move(kinds)});
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r.has_value());
  return std::move(*r);
}

using Unhandled = std::tuple<std::string, std::string, std::int64_t>;

std::vector<Unhandled> unhandled(Store& store) {
  auto s = store.stats(std::chrono::minutes(5));
  REQUIRE(s.has_value());
  std::vector<Unhandled> out;
  for (const auto& u : s->unhandled) out.emplace_back(u.queue, u.kind, u.pending);
  return out;
}

}  // namespace

TEST_CASE("claim with kinds takes only those kinds, in queue order, and leaves the rest in place", "[registry]") {
  PORTER_STORE_UNDER_TEST();
  NewJob urgent = new_job("b");
  urgent.priority = -5;
  JobId b = add(*store, urgent);  // the head of the queue, but of a kind this engine lacks
  JobId a1 = add(*store, new_job("a"));
  JobId c = add(*store, new_job("c"));
  JobId a2 = add(*store, new_job("a"));

  auto got = claim_kinds(*store, {"c", "a", "a"});
  CHECK(ids_of(got) == std::vector<JobId>{a1, c, a2});
  for (const auto& j : got) CHECK(j.attempt == 1);
  CHECK(get(*store, b).state == JobState::pending);
  CHECK(get(*store, b).attempt == 0);
  CHECK(claim_kinds(*store, {"a", "c"}).empty());
  CHECK(claim_kinds(*store, {"never-stored"}).empty());
  auto any = claim(*store, "default", 10);  // no kinds: any kind
  CHECK(ids_of(any) == std::vector<JobId>{b});
}

TEST_CASE("claim with kinds honours limit, due time and pause", "[registry]") {
  PORTER_STORE_UNDER_TEST();
  for (int i = 0; i < 3; ++i) add(*store, new_job("x"));
  NewJob later = new_job("y");
  later.delay = std::chrono::minutes(1);
  JobId y = add(*store, later);
  CHECK(claim_kinds(*store, {"x"}, 2).size() == 2);
  CHECK(claim_kinds(*store, {"y"}).empty());  // not due yet
  REQUIRE(store->set_queue_paused("default", true).has_value());
  CHECK(claim_kinds(*store, {"x"}).empty());
  REQUIRE(store->set_queue_paused("default", false).has_value());
  clock->advance(std::chrono::minutes(2));
  CHECK(ids_of(claim_kinds(*store, {"y"})) == std::vector<JobId>{y});
  CHECK(claim_kinds(*store, {"x", "y"}).size() == 1);
}

TEST_CASE("unhandled: pending jobs whose kind no live worker handles on their queue", "[registry]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job("x", "q1"));
  add(*store, new_job("x", "q1"));
  add(*store, new_job("y", "q1"));
  add(*store, new_job("x", "q2"));
  // Nobody announced: nothing runs them.
  CHECK(unhandled(*store) == std::vector<Unhandled>{{"q1", "x", 2}, {"q1", "y", 1}, {"q2", "x", 1}});

  REQUIRE(store->announce({.id = "old", .queues = {"q1"}, .kinds = {"x"}}, std::chrono::seconds(10)).has_value());
  CHECK(unhandled(*store) == std::vector<Unhandled>{{"q1", "y", 1}, {"q2", "x", 1}});

  REQUIRE(store->announce({.id = "new", .queues = {"q1", "q2"}, .kinds = {"x", "y"}}, std::chrono::seconds(30))
              .has_value());
  CHECK(unhandled(*store).empty());

  REQUIRE(store->retire("new").has_value());
  CHECK(unhandled(*store) == std::vector<Unhandled>{{"q1", "y", 1}, {"q2", "x", 1}});
  REQUIRE(store->retire("never-announced").has_value());

  // An entry not renewed expires at its ttl (a crashed engine drops out).
  clock->advance(std::chrono::seconds(10));
  CHECK(unhandled(*store).size() == 3);
  // Renewing replaces the entry: the old kinds are gone.
  REQUIRE(store->announce({.id = "old", .queues = {"q1"}, .kinds = {"y"}}, std::chrono::seconds(10)).has_value());
  CHECK(unhandled(*store) == std::vector<Unhandled>{{"q1", "x", 2}, {"q2", "x", 1}});

  // Only pending jobs count: running and final ones need no handler any more.
  claim_one(*store, "q2");
  finish_ok(*store, claim_one(*store, "q1"), OutcomeKind::complete);
  CHECK(unhandled(*store) == std::vector<Unhandled>{{"q1", "x", 1}});
}

TEST_CASE("announce rejects an empty id, a bad name and a ttl that is not positive", "[registry]") {
  PORTER_STORE_UNDER_TEST();
  const WorkerInfo ok{.id = "w", .queues = {"default"}, .kinds = {"k"}};
  CHECK(store->announce(ok, Duration::max()).has_value());  // forever saturates
  for (Duration ttl : {Duration::zero(), Duration(-std::chrono::seconds(1))}) {
    auto s = store->announce(ok, ttl);
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().code() == ErrorCode::invalid_argument);
  }
  for (const WorkerInfo& bad : {WorkerInfo{.id = "", .queues = {"q"}, .kinds = {"k"}},
                                WorkerInfo{.id = "w", .queues = {""}, .kinds = {"k"}},
                                WorkerInfo{.id = "w", .queues = {"q"}, .kinds = {std::string(kMaxNameBytes + 1, 'k')}}}) {
    auto s = store->announce(bad, std::chrono::seconds(1));
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().code() == ErrorCode::invalid_argument);
  }
}
