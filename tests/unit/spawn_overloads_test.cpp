// JobContext::spawn with a braced list of one, two or three children, plain
// ({"kind"}) or designated ({.kind = ...}), must compile on GCC 12 and Clang
// (it used to be ambiguous with the one-child overload) and spawn exactly
// those children; spawn(NewJob) and spawn({.kind = ...}) spawn one.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <type_traits>
#include <vector>

#include "porter/engine.h"

using namespace porter;
using namespace std::chrono_literals;

namespace {

using Many = Result<std::vector<InsertResult>>;
using One = Result<InsertResult>;

// Throws PermanentError (so the test sees the message) unless `r` holds `n` children.
void expect_spawned(const Many& r, std::size_t n, const char* form) {
  if (!r) throw PermanentError(std::string(form) + ": " + r.error().to_string());
  if (r->size() != n) throw PermanentError(std::string(form) + ": spawned " + std::to_string(r->size()));
}
void expect_spawned(const One& r, const char* form) {
  if (!r) throw PermanentError(std::string(form) + ": " + r.error().to_string());
}

// Every form of the call, 21 children in all.
void spawn_every_form(JobContext& ctx) {
  NewJob a{.kind = "child"};
  NewJob b{.kind = "child", .args = R"({"n":2})"};
  auto one_plain = ctx.spawn({{"child"}});
  auto two_plain = ctx.spawn({{"child"}, {"child"}});
  auto three_plain = ctx.spawn({{"child"}, {"child"}, {"child"}});
  auto three_plain_args = ctx.spawn({{"child", "{}"}, {"child", "[]"}, {"child", "1"}});
  auto one_designated = ctx.spawn({{.kind = "child"}});
  auto two_designated = ctx.spawn({{.kind = "child"}, {.kind = "child", .priority = 1}});
  auto three_designated = ctx.spawn({{.kind = "child"}, {.kind = "child"}, {.kind = "child", .args = "[]"}});
  auto braced_values = ctx.spawn({a, b});
  auto vector = ctx.spawn(std::vector<NewJob>{a});
  auto single = ctx.spawn(NewJob{.kind = "child"});
  auto single_designated = ctx.spawn({.kind = "child"});
  auto single_value = ctx.spawn(a);
  static_assert(std::is_same_v<decltype(one_plain), Many>);
  static_assert(std::is_same_v<decltype(one_designated), Many>);
  static_assert(std::is_same_v<decltype(braced_values), Many>);
  static_assert(std::is_same_v<decltype(single), One>);
  static_assert(std::is_same_v<decltype(single_designated), One>);
  static_assert(std::is_same_v<decltype(single_value), One>);
  expect_spawned(one_plain, 1, "{{\"child\"}}");
  expect_spawned(two_plain, 2, "two plain");
  expect_spawned(three_plain, 3, "three plain");
  expect_spawned(three_plain_args, 3, "three plain with args");
  expect_spawned(one_designated, 1, "one designated");
  expect_spawned(two_designated, 2, "two designated");
  expect_spawned(three_designated, 3, "three designated");
  expect_spawned(braced_values, 2, "{a, b}");
  expect_spawned(vector, 1, "vector");
  expect_spawned(single, "NewJob{...}");
  expect_spawned(single_designated, "{.kind = ...}");
  expect_spawned(single_value, "a");
}

}  // namespace

TEST_CASE("spawn takes one, two or three plain or designated children", "[spawn]") {
  Engine engine(make_memory_store(), {.queues = {{"default", 2}}});
  REQUIRE(engine.register_handler("child", [](JobContext&) {}));
  REQUIRE(engine.register_handler("parent", [](JobContext& ctx) {
    if (!ctx.is_callback()) {
      spawn_every_form(ctx);
      ctx.wait_for_children();
      return;
    }
    auto children = ctx.children().value();
    if (children.size() != 21) throw PermanentError("children: " + std::to_string(children.size()));
  }));
  REQUIRE(engine.start());
  auto parent = engine.enqueue({.kind = "parent"});
  REQUIRE(parent);
  auto done = engine.wait_for(parent->id, 60s);
  REQUIRE(done);
  INFO((done->errors.empty() ? std::string() : done->errors.back().message));
  CHECK(done->state == JobState::completed);
  engine.stop();
}
