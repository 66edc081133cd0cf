// libFuzzer target: CronSchedule::parse on any text, then next_after from
// a few instants (the epoch, far past and future, the extremes, and one
// taken from the input: the expression's first line is parsed, the bytes
// after its newline pick that instant). A parsed schedule's next run is after the instant,
// on a minute boundary, and stable: asking again from just before it gives it
// again. TimePoint::max() means "none in range". Nothing may hang or overflow.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "porter/cron.h"

namespace {

using porter::Duration;
using porter::TimePoint;

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "cron_fuzz: %s\n", what);
  std::abort();
}

void check_next(const porter::CronSchedule& schedule, TimePoint t) {
  const TimePoint next = schedule.next_after(t);
  if (next == TimePoint::max()) return;
  if (next <= t) broken("next_after is not after the instant");
  if (next.time_since_epoch() % std::chrono::minutes(1) != Duration::zero()) broken("next_after is not on a minute");
  if (schedule.next_after(next - Duration(1)) != next) broken("next_after from just before its answer moved");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The expression, then optionally a newline and up to 8 bytes that pick one more instant.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::int64_t picked = 0;
  if (auto newline = text.find('\n'); newline != std::string_view::npos) {
    const std::string_view rest = text.substr(newline + 1);
    std::memcpy(&picked, rest.data(), std::min(rest.size(), sizeof(picked)));
    text = text.substr(0, newline);
  }
  auto parsed = porter::CronSchedule::parse(text);
  if (!parsed) {
    if (parsed.error().message().empty()) broken("an error without a message");
    return 0;
  }
  const porter::CronSchedule& schedule = *parsed;
  using namespace std::chrono;
  const TimePoint instants[] = {
      TimePoint{},
      TimePoint{} + hours(24 * 365 * 30) + minutes(59) + seconds(59),  // late 1999
      TimePoint{} - hours(24 * 365 * 300),                             // 1670
      TimePoint{} + hours(24 * 365 * 8000),                            // year ~9970
      TimePoint::min(),
      TimePoint::max() - Duration(1),
      TimePoint{} + Duration(picked),
  };
  for (TimePoint t : instants) check_next(schedule, t);
  return 0;
}
