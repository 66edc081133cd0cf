// /metrics in the Prometheus text exposition format (version 0.0.4).
// Gauges come from Admin::metrics (the store, so every process's jobs);
// run-time and latency quantiles are over the last 5 minutes; the *_total
// counters count this process's engine events since the server started
// (present only when an engine is attached).
#include <cstdio>
#include <string>

#include "http/context.h"
#include "http/json.h"

namespace porter::http::detail {

namespace {

std::string label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

double seconds(Duration d) { return static_cast<double>(d.count()) / 1e6; }

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP " + std::string(name) + " " + std::string(help) + "\n";
    out_ += "# TYPE " + std::string(name) + " " + std::string(type) + "\n";
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    out_ += std::string(name);
    if (!labels.empty()) out_ += "{" + std::string(labels) + "}";
    out_ += " " + number(value) + "\n";
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string prometheus_text(const Stats& stats, Context& ctx) {
  Writer w;
  w.family("porter_jobs", "gauge", "Jobs stored, per queue and state (scheduled: pending, not yet due).");
  for (const auto& q : stats.queues) {
    const std::string qn = "queue=\"" + label(q.name) + "\",state=\"";
    const std::pair<const char*, std::int64_t> states[] = {
        {"pending", q.pending}, {"scheduled", q.scheduled}, {"running", q.running}, {"waiting", q.waiting},
        {"completed", q.completed}, {"failed", q.failed}, {"cancelled", q.cancelled}};
    for (const auto& [state, n] : states) w.sample("porter_jobs", qn + state + "\"", static_cast<double>(n));
  }
  w.family("porter_queue_paused", "gauge", "1 when the queue is paused.");
  for (const auto& q : stats.queues) w.sample("porter_queue_paused", "queue=\"" + label(q.name) + "\"", q.paused);

  w.family("porter_job_run_seconds", "summary", "Handler run time per kind, jobs finished in the last 5 minutes (quantiles only).");
  for (const auto& k : stats.kinds) {
    const std::string kn = "kind=\"" + label(k.kind) + "\",quantile=\"";
    w.sample("porter_job_run_seconds", kn + "0.5\"", seconds(k.p50));
    w.sample("porter_job_run_seconds", kn + "0.95\"", seconds(k.p95));
    w.sample("porter_job_run_seconds", kn + "0.99\"", seconds(k.p99));
  }
  w.family("porter_queue_latency_seconds", "summary", "Due-to-started latency per kind, last 5 minutes (quantiles only).");
  for (const auto& k : stats.kinds) {
    const std::string kn = "kind=\"" + label(k.kind) + "\",quantile=\"";
    w.sample("porter_queue_latency_seconds", kn + "0.5\"", seconds(k.latency_p50));
    w.sample("porter_queue_latency_seconds", kn + "0.95\"", seconds(k.latency_p95));
    w.sample("porter_queue_latency_seconds", kn + "0.99\"", seconds(k.latency_p99));
  }
  w.family("porter_jobs_finished_recent", "gauge", "Jobs finished per kind and outcome in the last 5 minutes.");
  for (const auto& k : stats.kinds) {
    const std::string kn = "kind=\"" + label(k.kind) + "\",outcome=\"";
    w.sample("porter_jobs_finished_recent", kn + "completed\"", static_cast<double>(k.completed));
    w.sample("porter_jobs_finished_recent", kn + "failed\"", static_cast<double>(k.failed));
  }
  w.family("porter_job_retries_recent", "gauge", "Failed attempts retried (or rescued) per kind, last 5 minutes.");
  for (const auto& k : stats.kinds)
    w.sample("porter_job_retries_recent", "kind=\"" + label(k.kind) + "\"", static_cast<double>(k.retried));
  w.family("porter_job_failure_ratio", "gauge", "failed / (completed + failed) per kind, last 5 minutes.");
  for (const auto& k : stats.kinds)
    w.sample("porter_job_failure_ratio", "kind=\"" + label(k.kind) + "\"", k.failure_rate);

  w.family("porter_oldest_lease_age_seconds", "gauge", "Age of the longest-held lease among running jobs (0: none).");
  w.sample("porter_oldest_lease_age_seconds", "", stats.oldest_lease_age ? seconds(*stats.oldest_lease_age) : 0.0);
  w.family("porter_expired_leases", "gauge", "Running jobs whose lease has expired (stale locks).");
  w.sample("porter_expired_leases", "", static_cast<double>(stats.expired_leases));
  w.family("porter_unhandled_jobs", "gauge", "Pending jobs no live worker handles, per queue and kind.");
  for (const auto& u : stats.unhandled)
    w.sample("porter_unhandled_jobs", "queue=\"" + label(u.queue) + "\",kind=\"" + label(u.kind) + "\"",
             static_cast<double>(u.pending));

  if (ctx.options.engine) {
    std::lock_guard lock(ctx.counters.mu);
    const std::pair<const char*, std::int64_t KindCounters::*> counters[] = {
        {"porter_jobs_completed_total", &KindCounters::completed},
        {"porter_jobs_failed_total", &KindCounters::failed},
        {"porter_job_retries_total", &KindCounters::retried}};
    for (const auto& [name, field] : counters) {
      w.family(name, "counter", "This process's engine events per kind since the server started.");
      for (const auto& [kind, c] : ctx.counters.by_kind)
        w.sample(name, "kind=\"" + label(kind) + "\"", static_cast<double>(c.*field));
    }
  }
  return w.take();
}

}  // namespace porter::http::detail
