// porter jobs | show | cancel | retry | discard | wait
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <thread>

#include "cli/cli_util.h"
#include "core/bounds.h"
#include "http/json.h"

namespace porter::cli {

namespace {

using nlohmann::json;

std::string progress_text(const Job& job) {
  if (auto pct = job.progress.percent()) return fmt::format("{:.0f}%", *pct);
  return job.progress.done > 0 ? std::to_string(job.progress.done) : "";
}

int run_jobs(const Globals& g, const JobFilter& filter, std::optional<JobId> cursor, int limit) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  Admin admin(*store);
  auto page = admin.list(cli_principal(), filter, cursor, limit);
  if (!page) return fail(page.error());
  if (g.json) {
    fmt::print("{}\n", http::detail::page_json(*page, (*store)->now()).dump(2));
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : page->jobs)
    rows.push_back({std::to_string(j.id), std::string(to_string(j.state)), printable(j.kind), printable(j.queue),
                    printable(j.owner), progress_text(j), std::to_string(j.errors.size() + j.item_error_count),
                    format_time(j.created_at), printable(j.description)});
  print_table({"ID", "STATE", "KIND", "QUEUE", "OWNER", "PROGRESS", "ERRORS", "CREATED", "DESCRIPTION"}, rows);
  if (page->next) fmt::print("more: --cursor {}\n", *page->next);
  return 0;
}

int run_show(const Globals& g, JobId id) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  auto d = Admin(*store).get(cli_principal(), id);
  if (!d) return fail(d.error());
  if (g.json) {
    fmt::print("{}\n", http::detail::job_details(*d, (*store)->now()).dump(2));
    return 0;
  }
  const Job& j = d->job;
  auto field = [](std::string_view k, const std::string& v) { fmt::print("{:<13}{}\n", k, v); };
  field("job", std::to_string(j.id) + (j.description.empty() ? "" : "  " + printable(j.description)));
  field("state", std::string(to_string(j.state)) + (j.cancel_requested ? " (cancel requested)" : ""));
  field("kind", printable(j.kind));
  field("queue", printable(j.queue));
  field("owner", printable(j.owner));
  field("attempt", fmt::format("{} of {}", j.attempt, j.max_attempts));
  field("created", format_time(j.created_at));
  if (j.started_at) field("started", format_time(*j.started_at));
  if (j.finished_at) field("finished", format_time(*j.finished_at));
  if (d->running_for) field("running for", format_duration(*d->running_for));
  if (j.progress.total > 0 || j.progress.done > 0)
    field("progress", fmt::format("{}/{} {}", j.progress.done, j.progress.total, printable(j.progress.message)));
  field("args", printable(j.args));
  if (!j.result.empty()) field("result", printable(j.result));
  for (const auto& e : j.errors)
    fmt::print("error        attempt {} at {}{}: {}\n", e.attempt, format_time(e.at), e.permanent ? " (permanent)" : "",
               printable(e.message));
  for (const auto& e : j.item_errors) fmt::print("item error   {}: {}\n", printable(e.item), printable(e.message));
  if (j.item_error_count > static_cast<std::int64_t>(j.item_errors.size()))
    fmt::print("item errors  {} in all\n", j.item_error_count);
  for (const auto& c : d->children) fmt::print("child        {} {} {}\n", c.id, printable(c.kind), to_string(c.state));
  return 0;
}

int run_action(const Globals& g, std::string_view action, JobId id) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  Admin admin(*store);
  std::string done;
  if (action == "cancel") {
    auto r = admin.cancel(cli_principal(), id);
    if (!r) return fail(r.error());
    done = *r == CancelResult::cancelled ? "cancelled" : *r == CancelResult::requested ? "cancel requested (it is running)"
                                                                                      : "already finished";
  } else {
    auto s = action == "retry" ? admin.retry(cli_principal(), id) : admin.discard(cli_principal(), id);
    if (!s) return fail(s.error());
    done = action == "retry" ? "retried" : "discarded";
  }
  if (g.json) fmt::print("{}\n", json{{"id", id}, {"result", done}}.dump());
  else fmt::print("job {}: {}\n", id, done);
  return 0;
}

int run_notify(const Globals& g, JobId id, NewJob notification) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  if (notification.args.empty()) notification.args = json{{"job", id}, {"user", notification.owner}}.dump();
  auto r = Admin(*store).notify_when_finished(cli_principal(), id, std::move(notification));
  if (!r) return fail(r.error());
  if (g.json) fmt::print("{}\n", json{{"id", id}, {"notification", r->id}, {"duplicate", r->duplicate}}.dump());
  else fmt::print("job {}: notification job {}{} runs when it is finished\n", id, r->id, r->duplicate ? " (already asked)" : "");
  return 0;
}

