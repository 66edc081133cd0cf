// Conformance: DependencyMode::all_final, the job that runs once its
// dependencies are final however they ended ("notify me when finished").
#include "conformance/conformance.h"

using namespace porter;
using namespace porter::test;

namespace {

JobId add_watcher(Store& store, JobId watched) {
  NewJob n = new_job("notify");
  n.depends_on = {watched};
  n.dependency_mode = DependencyMode::all_final;
  return add(store, n);
}

}  // namespace

TEST_CASE("all_final: a dependent runs after its dependency failed, cancelled or completed", "[deps]") {
  PORTER_STORE_UNDER_TEST();
  const auto end = GENERATE(OutcomeKind::fail, OutcomeKind::complete, OutcomeKind::cancelled);
  INFO("end: " << to_string(end));
  JobId watched = add(*store, new_job());
  JobId strict = add_after(*store, {watched});
  JobId watcher = add_watcher(*store, watched);
  CHECK(get(*store, watcher).state == JobState::waiting);
  CHECK(get(*store, watcher).dependency_mode == DependencyMode::all_final);
  CHECK(get(*store, strict).dependency_mode == DependencyMode::all_completed);
  Job run = claim_one(*store);
  REQUIRE(run.id == watched);
  finish_ok(*store, run, end, end == OutcomeKind::fail ? "broken" : "");
  // The watcher became runnable in the same transaction; the strict
  // dependent ran or was cancelled exactly as before.
  CHECK(get(*store, watcher).state == JobState::pending);
  CHECK(get(*store, strict).state == (end == OutcomeKind::complete ? JobState::pending : JobState::cancelled));
  auto next = claim(*store, "default", 10);
  std::vector<JobId> expected = end == OutcomeKind::complete ? std::vector<JobId>{strict, watcher} : std::vector<JobId>{watcher};
  CHECK(ids_of(next) == expected);
}

TEST_CASE("all_final: a dependency cancelled while pending releases the dependent", "[deps]") {
  PORTER_STORE_UNDER_TEST();
  JobId watched = add(*store, new_job());
  JobId watcher = add_watcher(*store, watched);
  auto c = store->cancel(watched, "not needed");
  REQUIRE(c.has_value());
  CHECK(*c == CancelResult::cancelled);
  CHECK(get(*store, watcher).state == JobState::pending);
}

TEST_CASE("all_final: inserted after its dependency ended it is pending at once", "[deps]") {
  PORTER_STORE_UNDER_TEST();
  JobId failed = add(*store, new_job());
  finish_ok(*store, claim_one(*store), OutcomeKind::fail, "gone");
  JobId watcher = add_watcher(*store, failed);
  Job got = get(*store, watcher);
  CHECK(got.state == JobState::pending);
  CHECK(got.dependencies_unfinished == 0);
  // The default mode still starts cancelled behind a failed dependency.
  JobId strict = add_after(*store, {failed});
  CHECK(get(*store, strict).state == JobState::cancelled);
}

TEST_CASE("all_final: it waits for every dependency, not the first to end", "[deps]") {
  PORTER_STORE_UNDER_TEST();
  JobId a = add(*store, new_job());
  JobId b = add(*store, new_job());
  NewJob n = new_job("notify");
  n.depends_on = {a, b};
  n.dependency_mode = DependencyMode::all_final;
  JobId watcher = add(*store, n);
  finish_ok(*store, claim_one(*store), OutcomeKind::fail, "a broke");
  CHECK(get(*store, watcher).state == JobState::waiting);
  CHECK(get(*store, watcher).dependencies_unfinished == 1);
  finish_ok(*store, claim_one(*store), OutcomeKind::complete);
  CHECK(get(*store, watcher).state == JobState::pending);
  CHECK(get(*store, b).state == JobState::completed);
}
