// porter queues | pause | resume | stats | prune | serve
#include <signal.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/cli_util.h"
#include "http/json.h"
#include "porter/http.h"

namespace porter::cli {

namespace {

using nlohmann::json;

int run_queues(const Globals& g) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  auto stats = Admin(*store).metrics(cli_principal());
  if (!stats) return fail(stats.error());
  if (g.json) {
    fmt::print("{}\n", http::detail::stats_json(*stats)["queues"].dump(2));
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& q : stats->queues)
    rows.push_back({printable(q.name), q.paused ? "paused" : "active", std::to_string(q.pending),
                    std::to_string(q.scheduled), std::to_string(q.running), std::to_string(q.waiting),
                    std::to_string(q.completed), std::to_string(q.failed), std::to_string(q.cancelled)});
  print_table({"QUEUE", "STATUS", "PENDING", "SCHEDULED", "RUNNING", "WAITING", "COMPLETED", "FAILED", "CANCELLED"}, rows);
  return 0;
}

int run_pause(const Globals& g, const std::string& queue, bool pause) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  Admin admin(*store);
  auto s = pause ? admin.pause_queue(cli_principal(), queue) : admin.resume_queue(cli_principal(), queue);
  if (!s) return fail(s.error());
  fmt::print("queue {}: {}\n", printable(queue), pause ? "paused" : "resumed");
  return 0;
}

int run_stats(const Globals& g, Duration window) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  auto stats = Admin(*store).metrics(cli_principal(), window);
  if (!stats) return fail(stats.error());
  if (g.json) {
    fmt::print("{}\n", http::detail::stats_json(*stats).dump(2));
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& k : stats->kinds)
    rows.push_back({printable(k.kind), std::to_string(k.completed), std::to_string(k.failed),
                    fmt::format("{:.1f}%", 100 * k.failure_rate), std::to_string(k.retried), format_duration(k.p50),
                    format_duration(k.p95), format_duration(k.p99), format_duration(k.latency_p50),
                    format_duration(k.latency_p95)});
  fmt::print("kinds, jobs finished in the last {}:\n", format_duration(window));
  print_table({"KIND", "COMPLETED", "FAILED", "FAIL RATE", "RETRIES", "P50", "P95", "P99", "LATENCY P50", "LATENCY P95"},
              rows);
  fmt::print("oldest lease: {}\nexpired leases: {}\n",
             stats->oldest_lease_age ? format_duration(*stats->oldest_lease_age) : "none", stats->expired_leases);
  for (const auto& u : stats->unhandled)
    fmt::print("unhandled: {} pending {} job(s) on queue {} (no live worker handles them)\n", u.pending,
               printable(u.kind), printable(u.queue));
  return 0;
}

int run_prune(const Globals& g, Duration older_than) {
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());
  auto n = Admin(*store).prune(cli_principal(), older_than);
  if (!n) return fail(n.error());
  if (g.json) fmt::print("{}\n", json{{"pruned", *n}}.dump());
  else fmt::print("pruned {} finished job(s) older than {}\n", *n, format_duration(older_than));
  return 0;
}

struct ServeArgs {
  std::string listen = "127.0.0.1:8080";
  std::vector<std::string> admin_tokens;  // --token
  std::vector<std::string> user_tokens;   // --user-token USER=TOKEN
};

int run_serve(const Globals& g, const ServeArgs& a) {
  // Blocked before any thread starts (the store's or the server's), so that
  // SIGINT/SIGTERM reach only the sigwait below and the server stops cleanly.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const auto colon = a.listen.rfind(':');
  if (colon == std::string::npos) return fail(make_error(ErrorCode::invalid_argument, "--listen takes HOST:PORT"));
  std::string host = a.listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  try {
    port = std::stoi(a.listen.substr(colon + 1));
  } catch (const std::exception&) {
  }
  http::ServerOptions options;
  options.host = host;
  options.port = port;
  for (const auto& t : a.admin_tokens) options.tokens.push_back({t, Principal::administrator("admin")});
  for (const auto& t : a.user_tokens) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail(make_error(ErrorCode::invalid_argument, "--user-token takes USER=TOKEN"));
    options.tokens.push_back({t.substr(eq + 1), Principal::owner(t.substr(0, eq))});
  }
  if (options.tokens.empty())
    return fail(make_error(ErrorCode::invalid_argument, "serve needs --token TOKEN (or PORTER_TOKEN): no anonymous access"));
  auto store = open_job_file(g.db);
  if (!store) return fail(store.error());

  http::Server server(*store, std::move(options));
  if (auto s = server.start(); !s) return fail(s.error());
  fmt::print("Background Jobs page for {} on {}\n", g.db, server.address());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  server.stop();
  return 0;
}

}  // namespace

void add_system_commands(CLI::App& app, const Globals& g, int& exit_code) {
  app.add_subcommand("queues", "Queues with their depth per state")->callback([&g, &exit_code] {
    exit_code = run_queues(g);
  });
  for (const bool pause : {true, false}) {
    auto* sub = app.add_subcommand(pause ? "pause" : "resume", pause ? "Stop claiming from a queue" : "Claim from a queue again");
    auto queue = std::make_shared<std::string>();
    sub->add_option("QUEUE", *queue, "Queue name")->required();
    sub->callback([&g, &exit_code, queue, pause] { exit_code = run_pause(g, *queue, pause); });
  }
  auto* stats = app.add_subcommand("stats", "Per-kind run times, failure rates, retries, latency; lease ages");
  auto window = std::make_shared<std::string>("5m");
  stats->add_option("--window", *window, "Jobs finished within this long (default 5m)");
  stats->callback([&g, &exit_code, window] {
    auto d = parse_duration(*window);
    exit_code = d ? run_stats(g, *d) : fail(d.error());
  });
  auto* prune = app.add_subcommand("prune", "Delete finished jobs older than a retention");
  auto older = std::make_shared<std::string>();
  prune->add_option("--older-than", *older, "e.g. 7d, 12h")->required();
  prune->callback([&g, &exit_code, older] {
    auto d = parse_duration(*older);
    exit_code = d ? run_prune(g, *d) : fail(d.error());
  });
  auto* serve = app.add_subcommand("serve", "Serve the Background Jobs page, JSON API and /metrics");
  auto args = std::make_shared<ServeArgs>();
  serve->add_option("--listen", args->listen, "HOST:PORT (default 127.0.0.1:8080)");
  serve->add_option("--token", args->admin_tokens, "An administrator's bearer token, 16+ bytes")->envname("PORTER_TOKEN");
  serve->add_option("--user-token", args->user_tokens, "USER=TOKEN: a user who sees only their own jobs");
  serve->callback([&g, &exit_code, args] { exit_code = run_serve(g, *args); });
}

}  // namespace porter::cli
