// PostgreSQL-specific tests against the fixture's real server: opening a
// new, foreign, newer or unreachable schema (a clear error, nothing
// changed), wrong credentials, hostile bytes, transactional enqueue (commit
// and rollback), and wake-ups from other sessions through LISTEN/NOTIFY.
#include <libpq-fe.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "postgres/pg_test_support.h"

using namespace std::chrono_literals;
using namespace porter::test;
using porter::ErrorCode;
using porter::JobState;

namespace {

// A schema name unique to this test process.
std::string fresh_schema(const std::string& tag) { return tag + "_" + std::to_string(::getpid()); }

struct SchemaGuard {
  std::string schema;
  ~SchemaGuard() { drop_test_schema(test_pg_conninfo(), schema); }
};

std::string scalar(const std::string& sql) {
  PGconn* c = PQconnectdb(test_pg_conninfo().c_str());
  PGresult* r = PQexec(c, sql.c_str());
  std::string out = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "<error>";
  PQclear(r);
  PQfinish(c);
  return out;
}

// A host application's own connection.
struct HostConn {
  PGconn* c = PQconnectdb(test_pg_conninfo().c_str());
  HostConn() { REQUIRE(PQstatus(c) == CONNECTION_OK); }
  ~HostConn() { PQfinish(c); }
  void exec(const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    INFO(PQresultErrorMessage(r));
    CHECK((PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK));
    PQclear(r);
  }
};

porter::NewJob job(std::string kind = "work", std::string queue = "default") {
  porter::NewJob j;
  j.kind = std::move(kind);
  j.queue = std::move(queue);
  return j;
}

}  // namespace

TEST_CASE("postgres: opening creates the schema once, however many open it at once", "[postgres]") {
  SchemaGuard g{fresh_schema("race")};
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      porter::PostgresOptions options;
      options.schema = g.schema;
      if (porter::open_postgres_store(test_pg_conninfo(), options)) ++opened;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(opened == 6);
  CHECK(scalar("SELECT value FROM " + g.schema + ".meta WHERE key = 'schema_version'") == "2");
  auto store = open_pg(test_pg_conninfo(), g.schema);
  auto id = store->insert(std::vector<porter::NewJob>{job()});
  REQUIRE(id.has_value());
  CHECK(store->get(id->front().id)->state == JobState::pending);
}

TEST_CASE("postgres: a version 1 schema migrates to version 2 keeping its jobs", "[postgres]") {
  SchemaGuard g{fresh_schema("migrate")};
  porter::JobId id = 0;
  {
    auto store = open_pg(test_pg_conninfo(), g.schema);
    auto r = store->insert(std::vector<porter::NewJob>{job("old")});
    REQUIRE(r.has_value());
    id = r->front().id;
  }
  // Back to what version 1 looked like.
  REQUIRE(raw_pg(test_pg_conninfo(), "ALTER TABLE " + g.schema + ".jobs DROP COLUMN dependency_mode; UPDATE " +
                                         g.schema + ".meta SET value = '1' WHERE key = 'schema_version'")
              .empty());
  auto store = open_pg(test_pg_conninfo(), g.schema);
  CHECK(scalar("SELECT value FROM " + g.schema + ".meta WHERE key = 'schema_version'") == "2");
  auto old = store->get(id);
  REQUIRE(old.has_value());
  CHECK(old->kind == "old");
  CHECK(old->dependency_mode == porter::DependencyMode::all_completed);
  porter::NewJob after = job("after");
  after.depends_on = {id};
  after.dependency_mode = porter::DependencyMode::all_final;
  auto r = store->insert(std::span(&after, 1));
  REQUIRE(r.has_value());
  CHECK(store->get(r->front().id)->dependency_mode == porter::DependencyMode::all_final);
}

