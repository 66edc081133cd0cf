// A store on a ManualClock (one of support/store_factories.h) with an Admin over it, and short helpers that move
// jobs through the Store directly (insert, claim, finish), so each Admin test
// sets up exactly the states it needs without an engine or sleeps.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "porter/admin.h"
#include "porter/clock.h"
#include "porter/store.h"
#include "support/store_factories.h"

namespace porter::test {

// The stores the admin tests run against: every store under test, by name
// (GENERATE needs copyable values; the factories are looked up by name).
inline std::vector<std::string> admin_store_names() {
  std::vector<std::string> names;
  for (const auto& f : all_store_factories()) names.push_back(f.name);
  return names;
}

inline std::shared_ptr<Store> make_admin_store(const std::string& name, std::shared_ptr<ManualClock> clock) {
  for (const auto& f : all_store_factories()) {
    if (f.name == name) return f.make(std::move(clock));
  }
  FAIL("unknown store " << name);
  return nullptr;
}

struct AdminHarness {
  explicit AdminHarness(std::string name)
      : store_name(std::move(name)), store(make_admin_store(store_name, clock)), admin(store) {}

  JobId add(NewJob job) {
    auto r = store->insert(std::span<const NewJob>(&job, 1));
    REQUIRE(r.has_value());
    REQUIRE(r->size() == 1);
    return (*r)[0].id;
  }

  std::vector<Job> claim(const std::string& queue, int limit = 1, Duration lease = std::chrono::seconds(30)) {
    auto r = store->claim({.queue = queue, .worker = "test-worker", .limit = limit, .lease_for = lease});
    REQUIRE(r.has_value());
    return std::move(*r);
  }

  Job claim_one(const std::string& queue, Duration lease = std::chrono::seconds(30)) {
    auto jobs = claim(queue, 1, lease);
    REQUIRE(jobs.size() == 1);
    return jobs[0];
  }

  void finish(const Job& job, OutcomeKind kind, std::string error = {}, Duration delay = Duration::zero()) {
    Outcome outcome{.lease = job.lease_ref(), .kind = kind, .error = std::move(error), .delay = delay};
    auto r = store->finish(std::span<const Outcome>(&outcome, 1));
    REQUIRE(r.has_value());
    REQUIRE(r->size() == 1);
    REQUIRE((*r)[0].status.has_value());
  }

  JobState state(JobId id) {
    auto job = store->get(id);
    REQUIRE(job.has_value());
    return job->state;
  }

  std::string store_name;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<Store> store;
  Admin admin;
  Principal root = Principal::administrator();
  Principal alice = Principal::owner("alice");
  Principal bob = Principal::owner("bob");
};

}  // namespace porter::test
