#include <catch2/catch.hpp>

#include "porter/job.h"
#include "porter/status.h"

using namespace porter;

TEST_CASE("validate accepts a minimal job and rejects bad input with a clear message", "[job]") {
  REQUIRE(validate(NewJob{.kind = "send_email"}).has_value());

  auto rejects = [](NewJob job, std::string_view needle) {
    auto status = validate(job);
    REQUIRE_FALSE(status.has_value());
    CHECK(status.error().code() == ErrorCode::invalid_argument);
    CHECK_THAT(status.error().message(), Catch::Contains(std::string(needle)));
  };
  rejects(NewJob{}, "kind must not be empty");
  rejects(NewJob{.kind = std::string(kMaxNameBytes + 1, 'k')}, "kind is longer");
  rejects(NewJob{.kind = "k", .queue = ""}, "queue must not be empty");
  rejects(NewJob{.kind = "k", .args = "{not json"}, "not valid JSON");
  rejects(NewJob{.kind = "k", .args = std::string(kMaxArgsBytes + 1, ' ')}, "limit is");
  rejects(NewJob{.kind = "k", .priority = kMaxPriority + 1}, "priority");
  rejects(NewJob{.kind = "k", .delay = Duration(-1)}, "delay must not be negative");
  rejects(NewJob{.kind = "k", .max_attempts = -1}, "max_attempts");
  rejects(NewJob{.kind = "k", .unique_key = "x", .unique_scope = UniqueScope::period}, "unique_period");
  rejects(NewJob{.kind = "bad\nname"}, "control character");
}

TEST_CASE("job states round-trip through their names", "[job]") {
  for (auto s : {JobState::pending, JobState::running, JobState::waiting, JobState::completed, JobState::failed,
                 JobState::cancelled}) {
    auto parsed = parse_job_state(to_string(s));
    REQUIRE(parsed.has_value());
    CHECK(*parsed == s);
  }
  CHECK_FALSE(parse_job_state("done").has_value());
  CHECK(is_final(JobState::failed));
  CHECK_FALSE(is_final(JobState::waiting));
}

TEST_CASE("run_at resolves from run_at, delay or now", "[job]") {
  const TimePoint now(Duration(1'000'000));
  CHECK(resolve_run_at(NewJob{.kind = "k"}, now) == now);
  CHECK(resolve_run_at(NewJob{.kind = "k", .delay = std::chrono::seconds(5)}, now) == now + std::chrono::seconds(5));
  CHECK(resolve_run_at(NewJob{.kind = "k", .run_at = TimePoint(Duration(7))}, now) == TimePoint(Duration(7)));
}

TEST_CASE("long error messages are clipped on a character boundary", "[job]") {
  std::string msg(kMaxErrorMessageBytes + 10, 'x');
  msg.replace(kMaxErrorMessageBytes - 4, 2, "\xC3\xA9");  // a two-byte character straddling the cut
  auto clipped = clip_message(msg);
  CHECK(clipped.size() <= kMaxErrorMessageBytes);
  CHECK(clipped.substr(clipped.size() - 3) == "\xE2\x80\xA6");
  CHECK(clip_message("short") == "short");
}

TEST_CASE("Result carries a value or an error", "[status]") {
  Result<int> ok = 3;
  REQUIRE(ok.has_value());
  CHECK(*ok == 3);
  Result<int> bad = make_error(ErrorCode::not_found, "job 9 does not exist");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().to_string() == "not_found: job 9 does not exist");
  CHECK(bad.value_or(7) == 7);
  CHECK_THROWS_AS(bad.value(), BadResultAccess);
}
