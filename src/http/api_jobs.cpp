// /api/me and /api/jobs...: listing with filters and cursor paging, details,
// cancel, retry, discard, notify me when finished. Every call goes through Admin with the
// request's Principal, so scoping is Admin's.
#include <httplib.h>

#include <algorithm>
#include <charconv>

#include "http/context.h"
#include "http/json.h"

namespace porter::http::detail {

using nlohmann::json;

Result<JobId> parse_id(std::string_view text) {
  JobId id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || text.size() > 18 || ec != std::errc() || end != text.data() + text.size() || id <= 0)
    return make_error(ErrorCode::invalid_argument, "bad job id '" + std::string(text.substr(0, 40)) + "'");
  return id;
}

namespace {

Result<int> parse_limit(const httplib::Request& req) {
  if (!req.has_param("limit")) return 50;
  const std::string text = req.get_param_value("limit");
  int limit = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (ec != std::errc() || end != text.data() + text.size() || limit < 1 || limit > 1000)
    return make_error(ErrorCode::invalid_argument, "limit must be 1..1000");
  return limit;
}

Result<JobFilter> parse_filter(const httplib::Request& req) {
  JobFilter filter;
  if (req.has_param("state")) {
    // state=failed,cancelled
    const std::string states = req.get_param_value("state");
    std::size_t start = 0;
    while (start <= states.size()) {
      const std::size_t comma = std::min(states.find(',', start), states.size());
      const std::string one = states.substr(start, comma - start);
      start = comma + 1;
      if (one.empty()) continue;
      auto state = parse_job_state(one);
      if (!state) return state.error();
      filter.states.push_back(*state);
    }
  }
  auto text = [&](const char* name) -> std::optional<std::string> {
    if (!req.has_param(name) || req.get_param_value(name).empty()) return std::nullopt;
    return req.get_param_value(name);
  };
  filter.queue = text("queue");
  filter.kind = text("kind");
  filter.owner = text("owner");
  if (auto parent = text("parent")) {
    auto id = parse_id(*parent);
    if (!id) return id.error();
    filter.parent_id = *id;
  }
  return filter;
}

// Runs `op` for an authenticated, authorized request on /api/jobs/<id>/...
template <class Op>
auto on_job(Context& ctx, bool mutating, Op op) {
  return [&ctx, mutating, op](const httplib::Request& req, httplib::Response& res) {
    auto who = authenticate(ctx, req, res);
    if (!who) return;
    if (mutating && !allow_mutation(ctx, req, res)) return;
    auto id = parse_id(req.matches[1].str());
    if (!id) return send_error(res, id.error());
    op(*who, *id, req, res);
  };
}

void send_status(httplib::Response& res, const Status& s, JobId id, std::string_view done) {
  if (!s) return send_error(res, s.error());
  send_json(res, 200, json{{"id", id}, {"result", done}}.dump());
}

}  // namespace

void add_job_routes(httplib::Server& server, Context& ctx) {
  server.Get("/api/me", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto who = authenticate(ctx, req, res);
    if (!who) return;
    send_json(res, 200, json{{"user", who->user}, {"admin", who->admin}, {"title", ctx.options.title},
                             {"notify", !ctx.options.notify.kind.empty()}}.dump());
  });

  server.Get("/api/jobs", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto who = authenticate(ctx, req, res);
    if (!who) return;
    auto filter = parse_filter(req);
    if (!filter) return send_error(res, filter.error());
    auto limit = parse_limit(req);
    if (!limit) return send_error(res, limit.error());
    std::optional<JobId> cursor;
    if (req.has_param("cursor")) {
      auto id = parse_id(req.get_param_value("cursor"));
      if (!id) return send_error(res, id.error());
      cursor = *id;
    }
    auto page = ctx.admin.list(*who, *filter, cursor, *limit);
    if (!page) return send_error(res, page.error());
    send_json(res, 200, page_json(*page, ctx.store->now()).dump());
  });

  server.Get(R"(/api/jobs/([^/]+))", on_job(ctx, false, [&ctx](const Principal& who, JobId id,
                                                              const httplib::Request&, httplib::Response& res) {
    auto details = ctx.admin.get(who, id);
    if (!details) return send_error(res, details.error());
    send_json(res, 200, job_details(*details, ctx.store->now()).dump());
  }));

  server.Post(R"(/api/jobs/([^/]+)/cancel)", on_job(ctx, true, [&ctx](const Principal& who, JobId id,
                                                                     const httplib::Request&, httplib::Response& res) {
    auto r = ctx.admin.cancel(who, id);
    if (!r) return send_error(res, r.error());
    const char* result = *r == CancelResult::cancelled   ? "cancelled"
                         : *r == CancelResult::requested ? "requested"
                                                         : "already_finished";
    send_json(res, 200, json{{"id", id}, {"result", result}}.dump());
  }));

  server.Post(R"(/api/jobs/([^/]+)/retry)", on_job(ctx, true, [&ctx](const Principal& who, JobId id,
                                                                    const httplib::Request&, httplib::Response& res) {
    send_status(res, ctx.admin.retry(who, id), id, "retried");
  }));

  server.Post(R"(/api/jobs/([^/]+)/discard)", on_job(ctx, true, [&ctx](const Principal& who, JobId id,
                                                                      const httplib::Request&, httplib::Response& res) {
    send_status(res, ctx.admin.discard(who, id), id, "discarded");
  }));

  server.Post(R"(/api/jobs/([^/]+)/notify)", on_job(ctx, true, [&ctx](const Principal& who, JobId id,
                                                                     const httplib::Request&, httplib::Response& res) {
    const NotifyOptions& n = ctx.options.notify;
    if (n.kind.empty()) return send_error(res, make_error(ErrorCode::unsupported, "this server sends no notifications"));
    NewJob notification{.kind = n.kind, .args = json{{"job", id}, {"user", who.user}}.dump(), .queue = n.queue,
                        .owner = who.user, .description = "Notify " + who.user + " when job " + std::to_string(id) +
                                                          " is finished"};
    auto r = ctx.admin.notify_when_finished(who, id, std::move(notification));
    if (!r) return send_error(res, r.error());
    send_json(res, 200, json{{"id", id}, {"result", "notify"}, {"notification", r->id}, {"duplicate", r->duplicate}}.dump());
  }));
}

}  // namespace porter::http::detail