TEST_CASE("postgres: a schema holding tables that are not Porter's is refused untouched", "[postgres]") {
  SchemaGuard g{fresh_schema("foreign")};
  REQUIRE(raw_pg(test_pg_conninfo(), "CREATE SCHEMA " + g.schema + "; CREATE TABLE " + g.schema +
                                         ".jobs(id int, note text); INSERT INTO " + g.schema + ".jobs VALUES (1, 'theirs')")
              .empty());
  porter::PostgresOptions options;
  options.schema = g.schema;
  auto store = porter::open_postgres_store(test_pg_conninfo(), options);
  REQUIRE_FALSE(store.has_value());
  INFO(store.error().to_string());
  CHECK(store.error().code() == ErrorCode::corruption);
  CHECK(store.error().message().find("not Porter's") != std::string::npos);
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + g.schema + "'") == "1");
  CHECK(scalar("SELECT note FROM " + g.schema + ".jobs") == "theirs");

  // A `meta` table of someone else's is not Porter's either.
  REQUIRE(raw_pg(test_pg_conninfo(), "CREATE TABLE " + g.schema + ".meta(key text, value text)").empty());
  store = porter::open_postgres_store(test_pg_conninfo(), options);
  REQUIRE_FALSE(store.has_value());
  CHECK(store.error().code() == ErrorCode::corruption);
  CHECK(scalar("SELECT count(*) FROM " + g.schema + ".meta") == "0");
}

TEST_CASE("postgres: a schema written by a newer Porter is refused untouched", "[postgres]") {
  SchemaGuard g{fresh_schema("newer")};
  open_pg(test_pg_conninfo(), g.schema);
  REQUIRE(raw_pg(test_pg_conninfo(), "UPDATE " + g.schema + ".meta SET value = '99' WHERE key = 'schema_version'").empty());
  porter::PostgresOptions options;
  options.schema = g.schema;
  auto store = porter::open_postgres_store(test_pg_conninfo(), options);
  REQUIRE_FALSE(store.has_value());
  INFO(store.error().to_string());
  CHECK(store.error().code() == ErrorCode::unsupported);
  CHECK(store.error().message().find("99") != std::string::npos);
  CHECK(scalar("SELECT value FROM " + g.schema + ".meta WHERE key = 'schema_version'") == "99");
  // Transactional enqueue refuses it too.
  HostConn host;
  host.exec("BEGIN");
  auto r = porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job()}, g.schema);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::unsupported);
  host.exec("ROLLBACK");
}

TEST_CASE("postgres: wrong credentials, an unreachable server and bad options are clear errors", "[postgres]") {
  const std::string dir = test_pg_dir();
  auto wrong = porter::open_postgres_store("host=" + dir + "/cluster/run user=porter_pw password=wrong dbname=postgres");
  REQUIRE_FALSE(wrong.has_value());
  INFO(wrong.error().to_string());
  CHECK(wrong.error().code() == ErrorCode::permission_denied);
  CHECK(wrong.error().message().find("wrong") == std::string::npos);  // the password is never repeated

  auto away = porter::open_postgres_store("host=" + dir + "/no-such-folder user=postgres dbname=postgres");
  REQUIRE_FALSE(away.has_value());
  CHECK(away.error().code() == ErrorCode::unavailable);

  porter::PostgresOptions bad;
  bad.schema = "robert'); DROP TABLE students;--";
  auto r = porter::open_postgres_store(test_pg_conninfo(), bad);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == ErrorCode::invalid_argument);
  bad.schema = "ok";
  bad.pool_size = 0;
  CHECK(porter::open_postgres_store(test_pg_conninfo(), bad).error().code() == ErrorCode::invalid_argument);
}

