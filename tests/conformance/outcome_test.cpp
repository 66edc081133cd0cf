// Conformance: finish with each OutcomeKind, progress and item errors.
#include "conformance/conformance.h"

using namespace porter;
using namespace porter::test;

TEST_CASE("complete stores the result and finishes the job", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  clock->advance(3s);
  Outcome o = outcome(j, OutcomeKind::complete);
  o.result = R"({"sent":true})";
  auto r = finish(*store, o);
  REQUIRE(r.status.has_value());
  CHECK(r.state == JobState::completed);
  Job got = get(*store, id);
  CHECK(got.state == JobState::completed);
  CHECK(got.result == R"({"sent":true})");
  CHECK(got.finished_at == std::optional<TimePoint>(clock->now()));
  CHECK_FALSE(got.lease.has_value());
  // A second finish with the same lease is stale: the job is no longer running.
  auto twice = finish(*store, o);
  CHECK_FALSE(twice.status.has_value());
  CHECK(twice.status.error().code() == ErrorCode::stale_lease);
  CHECK(twice.state == JobState::completed);
}

TEST_CASE("retry: pending after the delay - failed with the full error history once attempts run out", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  NewJob n = new_job();
  n.max_attempts = 3;
  JobId id = add(*store, n);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Job j = claim_one(*store);
    CHECK(j.attempt == attempt);
    JobState s = finish_ok(*store, j, OutcomeKind::retry, "timeout " + std::to_string(attempt), 10s);
    if (attempt < 3) {
      CHECK(s == JobState::pending);
      Job got = get(*store, id);
      CHECK(got.run_at == clock->now() + 10s);
      CHECK(claim(*store).empty());
      clock->advance(10s);
    } else {
      CHECK(s == JobState::failed);
    }
  }
  Job got = get(*store, id);
  CHECK(got.state == JobState::failed);
  REQUIRE(got.errors.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(got.errors[static_cast<std::size_t>(i)].attempt == i + 1);
    CHECK(got.errors[static_cast<std::size_t>(i)].message == "timeout " + std::to_string(i + 1));
    CHECK_FALSE(got.errors[static_cast<std::size_t>(i)].permanent);
  }
}

TEST_CASE("fail is permanent at once - long messages are clipped", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  std::string huge(kMaxErrorMessageBytes * 2, 'x');
  CHECK(finish_ok(*store, j, OutcomeKind::fail, huge) == JobState::failed);
  Job got = get(*store, id);
  REQUIRE(got.errors.size() == 1);
  CHECK(got.errors[0].permanent);
  CHECK(got.errors[0].message == clip_message(huge));
  CHECK(got.errors[0].message.size() <= kMaxErrorMessageBytes);
}

TEST_CASE("snooze and release do not consume the attempt", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  NewJob n = new_job();
  n.max_attempts = 1;
  JobId id = add(*store, n);
  Job j = claim_one(*store);
  CHECK(finish_ok(*store, j, OutcomeKind::snooze, {}, 1min) == JobState::pending);
  Job got = get(*store, id);
  CHECK(got.attempt == 0);
  CHECK(got.run_at == clock->now() + 1min);
  CHECK(got.errors.empty());
  CHECK(claim(*store).empty());
  clock->advance(1min);
  j = claim_one(*store);
  CHECK(j.attempt == 1);
  CHECK(finish_ok(*store, j, OutcomeKind::release) == JobState::pending);
  got = get(*store, id);
  CHECK(got.attempt == 0);
  CHECK(got.run_at <= clock->now());
  j = claim_one(*store);
  CHECK(j.attempt == 1);
  // Still the only attempt: a retry now fails it.
  CHECK(finish_ok(*store, j, OutcomeKind::retry, "x") == JobState::failed);
}

TEST_CASE("cancelled outcome ends the job cancelled - cancel_requested overrides any outcome", "[lease][cancel]") {
  PORTER_STORE_UNDER_TEST();
  add(*store, new_job());
  Job j = claim_one(*store);
  CHECK(finish_ok(*store, j, OutcomeKind::cancelled) == JobState::cancelled);

  for (auto kind : {OutcomeKind::complete, OutcomeKind::retry, OutcomeKind::snooze, OutcomeKind::release,
                    OutcomeKind::wait_children, OutcomeKind::fail}) {
    JobId id = add(*store, new_job());
    Job k = claim_one(*store);
    REQUIRE(k.id == id);
    REQUIRE(store->cancel(id, "user asked").value() == CancelResult::requested);
    CHECK(get(*store, id).cancel_requested);
    CHECK(finish_ok(*store, k, kind, "err", 1s) == JobState::cancelled);
    CHECK(get(*store, id).state == JobState::cancelled);
  }
}

TEST_CASE("a batch of outcomes is applied together, each with its own status", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  std::vector<NewJob> batch(3, new_job());
  REQUIRE(store->insert(batch).has_value());
  auto jobs = claim(*store, "default", 3);
  REQUIRE(jobs.size() == 3);
  std::vector<Outcome> outs{outcome(jobs[0], OutcomeKind::complete), outcome(jobs[1], OutcomeKind::fail, "bad"),
                            outcome(jobs[2], OutcomeKind::complete)};
  outs[2].lease.token += 100;  // stale
  auto r = store->finish(outs);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 3);
  CHECK((*r)[0].status.has_value());
  CHECK((*r)[0].state == JobState::completed);
  CHECK((*r)[1].state == JobState::failed);
  CHECK_FALSE((*r)[2].status.has_value());
  CHECK((*r)[2].status.error().code() == ErrorCode::stale_lease);
  CHECK(get(*store, jobs[2].id).state == JobState::running);
}

TEST_CASE("progress is stored under the live lease", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  REQUIRE(store->report_progress(j.lease_ref(), Progress{25, 100, "rows"}).has_value());
  Job got = get(*store, id);
  CHECK(got.progress.done == 25);
  CHECK(got.progress.total == 100);
  CHECK(got.progress.message == "rows");
  REQUIRE(got.progress.percent().has_value());
  CHECK(*got.progress.percent() == Approx(25.0));
  auto bad = store->report_progress(j.lease_ref(), Progress{-1, 0, ""});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == ErrorCode::invalid_argument);
  CHECK(get(*store, id).progress.done == 25);
}

TEST_CASE("item errors: every one counted, the first kMaxStoredItemErrors stored", "[lease]") {
  PORTER_STORE_UNDER_TEST();
  JobId id = add(*store, new_job());
  Job j = claim_one(*store);
  std::vector<ItemError> first;
  for (int i = 0; i < 60; ++i) first.push_back({"row " + std::to_string(i), "bad e-mail"});
  REQUIRE(store->add_item_errors(j.lease_ref(), first).has_value());
  std::vector<ItemError> second;
  for (int i = 60; i < 150; ++i) second.push_back({"row " + std::to_string(i), std::string(10000, 'm')});
  REQUIRE(store->add_item_errors(j.lease_ref(), second).has_value());
  finish_ok(*store, j, OutcomeKind::complete);
  Job got = get(*store, id);
  CHECK(got.item_error_count == 150);
  REQUIRE(got.item_errors.size() == kMaxStoredItemErrors);
  CHECK(got.item_errors[0].item == "row 0");
  CHECK(got.item_errors[99].item == "row 99");
  CHECK(got.item_errors[99].message.size() <= kMaxErrorMessageBytes);
  CHECK(got.state == JobState::completed);
}
