// CronSchedule::next_after at the ends of TimePoint's range: found by the cron
// fuzzer (tests/fuzz/cron_fuzz.cpp), where the minute arithmetic overflowed.
#include <catch2/catch.hpp>

#include <chrono>

#include "porter/cron.h"

using namespace porter;

TEST_CASE("next_after near the ends of time answers later or none, never wraps", "[cron]") {
  using namespace std::chrono;
  const auto weekly = CronSchedule::parse("@weekly").value();
  const auto every_minute = CronSchedule::parse("* * * * *").value();
  const TimePoint instants[] = {
      TimePoint::max(), TimePoint::max() - Duration(1), TimePoint::max() - hours(24 * 366),
      TimePoint::min(), TimePoint::min() + Duration(1), TimePoint::min() + hours(24 * 366),
  };
  for (TimePoint t : instants) {
    for (const CronSchedule* schedule : {&weekly, &every_minute}) {
      const TimePoint next = schedule->next_after(t);
      INFO(schedule->expression() << " after " << t.time_since_epoch().count());
      CHECK((next == TimePoint::max() || next > t));
    }
  }
  // Ordinary instants are unaffected.
  const TimePoint y2k = sys_days{year{2000} / January / 1};
  CHECK(every_minute.next_after(y2k) == y2k + minutes(1));
}
