// Shared helpers for the store conformance suite. Every TEST_CASE starts with
// PORTER_STORE_UNDER_TEST(), which runs the case once per registered store
// (Catch2 GENERATE over the factories) with a fresh store on a ManualClock
// named `clock`: no case sleeps, time moves only by clock->advance().
#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "porter/clock.h"
#include "porter/store.h"
#include "support/store_factories.h"

#define PORTER_STORE_UNDER_TEST()                                                                        \
  const auto& store_factory = ::porter::test::all_store_factories()[GENERATE(                            \
      range(std::size_t{0}, ::porter::test::all_store_factories().size()))];                             \
  INFO("store: " << store_factory.name);                                                                 \
  auto clock = std::make_shared<::porter::ManualClock>();                                                \
  std::shared_ptr<::porter::Store> store = store_factory.make(clock);                                    \
  REQUIRE(store != nullptr)

namespace porter::test {

using namespace std::chrono_literals;

inline NewJob new_job(std::string kind = "work", std::string queue = "default") {
  NewJob j;
  j.kind = std::move(kind);
  j.queue = std::move(queue);
  return j;
}

// Inserts one job and returns its id; the insert must succeed.
inline JobId add(Store& store, NewJob job) {
  auto r = store.insert(std::span<const NewJob>(&job, 1));
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 1);
  return (*r)[0].id;
}

// Inserts a job of `kind` that depends on `deps` and returns its id.
inline JobId add_after(Store& store, std::vector<JobId> deps, std::string kind = "work") {
  NewJob j = new_job(std::move(kind));
  j.depends_on = std::move(deps);
  return add(store, j);
}

inline Job get(Store& store, JobId id) {
  auto r = store.get(id);
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r.has_value());
  return *r;
}

inline std::vector<Job> claim(Store& store, std::string queue = "default", int limit = 1,
                              Duration lease_for = std::chrono::seconds(30), std::string worker = "w1") {
  auto r = store.claim(ClaimRequest{std::move(queue), std::move(worker), limit, lease_for});
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r.has_value());
  return std::move(*r);
}

// Claims exactly one job and returns it.
inline Job claim_one(Store& store, std::string queue = "default", Duration lease_for = std::chrono::seconds(30)) {
  auto jobs = claim(store, std::move(queue), 1, lease_for);
  REQUIRE(jobs.size() == 1);
  return jobs[0];
}

inline std::vector<JobId> ids_of(const std::vector<Job>& jobs) {
  std::vector<JobId> ids;
  for (const auto& j : jobs) ids.push_back(j.id);
  return ids;
}

inline FinishResult finish(Store& store, Outcome outcome) {
  auto r = store.finish(std::span<const Outcome>(&outcome, 1));
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 1);
  return (*r)[0];
}

inline Outcome outcome(const Job& job, OutcomeKind kind, std::string error = {}, Duration delay = Duration{0}) {
  Outcome o;
  o.lease = job.lease_ref();
  o.kind = kind;
  o.error = std::move(error);
  o.delay = delay;
  return o;
}

// Finishes the job with `kind`; the lease must be live.
inline JobState finish_ok(Store& store, const Job& job, OutcomeKind kind, std::string error = {},
                          Duration delay = Duration{0}) {
  auto r = finish(store, outcome(job, kind, std::move(error), delay));
  INFO((r.status ? std::string() : r.status.error().to_string()));
  REQUIRE(r.status.has_value());
  return r.state;
}

// Spawns `kids` under the parent's live lease; the spawn must succeed. Returns their ids.
inline std::vector<JobId> spawn_ids(Store& store, const Job& parent, std::vector<NewJob> kids) {
  auto r = store.spawn(parent.lease_ref(), kids);
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r.has_value());
  std::vector<JobId> ids;
  for (const auto& i : *r) ids.push_back(i.id);
  return ids;
}

// Records every event a store delivers (thread-safe).
class EventLog {
 public:
  explicit EventLog(Store& store) : store_(store) {
    id_ = store_.add_listener([this](const StoreEvent& e) {
      std::lock_guard lock(mu_);
      events_.push_back({e.type, std::string(e.queue), e.job, e.state, e.token});
    });
  }
  ~EventLog() { store_.remove_listener(id_); }
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  struct Entry {
    StoreEvent::Type type;
    std::string queue;
    JobId job;
    JobState state;
    std::uint64_t token;
  };
  std::vector<Entry> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::size_t count(StoreEvent::Type type, JobId job = 0) const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& e : events_) n += e.type == type && (job == 0 || e.job == job);
    return n;
  }
  void clear() {
    std::lock_guard lock(mu_);
    events_.clear();
  }

 private:
  Store& store_;
  std::uint64_t id_ = 0;
  mutable std::mutex mu_;
  std::vector<Entry> events_;
};

}  // namespace porter::test
