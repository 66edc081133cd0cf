#include "http/json.h"

#include <string>

#include "core/bounds.h"

namespace porter::http::detail {

using nlohmann::json;

double to_ms(Duration d) { return static_cast<double>(d.count()) / 1000.0; }
double to_ms(TimePoint t) { return to_ms(t.time_since_epoch()); }

namespace {

json optional_time(const std::optional<TimePoint>& t) { return t ? json(to_ms(*t)) : json(nullptr); }

json progress_json(const Progress& p) {
  const auto percent = p.percent();
  return {{"done", p.done}, {"total", p.total}, {"message", p.message},
          {"percent", percent ? json(*percent) : json(nullptr)}};
}

json errors_json(const std::vector<AttemptError>& errors) {
  json out = json::array();
  for (const auto& e : errors)
    out.push_back({{"attempt", e.attempt}, {"at", to_ms(e.at)}, {"message", e.message}, {"permanent", e.permanent}});
  return out;
}

}  // namespace

json job_summary(const Job& job, TimePoint now) {
  json j = {
      {"id", job.id},
      {"kind", job.kind},
      {"queue", job.queue},
      {"state", std::string(to_string(job.state))},
      {"scheduled", job.state == JobState::pending && job.run_at > now},
      {"owner", job.owner},
      {"description", job.description},
      {"args", job.args},
      {"priority", job.priority},
      {"attempt", job.attempt},
      {"max_attempts", job.max_attempts},
      {"created_at", to_ms(job.created_at)},
      {"run_at", to_ms(job.run_at)},
      {"started_at", optional_time(job.started_at)},
      {"finished_at", optional_time(job.finished_at)},
      {"parent_id", job.parent_id ? json(*job.parent_id) : json(nullptr)},
      {"children_total", job.children_total},
      {"cancel_requested", job.cancel_requested},
      {"progress", progress_json(job.progress)},
      {"error_count", job.errors.size()},
      {"item_error_count", job.item_error_count},
      {"last_error", job.errors.empty() ? json(nullptr) : json(job.errors.back().message)},
  };
  // Running time: ticking while running, the last run's length once final.
  if (job.started_at) {
    const TimePoint end = job.state == JobState::running ? now : job.finished_at.value_or(*job.started_at);
    j["running_ms"] = to_ms(porter::detail::saturating_diff(end, *job.started_at));
  } else {
    j["running_ms"] = nullptr;
  }
  return j;
}

json job_details(const JobDetails& d, TimePoint now) {
  json j = job_summary(d.job, now);
  j["errors"] = errors_json(d.job.errors);
  json items = json::array();
  for (const auto& e : d.job.item_errors) items.push_back({{"item", e.item}, {"message", e.message}});
  j["item_errors"] = std::move(items);
  json children = json::array();
  for (const auto& c : d.children) children.push_back(job_summary(c, now));
  j["children"] = std::move(children);
  j["depends_on"] = d.job.depends_on;
  j["result"] = d.job.result;
  j["running_for_ms"] = d.running_for ? json(to_ms(*d.running_for)) : json(nullptr);
  j["lease_age_ms"] = d.lease_age ? json(to_ms(*d.lease_age)) : json(nullptr);
  j["lease"] = d.job.lease ? json{{"worker", d.job.lease->worker}, {"expires_at", to_ms(d.job.lease->expires_at)}}
                           : json(nullptr);
  return j;
}

json page_json(const JobPage& page, TimePoint now) {
  json jobs = json::array();
  for (const auto& job : page.jobs) jobs.push_back(job_summary(job, now));
  return {{"jobs", std::move(jobs)}, {"next", page.next ? json(*page.next) : json(nullptr)}, {"now", to_ms(now)}};
}

json stats_json(const Stats& s) {
  json queues = json::array();
  for (const auto& q : s.queues)
    queues.push_back({{"name", q.name}, {"paused", q.paused}, {"pending", q.pending}, {"scheduled", q.scheduled},
                      {"running", q.running}, {"waiting", q.waiting}, {"completed", q.completed},
                      {"failed", q.failed}, {"cancelled", q.cancelled}});
  json kinds = json::array();
  for (const auto& k : s.kinds)
    kinds.push_back({{"kind", k.kind}, {"completed", k.completed}, {"failed", k.failed}, {"retried", k.retried},
                     {"failure_rate", k.failure_rate}, {"p50_ms", to_ms(k.p50)}, {"p95_ms", to_ms(k.p95)},
                     {"p99_ms", to_ms(k.p99)}, {"latency_p50_ms", to_ms(k.latency_p50)},
                     {"latency_p95_ms", to_ms(k.latency_p95)}, {"latency_p99_ms", to_ms(k.latency_p99)}});
  json unhandled = json::array();
  for (const auto& u : s.unhandled) unhandled.push_back({{"queue", u.queue}, {"kind", u.kind}, {"pending", u.pending}});
  return {{"at", to_ms(s.at)},
          {"queues", std::move(queues)},
          {"kinds", std::move(kinds)},
          {"oldest_lease_age_ms", s.oldest_lease_age ? json(to_ms(*s.oldest_lease_age)) : json(nullptr)},
          {"expired_leases", s.expired_leases},
          {"unhandled", std::move(unhandled)}};
}

json error_json(const Error& error) {
  return {{"error", {{"code", std::string(to_string(error.code()))}, {"message", error.message()}}}};
}

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return 400;
    case ErrorCode::permission_denied: return 403;
    case ErrorCode::not_found: return 404;
    case ErrorCode::stale_lease:
    case ErrorCode::wrong_state: return 409;
    case ErrorCode::unsupported: return 501;
    case ErrorCode::unavailable: return 503;
    case ErrorCode::timeout: return 504;
    case ErrorCode::corruption:
    case ErrorCode::internal: return 500;
  }
  return 500;
}

}  // namespace porter::http::detail
