// The engine's per-run state (src/engine/run.h) is reused job after job: a
// reset must leave nothing of the previous job behind, and must replace the
// stop source only when the previous run's token fired.
#include <catch2/catch.hpp>

#include "engine/run.h"

using namespace porter;
using porter::detail::Run;
using porter::detail::StopReason;

namespace {
Job job_with(JobId id, std::uint64_t token) {
  Job j;
  j.id = id;
  j.kind = "k";
  j.lease = Lease{token, "w", {}};
  return j;
}
}  // namespace

TEST_CASE("run: a reused run keeps an unfired stop source and starts clean", "[unit][run]") {
  Run run;
  run.reset(job_with(1, 1), TimePoint(Duration(100)));
  const std::stop_token first = run.stop.get_token();
  {
    std::lock_guard lock(run.mu);
    run.progress = Progress{1, 2, "half"};
    run.item_errors.push_back({"row 1", "bad"});
    run.item_errors_uncounted = 3;
  }
  run.report_pending.store(true);
  run.returned.store(true);
  run.timeout_at.store(5);

  run.reset(job_with(2, 7), TimePoint(Duration(200)));
  CHECK(run.stop.get_token() == first);  // no new allocation for a run that was not stopped
  CHECK(run.job.id == 2);
  CHECK(run.job.lease_ref().token == 7);
  CHECK(run.lease_until() == TimePoint(Duration(200)));
  CHECK_FALSE(run.returned.load());
  CHECK_FALSE(run.report_pending.load());
  CHECK(run.timeout_at.load() == std::numeric_limits<Duration::rep>::max());
  RunReport report;
  CHECK(run.take_report(report) == 0);
  CHECK(report.empty());
}

TEST_CASE("run: a run whose token fired gets a fresh stop source and no reason", "[unit][run]") {
  Run run;
  run.reset(job_with(1, 1), TimePoint(Duration(100)));
  const std::stop_token fired = run.stop.get_token();
  run.stop_for(StopReason::cancel);
  run.stop_for(StopReason::timeout);  // the first reason wins
  CHECK(run.cancelled());
  CHECK(run.reason() == StopReason::cancel);

  run.reset(job_with(2, 1), TimePoint(Duration(100)));
  CHECK_FALSE(run.cancelled());
  CHECK(run.reason() == StopReason::none);
  CHECK(run.stop.get_token() != fired);
  CHECK(fired.stop_requested());  // a handler still holding the old token is not un-stopped
}

TEST_CASE("run: take_report moves the buffer out and clears it", "[unit][run]") {
  Run run;
  run.reset(job_with(1, 1), TimePoint(Duration(100)));
  {
    std::lock_guard lock(run.mu);
    run.progress = Progress{3, 4, "most"};
    run.item_errors.push_back({"row 2", "bad"});
    run.item_errors_uncounted = 9;
  }
  run.report_pending.store(true);
  RunReport report;
  CHECK(run.take_report(report) == 9);
  REQUIRE(report.progress);
  CHECK(report.progress->done == 3);
  REQUIRE(report.item_errors.size() == 1);
  CHECK_FALSE(run.report_pending.load());
  RunReport again;
  CHECK(run.take_report(again) == 0);
  CHECK(again.empty());
}