void draw_bar(const Job& job, Duration waited) {
  constexpr int kWidth = 30;
  const double pct = job.progress.percent().value_or(0);
  const int filled = static_cast<int>(pct / 100 * kWidth);
  fmt::print(stderr, "\r[{}{}] {:3.0f}%  {}  {:<30.30}", std::string(static_cast<std::size_t>(filled), '#'),
             std::string(static_cast<std::size_t>(kWidth - filled), '.'), pct, format_duration(waited),
             printable(job.progress.message));
}

// 0 when the job completed; 1 when it failed, was cancelled, or the wait ran out.
int run_wait(const Globals& g, JobId id, Duration timeout) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  Admin admin(*store);
  const bool terminal = ::isatty(STDERR_FILENO) != 0 && !g.json;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = detail::steady_deadline(start, timeout);
  while (true) {
    auto d = admin.get(cli_principal(), id);
    if (!d) return fail(d.error());
    const auto waited = detail::saturating_cast(std::chrono::steady_clock::now() - start);
    if (terminal) draw_bar(d->job, waited);
    if (is_final(d->job.state)) {
      if (terminal) fmt::print(stderr, "\n");
      if (g.json) fmt::print("{}\n", http::detail::job_summary(d->job, (*store)->now()).dump());
      else fmt::print("job {}: {}\n", id, to_string(d->job.state));
      return d->job.state == JobState::completed ? 0 : kFailed;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (terminal) fmt::print(stderr, "\n");
      return fail(make_error(ErrorCode::timeout, fmt::format("job {} is still {} after {}", id, to_string(d->job.state),
                                                             format_duration(timeout))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace

void add_job_commands(CLI::App& app, const Globals& g, int& exit_code) {
  auto* jobs = app.add_subcommand("jobs", "List jobs, newest first");
  auto filter = std::make_shared<JobFilter>();
  auto states = std::make_shared<std::vector<std::string>>();
  auto cursor = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(50);
  jobs->add_option("--state", *states, "pending, running, waiting, completed, failed, cancelled (repeatable)");
  jobs->add_option("--queue", filter->queue, "Only this queue");
  jobs->add_option("--kind", filter->kind, "Only this kind");
  jobs->add_option("--owner", filter->owner, "Only jobs of this owner");
  jobs->add_option("--cursor", *cursor, "Continue after this id (printed as 'more:')");
  jobs->add_option("--limit", *limit, "Jobs per page, 1..1000 (default 50)");
  jobs->callback([&g, &exit_code, filter, states, cursor, limit] {
    for (const auto& s : *states) {
      auto state = parse_job_state(s);
      if (!state) { exit_code = fail(state.error()); return; }
      filter->states.push_back(*state);
    }
    std::optional<JobId> after;
    if (!cursor->empty()) {
      auto id = parse_job_id(*cursor);
      if (!id) { exit_code = fail(id.error()); return; }
      after = *id;
    }
    exit_code = run_jobs(g, *filter, after, *limit);
  });

  auto id_command = [&](const char* name, const char* help, auto run) {
    auto* sub = app.add_subcommand(name, help);
    auto id = std::make_shared<std::string>();
    sub->add_option("ID", *id, "Job id")->required();
    sub->callback([&exit_code, id, run] {
      auto parsed = parse_job_id(*id);
      exit_code = parsed ? run(*parsed) : fail(parsed.error());
    });
    return sub;
  };
  id_command("show", "One job: attempts, errors, item errors, progress, children",
             [&g](JobId id) { return run_show(g, id); });
  for (const char* action : {"cancel", "retry", "discard"})
    id_command(action, action == std::string_view("cancel")  ? "Cancel a pending job, or ask a running one to stop"
                       : action == std::string_view("retry") ? "Run a failed or cancelled job again"
                                                             : "Delete a finished job",
               [&g, action](JobId id) { return run_action(g, action, id); });
  auto timeout = std::make_shared<std::string>("1h");
  auto* wait = id_command("wait", "Wait until a job is finished, with a progress bar on a terminal",
                          [&g, timeout](JobId id) {
                            auto d = parse_duration(*timeout);
                            return d ? run_wait(g, id, *d) : fail(d.error());
                          });
  wait->add_option("--timeout", *timeout, "Give up after this long (default 1h)");

  auto notification = std::make_shared<NewJob>();
  notification->args.clear();
  notification->owner = "cli";
  auto* notify = id_command("notify", "Enqueue a notification job that runs once this job is finished, however it ends",
                            [&g, notification](JobId id) { return run_notify(g, id, *notification); });
  notify->add_option("--kind", notification->kind, "The notification's kind (your application handles it)")->required();
  notify->add_option("--queue", notification->queue, "Its queue (default: default)");
  notify->add_option("--user", notification->owner, "Who is notified: its owner (default: cli)");
  notify->add_option("--args", notification->args, "Its JSON args (default: {\"job\": ID, \"user\": USER})");
}

}  // namespace porter::cli
