// porter_demo: Porter's main demo, the first command of the README.
//
// A small publishing site hands its background work to Porter and watches:
//   1. named queues, each with its own concurrency (content 2, analytics 1,
//      notifications 4), so a flood in one never starves another;
//   2. priorities: an urgent job overtakes low-priority jobs already queued;
//   3. a transient failure that succeeds on retry (short custom backoff);
//   4. a permanent failure, kept for review with its error;
//   5. a delayed job that runs when it is due, not before;
//   6. the administrator's view: metrics and the failed job's error history.
//
// Storage: a fresh SQLite file (the embedded durable default); --memory uses
// the in-memory store. Every claim the demo prints is checked, and the
// process exits non-zero if one did not hold.
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "example_support.h"

using namespace std::chrono_literals;
using porter::examples::Checks;
using porter::examples::format_duration;
using porter::examples::Log;
using porter::examples::or_exit;
using porter::examples::register_or_exit;

namespace {

// How many handlers of one queue run at once, and the most ever seen.
struct Gauge {
  std::atomic<int> current{0};
  std::atomic<int> peak{0};
  int enter() {
    int n = ++current;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
    return n;
  }
  void leave() { --current; }
};

// Simulated work: the handler's thread is busy for `d`.
void work_for(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

std::vector<porter::JobId> ids_of(const std::vector<porter::InsertResult>& inserted) {
  std::vector<porter::JobId> ids;
  for (const auto& r : inserted) ids.push_back(r.id);
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  Log log;
  Checks checks(log);
  auto opened = or_exit(porter::examples::open_example_store(argc, argv, "demo"), "opening the store");
  std::shared_ptr<porter::Store> store = opened.store;
  porter::Admin admin(store);
  const auto root = porter::Principal::administrator();

  log.heading("Porter demo");
  log.line("store: {}", opened.description);

  porter::EngineOptions options;
  options.queues = {{"content", 2}, {"analytics", 1}, {"notifications", 4}};
  options.poll_every = 50ms;
  porter::Engine engine(store, options);

  Gauge content, analytics, notifications;

  // --- handlers -------------------------------------------------------------
  register_or_exit(engine, "render_page", [&](porter::JobContext& ctx) {
    int running = content.enter();
    log.line("content       render_page {} ({} running in content)", ctx.args(), running);
    work_for(150ms);
    content.leave();
  });
  register_or_exit(engine, "send_newsletter", [&](porter::JobContext& ctx) {
    int running = notifications.enter();
    log.line("notifications send_newsletter {} ({} running in notifications)", ctx.args(), running);
    work_for(40ms);
    notifications.leave();
  });

  // Analytics runs one job at a time. The nightly rollup holds that slot
  // until the demo releases it, so the jobs enqueued meanwhile line up.
  std::promise<void> rollup_started;
  std::atomic<bool> rollup_started_once{false};
  std::promise<void> release_rollup;
  std::shared_future<void> rollup_released = release_rollup.get_future().share();
  std::mutex order_mutex;
  std::vector<std::string> analytics_order;  // guarded by order_mutex
  register_or_exit(engine, "nightly_rollup", [&](porter::JobContext&) {
    analytics.enter();
    log.line("analytics     nightly_rollup started; it holds the only analytics slot");
    if (!rollup_started_once.exchange(true)) rollup_started.set_value();
    rollup_released.wait_for(10s);
    log.line("analytics     nightly_rollup done");
    analytics.leave();
  });
  register_or_exit(engine, "crunch_numbers", [&](porter::JobContext& ctx) {
    analytics.enter();
    {
      std::lock_guard lock(order_mutex);
      analytics_order.emplace_back(ctx.args());
    }
    log.line("analytics     crunch_numbers {} (priority {})", ctx.args(), ctx.job().priority);
    work_for(20ms);
    analytics.leave();
  });

  // The push gateway fails the first attempt; the retry 150 ms later works.
  register_or_exit(engine, "push_notification",
                   [&](porter::JobContext& ctx) {
                     if (ctx.attempt() == 1) {
                       log.line("notifications push_notification attempt 1: the push gateway answers 503");
                       throw std::runtime_error("push gateway returned 503 Service Unavailable");
                     }
                     log.line("notifications push_notification attempt {}: delivered", ctx.attempt());
                     ctx.set_result(R"({"delivered":true})");
                   },
                   {.retry = porter::examples::fixed_backoff(5, 150ms)});

  // A corrupt upload: retrying cannot fix it, so the job fails at once.
  register_or_exit(engine, "transcode_video", [&](porter::JobContext& ctx) {
    log.line("content       transcode_video {} attempt {}: the file is not a video", ctx.args(), ctx.attempt());
    throw porter::PermanentError("unsupported codec in upload 42.mov (not H.264/VP9/AV1)");
  });

  std::atomic<std::int64_t> reminder_ran_at_us{0};  // steady-clock microseconds
  register_or_exit(engine, "send_reminder", [&](porter::JobContext&) {
    reminder_ran_at_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    log.line("notifications send_reminder runs now");
  });

  // The engine's own view of failures, as any host application can subscribe to it.
  engine.subscribe([&](const porter::Event& e) {
    if (e.type == porter::EventType::retried || e.type == porter::EventType::failed) {
      log.line("engine event  job {} ({}) {} after attempt {}: {}", e.job, e.kind, porter::to_string(e.type), e.attempt,
               e.message);
    }
  });

  or_exit(engine.start(), "starting the engine");
  auto wait_all = [&](const std::vector<porter::JobId>& ids) {
    std::vector<porter::Job> done;
    for (porter::JobId id : ids) {
      auto job = engine.wait_for(id, 15s);
      if (!job) {
        log.line("job {} did not finish: {}", id, job.error().to_string());
        continue;
      }
      done.push_back(std::move(*job));
    }
    return done;
  };
  auto all_completed = [](const std::vector<porter::Job>& jobs, std::size_t expected) {
    if (jobs.size() != expected) return false;
    for (const auto& j : jobs) {
      if (j.state != porter::JobState::completed) return false;
    }
    return true;
  };

  // The delayed job goes in first, so its wait overlaps the rest of the demo.
  log.heading("5 (started early). A delayed job");
  constexpr auto kReminderDelay = 1500ms;
  auto reminder_enqueued = std::chrono::steady_clock::now();
  auto reminder = or_exit(engine.enqueue({.kind = "send_reminder", .queue = "notifications", .delay = kReminderDelay}),
                          "enqueueing");
  log.line("enqueued send_reminder (job {}) to run in {} ms; watch for it below", reminder.id, kReminderDelay.count());

  // --- 1. queues with their own concurrency -----------------------------------
  log.heading("1. Named queues, each with its own concurrency");
  std::vector<porter::NewJob> batch;
  for (int i = 1; i <= 6; ++i) {
    batch.push_back({.kind = "render_page", .args = fmt::format(R"({{"page":{}}})", i), .queue = "content"});
  }
  for (int i = 1; i <= 8; ++i) {
    batch.push_back(
        {.kind = "send_newsletter", .args = fmt::format(R"({{"segment":{}}})", i), .queue = "notifications"});
  }
  auto flood = or_exit(engine.enqueue_batch(batch), "enqueueing");
  log.line("enqueued 6 render_page jobs (content, 2 workers) and 8 send_newsletter jobs (notifications, 4 workers)");
  auto flood_done = wait_all(ids_of(flood));
  checks.expect(all_completed(flood_done, 14), "all 14 content and notification jobs completed");
  checks.expect(content.peak <= 2,
                fmt::format("content never ran more than its 2 workers at once (peak {})", content.peak.load()));
  checks.expect(
      notifications.peak <= 4,
      fmt::format("notifications never ran more than its 4 workers at once (peak {})", notifications.peak.load()));

  // --- 2. priorities -----------------------------------------------------------
  log.heading("2. Priorities: an urgent job overtakes queued ones");
  auto rollup = or_exit(engine.enqueue({.kind = "nightly_rollup", .queue = "analytics"}), "enqueueing");
  bool rollup_running = rollup_started.get_future().wait_for(10s) == std::future_status::ready;
  checks.expect(rollup_running, "the nightly rollup started and occupies the analytics queue");
  std::vector<porter::JobId> analytics_ids{rollup.id};
  for (int i = 1; i <= 4; ++i) {
    auto low = or_exit(engine.enqueue({.kind = "crunch_numbers",
                                       .args = fmt::format(R"({{"report":"weekly-{}"}})", i),
                                       .queue = "analytics",
                                       .priority = 10}),
                       "enqueueing");
    analytics_ids.push_back(low.id);
  }
  log.line("enqueued 4 low-priority crunch_numbers jobs (priority 10); they wait behind the rollup");
  auto urgent = or_exit(engine.enqueue({.kind = "crunch_numbers",
                                        .args = R"({"report":"urgent-board-meeting"})",
                                        .queue = "analytics",
                                        .priority = -10}),
                        "enqueueing");
  analytics_ids.push_back(urgent.id);
  log.line("enqueued 1 urgent crunch_numbers job (priority -10, lower runs first); releasing the rollup");
  release_rollup.set_value();
  auto analytics_done = wait_all(analytics_ids);
  checks.expect(all_completed(analytics_done, 6), "the rollup and all 5 crunch_numbers jobs completed");
  {
    std::lock_guard lock(order_mutex);
    log.line("analytics ran crunch_numbers in this order: {}", fmt::join(analytics_order, ", "));
    checks.expect(!analytics_order.empty() && analytics_order.front() == R"({"report":"urgent-board-meeting"})",
                  "the urgent job ran before the four low-priority jobs queued ahead of it");
  }
  checks.expect(analytics.peak <= 1, "analytics ran one job at a time");

  // --- 3 and 4. a transient and a permanent failure ------------------------
  log.heading("3. A transient failure, retried with a short backoff");
  auto push = or_exit(engine.enqueue({.kind = "push_notification",
                                      .args = R"({"user":"ada","text":"Your article is live"})",
                                      .queue = "notifications"}),
                      "enqueueing");
  auto push_job = engine.wait_for(push.id, 15s);
  checks.expect(push_job && push_job->state == porter::JobState::completed && push_job->attempt == 2,
                "push_notification failed once, was retried and completed on attempt 2");
  checks.expect(push_job && push_job->errors.size() == 1 && !push_job->errors[0].permanent,
                "its first attempt's transient error is kept in its history");

  log.heading("4. A permanent failure, kept for review");
  auto transcode = or_exit(
      engine.enqueue({.kind = "transcode_video", .args = R"({"upload":42})", .queue = "content", .owner = "ada"}),
      "enqueueing");
  auto transcode_job = engine.wait_for(transcode.id, 15s);
  checks.expect(transcode_job && transcode_job->state == porter::JobState::failed && transcode_job->attempt == 1,
                "transcode_video failed at once, without a retry");
  checks.expect(transcode_job && transcode_job->errors.size() == 1 && transcode_job->errors[0].permanent,
                "its error is recorded as permanent");

  // --- 5. the delayed job -----------------------------------------------------
  log.heading("5. The delayed job");
  auto reminder_job = engine.wait_for(reminder.id, 15s);
  checks.expect(reminder_job && reminder_job->state == porter::JobState::completed, "send_reminder completed");
  if (reminder_job && reminder_job->started_at) {
    auto late = *reminder_job->started_at - reminder_job->run_at;
    log.line("it was due at run_at and started {} after it", format_duration(late));
    checks.expect(*reminder_job->started_at >= reminder_job->run_at, "send_reminder did not start before it was due");
  }
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::microseconds(reminder_ran_at_us.load()) - reminder_enqueued.time_since_epoch());
  log.line("it ran {} ms after it was enqueued with a {} ms delay", waited.count(), kReminderDelay.count());
  checks.expect(waited >= kReminderDelay, "send_reminder waited out its delay");
  checks.expect(waited < kReminderDelay + 3s, "send_reminder ran promptly once due (within 3 s)");

  engine.stop();

  // --- 6. the administrator's view -------------------------------------------
  log.heading("6. The administrator's view");
  auto stats = admin.metrics(root);
  checks.expect(stats.has_value(), "the administrator can read metrics");
  if (stats) {
    porter::examples::print_stats(log, *stats);
    std::int64_t completed = 0, failed = 0;
    for (const auto& q : stats->queues) {
      completed += q.completed;
      failed += q.failed;
    }
    checks.expect(completed == 22 && failed == 1,
                  fmt::format("metrics count 22 completed jobs and 1 failed one (saw {} and {})", completed, failed));
    for (const auto& k : stats->kinds) {
      if (k.kind == "push_notification") checks.expect(k.retried == 1, "metrics count push_notification's retry");
    }
  }
  auto failed_jobs = admin.list(root, {.states = {porter::JobState::failed}});
  if (failed_jobs) {
    for (const auto& j : failed_jobs->jobs) {
      auto details = admin.get(root, j.id);
      if (!details) continue;
      log.line("failed job {} ({}, queue {}, owner {}): ran for {}", j.id, j.kind, j.queue, j.owner,
               details->running_for ? format_duration(*details->running_for) : std::string("-"));
      for (const auto& e : details->job.errors) {
        log.line("  attempt {} ({}): {}", e.attempt, e.permanent ? "permanent" : "transient", e.message);
      }
    }
  }
  checks.expect(failed_jobs && failed_jobs->jobs.size() == 1 && failed_jobs->jobs[0].id == transcode.id,
                "the failed-jobs view lists exactly the transcode job");

  // Owners see their own jobs only.
  auto ada = porter::Principal::owner("ada");
  auto bob = porter::Principal::owner("bob");
  auto adas = admin.list(ada, {});
  log.line("ada lists {} job(s): only her own", adas ? adas->jobs.size() : 0);
  auto bobs_view = admin.get(bob, transcode.id);
  log.line("bob asks for ada's job: {}", bobs_view ? std::string("shown") : bobs_view.error().to_string());
  checks.expect(
      adas && adas->jobs.size() == 1 && !bobs_view && bobs_view.error().code() == porter::ErrorCode::permission_denied,
      "ada sees her job; bob is denied it");

  return checks.verdict("porter_demo");
}
