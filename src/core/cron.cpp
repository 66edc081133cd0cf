// Cron schedules: parsing the five classic fields into bit sets, and finding
// the next matching minute in UTC with the std::chrono calendar types.
//
// Day matching follows Vixie cron: a day field whose text starts with '*' is
// "unrestricted"; when both day fields are restricted, a day matching either
// matches, otherwise both must match (an unrestricted field matches every day
// unless stepped, e.g. "*/2").
#include "porter/cron.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <vector>

namespace porter {

namespace {

struct FieldSpec {
  std::string_view name;
  int min;
  int max;  // inclusive; day-of-week accepts 7 as Sunday and folds it to 0
  const std::array<std::string_view, 12>* names;  // names[i] is value min + i (or nullptr)
};

constexpr std::array<std::string_view, 12> kMonthNames{"jan", "feb", "mar", "apr", "may", "jun",
                                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 12> kDayNames{"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr std::array<FieldSpec, 5> kFields{{
    {"minute", 0, 59, nullptr},
    {"hour", 0, 23, nullptr},
    {"day-of-month", 1, 31, nullptr},
    {"month", 1, 12, &kMonthNames},
    {"day-of-week", 0, 7, &kDayNames},
}};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// One value of a field: a number or (for months and weekdays) a name.
Result<int> parse_value(std::string_view text, const FieldSpec& spec) {
  if (text.empty()) return make_error(ErrorCode::invalid_argument, "a value is missing");
  if (spec.names != nullptr && text.size() == 3) {
    const std::string l = lower(text);
    for (std::size_t i = 0; i < spec.names->size(); ++i) {
      if (!(*spec.names)[i].empty() && (*spec.names)[i] == l) return spec.min + static_cast<int>(i);
    }
  }
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    // Appended step by step: GCC 12 at -O3 warns falsely (-Wrestrict, PR105651) on "'" + std::string(...).
    std::string message = "'";
    message += text;
    message += spec.names != nullptr ? "' is not a number or a name" : "' is not a number";
    return make_error(ErrorCode::invalid_argument, std::move(message));
  }
  if (value < spec.min || value > spec.max) {
    return make_error(ErrorCode::invalid_argument, "value " + std::to_string(value) + " is out of range " +
                                                       std::to_string(spec.min) + "-" + std::to_string(spec.max));
  }
  return value;
}

// A whole field: a comma-separated list of `*`, `v`, `a-b`, each optionally `/step`.
// Bit v of the result is set when value v matches.
Result<std::uint64_t> parse_field(std::string_view text, const FieldSpec& spec) {
  std::uint64_t bits = 0;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = text.find(',', pos);
    const std::string_view item = text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (item.empty()) return make_error(ErrorCode::invalid_argument, "empty list element");

    std::string_view range = item;
    int step = 1;
    bool stepped = false;
    if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
      range = item.substr(0, slash);
      const std::string_view step_text = item.substr(slash + 1);
      const auto [end, ec] = std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
      if (step_text.empty() || ec != std::errc() || end != step_text.data() + step_text.size() || step < 1) {
        return make_error(ErrorCode::invalid_argument, "step '" + std::string(step_text) + "' is not a positive number");
      }
      // A step longer than the field matches its start only; beyond that it
      // is a mistake (and near INT_MAX it would overflow the loop below).
      if (step > spec.max - spec.min + 1) {
        return make_error(ErrorCode::invalid_argument, "step " + std::to_string(step) + " is longer than the field (" +
                                                           std::to_string(spec.min) + "-" + std::to_string(spec.max) + ")");
      }
      stepped = true;
    }

    int lo = spec.min;
    int hi = spec.max;
    if (range == "*") {
      if (spec.min == 0 && spec.max == 7) hi = 6;  // '*' in day-of-week: 0-6, 7 would repeat Sunday
    } else if (const std::size_t dash = range.find('-'); dash != std::string_view::npos) {
      auto a = parse_value(range.substr(0, dash), spec);
      if (!a) return a.error();
      auto b = parse_value(range.substr(dash + 1), spec);
      if (!b) return b.error();
      if (*a > *b) {
        return make_error(ErrorCode::invalid_argument, "range '" + std::string(range) + "' runs backwards");
      }
      lo = *a;
      hi = *b;
    } else {
      auto v = parse_value(range, spec);
      if (!v) return v.error();
      lo = *v;
      // Vixie: "5/15" means 5-max/15; a plain value is just itself.
      hi = stepped ? spec.max : *v;
    }
    for (int v = lo; v <= hi; v += step) {
      bits |= std::uint64_t{1} << v;
      if (hi - v < step) break;  // v + step would pass hi (and never overflows)
    }

    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return bits;
}

template <std::size_t N>
std::bitset<N> to_bits(std::uint64_t mask) {
  std::bitset<N> out;
  for (std::size_t i = 0; i < N; ++i) out[i] = ((mask >> i) & 1U) != 0;
  return out;
}

