// The codec is a customization point: a job type with its own JobCodec
// works without any JSON library (this file includes none).
#include <catch2/catch.hpp>

#include <charconv>
#include <stdexcept>

#include "engine/engine_test_support.h"
#include "porter/porter.h"

using namespace std::chrono_literals;
using namespace porter;

namespace {

struct Ping {
  static constexpr std::string_view kind = "ping";
  static constexpr auto timeout = std::chrono::seconds(30);
  long n = 0;
};

}  // namespace

template <>
struct porter::JobCodec<Ping> {
  static std::string encode(const Ping& p) { return "[" + std::to_string(p.n) + "]"; }
  static Ping decode(std::string_view text) {
    Ping p;
    if (text.size() < 3 || text.front() != '[' || text.back() != ']') throw std::invalid_argument("field 'n': not [N]");
    const auto [end, ec] = std::from_chars(text.data() + 1, text.data() + text.size() - 1, p.n);
    if (ec != std::errc() || end != text.data() + text.size() - 1) throw std::invalid_argument("field 'n': not a number");
    return p;
  }
};

TEST_CASE("typed: a hand-written codec and a type-declared timeout", "[typed]") {
  KindOptions declared;
  detail::apply_type_defaults<Ping>(declared);
  REQUIRE(declared.timeout);
  CHECK(*declared.timeout == std::chrono::seconds(30));
  KindOptions explicit_timeout{.timeout = std::chrono::seconds(1)};
  detail::apply_type_defaults<Ping>(explicit_timeout);
  CHECK(*explicit_timeout.timeout == std::chrono::seconds(1));

  Engine engine(make_memory_store(), {.queues = {{"default", 1}}, .poll_every = 5ms});
  std::atomic<long> got{0};
  REQUIRE(engine.register_job<Ping>([&](const Ping& p) { got.store(p.n); }));
  REQUIRE(engine.start());
  auto id = engine.enqueue(Ping{.n = 41});
  REQUIRE(id);
  CHECK(engine.store().get(id->id).value().args == "[41]");
  REQUIRE(engine.wait_for(id->id, 20s).value().state == JobState::completed);
  CHECK(got.load() == 41);
  static_assert(JobType<Ping>);
  static_assert(!JobType<NewJob>);  // a NewJob's kind is a field, not a type's
}
