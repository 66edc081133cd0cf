// The JSON API over real HTTP on localhost: authentication, scoping, paging,
// status codes, bad input, CSRF defence, the page's headers.
#include "http/http_harness.h"

using porter::test::HttpHarness;
using namespace porter;
using porter::test::kAliceToken;
using porter::test::kBobToken;
using porter::test::kRootToken;

TEST_CASE("http: no credential or a wrong token is 401, never an anonymous administrator") {
  HttpHarness h;
  for (const char* path : {"/api/jobs", "/api/me", "/api/stats", "/metrics", "/api/events"}) {
    auto r = h.client->Get(path);
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(HttpHarness::body(r)["error"]["message"] == "authentication required");
    auto wrong = h.get(path, "not-a-token-of-this-server");
    REQUIRE(wrong);
    CHECK(wrong->status == 401);
  }
  auto me = h.get("/api/me", kAliceToken);
  REQUIRE(me);
  CHECK(me->status == 200);
  CHECK(HttpHarness::body(me)["user"] == "alice");
  CHECK(HttpHarness::body(me)["admin"] == false);
}

TEST_CASE("http: a user sees only their own jobs, and another user's job answers like a missing one") {
  HttpHarness h;
  const JobId mine = h.add("alice");
  const JobId theirs = h.add("bob");
  auto list = h.get("/api/jobs", kAliceToken);
  REQUIRE(list);
  REQUIRE(list->status == 200);
  auto jobs = HttpHarness::body(list)["jobs"];
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0]["id"] == mine);

  auto other = h.get("/api/jobs/" + std::to_string(theirs), kAliceToken);
  auto missing = h.get("/api/jobs/999999", kAliceToken);
  REQUIRE(other);
  REQUIRE(missing);
  CHECK(other->status == 403);
  CHECK(missing->status == 403);
  CHECK(HttpHarness::body(other)["error"]["code"] == HttpHarness::body(missing)["error"]["code"]);
  auto cancel = h.post("/api/jobs/" + std::to_string(theirs) + "/cancel", kAliceToken);
  REQUIRE(cancel);
  CHECK(cancel->status == 403);
  CHECK(h.store->get(theirs)->state == JobState::pending);

  auto someone_else = h.get("/api/jobs?owner=bob", kAliceToken);
  REQUIRE(someone_else);
  CHECK(someone_else->status == 403);
  auto admin_missing = h.get("/api/jobs/999999", kRootToken);
  REQUIRE(admin_missing);
  CHECK(admin_missing->status == 404);
  CHECK(HttpHarness::body(admin_missing)["error"]["code"] == "not_found");
  auto all = h.get("/api/jobs", kRootToken);
  CHECK(HttpHarness::body(all)["jobs"].size() == 2);
}

TEST_CASE("http: cursor paging walks every job once, newest first") {
  HttpHarness h;
  for (int i = 0; i < 25; ++i) h.add("alice");
  std::vector<JobId> seen;
  std::string path = "/api/jobs?limit=10";
  for (int page = 0; page < 5; ++page) {
    auto r = h.get(path, kAliceToken);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    auto b = HttpHarness::body(r);
    for (const auto& j : b["jobs"]) seen.push_back(j["id"].get<JobId>());
    if (b["next"].is_null()) break;
    path = "/api/jobs?limit=10&cursor=" + std::to_string(b["next"].get<JobId>());
  }
  REQUIRE(seen.size() == 25);
  CHECK(std::is_sorted(seen.rbegin(), seen.rend()));
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
}

TEST_CASE("http: filters by state, queue, kind and owner") {
  HttpHarness h;
  h.add("alice", "mail", "send");
  h.add("alice", "video", "transcode");
  h.claim("video");
  auto running = h.get("/api/jobs?state=running", kRootToken);
  REQUIRE(HttpHarness::body(running)["jobs"].size() == 1);
  CHECK(HttpHarness::body(running)["jobs"][0]["kind"] == "transcode");
  CHECK(HttpHarness::body(h.get("/api/jobs?queue=mail", kRootToken))["jobs"].size() == 1);
  CHECK(HttpHarness::body(h.get("/api/jobs?kind=send&state=pending,running", kRootToken))["jobs"].size() == 1);
  CHECK(HttpHarness::body(h.get("/api/jobs?owner=bob", kRootToken))["jobs"].empty());
}

