// Server: owns the httplib server, its listening thread, the SSE hub and the
// sampler; checks options, authenticates requests and writes errors as JSON.
#include "porter/http.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "core/bounds.h"
#include "http/context.h"
#include "http/events.h"
#include "http/json.h"
#include "porter/engine.h"

namespace porter::http {

std::string RequestInfo::header(std::string_view name) const {
  auto same = [&](const std::string& h) {
    return std::equal(h.begin(), h.end(), name.begin(), name.end(),
                      [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) ==
                                                  std::tolower(static_cast<unsigned char>(b)); });
  };
  for (const auto& [k, v] : headers)
    if (same(k)) return v;
  return {};
}

namespace detail {

namespace {

// Compares without an early exit, so the time taken says nothing about how
// much of a token matched.
bool same_token(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string bearer(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (auth.size() <= kPrefix.size() || auth.compare(0, kPrefix.size(), kPrefix) != 0) return {};
  return auth.substr(kPrefix.size());
}

const TokenGrant* token_grant(const Context& ctx, const httplib::Request& req) {
  const std::string token = bearer(req);
  if (token.empty()) return nullptr;
  const TokenGrant* found = nullptr;
  for (const auto& grant : ctx.options.tokens)
    if (same_token(token, grant.token)) found = &grant;
  return found;
}

}  // namespace

Context::Context(std::shared_ptr<Store> s, ServerOptions o)
    : store(std::move(s)), admin(store), options(std::move(o)) {}
Context::~Context() = default;

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body, "application/json");
}

void send_error(httplib::Response& res, const Error& error) {
  send_json(res, http_status(error.code()), error_json(error).dump());
}

std::optional<Principal> authenticate(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  if (const TokenGrant* grant = token_grant(ctx, req)) return grant->principal;
  if (ctx.options.authenticate) {
    RequestInfo info{req.method, req.path, req.remote_addr, {}};
    for (const auto& [k, v] : req.headers) info.headers.emplace_back(k, v);
    if (auto who = ctx.options.authenticate(info)) return who;
  }
  res.set_header("WWW-Authenticate", "Bearer realm=\"porter\"");
  send_json(res, 401, error_json(make_error(ErrorCode::permission_denied, "authentication required")).dump());
  return std::nullopt;
}

bool allow_mutation(Context& ctx, const httplib::Request& req, httplib::Response& res) {
  // A cross-site page cannot set a custom header without a CORS preflight,
  // which this server never approves; a bearer token is never sent by itself.
  const bool custom_header = req.get_header_value("X-Porter-Request") == "1";
  // Origin's host must be ours (the scheme may differ behind a TLS proxy).
  const std::string origin = req.get_header_value("Origin");
  const auto scheme_end = origin.find("://");
  const std::string origin_host = scheme_end == std::string::npos ? origin : origin.substr(scheme_end + 3);
  const bool foreign_origin = !origin.empty() && origin_host != req.get_header_value("Host");
  if ((custom_header || token_grant(ctx, req)) && !foreign_origin) return true;
  send_error(res, make_error(ErrorCode::permission_denied,
                             foreign_origin ? "cross-origin request refused"
                                            : "a changing request needs the header X-Porter-Request: 1"));
  return false;
}

Status check_options(const ServerOptions& o) {
  auto bad = [](std::string m) { return make_error(ErrorCode::invalid_argument, std::move(m)); };
  if (o.port < 0 || o.port > 65535) return bad("port must be 0..65535");
  if (!o.authenticate && o.tokens.empty()) return bad("no way to authenticate: set authenticate or tokens");
  for (const auto& t : o.tokens) {
    if (t.token.size() < 16) return bad("a token must be at least 16 bytes");
    if (!t.principal.admin && t.principal.user.empty()) return bad("a non-admin token must name a user");
  }
  if (o.max_body_bytes < 1024) return bad("max_body_bytes must be at least 1024");
  if (o.max_event_clients < 1 || o.max_event_clients > 1000) return bad("max_event_clients must be 1..1000");
  if (o.poll_every < std::chrono::milliseconds(50) || o.poll_every > std::chrono::minutes(1))
    return bad("poll_every must be 50 ms .. 1 min");
  if (o.sample_every < std::chrono::seconds(1)) return bad("sample_every must be at least 1 s");
  if (!o.notify.kind.empty()) {
    if (auto s = validate_name("notify.kind", o.notify.kind); !s) return s;
    if (auto s = validate_name("notify.queue", o.notify.queue); !s) return s;
  }
  return {};
}

}  // namespace detail

