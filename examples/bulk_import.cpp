// porter_example_import: one long job importing a CSV of users.
//
// The example writes a CSV of a few thousand users (some rows bad: no e-mail
// address, an age that is not a number) to a temp directory, and one job
// imports it: it reports progress as it goes, records an item error for each
// bad row and completes with the good rows imported. The admin view then
// shows the error count and the details. A second import of the same file is
// aborted midway by its owner through Admin::cancel: the handler polls
// ctx.cancelled() and stops, and the job ends cancelled.
//
// Storage: a fresh SQLite file by default; --memory uses the in-memory store.
// Exits non-zero if any claim it prints did not hold.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "example_support.h"

using namespace std::chrono_literals;
using nlohmann::json;
using porter::examples::Checks;
using porter::examples::Log;
using porter::examples::or_exit;
using porter::examples::register_or_exit;

namespace {

struct GeneratedCsv {
  std::string path;
  int rows = 0;
  int bad_rows = 0;
};

// Writes `rows` users; every 97th row lacks an e-mail address and every
// 131st has an age that is not a number.
porter::Result<GeneratedCsv> write_users_csv(const std::filesystem::path& dir, int rows) {
  GeneratedCsv csv{(dir / "users.csv").string(), rows, 0};
  std::ofstream out(csv.path, std::ios::trunc);
  out << "id,name,email,age\n";
  for (int i = 1; i <= rows; ++i) {
    bool no_email = i % 97 == 0;
    bool bad_age = i % 131 == 0;
    csv.bad_rows += (no_email || bad_age) ? 1 : 0;
    out << i << ",User " << i << ',' << (no_email ? "" : fmt::format("user{}@example.com", i)) << ','
        << (bad_age ? std::string("unknown") : std::to_string(18 + i % 60)) << '\n';
  }
  if (!out.flush()) return porter::make_error(porter::ErrorCode::unavailable, "cannot write " + csv.path);
  return csv;
}

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  std::string field;
  while (std::getline(in, field, sep)) fields.push_back(field);
  if (!line.empty() && line.back() == sep) fields.emplace_back();
  return fields;
}

// Empty when the row is good; otherwise why it is not.
std::string check_row(const std::vector<std::string>& f) {
  if (f.size() != 4) return fmt::format("expected 4 fields, found {}", f.size());
  if (f[2].find('@') == std::string::npos) return "missing or invalid e-mail address";
  if (f[3].empty() || f[3].find_first_not_of("0123456789") != std::string::npos) {
    return fmt::format("age '{}' is not a number", f[3]);
  }
  return {};
}

// The application's user table: upserts by e-mail, so a retried import is harmless.
class UserTable {
 public:
  void upsert(const std::string& email, const std::string& name) {
    std::lock_guard lock(mutex_);
    users_[email] = name;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return users_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> users_;  // guarded by mutex_
};

}  // namespace

