// Typed jobs (porter/typed.h) with the nlohmann codec (porter/json_codec.h),
// on the memory store: the type's defaults, decoding failures that name the
// field and are never retried, typed results and typed children.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <string>

#include "engine/engine_test_support.h"
#include "porter/json_codec.h"
#include "porter/porter.h"

using namespace std::chrono_literals;
using namespace porter;

namespace {

struct Address {
  std::string city;
  std::string zip;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Address, city, zip)

struct SendEmail {
  static constexpr std::string_view kind = "send_email";
  static constexpr std::string_view queue = "notifications";
  static constexpr int priority = -10;
  static constexpr int max_attempts = 3;
  std::string to;
  std::string subject;
  Address address;
  std::string unique_key() const { return "mail:" + to; }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SendEmail, to, subject, address)

struct Resize {
  static constexpr std::string_view kind = "resize";
  int width = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Resize, width)

struct Thumbnail {
  std::string path;
  int width = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Thumbnail, path, width)

struct Publish {
  static constexpr std::string_view kind = "publish";
  std::vector<int> widths;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Publish, widths)

EngineOptions options() {
  return {.queues = {{"default", 2}, {"notifications", 2}}, .poll_every = 5ms,
          .diagnostics = discard_diagnostics()};
}

}  // namespace

TEST_CASE("typed: a job type's fields round-trip and its defaults apply", "[typed]") {
  Engine engine(make_memory_store(), options());
  std::mutex mu;
  SendEmail seen;
  REQUIRE(engine.register_job<SendEmail>([&](const SendEmail& mail) {
    std::lock_guard lock(mu);
    seen = mail;
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue(SendEmail{.to = "ada@example.com", .subject = "Hi", .address = {"Paris", "75001"}});
  REQUIRE(id);
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  CHECK(job->state == JobState::completed);
  CHECK(job->queue == "notifications");
  CHECK(job->priority == -10);
  CHECK(job->max_attempts == 3);
  CHECK(job->unique_key == "mail:ada@example.com");
  std::lock_guard lock(mu);
  CHECK(seen.to == "ada@example.com");
  CHECK(seen.subject == "Hi");
  CHECK(seen.address.zip == "75001");
}

TEST_CASE("typed: per-enqueue options override the type's defaults", "[typed]") {
  Engine engine(make_memory_store(), options());
  REQUIRE(engine.register_job<SendEmail>([](const SendEmail&) {}));
  auto id = engine.enqueue(SendEmail{.to = "b@example.com"},
                           {.queue = "default", .priority = 5, .max_attempts = 7, .owner = "bob",
                            .unique_key = "k", .description = "welcome mail"});
  REQUIRE(id);
  auto job = engine.store().get(id->id);
  REQUIRE(job);
  CHECK(job->queue == "default");
  CHECK(job->priority == 5);
  CHECK(job->max_attempts == 7);
  CHECK(job->owner == "bob");
  CHECK(job->unique_key == "k");
  CHECK(job->description == "welcome mail");
}

TEST_CASE("typed: args that do not decode fail at once, naming the field", "[typed]") {
  Engine engine(make_memory_store(), options());
  std::atomic<int> runs{0};
  REQUIRE(engine.register_job<SendEmail>([&](const SendEmail&) { runs.fetch_add(1); }));
  REQUIRE(engine.start());
  struct Case {
    std::string args;
    std::string says;
  };
  const Case cases[] = {
      {R"({"to":5,"subject":"s","address":{"city":"c","zip":"z"}})", "field 'to': expected a string, got a number"},
      {R"({"to":"a","address":{"city":"c","zip":"z"}})", "field 'subject' is missing"},
      {R"({"to":"a","subject":"s","address":{"city":"c","zip":1}})", "field 'address.zip': expected a string"},
      {R"([1,2])", "the args: expected an object, got an array"},
  };
  for (const Case& c : cases) {
    INFO(c.args);
    auto id = engine.enqueue({.kind = "send_email", .args = c.args, .queue = "notifications", .max_attempts = 5});
    REQUIRE(id);
    auto job = engine.wait_for(id->id, 20s);
    REQUIRE(job);
    CHECK(job->state == JobState::failed);
    CHECK(job->attempt == 1);  // permanent: never retried
    REQUIRE(job->errors.size() == 1);
    CHECK(job->errors[0].permanent);
    CHECK(job->errors[0].message.find(c.says) != std::string::npos);
    CHECK(job->errors[0].message.find("send_email") != std::string::npos);
  }
  CHECK(runs.load() == 0);
}

TEST_CASE("typed: a handler's return value is the job's typed result", "[typed]") {
  Engine engine(make_memory_store(), options());
  REQUIRE(engine.register_job<Resize>([](const Resize& r, JobContext& ctx) {
    return Thumbnail{.path = "/t/" + std::to_string(ctx.id()), .width = r.width};
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue(Resize{.width = 64});
  REQUIRE(id);
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  REQUIRE(job->state == JobState::completed);
  auto thumb = result_as<Thumbnail>(*job);
  REQUIRE(thumb);
  CHECK(thumb->width == 64);
  CHECK(thumb->path == "/t/" + std::to_string(id->id));
  auto wrong = result_as<Address>(*job);
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code() == ErrorCode::invalid_argument);
}

TEST_CASE("typed: a parent spawns typed children and reads their typed results", "[typed]") {
  Engine engine(make_memory_store(), options());
  REQUIRE(engine.register_job<Resize>([](const Resize& r) { return Thumbnail{.path = "p", .width = r.width}; }));
  REQUIRE(engine.register_job<Publish>([](const Publish& p, JobContext& ctx) {
    if (!ctx.is_callback()) {
      for (int w : p.widths) ctx.spawn(Resize{.width = w}).value();
      ctx.wait_for_children();
      return;
    }
    int total = 0;
    for (const Job& child : ctx.children().value()) total += result_as<Thumbnail>(child).value().width;
    ctx.set_result(Thumbnail{.path = "sum", .width = total});
  }));
  REQUIRE(engine.start());
  auto id = engine.enqueue(Publish{.widths = {16, 32, 64}});
  REQUIRE(id);
  auto job = engine.wait_for(id->id, 20s);
  REQUIRE(job);
  REQUIRE(job->state == JobState::completed);
  CHECK(result_as<Thumbnail>(*job).value().width == 112);
}

TEST_CASE("typed: a batch of one type, and a kind nobody registered is refused", "[typed]") {
  Engine engine(make_memory_store(), options());
  REQUIRE(engine.register_job<Resize>([](const Resize&) {}));
  auto ids = engine.enqueue_batch(std::vector<Resize>{{.width = 1}, {.width = 2}, {.width = 3}});
  REQUIRE(ids);
  CHECK(ids->size() == 3);
  auto refused = engine.enqueue(Publish{});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == ErrorCode::invalid_argument);
}

TEST_CASE("typed: text that is not UTF-8 fails to encode instead of being changed", "[typed]") {
  Engine engine(make_memory_store(), options());
  REQUIRE(engine.register_job<SendEmail>([](const SendEmail&) {}));
  auto r = engine.enqueue(SendEmail{.to = "caf\xe9"});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == ErrorCode::invalid_argument);
  CHECK(r.error().message().find("send_email") != std::string::npos);
}