TEST_CASE("postgres: hostile bytes round-trip in every string field", "[postgres]") {
  SchemaGuard g{fresh_schema("hostile")};
  auto store = open_pg(test_pg_conninfo(), g.schema);
  const std::string nul("a\0b", 3);
  const std::string bad_utf8 = "\xff\xfe\xc3\x28";
  porter::NewJob j = job("k'ind\"\\ \xff", "q'ueue\\\"\xc3\x28");
  j.args = R"({"s":"it's \"quoted\" \\ back\u0000slash","n":[1,2]})";
  j.owner = "own'er" + nul + bad_utf8;
  j.description = "desc\\" + nul + bad_utf8 + "'; DROP TABLE jobs; --";
  j.unique_key = "key" + nul + bad_utf8;
  auto ins = store->insert(std::span(&j, 1));
  REQUIRE(ins.has_value());
  const porter::JobId id = ins->front().id;
  auto again = store->insert(std::span(&j, 1));
  REQUIRE(again.has_value());
  CHECK(again->front().duplicate);
  CHECK(again->front().id == id);

  auto got = store->get(id);
  REQUIRE(got.has_value());
  CHECK(got->kind == j.kind);
  CHECK(got->queue == j.queue);
  CHECK(got->args == j.args);
  CHECK(got->owner == j.owner);
  CHECK(got->description == j.description);
  CHECK(got->unique_key == j.unique_key);

  auto claimed = store->claim({.queue = j.queue, .worker = "w'" + nul, .limit = 1, .lease_for = 30s});
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->size() == 1);
  CHECK(claimed->front().lease->worker == "w'" + nul);
  porter::ItemError ie{"row" + nul, "bad" + bad_utf8};
  REQUIRE(store->add_item_errors(claimed->front().lease_ref(), std::span(&ie, 1)).has_value());
  porter::Outcome o{.lease = claimed->front().lease_ref(), .kind = porter::OutcomeKind::fail,
                    .error = "boom\\" + nul + bad_utf8};
  auto fin = store->finish(std::span(&o, 1));
  REQUIRE(fin.has_value());
  got = store->get(id);
  REQUIRE(got.has_value());
  CHECK(got->state == JobState::failed);
  REQUIRE(got->errors.size() == 1);
  CHECK(got->errors[0].message == o.error);
  REQUIRE(got->item_errors.size() == 1);
  CHECK(got->item_errors[0].item == ie.item);
  CHECK(got->item_errors[0].message == ie.message);

  porter::JobFilter f;
  f.owner = j.owner;
  f.queue = j.queue;
  auto page = store->list(f, std::nullopt, 10);
  REQUIRE(page.has_value());
  REQUIRE(page->jobs.size() == 1);
  CHECK(page->jobs[0].id == id);
}

TEST_CASE("postgres: a job enqueued in the host's transaction exists iff that transaction commits", "[postgres][transactional]") {
  SchemaGuard g{fresh_schema("txn")};
  auto store = open_pg(test_pg_conninfo(), g.schema);
  REQUIRE(raw_pg(test_pg_conninfo(), "CREATE TABLE " + g.schema + ".orders(id int PRIMARY KEY)").empty());
  HostConn host;
  const std::string orders = g.schema + ".orders";

  SECTION("commit: the order and its job both exist") {
    host.exec("BEGIN");
    host.exec("INSERT INTO " + orders + " VALUES (1)");
    auto r = porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job("ship")}, g.schema);
    REQUIRE(r.has_value());
    const porter::JobId id = r->front().id;
    CHECK(store->get(id).error().code() == ErrorCode::not_found);  // invisible until the commit
    host.exec("COMMIT");
    auto got = store->get(id);
    REQUIRE(got.has_value());
    CHECK(got->kind == "ship");
    CHECK(scalar("SELECT count(*) FROM " + orders) == "1");
    auto claimed = store->claim({.queue = "default", .worker = "w", .limit = 1, .lease_for = 30s});
    REQUIRE(claimed.has_value());
    CHECK(claimed->size() == 1);
  }
  SECTION("rollback: neither exists") {
    host.exec("BEGIN");
    host.exec("INSERT INTO " + orders + " VALUES (2)");
    auto r = porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job("ship")}, g.schema);
    REQUIRE(r.has_value());
    host.exec("ROLLBACK");
    CHECK(store->get(r->front().id).error().code() == ErrorCode::not_found);
    CHECK(scalar("SELECT count(*) FROM " + orders) == "0");
    auto claimed = store->claim({.queue = "default", .worker = "w", .limit = 1, .lease_for = 30s});
    REQUIRE(claimed.has_value());
    CHECK(claimed->empty());
  }
  SECTION("a rejected batch leaves the host's transaction usable and adds nothing") {
    host.exec("BEGIN");
    host.exec("INSERT INTO " + orders + " VALUES (3)");
    porter::NewJob bad = job("ship");
    bad.args = "{not json";
    auto r = porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job("ok"), bad}, g.schema);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ErrorCode::invalid_argument);
    porter::NewJob orphan = job("ship");
    orphan.depends_on = {999999};
    r = porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job("ok"), orphan}, g.schema);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ErrorCode::not_found);
    host.exec("INSERT INTO " + orders + " VALUES (4)");
    host.exec("COMMIT");
    CHECK(scalar("SELECT count(*) FROM " + orders) == "2");
    CHECK(scalar("SELECT count(*) FROM " + g.schema + ".jobs") == "0");
    CHECK(scalar("SHOW search_path") != g.schema);
  }
  SECTION("without an open transaction it refuses") {
    auto r = porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job("ship")}, g.schema);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == ErrorCode::invalid_argument);
    CHECK(scalar("SELECT count(*) FROM " + g.schema + ".jobs") == "0");
  }
}