TEST_CASE("http: bad input is 400 or 413 with a JSON error, and changes nothing") {
  HttpHarness h;
  const JobId id = h.add("alice");
  struct Case { std::string path; int status; };
  for (const auto& c : {Case{"/api/jobs/abc", 400}, Case{"/api/jobs/-1", 400}, Case{"/api/jobs/0", 400},
                        Case{"/api/jobs/99999999999999999999999", 400}, Case{"/api/jobs?limit=0", 400},
                        Case{"/api/jobs?limit=5000", 400}, Case{"/api/jobs?state=bogus", 400},
                        Case{"/api/jobs?cursor=x", 400}, Case{"/api/stats?window=-3", 400},
                        Case{"/api/nothing-here", 404}, Case{"/nothing", 404}}) {
    auto r = h.get(c.path, kRootToken);
    REQUIRE(r);
    INFO(c.path);
    CHECK(r->status == c.status);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    CHECK(HttpHarness::body(r)["error"]["message"].is_string());
  }
  for (const std::string body : {"{not json", "[1,2]", "{\"older_than_s\": \"soon\"}", "{\"older_than_s\": -1}"}) {
    auto r = h.post("/api/maintenance/prune", kRootToken, body);
    REQUIRE(r);
    INFO(body);
    CHECK(r->status == 400);
    CHECK(HttpHarness::body(r)["error"]["code"] == "invalid_argument");
  }
  auto huge = h.post("/api/maintenance/prune", kRootToken, std::string(200 * 1024, ' '));
  REQUIRE(huge);
  CHECK(huge->status == 413);
  CHECK(HttpHarness::body(huge)["error"]["message"] == "request body too large");
  CHECK(h.store->get(id)->state == JobState::pending);
}

TEST_CASE("http: cancel, retry and discard answer with the right status") {
  HttpHarness h;
  const JobId pending = h.add("alice");
  const JobId running = h.add("alice", "busy");
  h.claim("busy");
  const auto cancel = [&](JobId id) { return h.post("/api/jobs/" + std::to_string(id) + "/cancel", kAliceToken); };
  auto r = cancel(running);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(HttpHarness::body(r)["result"] == "requested");
  CHECK(h.store->get(running)->cancel_requested);
  auto retry_pending = h.post("/api/jobs/" + std::to_string(pending) + "/retry", kAliceToken);
  REQUIRE(retry_pending);
  CHECK(retry_pending->status == 409);
  CHECK(HttpHarness::body(retry_pending)["error"]["code"] == "wrong_state");
  auto discard_pending = h.post("/api/jobs/" + std::to_string(pending) + "/discard", kAliceToken);
  CHECK(discard_pending->status == 409);
  CHECK(HttpHarness::body(cancel(pending))["result"] == "cancelled");
  CHECK(h.post("/api/jobs/" + std::to_string(pending) + "/retry", kAliceToken)->status == 200);
  CHECK(h.store->get(pending)->state == JobState::pending);
  CHECK(HttpHarness::body(cancel(pending))["result"] == "cancelled");
  CHECK(h.post("/api/jobs/" + std::to_string(pending) + "/discard", kAliceToken)->status == 200);
  CHECK(h.store->get(pending).error().code() == ErrorCode::not_found);
  // GET on a mutating route is not a route.
  CHECK(h.get("/api/jobs/" + std::to_string(running) + "/cancel", kAliceToken)->status == 404);
}

TEST_CASE("http: queues and maintenance are for administrators") {
  HttpHarness h;
  h.add("alice", "mail");
  CHECK(h.post("/api/queues/mail/pause", kAliceToken)->status == 403);
  CHECK(h.get("/api/stats", kAliceToken)->status == 403);
  CHECK(h.get("/metrics", kAliceToken)->status == 403);
  CHECK(h.post("/api/maintenance/clear-stale-locks", kAliceToken)->status == 403);
  auto pause = h.post("/api/queues/mail/pause", kRootToken);
  REQUIRE(pause);
  CHECK(pause->status == 200);
  auto stats = HttpHarness::body(h.get("/api/stats", kRootToken));
  REQUIRE(stats["queues"].size() == 1);
  CHECK(stats["queues"][0]["paused"] == true);
  CHECK(h.post("/api/queues/mail/resume", kRootToken)->status == 200);
  CHECK(HttpHarness::body(h.get("/api/stats", kRootToken))["queues"][0]["paused"] == false);
  auto expire = h.post("/api/maintenance/expire-stuck", kRootToken, R"({"older_than_s": 3600})");
  REQUIRE(expire);
  CHECK(expire->status == 200);
  CHECK(HttpHarness::body(expire)["count"] == 0);
  CHECK(h.post("/api/maintenance/prune", kRootToken, R"({"older_than_s": 0})")->status == 200);
  CHECK(h.get("/api/throughput", kRootToken)->status == 200);
  CHECK(h.get("/api/throughput", kAliceToken)->status == 403);
}

