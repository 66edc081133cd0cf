// The `porter` command against a real SQLite job file: listing, JSON, details,
// actions, queues, stats, prune, wait, serve, and its errors (a missing file,
// a file that is not Porter's, a bad id).
#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli/run_process.h"
#include "http/tsan_suppressions.h"
#include "porter/sqlite_store.h"

using namespace porter;
using porter::test::Process;
using porter::test::run;

namespace {

const std::string kPorter = PORTER_CLI_PATH;

// A job file in a fresh directory, with a pending, a running, a failed (with
// item errors) and a completed job.
struct JobFile {
  JobFile() {
    dir = std::filesystem::temp_directory_path() / ("porter-cli-test-" + std::to_string(::getpid()) + "-" +
                                                    std::to_string(counter()++));
    std::filesystem::create_directories(dir);
    path = (dir / "jobs.db").string();
    auto opened = open_sqlite_store(path);
    REQUIRE(opened.has_value());
    store = *opened;
    auto ids = store->insert(std::vector<NewJob>{
        {.kind = "import", .queue = "content", .owner = "alice", .description = "Import users.csv"},
        {.kind = "report", .queue = "analytics", .owner = "root"},
        {.kind = "sync", .queue = "indexing", .owner = "bob"},
        {.kind = "mail", .queue = "mail", .owner = "alice"}});
    REQUIRE(ids.has_value());
    pending = (*ids)[0].id;
    running = (*ids)[1].id;
    failed = (*ids)[2].id;
    completed = (*ids)[3].id;
    auto lease = [&](const char* queue) {
      auto jobs = store->claim({.queue = queue, .worker = "test"});
      REQUIRE(jobs.has_value());
      REQUIRE(jobs->size() == 1);
      return jobs->front().lease_ref();
    };
    lease("analytics");
    const LeaseRef sync = lease("indexing");
    const ItemError bad{"row 7", "e-mail missing"};
    REQUIRE(store->add_item_errors(sync, std::span<const ItemError>(&bad, 1)).has_value());
    const std::vector<Outcome> outcomes{{.lease = sync, .kind = OutcomeKind::fail, .error = "catalog is gone"},
                                        {.lease = lease("mail"), .kind = OutcomeKind::complete}};
    REQUIRE(store->finish(outcomes).has_value());
  }
  ~JobFile() {
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  porter::test::ProcessResult porter(std::vector<std::string> args) const {
    args.insert(args.begin(), {kPorter, "--db", path});
    return run(args);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path dir;
  std::string path;
  std::shared_ptr<Store> store;
  JobId pending = 0, running = 0, failed = 0, completed = 0;
};

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("cli: jobs lists a table, filters, and --json for scripts") {
  JobFile f;
  auto table = f.porter({"jobs"});
  REQUIRE(table.exit_code == 0);
  CHECK(has(table.out, "ID"));
  CHECK(has(table.out, "Import users.csv"));
  CHECK(has(table.out, "failed"));
  auto failed = f.porter({"jobs", "--state", "failed", "--json"});
  REQUIRE(failed.exit_code == 0);
  auto json = nlohmann::json::parse(failed.out);
  REQUIRE(json["jobs"].size() == 1);
  CHECK(json["jobs"][0]["id"] == f.failed);
  CHECK(nlohmann::json::parse(f.porter({"jobs", "--owner", "alice", "--json"}).out)["jobs"].size() == 2);
  auto paged = f.porter({"jobs", "--limit", "2"});
  CHECK(has(paged.out, "more: --cursor"));
  auto bad_state = f.porter({"jobs", "--state", "sleeping"});
  CHECK(bad_state.exit_code == 1);
  CHECK(has(bad_state.err, "invalid_argument"));
}

TEST_CASE("cli: show prints a job's errors and item errors") {
  JobFile f;
  auto r = f.porter({"show", std::to_string(f.failed)});
  REQUIRE(r.exit_code == 0);
  CHECK(has(r.out, "catalog is gone"));
  CHECK(has(r.out, "row 7: e-mail missing"));
  auto json = nlohmann::json::parse(f.porter({"--json", "show", std::to_string(f.failed)}).out);
  CHECK(json["item_errors"][0]["item"] == "row 7");
}

TEST_CASE("cli: cancel, retry and discard change the file") {
  JobFile f;
  CHECK(f.porter({"cancel", std::to_string(f.pending)}).exit_code == 0);
  CHECK(f.store->get(f.pending)->state == JobState::cancelled);
  auto requested = f.porter({"cancel", std::to_string(f.running)});
  CHECK(has(requested.out, "cancel requested"));
  CHECK(f.porter({"retry", std::to_string(f.failed)}).exit_code == 0);
  CHECK(f.store->get(f.failed)->state == JobState::pending);
  CHECK(f.porter({"discard", std::to_string(f.completed)}).exit_code == 0);
  CHECK(f.store->get(f.completed).error().code() == ErrorCode::not_found);
  auto wrong = f.porter({"discard", std::to_string(f.failed)});  // pending now
  CHECK(wrong.exit_code == 1);
  CHECK(has(wrong.err, "wrong_state"));
}

TEST_CASE("cli: queues, pause, resume, stats and prune") {
  JobFile f;
  auto queues = f.porter({"queues"});
  REQUIRE(queues.exit_code == 0);
  CHECK(has(queues.out, "analytics"));
  CHECK(f.porter({"pause", "content"}).exit_code == 0);
  CHECK(has(f.porter({"queues"}).out, "paused"));
  CHECK(f.porter({"resume", "content"}).exit_code == 0);
  CHECK(!has(f.porter({"queues"}).out, "paused"));
  auto stats = f.porter({"stats", "--window", "1h"});
  REQUIRE(stats.exit_code == 0);
  CHECK(has(stats.out, "sync"));
  CHECK(has(stats.out, "oldest lease"));
  auto kept = f.porter({"prune", "--older-than", "7d"});
  REQUIRE(kept.exit_code == 0);
  CHECK(has(kept.out, "pruned 0"));
  CHECK(f.store->get(f.completed).has_value());
  CHECK(f.porter({"prune", "--older-than", "soon"}).exit_code == 1);
  auto all = f.porter({"prune", "--older-than", "0s"});
  REQUIRE(all.exit_code == 0);
  CHECK(has(all.out, "pruned 2"));  // the failed and the completed job
  CHECK(f.store->get(f.completed).error().code() == ErrorCode::not_found);
}

TEST_CASE("cli: wait returns with the job's end, or a timeout") {
  JobFile f;
  auto ok = f.porter({"wait", std::to_string(f.completed)});
  CHECK(ok.exit_code == 0);
  CHECK(has(ok.out, "completed"));
  CHECK(f.porter({"wait", std::to_string(f.failed)}).exit_code == 1);
  auto timeout = f.porter({"wait", std::to_string(f.pending), "--timeout", "300ms"});
  CHECK(timeout.exit_code == 1);
  CHECK(has(timeout.err, "timeout"));
}

TEST_CASE("cli: clear errors for a missing file, a non-Porter file, a bad id") {
  JobFile f;
  auto missing = run({kPorter, "--db", (f.dir / "nope.db").string(), "jobs"});
  CHECK(missing.exit_code == 1);
  CHECK(has(missing.err, "no such job file"));
  CHECK(!std::filesystem::exists(f.dir / "nope.db"));  // nothing created
  const auto text = f.dir / "notes.txt";
  std::ofstream(text) << "not a database\n";
  auto foreign = run({kPorter, "--db", text.string(), "jobs"});
  CHECK(foreign.exit_code == 1);
  CHECK(has(foreign.err, "not a Porter job file"));
  for (const char* id : {"abc", "0", "-4", "12x"}) {
    auto bad = f.porter({"show", id});
    CHECK(bad.exit_code == 1);
    CHECK(has(bad.err, "bad job id"));
  }
  auto unknown = f.porter({"show", "424242"});
  CHECK(unknown.exit_code == 1);
  CHECK(has(unknown.err, "not_found"));
  CHECK(run({kPorter, "jobs"}).exit_code == 1);             // no --db
  CHECK(run({kPorter, "--db", f.path}).exit_code == 2);     // no subcommand
}

TEST_CASE("cli: serve runs the page and API on the job file until stopped") {
  JobFile f;
  CHECK(has(f.porter({"serve", "--listen", "127.0.0.1:0"}).err, "needs --token"));
  Process serve({kPorter, "--db", f.path, "serve", "--listen", "127.0.0.1:0", "--token", "cli-test-admin-token-1",
                 "--user-token", "alice=cli-test-alice-token"});
  const std::string line = serve.read_line();
  REQUIRE(has(line, "http://127.0.0.1:"));
  const auto port_at = line.rfind(':') + 1;
  const std::string port = line.substr(port_at, line.find('/', port_at) - port_at);
  httplib::Client client("127.0.0.1", std::stoi(port));
  auto get = [&](const std::string& token, const char* path) {
    auto r = client.Get(path, httplib::Headers{{"Authorization", "Bearer " + token}});
    REQUIRE(r);
    return r->body;
  };
  auto mine = nlohmann::json::parse(get("cli-test-alice-token", "/api/jobs"));
  CHECK(mine["jobs"].size() == 2);  // alice's two jobs only
  auto all = nlohmann::json::parse(get("cli-test-admin-token-1", "/api/jobs"));
  CHECK(all["jobs"].size() == 4);
  serve.signal(SIGTERM);
  CHECK(serve.wait().exit_code == 0);
}

TEST_CASE("cli: notify enqueues a notification job that runs once the job is finished") {
  JobFile f;
  auto r = f.porter({"--json", "notify", std::to_string(f.pending), "--kind", "notify_user", "--user", "alice"});
  REQUIRE(r.exit_code == 0);
  const JobId notification = nlohmann::json::parse(r.out)["notification"].get<JobId>();
  auto job = f.store->get(notification);
  REQUIRE(job.has_value());
  CHECK(job->owner == "alice");
  CHECK(job->state == JobState::waiting);
  CHECK(f.porter({"cancel", std::to_string(f.pending)}).exit_code == 0);
  CHECK(f.store->get(notification)->state == JobState::pending);
  CHECK(f.porter({"notify", std::to_string(f.pending)}).exit_code == 2);  // --kind is required
  CHECK(has(f.porter({"notify", "777777", "--kind", "notify_user"}).err, "not_found"));
}