TEST_CASE("postgres: the host's search_path is kept after a transactional enqueue", "[postgres][transactional]") {
  SchemaGuard g{fresh_schema("path")};
  open_pg(test_pg_conninfo(), g.schema);
  HostConn host;
  host.exec("BEGIN");
  host.exec("SET LOCAL search_path TO pg_catalog, public");
  REQUIRE(porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job()}, g.schema).has_value());
  PGresult* r = PQexec(host.c, "SHOW search_path");
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r, 0, 0)) == "pg_catalog, public");
  PQclear(r);
  host.exec("COMMIT");
}

TEST_CASE("postgres: an insert by another session wakes this store's listeners", "[postgres][notify]") {
  SchemaGuard g{fresh_schema("notify")};
  auto here = open_pg(test_pg_conninfo(), g.schema);
  auto there = open_pg(test_pg_conninfo(), g.schema);  // its own connections: another process to `here`
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<porter::StoreEvent::Type, std::string>> seen;
  auto id = here->add_listener([&](const porter::StoreEvent& e) {
    std::lock_guard lock(mu);
    seen.emplace_back(e.type, std::string(e.queue));
    cv.notify_all();
  });
  auto saw = [&](porter::StoreEvent::Type type, const std::string& queue) {
    std::unique_lock lock(mu);
    // A bounded wait for the event, not a timing assertion: it fails only if the event never comes.
    return cv.wait_for(lock, 20s, [&] {
      for (const auto& [t, q] : seen) {
        if (t == type && q == queue) return true;
      }
      return false;
    });
  };
  // The LISTEN session connects in the background: insert until the first wake-up arrives.
  bool woken = false;
  for (int i = 0; i < 100 && !woken; ++i) {
    REQUIRE(there->insert(std::vector<porter::NewJob>{job("work", "remote")}).has_value());
    std::unique_lock lock(mu);
    woken = cv.wait_for(lock, 200ms, [&] { return !seen.empty(); });
  }
  CHECK(woken);
  CHECK(saw(porter::StoreEvent::Type::available, "remote"));
  // A transactional enqueue wakes it at the host's commit.
  HostConn host;
  host.exec("BEGIN");
  REQUIRE(porter::enqueue_in_transaction(host.c, std::vector<porter::NewJob>{job("work", "txq")}, g.schema).has_value());
  host.exec("COMMIT");
  CHECK(saw(porter::StoreEvent::Type::available, "txq"));
  // Jobs finished elsewhere: listeners re-read.
  auto claimed = there->claim({.queue = "remote", .worker = "w", .limit = 1, .lease_for = 30s});
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->size() == 1);
  porter::Outcome o{.lease = claimed->front().lease_ref(), .kind = porter::OutcomeKind::complete};
  REQUIRE(there->finish(std::span(&o, 1)).has_value());
  CHECK(saw(porter::StoreEvent::Type::changed_elsewhere, ""));
  here->remove_listener(id);
}
