// porter_jobs_page: the seeds' scenario with the Background Jobs page on
// localhost. An LMS hands its work to Porter: user imports with bad rows,
// video transcodes, reports, catalog syncs that fail, e-mail digests that
// succeed on retry; a superadmin and a power user watch it in the page.
//
//   porter_jobs_page [--memory] [--port N] [--admin-token T] [--user-token T]
//                    [--hostile] [--seconds N]
//
// It prints the page's address and the two sign-in tokens, keeps enqueueing
// work every few seconds, and runs until Ctrl-C (or --seconds). --hostile adds
// a job whose description, args, errors and item errors carry <script> and
// <img onerror> payloads (the browser test checks they render as text).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "example_support.h"
#include "porter/http.h"

using namespace std::chrono_literals;
using porter::examples::or_exit;
using porter::examples::register_or_exit;

namespace {

std::string flag_value(int argc, char** argv, std::string_view flag, std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == flag) return argv[i + 1];
  return fallback;
}

// Steps of `step` until done, reporting progress; stops early when cancelled.
void work(porter::JobContext& ctx, int steps, std::chrono::milliseconds step, std::string_view what) {
  for (int i = 0; i <= steps; ++i) {
    ctx.progress(i, steps, fmt::format("{} {} of {}", what, i, steps));
    if (i == steps || ctx.cancelled()) return;
    std::this_thread::sleep_for(step);
  }
}

void register_handlers(porter::Engine& engine) {
  register_or_exit(engine, "import_users", [](porter::JobContext& ctx) {
    const bool hostile = ctx.args().find("<script>") != std::string_view::npos;
    for (int row = 1; row <= 40 && !ctx.cancelled(); ++row) {
      ctx.progress(row, 40, fmt::format("row {} of 40", row));
      if (row % 13 == 0) ctx.item_error(fmt::format("row {}", row), "e-mail address missing");
      if (hostile && row == 5) ctx.item_error("<script>window.__pwned=3</script>", "<img src=x onerror=\"window.__pwned=4\">");
      std::this_thread::sleep_for(150ms);
    }
    if (hostile) throw porter::PermanentError("<img src=x onerror=\"window.__pwned=2\"><script>window.__pwned=1</script>");
  });
  register_or_exit(engine, "transcode_video", [](porter::JobContext& ctx) { work(ctx, 100, 400ms, "segment"); });
  register_or_exit(engine, "generate_report", [](porter::JobContext& ctx) { work(ctx, 60, 1s, "section"); });
  register_or_exit(engine, "rebuild_search_index", [](porter::JobContext& ctx) { work(ctx, 4, 100ms, "shard"); });
  register_or_exit(engine, "sync_catalog", [](porter::JobContext& ctx) {
    work(ctx, 5, 200ms, "page");
    throw porter::PermanentError("catalog service answered 404 for /v2/courses: the storage backend is misconfigured");
  });
  register_or_exit(engine, "send_digest", [](porter::JobContext& ctx) {
    if (ctx.attempt() == 1) throw std::runtime_error("SMTP timeout after 10 s (transient)");
  }, {.retry = porter::examples::fixed_backoff(3, 2s)});
  // "Notify me when finished": an LMS would send an e-mail here.
  register_or_exit(engine, "notify_user", [](porter::JobContext& ctx) {
    fmt::print("notify: {}\n", ctx.args());
    std::fflush(stdout);
  });
}

