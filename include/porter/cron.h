// Cron schedules for periodic jobs: the classic five fields
//   minute hour day-of-month month day-of-week
// with *, lists (1,5), ranges (1-5), steps (*/15, 1-30/5), names for months
// (jan..dec) and weekdays (sun..sat, 0 or 7 = Sunday), and the shorthands
// @hourly, @daily, @weekly, @monthly, @yearly. Times are UTC; granularity is
// one minute. As in Vixie cron, when both day fields are restricted a day
// matching either one matches.
#pragma once

#include <bitset>
#include <string>
#include <string_view>

#include "porter/clock.h"
#include "porter/status.h"

namespace porter {

class CronSchedule {
 public:
  // invalid_argument with the offending field for anything malformed.
  static Result<CronSchedule> parse(std::string_view expression);

  // The first minute boundary strictly after `t` that matches.
  TimePoint next_after(TimePoint t) const;

  const std::string& expression() const noexcept { return expression_; }

 private:
  std::string expression_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1..31
  std::bitset<13> months_;         // 1..12
  std::bitset<7> days_of_week_;    // 0..6, Sunday = 0
  bool dom_restricted_ = false;
  bool dow_restricted_ = false;
};

}  // namespace porter
