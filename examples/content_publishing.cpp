// porter_example_publishing: a parent job and its children (a workflow).
//
// Publishing an article spawns three children, each on its own queue:
// thumbnails (media), the search index (search) and the follower
// notifications (notifications). The search cluster fails the first attempt,
// so that child is retried. When every child is final, the parent runs again
// in its callback phase, reads each child's state and result, and completes
// with a summary of them.
//
// Storage: a fresh SQLite file by default; --memory uses the in-memory store.
// Exits non-zero if any claim it prints did not hold.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "example_support.h"

using namespace std::chrono_literals;
using nlohmann::json;
using porter::examples::Checks;
using porter::examples::Log;
using porter::examples::or_exit;
using porter::examples::register_or_exit;

int main(int argc, char** argv) {
  Log log;
  Checks checks(log);
  auto opened = or_exit(porter::examples::open_example_store(argc, argv, "publishing"), "opening the store");
  log.heading("Publishing an article: a parent job with three children");
  log.line("store: {}", opened.description);

  porter::EngineOptions options;
  options.queues = {{"content", 2}, {"media", 2}, {"search", 1}, {"notifications", 2}};
  options.poll_every = 50ms;
  porter::Engine engine(opened.store, options);

  std::atomic<int> callbacks{0};
  std::atomic<bool> callback_saw_all_final{true};

  register_or_exit(engine, "publish_article", [&](porter::JobContext& ctx) {
    json args = json::parse(ctx.args());
    const int article = args.at("article").get<int>();
    if (!ctx.is_callback()) {
      log.line("content       publish_article {}: spawning thumbnails, search index and notifications", article);
      std::string child_args = json{{"article", article}}.dump();
      auto spawned = ctx.spawn(std::vector<porter::NewJob>{
          {.kind = "make_thumbnails", .args = child_args, .queue = "media"},
          {.kind = "index_article", .args = child_args, .queue = "search"},
          {.kind = "notify_followers", .args = child_args, .queue = "notifications"},
      });
      if (!spawned) throw std::runtime_error("could not spawn children: " + spawned.error().to_string());
      log.line("content       publish_article {}: {} children spawned; waiting for them", article, spawned->size());
      ctx.wait_for_children();
      return;
    }
    // Callback phase: every child is final now.
    ++callbacks;
    auto children = ctx.children();
    if (!children) throw std::runtime_error("could not read children: " + children.error().to_string());
    log.line("content       publish_article {}: callback phase, reading {} children", article, children->size());
    json summary = json::object();
    bool all_completed = true;
    for (const auto& child : *children) {
      if (!porter::is_final(child.state)) callback_saw_all_final = false;
      log.line("                child {} {:<16} on {:<13} {:<9} after {} attempt(s), result {}", child.id, child.kind,
               child.queue, porter::to_string(child.state), child.attempt, child.result.empty() ? "-" : child.result);
      all_completed = all_completed && child.state == porter::JobState::completed;
      summary[child.kind] = child.result.empty() ? json(nullptr) : json::parse(child.result);
    }
    if (!all_completed) throw porter::PermanentError("a child did not complete; the article stays unpublished");
    ctx.set_result(json{{"article", article}, {"published", true}, {"children", summary}}.dump());
    log.line("content       publish_article {}: published", article);
  });

  register_or_exit(engine, "make_thumbnails", [&](porter::JobContext& ctx) {
    std::this_thread::sleep_for(100ms);  // simulated work
    log.line("media         make_thumbnails: 3 sizes rendered");
    ctx.set_result(R"({"sizes":["160x90","640x360","1280x720"]})");
  });

  // The search cluster is rebalancing on the first attempt; the retry works.
  register_or_exit(engine, "index_article",
                   [&](porter::JobContext& ctx) {
                     if (ctx.attempt() == 1) {
                       log.line("search        index_article attempt 1: the search cluster is rebalancing");
                       throw std::runtime_error("search cluster is rebalancing, try again");
                     }
                     log.line("search        index_article attempt {}: indexed", ctx.attempt());
                     ctx.set_result(R"({"terms":412})");
                   },
                   {.retry = porter::examples::fixed_backoff(3, 200ms)});

  register_or_exit(engine, "notify_followers", [&](porter::JobContext& ctx) {
    std::this_thread::sleep_for(50ms);  // simulated work
    log.line("notifications notify_followers: 1280 followers notified");
    ctx.set_result(R"({"notified":1280})");
  });

  engine.subscribe([&](const porter::Event& e) {
    if (e.type == porter::EventType::retried) {
      log.line("engine event  job {} ({}) will be retried: {}", e.job, e.kind, e.message);
    }
  });

  or_exit(engine.start(), "starting the engine");
  auto parent = or_exit(engine.enqueue({.kind = "publish_article",
                                        .args = R"({"article":7})",
                                        .queue = "content",
                                        .owner = "ada",
                                        .description = "Publish 'Why durable jobs matter'"}),
                        "enqueueing");
  log.line("enqueued publish_article (job {})", parent.id);
  auto done = engine.wait_for(parent.id, 20s);
  engine.stop();

  log.heading("Outcome");
  checks.expect(done.has_value() && done->state == porter::JobState::completed, "the publish job completed");
  checks.expect(callbacks == 1, "its callback phase ran exactly once");
  checks.expect(callback_saw_all_final, "the callback ran only after every child was final");
  if (done) {
    log.line("parent result: {}", done->result);
    bool summary_ok = false;
    if (!done->result.empty()) {
      json result = json::parse(done->result);
      const json& c = result["children"];
      summary_ok = c.contains("make_thumbnails") && c.contains("index_article") && c.contains("notify_followers") &&
                   c["index_article"].value("terms", 0) == 412;
    }
    checks.expect(summary_ok, "the parent's result holds each child's result");
  }

  porter::Admin admin(opened.store);
  auto details = admin.get(porter::Principal::owner("ada"), parent.id);
  checks.expect(details.has_value(), "ada (the owner) can read the job in the admin view");
  if (details) {
    log.line("admin view: job {} \"{}\" {}, {} children:", details->job.id, details->job.description,
             porter::to_string(details->job.state), details->children.size());
    bool children_ok = details->children.size() == 3;
    for (const auto& child : details->children) {
      log.line("  job {} {:<16} queue {:<13} {:<9} attempts {} errors {}", child.id, child.kind, child.queue,
               porter::to_string(child.state), child.attempt, child.errors.size());
      for (const auto& e : child.errors) log.line("      attempt {}: {}", e.attempt, e.message);
      children_ok = children_ok && child.state == porter::JobState::completed;
      if (child.kind == "index_article") {
        checks.expect(child.queue == "search" && child.attempt == 2 && child.errors.size() == 1,
                      "index_article ran on the search queue, failed once and completed on its retry");
      }
    }
    checks.expect(children_ok, "all three children completed");
  }
  return checks.verdict("porter_example_publishing");
}
