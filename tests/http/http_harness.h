// A porter::http::Server on a free localhost port over a memory store, with
// tokens for an administrator (root) and two users (alice, bob), a real HTTP
// client, and helpers that move jobs through the Store directly.
#pragma once

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "porter/http.h"
#include "porter/store.h"

namespace porter::test {

inline constexpr const char* kRootToken = "root-token-0123456789";
inline constexpr const char* kAliceToken = "alice-token-0123456789";
inline constexpr const char* kBobToken = "bob-token-0123456789ab";

struct HttpHarness {
  explicit HttpHarness(std::function<void(http::ServerOptions&)> tweak = {}) {
    http::ServerOptions o;
    o.tokens = {{kRootToken, Principal::administrator("root")},
                {kAliceToken, Principal::owner("alice")},
                {kBobToken, Principal::owner("bob")}};
    o.poll_every = std::chrono::milliseconds(50);
    if (tweak) tweak(o);
    server = std::make_unique<http::Server>(store, std::move(o));
    auto started = server->start();
    REQUIRE(started.has_value());
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
  }

  JobId add(std::string owner, std::string queue = "default", std::string kind = "work") {
    auto r = store->insert(std::vector<NewJob>{{.kind = kind, .queue = queue, .owner = owner}});
    REQUIRE(r.has_value());
    return r->front().id;
  }
  // Claims the next job of `queue`: it is running.
  Job claim(std::string queue = "default") {
    auto jobs = store->claim({.queue = queue, .worker = "test", .limit = 1});
    REQUIRE(jobs.has_value());
    REQUIRE(jobs->size() == 1);
    return jobs->front();
  }

  static httplib::Headers as(const char* token, bool mutating = false) {
    httplib::Headers h{{"Authorization", std::string("Bearer ") + token}};
    if (mutating) h.emplace("X-Porter-Request", "1");
    return h;
  }
  httplib::Result get(const std::string& path, const char* token) { return client->Get(path.c_str(), as(token)); }
  httplib::Result post(const std::string& path, const char* token, const std::string& body = "") {
    return client->Post(path.c_str(), as(token, true), body, "application/json");
  }
  static nlohmann::json body(const httplib::Result& r) { return nlohmann::json::parse(r->body); }

  std::shared_ptr<Store> store = make_memory_store();
  std::unique_ptr<http::Server> server;
  std::unique_ptr<httplib::Client> client;
};

}  // namespace porter::test
