// CronSchedule: parsing every supported syntax, rejecting malformed fields
// with a message naming the field, and next_after across hours, days,
// months, leap years and the Vixie day-of-month / day-of-week rule.
#include <catch2/catch.hpp>

#include "porter/cron.h"

using namespace std::chrono;
using porter::CronSchedule;
using porter::TimePoint;

namespace {

TimePoint at(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return time_point_cast<porter::Duration>(sys_days{year{y} / month{mo} / day{d}} + hours(h) + minutes(mi) +
                                           seconds(s));
}

CronSchedule cron(std::string_view text) {
  auto c = CronSchedule::parse(text);
  INFO(text << (c ? "" : " -> " + c.error().message()));
  REQUIRE(c.has_value());
  return *c;
}

std::string parse_error(std::string_view text) {
  auto c = CronSchedule::parse(text);
  INFO(text);
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code() == porter::ErrorCode::invalid_argument);
  return c.error().message();
}

}  // namespace

TEST_CASE("cron: every minute fires on the next minute boundary, strictly after", "[cron]") {
  auto c = cron("* * * * *");
  CHECK(c.next_after(at(2024, 1, 1, 10, 0)) == at(2024, 1, 1, 10, 1));
  CHECK(c.next_after(at(2024, 1, 1, 10, 0, 30)) == at(2024, 1, 1, 10, 1));
  CHECK(c.next_after(at(2024, 1, 1, 23, 59, 59)) == at(2024, 1, 2, 0, 0));
  CHECK(c.next_after(at(2024, 1, 1, 10, 0) - microseconds(1)) == at(2024, 1, 1, 10, 0));
}

TEST_CASE("cron: lists, ranges and steps", "[cron]") {
  auto c = cron("*/15 9-17 * * *");
  CHECK(c.next_after(at(2024, 3, 5, 8, 59)) == at(2024, 3, 5, 9, 0));
  CHECK(c.next_after(at(2024, 3, 5, 9, 0)) == at(2024, 3, 5, 9, 15));
  CHECK(c.next_after(at(2024, 3, 5, 17, 45)) == at(2024, 3, 6, 9, 0));

  auto l = cron("5,10,50 1,13 * * *");
  CHECK(l.next_after(at(2024, 3, 5, 1, 10)) == at(2024, 3, 5, 1, 50));
  CHECK(l.next_after(at(2024, 3, 5, 1, 50)) == at(2024, 3, 5, 13, 5));

  auto r = cron("10-30/10 * * * *");
  CHECK(r.next_after(at(2024, 3, 5, 1, 0)) == at(2024, 3, 5, 1, 10));
  CHECK(r.next_after(at(2024, 3, 5, 1, 20)) == at(2024, 3, 5, 1, 30));
  CHECK(r.next_after(at(2024, 3, 5, 1, 30)) == at(2024, 3, 5, 2, 10));

  auto v = cron("7/20 * * * *");  // Vixie: from 7 to the end, every 20
  CHECK(v.next_after(at(2024, 3, 5, 1, 8)) == at(2024, 3, 5, 1, 27));
  CHECK(v.next_after(at(2024, 3, 5, 1, 47)) == at(2024, 3, 5, 2, 7));
}

TEST_CASE("cron: month and weekday names, case-insensitive", "[cron]") {
  auto c = cron("0 12 * JUN-aug mon-FRI");
  // 2024-06-01 is a Saturday.
  CHECK(c.next_after(at(2024, 5, 20)) == at(2024, 6, 3, 12, 0));
  CHECK(c.next_after(at(2024, 8, 30, 12, 0)) == at(2025, 6, 2, 12, 0));
}

TEST_CASE("cron: 0 and 7 are both Sunday", "[cron]") {
  // 2024-03-10 is a Sunday.
  CHECK(cron("0 0 * * 0").next_after(at(2024, 3, 5)) == at(2024, 3, 10));
  CHECK(cron("0 0 * * 7").next_after(at(2024, 3, 5)) == at(2024, 3, 10));
  CHECK(cron("0 0 * * sun").next_after(at(2024, 3, 5)) == at(2024, 3, 10));
  CHECK(cron("0 0 * * 5-7").next_after(at(2024, 3, 9, 1)) == at(2024, 3, 10));
}

TEST_CASE("cron: shorthands", "[cron]") {
  const auto t = at(2024, 3, 5, 10, 30);
  CHECK(cron("@hourly").next_after(t) == at(2024, 3, 5, 11, 0));
  CHECK(cron("@daily").next_after(t) == at(2024, 3, 6));
  CHECK(cron("@weekly").next_after(t) == at(2024, 3, 10));
  CHECK(cron("@monthly").next_after(t) == at(2024, 4, 1));
  CHECK(cron("@yearly").next_after(t) == at(2025, 1, 1));
  CHECK(cron("@annually").next_after(t) == at(2025, 1, 1));
  CHECK(cron("  @daily ").expression() == "@daily");
}

TEST_CASE("cron: Vixie day rule - both restricted matches either day field", "[cron]") {
  // The 13th or any Friday. 2024-09-06 is a Friday; 2024-09-13 is also a Friday.
  auto c = cron("0 0 13 * fri");
  CHECK(c.next_after(at(2024, 9, 1)) == at(2024, 9, 6));
  CHECK(c.next_after(at(2024, 10, 5)) == at(2024, 10, 11));  // Friday before the 13th
  CHECK(c.next_after(at(2024, 10, 11)) == at(2024, 10, 13));  // Sunday the 13th
}