struct Server::Impl {
  detail::Context ctx;
  httplib::Server server;
  std::thread listener;
  std::atomic<bool> listening{false};  // listen_after_bind has not returned yet
  int port = 0;
  std::uint64_t subscription = 0;
  std::uint64_t store_listener = 0;
  bool started = false;
  Impl(std::shared_ptr<Store> s, ServerOptions o) : ctx(std::move(s), std::move(o)) {}
};

Server::Server(std::shared_ptr<Store> store, ServerOptions options) {
  if (!store) throw std::invalid_argument("porter::http::Server needs a store");
  impl_ = std::make_unique<Impl>(std::move(store), std::move(options));
}

Server::~Server() { stop(); }

Status Server::start() {
  using namespace detail;
  if (impl_->started) return make_error(ErrorCode::wrong_state, "the server is already started");
  if (auto ok = check_options(impl_->ctx.options); !ok) return ok;
  auto& ctx = impl_->ctx;
  auto& server = impl_->server;
  ctx.hub = std::make_unique<EventHub>(ctx);
  // One thread per SSE stream plus a few for everything else.
  const int threads = ctx.options.max_event_clients + 4;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  server.set_payload_max_length(ctx.options.max_body_bytes);
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const auto code = res.status == 404 ? ErrorCode::not_found
                      : res.status == 413 ? ErrorCode::invalid_argument
                      : res.status >= 500 ? ErrorCode::internal : ErrorCode::invalid_argument;
    const std::string message = res.status == 404   ? "no such route"
                                : res.status == 413 ? "request body too large"
                                                    : "HTTP error " + std::to_string(res.status);
    res.set_content(error_json(make_error(code, message)).dump(), "application/json");
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unexpected error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, make_error(ErrorCode::internal, what));
  });
  server.set_default_headers({{"X-Content-Type-Options", "nosniff"}, {"Referrer-Policy", "no-referrer"}});
  add_job_routes(server, ctx);
  add_queue_routes(server, ctx);
  add_event_routes(server, ctx);
  add_asset_routes(server, ctx);

  const int port = ctx.options.port == 0 ? server.bind_to_any_port(ctx.options.host)
                                         : (server.bind_to_port(ctx.options.host, ctx.options.port)
                                                ? ctx.options.port : -1);
  if (port < 0)
    return make_error(ErrorCode::unavailable,
                      "cannot listen on " + ctx.options.host + ":" + std::to_string(ctx.options.port));
  impl_->port = port;
  if (ctx.options.engine) {
    impl_->subscription = ctx.options.engine->subscribe([&ctx](const Event& e) { ctx.hub->on_engine_event(e); });
  } else {
    impl_->store_listener = ctx.store->add_listener([&ctx](const StoreEvent& e) { ctx.hub->on_store_event(e); });
  }
  if (ctx.options.sample_every != Duration::max()) ctx.sampler.start(*ctx.store, ctx.options.sample_every);
  impl_->listening = true;
  impl_->listener = std::thread([this, &server] {
    server.listen_after_bind();
    impl_->listening = false;
  });
  impl_->started = true;
  // httplib's stop() does nothing until the listener runs, and the listener
  // would then accept forever: stop() must never come before it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      stop();  // bounded: see stop()
      return make_error(ErrorCode::unavailable, "the HTTP listener did not start within 10 s");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return {};
}

void Server::stop() {
  if (!impl_ || !impl_->started) return;
  auto& ctx = impl_->ctx;
  if (impl_->subscription) ctx.options.engine->unsubscribe(impl_->subscription);
  if (impl_->store_listener) ctx.store->remove_listener(impl_->store_listener);
  ctx.hub->stop();  // event streams end, so the pool's threads come back
  // A stop() that came before the listener ran is lost (httplib): repeat it
  // until the listener has returned.
  while (impl_->listening) {
    impl_->server.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (impl_->listener.joinable()) impl_->listener.join();
  ctx.sampler.stop();
  impl_->started = false;
}

int Server::port() const noexcept { return impl_->port; }

std::string Server::address() const {
  const std::string& host = impl_->ctx.options.host;
  const bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(impl_->port) + "/";
}

int Server::event_clients() const noexcept { return impl_->ctx.hub ? impl_->ctx.hub->clients() : 0; }

}  // namespace porter::http
