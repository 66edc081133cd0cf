// The smallest application: what a user writes first. Built against an
// installed Porter (find_package) and a vendored one (add_subdirectory).
#include <porter/porter.h>

#include <cstdio>

int main() {
  porter::Engine engine(porter::make_memory_store(), {.queues = {{"default", 2}}});
  if (!engine.register_handler("hello", [](porter::JobContext& ctx) { ctx.set_result(R"({"said":"hello"})"); })) return 1;
  if (!engine.start()) return 1;
  auto id = engine.enqueue({.kind = "hello"});
  if (!id) return 1;
  auto job = engine.wait_for(id->id, std::chrono::seconds(10));
  engine.stop();
  if (!job || job->state != porter::JobState::completed) return 1;
  std::printf("job %lld %s\n", static_cast<long long>(job->id), job->result.c_str());
  return 0;
}