std::string_view expand_shorthand(std::string_view expression) {
  if (expression == "@hourly") return "0 * * * *";
  if (expression == "@daily" || expression == "@midnight") return "0 0 * * *";
  if (expression == "@weekly") return "0 0 * * 0";
  if (expression == "@monthly") return "0 0 1 * *";
  if (expression == "@yearly" || expression == "@annually") return "0 0 1 1 *";
  return {};
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Longest month length per month (February 29 in leap years).
constexpr std::array<int, 13> kMaxDaysInMonth{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

}  // namespace

Result<CronSchedule> CronSchedule::parse(std::string_view expression) {
  const std::string_view trimmed = trim(expression);
  const auto fail = [&](const std::string& why) {
    return make_error(ErrorCode::invalid_argument, "cron expression '" + std::string(trimmed) + "': " + why);
  };
  std::string_view body = trimmed;
  if (!body.empty() && body.front() == '@') {
    body = expand_shorthand(lower(trimmed));
    if (body.empty()) {
      return fail("unknown shorthand (use @hourly, @daily, @weekly, @monthly or @yearly)");
    }
  }

  std::vector<std::string_view> fields;
  std::size_t pos = 0;
  while (pos < body.size()) {
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (pos >= body.size()) break;
    std::size_t end = pos;
    while (end < body.size() && body[end] != ' ' && body[end] != '\t') ++end;
    fields.push_back(body.substr(pos, end - pos));
    pos = end;
  }
  if (fields.size() != kFields.size()) {
    return fail("expected 5 fields (minute hour day-of-month month day-of-week), got " +
                std::to_string(fields.size()));
  }

  std::array<std::uint64_t, 5> masks{};
  for (std::size_t i = 0; i < kFields.size(); ++i) {
    auto mask = parse_field(fields[i], kFields[i]);
    if (!mask) return fail(std::string(kFields[i].name) + " field '" + std::string(fields[i]) + "': " + mask.error().message());
    masks[i] = *mask;
  }
  // Day-of-week 7 is Sunday, as is 0.
  if ((masks[4] >> 7) & 1U) masks[4] = (masks[4] & ~(std::uint64_t{1} << 7)) | 1U;

  CronSchedule s;
  s.expression_ = std::string(trimmed);
  s.minutes_ = to_bits<60>(masks[0]);
  s.hours_ = to_bits<24>(masks[1]);
  s.days_of_month_ = to_bits<32>(masks[2]);
  s.months_ = to_bits<13>(masks[3]);
  s.days_of_week_ = to_bits<7>(masks[4]);
  s.dom_restricted_ = fields[2].front() != '*';
  s.dow_restricted_ = fields[4].front() != '*';

  // "0 0 31 2 *" (February 31) would never run; say so now rather than never.
  if (!s.dow_restricted_ || !s.dom_restricted_) {
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!s.months_[static_cast<std::size_t>(m)]) continue;
      for (int d = 1; d <= kMaxDaysInMonth[static_cast<std::size_t>(m)]; ++d) {
        if (s.days_of_month_[static_cast<std::size_t>(d)]) {
          possible = true;
          break;
        }
      }
    }
    if (!possible) return fail("day-of-month field '" + std::string(fields[2]) + "': no such day in the given months");
  }
  return s;
}

TimePoint CronSchedule::next_after(TimePoint t) const {
  using namespace std::chrono;
  // Outside the calendar's years the year wraps and minutes overflow the TimePoint.
  constexpr sys_days kFirstDay{year{-32767} / January / 1};
  constexpr sys_days kLastDay{year{32767} / January / 1};
  if (t < kFirstDay || t >= kLastDay) return TimePoint::max();
  const sys_time<minutes> start = floor<minutes>(t) + minutes(1);
  sys_days day = floor<days>(start);
  const minutes first_minute_of_day = start - day;
  const int start_hour = static_cast<int>(first_minute_of_day.count() / 60);
  const int start_min = static_cast<int>(first_minute_of_day.count() % 60);

  // parse() guarantees some day matches; the longest gap is February 29
  // (8 years across a skipped century leap year). The bound only guards
  // against running past the calendar's range.
  constexpr int kMaxDays = 366 * 12;
  for (int i = 0; i < kMaxDays; ++i, day += days(1)) {
    const year_month_day ymd{day};
    if (!ymd.ok() || static_cast<int>(ymd.year()) >= 32767) break;
    if (!months_[static_cast<unsigned>(ymd.month())]) {
      // Jump to the last day of this month; the loop steps to the 1st of the next.
      day = sys_days{ymd.year() / ymd.month() / last};
      continue;
    }
    const bool dom_ok = days_of_month_[static_cast<unsigned>(ymd.day())];
    const bool dow_ok = days_of_week_[weekday{day}.c_encoding()];
    const bool day_ok = (dom_restricted_ && dow_restricted_) ? (dom_ok || dow_ok) : (dom_ok && dow_ok);
    if (!day_ok) continue;
    const bool first_day = i == 0;
    for (int h = first_day ? start_hour : 0; h < 24; ++h) {
      if (!hours_[static_cast<std::size_t>(h)]) continue;
      for (int m = (first_day && h == start_hour) ? start_min : 0; m < 60; ++m) {
        if (minutes_[static_cast<std::size_t>(m)]) {
          return time_point_cast<Duration>(day + hours(h) + minutes(m));
        }
      }
    }
  }
  return TimePoint::max();
}

}  // namespace porter