TEST_CASE("http: with host authentication, a change needs X-Porter-Request and a same-origin request") {
  // The host maps a session cookie to a user, as an application would.
  HttpHarness h([](http::ServerOptions& o) {
    o.tokens.clear();
    o.authenticate = [](const http::RequestInfo& r) -> std::optional<Principal> {
      if (r.header("cookie") == "session=alice") return Principal::owner("alice");
      return std::nullopt;
    };
  });
  const JobId id = h.add("alice");
  const std::string path = "/api/jobs/" + std::to_string(id) + "/cancel";
  auto cookie_only = h.client->Post(path.c_str(), httplib::Headers{{"Cookie", "session=alice"}}, "", "text/plain");
  REQUIRE(cookie_only);
  CHECK(cookie_only->status == 403);
  auto cross_site = h.client->Post(path.c_str(), httplib::Headers{{"Cookie", "session=alice"}, {"X-Porter-Request", "1"},
                                                                  {"Origin", "http://evil.example"}}, "", "text/plain");
  CHECK(cross_site->status == 403);
  CHECK(h.store->get(id)->state == JobState::pending);
  const std::string host = "127.0.0.1:" + std::to_string(h.server->port());
  auto ok = h.client->Post(path.c_str(), httplib::Headers{{"Cookie", "session=alice"}, {"X-Porter-Request", "1"},
                                                          {"Origin", "https://" + host}}, "", "text/plain");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(h.store->get(id)->state == JobState::cancelled);
  CHECK(h.client->Get("/api/jobs", httplib::Headers{{"Cookie", "session=bob"}})->status == 401);
}

TEST_CASE("http: the page is served from the binary with a strict content security policy") {
  HttpHarness h;
  auto page = h.client->Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type") == "text/html; charset=utf-8");
  CHECK(page->body.find("Background Jobs") != std::string::npos);
  CHECK(page->get_header_value("Content-Security-Policy").find("script-src 'self'") != std::string::npos);
  for (const char* asset : {"/app.js", "/app.css", "/favicon.svg"}) CHECK(h.client->Get(asset)->status == 200);
}

TEST_CASE("http: bad options are refused at start") {
  auto store = make_memory_store();
  auto start = [&](http::ServerOptions o) { return http::Server(store, std::move(o)).start(); };
  CHECK(start({}).error().code() == ErrorCode::invalid_argument);  // no way to authenticate
  CHECK(start({.tokens = {{"short", Principal::administrator()}}}).error().code() == ErrorCode::invalid_argument);
  CHECK(start({.tokens = {{"long-enough-token-0", Principal{}}}}).error().code() == ErrorCode::invalid_argument);
  CHECK(start({.port = 70000, .tokens = {{"long-enough-token-0", Principal::administrator()}}}).error().code() ==
        ErrorCode::invalid_argument);
  CHECK_THROWS_AS(http::Server(nullptr, {}), std::invalid_argument);
}

TEST_CASE("http: a server stopped at once after start returns, every time") {
  // httplib ignores a stop() that comes before its listener runs; stop() used
  // to join that listener forever (the README's example hung most runs).
  auto store = make_memory_store();
  for (int i = 0; i < 50; ++i) {
    http::Server server(store, {.tokens = {{"long-enough-token-0", Principal::administrator()}}});
    REQUIRE(server.start().has_value());
    server.stop();
  }
}

TEST_CASE("http: notify me when finished enqueues a durable notification owned by the asker") {
  HttpHarness h([](http::ServerOptions& o) { o.notify = {.kind = "notify_user", .queue = "mail"}; });
  CHECK(HttpHarness::body(h.get("/api/me", kAliceToken))["notify"] == true);
  const JobId mine = h.add("alice");
  const JobId theirs = h.add("bob");
  const std::string path = "/api/jobs/" + std::to_string(mine) + "/notify";
  auto r = h.post(path, kAliceToken);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const JobId notification = HttpHarness::body(r)["notification"].get<JobId>();
  CHECK(HttpHarness::body(r)["duplicate"] == false);
  auto job = h.store->get(notification);
  REQUIRE(job.has_value());
  CHECK(job->kind == "notify_user");
  CHECK(job->queue == "mail");
  CHECK(job->owner == "alice");
  CHECK(job->depends_on == std::vector<JobId>{mine});
  CHECK(job->state == JobState::waiting);
  CHECK(nlohmann::json::parse(job->args)["job"] == mine);
  auto again = h.post(path, kAliceToken);
  CHECK(HttpHarness::body(again)["notification"] == notification);
  CHECK(HttpHarness::body(again)["duplicate"] == true);
  CHECK(h.post("/api/jobs/" + std::to_string(theirs) + "/notify", kAliceToken)->status == 403);
  // However the watched job ends, the notification becomes runnable.
  REQUIRE(h.store->cancel(mine, "test").has_value());
  CHECK(h.store->get(notification)->state == JobState::pending);
}

TEST_CASE("http: without NotifyOptions the server offers no notifications") {
  HttpHarness h;
  CHECK(HttpHarness::body(h.get("/api/me", kAliceToken))["notify"] == false);
  const JobId id = h.add("alice");
  auto r = h.post("/api/jobs/" + std::to_string(id) + "/notify", kAliceToken);
  REQUIRE(r);
  CHECK(r->status == 501);
  CHECK(HttpHarness::body(r)["error"]["code"] == "unsupported");
}