std::vector<porter::NewJob> seed_jobs(bool hostile) {
  std::vector<porter::NewJob> jobs = {
      {.kind = "import_users", .args = R"({"file":"new-hires.csv"})", .queue = "content", .owner = "alice",
       .description = "Import users from new-hires.csv"},
      {.kind = "transcode_video", .args = R"({"video":"onboarding.mp4"})", .queue = "content", .owner = "alice",
       .description = "Transcode onboarding.mp4"},
      {.kind = "generate_report", .args = R"({"report":"quarterly-completions"})", .queue = "analytics",
       .owner = "root", .description = "Quarterly completion report"},
      {.kind = "sync_catalog", .args = R"({"source":"partner-catalog"})", .queue = "indexing", .owner = "alice",
       .description = "Sync partner course catalog"},
      {.kind = "send_digest", .args = R"({"list":"weekly"})", .queue = "notifications", .owner = "root",
       .description = "Weekly digest e-mail"},
      {.kind = "transcode_video", .args = R"({"video":"safety-training.mp4"})", .queue = "content", .owner = "bob",
       .description = "Transcode safety-training.mp4"},
  };
  if (hostile)
    jobs.push_back({.kind = "import_users", .args = R"({"file":"<script>window.__pwned=1</script>"})",
                    .queue = "content", .owner = "alice",
                    .description = "<img src=x onerror=\"window.__pwned=5\">Import <b>bold</b>"});
  return jobs;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken by sigwait below, not by whichever thread they hit.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto opened = or_exit(porter::examples::open_example_store(argc, argv, "jobs-page"), "opening the store");
  porter::EngineOptions options;
  options.queues = {{"content", 3}, {"analytics", 1}, {"indexing", 2}, {"notifications", 2}};
  options.poll_every = 100ms;
  options.heartbeat_every = 1s;  // progress reaches the store (and the page) each second
  options.lease_for = 15s;
  porter::Engine engine(opened.store, options);
  register_handlers(engine);
  or_exit(engine.start(), "starting the engine");

  const std::string admin_token = flag_value(argc, argv, "--admin-token", "superadmin-demo-token");
  const std::string user_token = flag_value(argc, argv, "--user-token", "alice-power-user-token");
  porter::http::ServerOptions http;
  http.port = std::stoi(flag_value(argc, argv, "--port", "0"));
  http.engine = &engine;
  http.tokens = {{admin_token, porter::Principal::administrator("root")},
                 {user_token, porter::Principal::owner("alice")}};
  http.notify = {.kind = "notify_user", .queue = "notifications"};
  http.sample_every = 5s;
  porter::http::Server server(opened.store, http);
  or_exit(server.start(), "starting the page");

  const bool hostile = porter::examples::has_flag(argc, argv, "--hostile");
  or_exit(engine.enqueue_batch(seed_jobs(hostile)), "enqueueing");
  fmt::print("store: {}\n", opened.description);
  fmt::print("Background Jobs page: {}\n", server.address());
  fmt::print("  sign in as the superadmin with token: {}\n", admin_token);
  fmt::print("  sign in as power user alice with token: {}\n", user_token);
  fmt::print("READY {}\n", server.address());
  std::fflush(stdout);

  // New work every few seconds, so the page has something to show.
  std::atomic<bool> stopping{false};
  std::thread producer([&] {
    for (int round = 1; !stopping; ++round) {
      for (int i = 0; i < 40 && !stopping; ++i) std::this_thread::sleep_for(100ms);
      if (stopping) break;
      (void)engine.enqueue({.kind = "rebuild_search_index", .queue = "indexing", .owner = round % 2 ? "alice" : "root",
                            .description = fmt::format("Reindex course batch {}", round)});
      if (round % 3 == 0)
        (void)engine.enqueue({.kind = "sync_catalog", .queue = "indexing", .owner = "root",
                              .description = fmt::format("Sync catalog, run {}", round)});
      if (round % 2 == 0)
        (void)engine.enqueue({.kind = "import_users", .queue = "content", .owner = "alice",
                              .description = fmt::format("Import users, batch {}", round)});
    }
  });

  const int seconds = std::stoi(flag_value(argc, argv, "--seconds", "0"));
  if (seconds > 0) {
    timespec limit{seconds, 0};
    sigtimedwait(&signals, nullptr, &limit);
  } else {
    int sig = 0;
    sigwait(&signals, &sig);
  }
  stopping = true;
  producer.join();
  server.stop();
  engine.stop();
  return 0;
}
