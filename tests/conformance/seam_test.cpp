// Conformance: finish_and_claim, and reports (progress, item errors) that
// ride on an outcome or a heartbeat instead of taking a call each.
#include "conformance/conformance.h"

using namespace porter;
using namespace porter::test;

namespace {

ClaimRequest next_claim(int limit, std::string queue = "default") {
  return ClaimRequest{std::move(queue), "w1", limit, std::chrono::seconds(30)};
}

RunReport report_of(std::int64_t done, std::int64_t total, std::vector<ItemError> errors = {}) {
  RunReport r;
  r.progress = Progress{done, total, "at " + std::to_string(done)};
  r.item_errors = std::move(errors);
  return r;
}

}  // namespace

TEST_CASE("finish_and_claim applies the outcomes and claims the next jobs in order", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job());
  JobId b = add(*store, new_job());
  JobId c = add(*store, new_job());
  Job first = claim_one(*store);
  REQUIRE(first.id == a);
  Outcome done = outcome(first, OutcomeKind::complete);
  auto r = store->finish_and_claim(std::span<const Outcome>(&done, 1), next_claim(5));
  REQUIRE(r.has_value());
  REQUIRE(r->finished.size() == 1);
  CHECK(r->finished[0].status.has_value());
  CHECK(r->finished[0].state == JobState::completed);
  CHECK(r->claim_status.has_value());
  CHECK(ids_of(r->claimed) == std::vector<JobId>{b, c});
  for (const Job& j : r->claimed) {
    CHECK(j.state == JobState::running);
    CHECK(j.attempt == 1);
    REQUIRE(j.lease.has_value());
  }
  CHECK(get(*store, a).state == JobState::completed);
}

TEST_CASE("finish_and_claim with limit 0 claims nothing - with no outcomes it only claims", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job());
  JobId b = add(*store, new_job());
  Job first = claim_one(*store);
  Outcome done = outcome(first, OutcomeKind::complete);
  auto r = store->finish_and_claim(std::span<const Outcome>(&done, 1), next_claim(0));
  REQUIRE(r.has_value());
  CHECK(r->claimed.empty());
  CHECK(get(*store, b).state == JobState::pending);
  auto only = store->finish_and_claim({}, next_claim(3));
  REQUIRE(only.has_value());
  CHECK(only->finished.empty());
  CHECK(ids_of(only->claimed) == std::vector<JobId>{b});
}

TEST_CASE("finish_and_claim: a stale outcome changes nothing and the claim still happens", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job());
  JobId b = add(*store, new_job());
  Job first = claim_one(*store);
  Outcome stale = outcome(first, OutcomeKind::fail, "boom");
  stale.lease.token += 1000;
  stale.report = report_of(1, 2);
  auto r = store->finish_and_claim(std::span<const Outcome>(&stale, 1), next_claim(1));
  REQUIRE(r.has_value());
  REQUIRE(r->finished.size() == 1);
  REQUIRE_FALSE(r->finished[0].status.has_value());
  CHECK(r->finished[0].status.error().code() == ErrorCode::stale_lease);
  CHECK(r->finished[0].state == JobState::running);
  CHECK(ids_of(r->claimed) == std::vector<JobId>{b});
  Job got = get(*store, a);
  CHECK(got.state == JobState::running);
  CHECK(got.errors.empty());
  CHECK(got.progress.done == 0);  // the stale outcome's report is not applied either
}

TEST_CASE("finish_and_claim rejects a bad claim request as claim_status and keeps the outcomes", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job());
  Job first = claim_one(*store);
  Outcome done = outcome(first, OutcomeKind::complete);
  ClaimRequest bad = next_claim(1);
  bad.lease_for = Duration::zero();  // not a lease
  auto r = store->finish_and_claim(std::span<const Outcome>(&done, 1), bad);
  REQUIRE(r.has_value());
  REQUIRE(r->finished.size() == 1);
  CHECK(r->finished[0].state == JobState::completed);
  REQUIRE_FALSE(r->claim_status.has_value());
  CHECK(r->claim_status.error().code() == ErrorCode::invalid_argument);
  CHECK(r->claimed.empty());
  CHECK(get(*store, a).state == JobState::completed);
}

TEST_CASE("an outcome's report is stored with it - progress and item errors", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  Outcome o = outcome(j, OutcomeKind::retry, "try later", 1s);
  o.report = report_of(7, 10, {{"row 3", "bad date"}, {"row 9", "no email"}});
  CHECK(finish(*store, o).state == JobState::pending);
  Job got = get(*store, id);
  CHECK(got.progress.done == 7);
  CHECK(got.progress.total == 10);
  CHECK(got.progress.message == "at 7");
  CHECK(got.item_error_count == 2);
  REQUIRE(got.item_errors.size() == 2);
  CHECK(got.item_errors[0].item == "row 3");
  CHECK(got.item_errors[1].message == "no email");
}

TEST_CASE("an invalid progress in a report is ignored - the outcome still applies", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  Outcome o = outcome(j, OutcomeKind::complete);
  o.report = report_of(11, 10, {{"x", "y"}});  // done > total
  CHECK(finish(*store, o).state == JobState::completed);
  Job got = get(*store, id);
  CHECK(got.progress.done == 0);
  CHECK(got.item_error_count == 1);
}

TEST_CASE("heartbeat_with_reports extends leases and stores reports only for live ones", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job());
  JobId b = add(*store, new_job());
  auto jobs = claim(*store, "default", 2, 10s);
  REQUIRE(jobs.size() == 2);
  std::vector<Beat> beats(2);
  beats[0].lease = jobs[0].lease_ref();
  beats[0].report = report_of(3, 4, {{"item", "oops"}});
  beats[1].lease = jobs[1].lease_ref();
  beats[1].lease.token += 1000;  // not the live lease
  beats[1].report = report_of(1, 1);
  clock->advance(5s);
  auto r = store->heartbeat_with_reports(beats, 60s);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].held);
  CHECK_FALSE((*r)[1].held);
  Job ga = get(*store, a);
  CHECK(ga.progress.done == 3);
  CHECK(ga.item_error_count == 1);
  REQUIRE(ga.lease.has_value());
  CHECK(ga.lease->expires_at == clock->now() + 60s);
  Job gb = get(*store, b);
  CHECK(gb.progress.done == 0);
  // Past the old expiry, the extended lease is still live: nothing to rescue.
  clock->advance(20s);
  auto rescued = store->rescue_expired();
  REQUIRE(rescued.has_value());
  CHECK(*rescued == std::vector<JobId>{b});
}

TEST_CASE("heartbeat_with_reports rejects a non-positive extension and changes nothing", "[seam]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  Beat beat{j.lease_ref(), report_of(1, 2)};
  auto r = store->heartbeat_with_reports(std::span<const Beat>(&beat, 1), Duration::zero());
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::invalid_argument);
  CHECK(get(*store, id).progress.done == 0);
}