TEST_CASE("cron: one day field restricted - the other does not widen it", "[cron]") {
  CHECK(cron("0 0 13 * *").next_after(at(2024, 9, 1)) == at(2024, 9, 13));
  CHECK(cron("0 0 * * fri").next_after(at(2024, 9, 1)) == at(2024, 9, 6));
  // "*/2" counts as unrestricted (starts with '*'), so it is ANDed with the weekday.
  // Odd days that are Mondays: 2024-09-09 (9th) is a Monday.
  CHECK(cron("0 0 */2 * mon").next_after(at(2024, 9, 1)) == at(2024, 9, 9));
}

TEST_CASE("cron: month ends, leap years and year rollover", "[cron]") {
  CHECK(cron("0 0 31 * *").next_after(at(2024, 4, 1)) == at(2024, 5, 31));
  CHECK(cron("0 0 29 2 *").next_after(at(2024, 3, 1)) == at(2028, 2, 29));
  CHECK(cron("0 0 29 2 *").next_after(at(2096, 3, 1)) == at(2104, 2, 29));  // 2100 is not a leap year
  CHECK(cron("59 23 31 12 *").next_after(at(2024, 12, 31, 23, 59)) == at(2025, 12, 31, 23, 59));
}

TEST_CASE("cron: successive next_after calls enumerate every match", "[cron]") {
  auto c = cron("*/20 */6 * * *");
  TimePoint t = at(2024, 1, 1) - microseconds(1);
  int count = 0;
  while (true) {
    t = c.next_after(t);
    if (t >= at(2024, 1, 2)) break;
    ++count;
  }
  CHECK(count == 4 * 3);
}

TEST_CASE("cron: malformed expressions name the bad field", "[cron]") {
  CHECK_THAT(parse_error(""), Catch::Contains("expected 5 fields"));
  CHECK_THAT(parse_error("* * * *"), Catch::Contains("got 4"));
  CHECK_THAT(parse_error("* * * * * *"), Catch::Contains("got 6"));
  CHECK_THAT(parse_error("60 * * * *"), Catch::Contains("minute field '60'") && Catch::Contains("0-59"));
  CHECK_THAT(parse_error("* 24 * * *"), Catch::Contains("hour field"));
  CHECK_THAT(parse_error("* * 0 * *"), Catch::Contains("day-of-month field"));
  CHECK_THAT(parse_error("* * * 13 *"), Catch::Contains("month field"));
  CHECK_THAT(parse_error("* * * foo *"), Catch::Contains("month field 'foo'"));
  CHECK_THAT(parse_error("* * * * 8"), Catch::Contains("day-of-week field"));
  CHECK_THAT(parse_error("* * * * mon-"), Catch::Contains("day-of-week field"));
  CHECK_THAT(parse_error("*/0 * * * *"), Catch::Contains("step"));
  CHECK_THAT(parse_error("*/x * * * *"), Catch::Contains("step"));
  CHECK_THAT(parse_error("5-1 * * * *"), Catch::Contains("backwards"));
  CHECK_THAT(parse_error("1,,2 * * * *"), Catch::Contains("empty list element"));
  CHECK_THAT(parse_error("a * * * *"), Catch::Contains("minute field 'a'"));
  CHECK_THAT(parse_error("* * * * mon"  "day"), Catch::Contains("day-of-week"));
  CHECK_THAT(parse_error("@sometimes"), Catch::Contains("unknown shorthand"));
  CHECK_THAT(parse_error("0 0 31 2 *"), Catch::Contains("no such day"));
  CHECK_THAT(parse_error("0 0 30-31 2 *"), Catch::Contains("no such day"));
}

TEST_CASE("cron: February 31 is fine when a weekday can still match", "[cron]") {
  // Both day fields restricted: the weekday alone can match.
  auto c = cron("0 0 31 2 mon");
  CHECK(c.next_after(at(2024, 2, 1)) == at(2024, 2, 5));
}

TEST_CASE("cron: steps beyond a field's range are rejected, never overflow", "[cron]") {
  // A step near INT_MAX used to overflow the loop and set bits it never meant
  // to (firing at minute 0 and more); any step longer than the field is refused.
  CHECK(parse_error("*/2147483647 * * * *").find("minute") != std::string::npos);
  CHECK(parse_error("0 */2147483647 * * *").find("hour") != std::string::npos);
  CHECK(parse_error("0 0 1-31/2147483646 * *").find("day-of-month") != std::string::npos);
  CHECK(parse_error("0 0 * 5/61 *").find("month") != std::string::npos);
  CHECK(parse_error("0 0 * * */9").find("day-of-week") != std::string::npos);
  // The longest step that still fits is fine: it matches the start only.
  auto c = cron("*/60 * * * *");
  CHECK(c.next_after(at(2024, 1, 1, 10, 0)) == at(2024, 1, 1, 11, 0));
  auto d = cron("58/59 * * * *");
  CHECK(d.next_after(at(2024, 1, 1, 10, 0)) == at(2024, 1, 1, 10, 58));
}
