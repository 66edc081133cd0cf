// /api/queues, /api/stats, /api/throughput, /api/maintenance/..., /metrics:
// the administrator's system-wide calls (Admin refuses them to other users).
#include <httplib.h>

#include <charconv>

#include "core/bounds.h"
#include "http/context.h"
#include "http/json.h"

namespace porter::http::detail {

using nlohmann::json;

namespace {

// Seconds from a query parameter or a JSON body field, checked through bounds.h.
Result<Duration> seconds_from(const json& value, std::string_view what) {
  if (!value.is_number() || value.get<double>() < 0 || value.get<double>() > 1e12)
    return make_error(ErrorCode::invalid_argument, std::string(what) + " must be a number of seconds >= 0");
  return porter::detail::saturating_cast(std::chrono::duration<double>(value.get<double>()));
}

Result<json> body_json(const httplib::Request& req) {
  if (req.body.empty()) return json::object();
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object())
    return make_error(ErrorCode::invalid_argument, "the body must be a JSON object");
  return body;
}

Result<Duration> window_param(const httplib::Request& req) {
  if (!req.has_param("window")) return Duration(std::chrono::minutes(5));
  const std::string text = req.get_param_value("window");
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec != std::errc() || end != text.data() + text.size()) return make_error(ErrorCode::invalid_argument, "bad window");
  auto d = seconds_from(json(seconds), "window");
  if (d && *d <= Duration::zero()) return make_error(ErrorCode::invalid_argument, "window must be positive");
  return d;
}

template <class Op>
auto admin_call(Context& ctx, bool mutating, Op op) {
  return [&ctx, mutating, op](const httplib::Request& req, httplib::Response& res) {
    auto who = authenticate(ctx, req, res);
    if (!who) return;
    if (mutating && !allow_mutation(ctx, req, res)) return;
    op(*who, req, res);
  };
}

json ids_json(const std::vector<JobId>& ids) { return json{{"ids", ids}, {"count", ids.size()}}; }

}  // namespace

void add_queue_routes(httplib::Server& server, Context& ctx) {
  server.Get("/api/stats", admin_call(ctx, false, [&ctx](const Principal& who, const httplib::Request& req,
                                                         httplib::Response& res) {
    auto window = window_param(req);
    if (!window) return send_error(res, window.error());
    auto stats = ctx.admin.metrics(who, *window);
    if (!stats) return send_error(res, stats.error());
    send_json(res, 200, stats_json(*stats).dump());
  }));

  server.Get("/api/throughput", admin_call(ctx, false, [&ctx](const Principal& who, const httplib::Request&,
                                                              httplib::Response& res) {
    if (!who.admin) return send_error(res, make_error(ErrorCode::permission_denied, "for administrators only"));
    json samples = json::array();
    for (const auto& s : ctx.sampler.samples())
      samples.push_back({{"at", to_ms(s.at)}, {"completed", s.completed}, {"failed", s.failed}});
    send_json(res, 200, json{{"interval_ms", to_ms(ctx.options.sample_every)}, {"samples", samples}}.dump());
  }));

  for (const bool pause : {true, false}) {
    const std::string route = pause ? R"(/api/queues/([^/]+)/pause)" : R"(/api/queues/([^/]+)/resume)";
    server.Post(route, admin_call(ctx, true, [&ctx, pause](const Principal& who, const httplib::Request& req,
                                                            httplib::Response& res) {
      const std::string queue = req.matches[1].str();
      auto s = pause ? ctx.admin.pause_queue(who, queue) : ctx.admin.resume_queue(who, queue);
      if (!s) return send_error(res, s.error());
      send_json(res, 200, json{{"queue", queue}, {"paused", pause}}.dump());
    }));
  }

  server.Post("/api/maintenance/expire-stuck", admin_call(ctx, true, [&ctx](const Principal& who,
                                                                            const httplib::Request& req,
                                                                            httplib::Response& res) {
    auto body = body_json(req);
    if (!body) return send_error(res, body.error());
    auto older = seconds_from(body->value("older_than_s", json(nullptr)), "older_than_s");
    if (!older) return send_error(res, older.error());
    auto ids = ctx.admin.expire_stuck(who, *older);
    if (!ids) return send_error(res, ids.error());
    send_json(res, 200, ids_json(*ids).dump());
  }));

  server.Post("/api/maintenance/clear-stale-locks", admin_call(ctx, true, [&ctx](const Principal& who,
                                                                                 const httplib::Request& req,
                                                                                 httplib::Response& res) {
    if (auto body = body_json(req); !body) return send_error(res, body.error());
    auto ids = ctx.admin.clear_stale_locks(who);
    if (!ids) return send_error(res, ids.error());
    send_json(res, 200, ids_json(*ids).dump());
  }));

  server.Post("/api/maintenance/prune", admin_call(ctx, true, [&ctx](const Principal& who,
                                                                     const httplib::Request& req,
                                                                     httplib::Response& res) {
    auto body = body_json(req);
    if (!body) return send_error(res, body.error());
    auto older = seconds_from(body->value("older_than_s", json(nullptr)), "older_than_s");
    if (!older) return send_error(res, older.error());
    auto count = ctx.admin.prune(who, *older);
    if (!count) return send_error(res, count.error());
    send_json(res, 200, json{{"pruned", *count}}.dump());
  }));

  server.Get("/metrics", admin_call(ctx, false, [&ctx](const Principal& who, const httplib::Request&,
                                                       httplib::Response& res) {
    auto stats = ctx.admin.metrics(who, std::chrono::minutes(5));
    if (!stats) return send_error(res, stats.error());
    res.set_content(prometheus_text(*stats, ctx), "text/plain; version=0.0.4; charset=utf-8");
  }));
}

}  // namespace porter::http::detail