int main(int argc, char** argv) {
  Log log;
  Checks checks(log);
  auto opened = or_exit(porter::examples::open_example_store(argc, argv, "import"), "opening the store");
  const GeneratedCsv csv = or_exit(write_users_csv(opened.dir->path(), 3000), "writing the CSV");
  log.heading("Bulk import of users from a CSV file");
  log.line("store: {}", opened.description);
  log.line("wrote {} rows to {} ({} of them bad)", csv.rows, csv.path, csv.bad_rows);

  porter::EngineOptions options;
  options.queues = {{"imports", 1}};
  options.poll_every = 50ms;
  // Progress reaches the store with each heartbeat: beat often so the admin
  // view follows the import closely.
  options.heartbeat_every = 100ms;
  options.lease_for = 5s;
  porter::Engine engine(opened.store, options);

  UserTable users;
  std::atomic<std::int64_t> rows_seen_by_slow_import{0};
  register_or_exit(engine, "import_users", [&](porter::JobContext& ctx) {
    json args = json::parse(ctx.args());
    const auto pause_per_row = std::chrono::microseconds(args.value("pause_us_per_row", 0));
    const bool slow = pause_per_row.count() > 0;
    std::ifstream in(args.at("path").get<std::string>());
    if (!in) throw porter::PermanentError("cannot open " + args.at("path").get<std::string>());
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    if (lines.empty()) throw porter::PermanentError("the file is empty");
    const auto total = static_cast<std::int64_t>(lines.size() - 1);  // minus the header
    log.line("imports       job {}: importing {} rows", ctx.id(), total);

    std::int64_t imported = 0, rejected = 0;
    for (std::int64_t row = 1; row <= total; ++row) {
      if (ctx.cancelled()) {
        log.line("imports       job {}: cancelled at row {} of {}; stopping", ctx.id(), row, total);
        return;  // the job ends cancelled whatever the handler returns
      }
      auto fields = split(lines[static_cast<std::size_t>(row)], ',');
      if (std::string why = check_row(fields); !why.empty()) {
        ctx.item_error(fmt::format("row {}", row), why);
        ++rejected;
      } else {
        users.upsert(fields[2], fields[1]);
        ++imported;
      }
      if (row % 250 == 0) ctx.progress(row, total, fmt::format("{} imported, {} rejected", imported, rejected));
      if (row % 1000 == 0) log.line("imports       job {}: {} of {} rows", ctx.id(), row, total);
      if (slow) {
        rows_seen_by_slow_import = row;
        std::this_thread::sleep_for(pause_per_row);  // a slow downstream database
      }
    }
    ctx.progress(total, total, fmt::format("{} imported, {} rejected", imported, rejected));
    ctx.set_result(json{{"imported", imported}, {"rejected", rejected}}.dump());
    log.line("imports       job {}: done, {} imported, {} rejected", ctx.id(), imported, rejected);
  });
  or_exit(engine.start(), "starting the engine");

  porter::Admin admin(opened.store);
  const auto ada = porter::Principal::owner("ada");
  const auto bob = porter::Principal::owner("bob");

  // --- the full import ---------------------------------------------------------
  log.heading("1. Import the whole file");
  auto first = or_exit(engine.enqueue({.kind = "import_users",
                                       .args = json{{"path", csv.path}}.dump(),
                                       .queue = "imports",
                                       .owner = "ada",
                                       .description = "Import users.csv"}),
                       "enqueueing");
  auto first_done = engine.wait_for(first.id, 30s);
  const std::int64_t good_rows = csv.rows - csv.bad_rows;
  checks.expect(first_done && first_done->state == porter::JobState::completed,
                "the import completed despite the bad rows");
  checks.expect(static_cast<std::int64_t>(users.size()) == good_rows,
                fmt::format("{} users are in the table (every good row)", good_rows));

  auto view = admin.get(ada, first.id);
  checks.expect(view.has_value(), "ada can read her import in the admin view");
  if (view) {
    const porter::Job& j = view->job;
    log.line("admin view: job {} \"{}\" {}, {:.0f}% done ({}), ran for {}", j.id, j.description,
             porter::to_string(j.state), view->percent.value_or(0.0), j.progress.message,
             view->running_for ? porter::examples::format_duration(*view->running_for) : std::string("-"));
    log.line("item errors: {} in all; the first ones:", j.item_error_count);
    for (std::size_t i = 0; i < j.item_errors.size() && i < 5; ++i) {
      log.line("  {}: {}", j.item_errors[i].item, j.item_errors[i].message);
    }
    checks.expect(j.item_error_count == csv.bad_rows,
                  fmt::format("the admin view counts {} item errors, one per bad row", csv.bad_rows));
    checks.expect(j.item_errors.size() ==
                      std::min<std::size_t>(static_cast<std::size_t>(csv.bad_rows), porter::kMaxStoredItemErrors),
                  "and keeps their details");
    checks.expect(view->percent && *view->percent == 100.0, "progress reads 100%");
    checks.expect(
        !j.result.empty() && json::parse(j.result) == json{{"imported", good_rows}, {"rejected", csv.bad_rows}},
        "the job's result counts imported and rejected rows");
  }

  // --- the cancelled import ----------------------------------------------------
  log.heading("2. A second import, cancelled midway by its owner");
  auto second = or_exit(engine.enqueue({.kind = "import_users",
                                        .args = json{{"path", csv.path}, {"pause_us_per_row", 1000}}.dump(),
                                        .queue = "imports",
                                        .owner = "ada",
                                        .description = "Import users.csv again (slowly)"}),
                        "enqueueing");
  // Follow the import in the admin view until it is about a third done.
  std::optional<double> seen_percent;
  for (int i = 0; i < 200; ++i) {
    auto d = admin.get(ada, second.id);
    if (d && d->percent && *d->percent >= 30.0) {
      seen_percent = d->percent;
      log.line("admin view: job {} is {:.0f}% done ({}), lease held for {}", second.id, *d->percent,
               d->job.progress.message,
               d->lease_age ? porter::examples::format_duration(*d->lease_age) : std::string("-"));
      break;
    }
    std::this_thread::sleep_for(50ms);  // a person watching the dashboard
  }
  checks.expect(seen_percent.has_value(), "the admin view showed the import's progress while it ran");

  auto by_bob = admin.cancel(bob, second.id);
  log.line("bob tries to cancel it: {}", by_bob ? std::string("cancelled?!") : by_bob.error().to_string());
  checks.expect(!by_bob && by_bob.error().code() == porter::ErrorCode::permission_denied,
                "bob may not cancel ada's import");
  auto by_ada = admin.cancel(ada, second.id);
  log.line("ada cancels it: {}",
           by_ada ? (*by_ada == porter::CancelResult::requested ? "cancellation requested" : "cancelled")
                  : by_ada.error().to_string());
  checks.expect(by_ada && *by_ada == porter::CancelResult::requested, "ada's cancel asks the running handler to stop");
  auto second_done = engine.wait_for(second.id, 30s);
  checks.expect(second_done && second_done->state == porter::JobState::cancelled, "the second import ended cancelled");
  const auto rows_seen = rows_seen_by_slow_import.load();
  log.line("it had read {} of {} rows when it stopped", rows_seen, csv.rows);
  checks.expect(rows_seen > 0 && rows_seen < csv.rows, "it stopped midway instead of reading the whole file");

  engine.stop();
  return checks.verdict("porter_example_import");
}
