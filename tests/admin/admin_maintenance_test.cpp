// Admin maintenance: prune in short batches (never one long transaction),
// and metrics that show pending jobs no running engine handles.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "admin/admin_harness.h"
#include "support/fault_store.h"

using namespace porter;
using namespace std::chrono_literals;
using porter::test::AdminHarness;

namespace {

template <class T>
void require_denied(const Result<T>& r) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::permission_denied);
}

// Records every prune request that reaches the store.
class PruneRecorder : public test::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::int64_t> prune(const PruneRequest& request) override {
    auto n = ForwardingStore::prune(request);
    std::lock_guard lock(mu_);
    calls.push_back({request.limit, n ? *n : -1});
    return n;
  }
  struct Call {
    int limit;
    std::int64_t deleted;
  };
  std::mutex mu_;
  std::vector<Call> calls;
};

void complete_all(AdminHarness& h, const std::string& queue) {
  for (;;) {
    auto jobs = h.claim(queue, 500);
    if (jobs.empty()) return;
    std::vector<Outcome> outs;
    for (const auto& j : jobs) outs.push_back({.lease = j.lease_ref(), .kind = OutcomeKind::complete});
    REQUIRE(h.store->finish(outs).has_value());
  }
}

}  // namespace

TEST_CASE("Admin prune deletes in batches of at most the limit until none are left", "[admin][prune]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  constexpr int kJobs = 2500;
  std::vector<NewJob> batch(kJobs, NewJob{.kind = "a"});
  REQUIRE(h.store->insert(batch).has_value());
  complete_all(h, "default");
  h.clock->advance(1s);

  auto recorder = std::make_shared<PruneRecorder>(h.store);
  Admin admin(recorder);
  auto n = admin.prune(h.root, 0s);
  REQUIRE(n.has_value());
  CHECK(*n == kJobs);
  REQUIRE(recorder->calls.size() == 3);  // 1000, 1000, 500: the last short batch ends the loop
  for (const auto& call : recorder->calls) CHECK(call.limit == PruneRequest{}.limit);
  CHECK(recorder->calls[0].deleted == 1000);
  CHECK(recorder->calls[2].deleted == 500);
  auto left = h.store->list(JobFilter{}, std::nullopt, 10);
  REQUIRE(left.has_value());
  CHECK(left->jobs.empty());
}

TEST_CASE("Admin prune with a request: chosen states and batch size, administrators only", "[admin][prune]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  JobId done = h.add({.kind = "a"});
  h.finish(h.claim_one("default"), OutcomeKind::complete);
  JobId failed = h.add({.kind = "a", .max_attempts = 1});
  h.finish(h.claim_one("default"), OutcomeKind::fail, "no");
  h.clock->advance(1h);

  PruneRequest request{.states = {JobState::failed}, .finished_before = h.clock->now(), .limit = 1};
  require_denied(h.admin.prune(h.alice, request));
  auto n = h.admin.prune(h.root, request);
  REQUIRE(n.has_value());
  CHECK(*n == 1);
  CHECK(h.store->get(failed).error().code() == ErrorCode::not_found);
  CHECK(h.store->get(done).has_value());

  request.states = {JobState::running};
  auto bad = h.admin.prune(h.root, request);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == ErrorCode::invalid_argument);
  CHECK(*h.admin.prune(h.root, Duration::max()) == 0);  // kept forever
  CHECK(h.store->get(done).has_value());
}

TEST_CASE("Admin metrics shows pending jobs whose kind no running engine handles", "[admin][metrics]") {
  AdminHarness h(GENERATE(from_range(porter::test::admin_store_names())));
  INFO("store: " << h.store_name);
  h.add({.kind = "resize", .queue = "media"});
  h.add({.kind = "transcode", .queue = "media"});
  REQUIRE(h.store->announce({.id = "engine-1", .queues = {"media"}, .kinds = {"resize"}}, 30s).has_value());
  require_denied(h.admin.metrics(h.alice));
  auto m = h.admin.metrics(h.root);
  REQUIRE(m.has_value());
  REQUIRE(m->unhandled.size() == 1);
  CHECK(m->unhandled[0].queue == "media");
  CHECK(m->unhandled[0].kind == "transcode");
  CHECK(m->unhandled[0].pending == 1);
}
