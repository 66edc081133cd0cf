// The fault-injecting wrapper over every store: injected failures are
// `unavailable`, change nothing, and stop when healed; a seeded 1-in-N plan
// is reproducible.
#include "conformance/conformance.h"
#include "support/fault_store.h"

using namespace porter;
using namespace porter::test;

TEST_CASE("FaultStore fails the next N calls of chosen operations and changes nothing", "[admin][fault]") {
  PORTER_STORE_UNDER_TEST();
  auto faulty = std::make_shared<FaultStore>(store);
  JobId id = add(*faulty, new_job());
  faulty->fail_next(2, {StoreOp::claim, StoreOp::finish});

  auto c = faulty->claim(ClaimRequest{"default", "w", 1, 30s});
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code() == ErrorCode::unavailable);
  CHECK(get(*store, id).state == JobState::pending);  // nothing reached the store
  CHECK(faulty->get(id).has_value());                  // other operations are not affected

  Job j = claim_one(*store);
  auto f = faulty->finish(std::vector<Outcome>{outcome(j, OutcomeKind::complete)});
  REQUIRE_FALSE(f.has_value());
  CHECK(f.error().code() == ErrorCode::unavailable);
  CHECK(get(*store, id).state == JobState::running);
  CHECK(faulty->injected() == 2);

  CHECK(finish_ok(*faulty, j, OutcomeKind::complete) == JobState::completed);  // the plan is used up
  CHECK(faulty->calls(StoreOp::finish) == 2);
  CHECK(faulty->calls(StoreOp::claim) == 1);
}

TEST_CASE("FaultStore fails a seeded 1-in-N, reproducibly, until healed", "[admin][fault]") {
  PORTER_STORE_UNDER_TEST();
  auto run = [&](std::uint64_t seed) {
    auto faulty = std::make_shared<FaultStore>(store_factory.make(clock), seed);
    faulty->fail_one_in(3);
    std::vector<bool> pattern;
    for (int i = 0; i < 300; ++i) {
      auto r = faulty->next_run_at("default");
      pattern.push_back(!r.has_value());
      if (!r) CHECK(r.error().code() == ErrorCode::unavailable);
    }
    CHECK(std::count(pattern.begin(), pattern.end(), true) == faulty->injected());
    faulty->heal();
    for (int i = 0; i < 50; ++i) CHECK(faulty->next_run_at("default").has_value());
    return pattern;
  };
  auto a = run(7);
  CHECK(a == run(7));
  auto failures = std::count(a.begin(), a.end(), true);
  CHECK(failures > 50);  // about 100 of 300
  CHECK(failures < 160);

  // Only the chosen operation fails.
  auto faulty = std::make_shared<FaultStore>(store, 3);
  faulty->fail_one_in(1, {StoreOp::insert});
  CHECK_FALSE(faulty->insert(std::vector<NewJob>{new_job()}).has_value());
  CHECK(faulty->stats(1h).has_value());
  CHECK(store->list({}, std::nullopt, 10)->jobs.empty());
}
