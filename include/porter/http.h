// porter::http: the operator's surface over HTTP. One Server serves
//   - the Background Jobs page (HTML/CSS/JS compiled into the binary),
//   - a JSON API over every Admin call (/api/...),
//   - live updates as Server-Sent Events (/api/events),
//   - Prometheus metrics (/metrics).
// It is an optional part (target porter::http): the core library does not
// depend on it, and this header pulls in no HTTP or JSON library.
//
// Who is asking: every /api and /metrics request goes through
// ServerOptions::authenticate, a callback the host application provides (it
// owns sessions and passwords) that maps a request to a Principal, or to
// nothing: 401. Standalone, ServerOptions::tokens maps bearer tokens instead.
// There is no anonymous administrator. Scoping is Admin's: a user sees and acts
// only on their own jobs, and another user's job id answers as a missing one.
//
// Safe by default: it listens on 127.0.0.1; mutating calls are POST only and
// need the header `X-Porter-Request: 1` or a bearer token from `tokens` (a
// cross-site form or image can set neither, and no CORS preflight is ever
// approved), and an Origin header naming another host is refused, so a cookie
// alone never authorizes a change. Bodies are bounded (max_body_bytes, 413)
// and so are SSE clients (max_event_clients, 503). The page is served with a
// Content-Security-Policy that allows no inline or foreign script.
//
//   porter::http::ServerOptions options;
//   options.engine = &engine;  // live events from this engine
//   options.authenticate = [&](const porter::http::RequestInfo& r) { return sessions.principal(r.header("cookie")); };
//   porter::http::Server page(store, std::move(options));
//   if (auto started = page.start(); !started) { /* started.error() */ }
//   std::printf("Background Jobs on %s\n", page.address().c_str());
//
// Thread safety: start() and stop() from one thread; address(), port() and
// event_clients() from any.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "porter/admin.h"
#include "porter/clock.h"
#include "porter/job.h"
#include "porter/status.h"
#include "porter/store.h"

namespace porter {
class Engine;
}

namespace porter::http {

// What the authentication callback sees of a request.
struct RequestInfo {
  std::string method;
  std::string path;
  std::string remote_addr;
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent
  // The first header named `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

using Authenticator = std::function<std::optional<Principal>(const RequestInfo&)>;

// Standalone authentication: "Authorization: Bearer <token>" is `principal`.
struct TokenGrant {
  std::string token;  // at least 16 bytes (start() rejects shorter ones)
  Principal principal;
};

// "Notify me when finished": what the page's button (and POST
// /api/jobs/ID/notify) enqueues through Admin::notify_when_finished, durably:
// a job of `kind` (the host handles it: e-mail, chat, in-app) owned by the
// asking user, runnable once the watched job is final, however it ended. Its
// args are {"job": <watched id>, "user": "<who asked>"}.
struct NotifyOptions {
  std::string kind;               // empty: no notifications offered (the page hides the button). Default: empty
  std::string queue = "default";  // Default: "default"
};

struct ServerOptions {
  std::string host = "127.0.0.1";  // Default: loopback only
  int port = 0;                    // 0: any free port (see port()). Default: 0
  // Maps a request to a Principal; nullopt: 401. Default: `tokens` only.
  Authenticator authenticate;
  std::vector<TokenGrant> tokens;  // Default: none
  Engine* engine = nullptr;        // live events from this engine; else the store is polled. Default: none
  std::size_t max_body_bytes = 64 * 1024;  // larger requests get 413. Default: 64 KiB
  int max_event_clients = 16;      // concurrent SSE streams; more get 503. Default: 16
  // How often each SSE stream re-reads running jobs (progress, and the jobs
  // other processes start or finish). Default: 1 s; 50 ms .. 1 min.
  Duration poll_every{std::chrono::seconds(1)};
  // Throughput samples for the page's charts (completed and failed per interval,
  // 90 kept). Duration::max(): no sampling. Default: 10 s; at least 1 s.
  Duration sample_every{std::chrono::seconds(10)};
  NotifyOptions notify;                   // Default: none offered
  std::string title = "Background Jobs";  // the page's heading. Default: "Background Jobs"
};

class Server {
 public:
  // Throws std::invalid_argument for a null store (a programming error).
  Server(std::shared_ptr<Store> store, ServerOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Checks the options (invalid_argument), binds (unavailable when the address
  // is taken) and serves on a background thread.
  Status start();
  // Ends every event stream and stops serving; returns when all threads are done.
  void stop();

  int port() const noexcept;            // the bound port, after start()
  std::string address() const;          // "http://127.0.0.1:8080/"
  int event_clients() const noexcept;   // SSE streams open now

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace porter::http
