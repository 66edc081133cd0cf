// porter: the command line over a job file (a SQLite store).
//
//   porter --db jobs.db jobs --state failed
//   porter --db jobs.db show 42
//   porter --db jobs.db serve --listen 127.0.0.1:8080 --token "$TOKEN"
//
// Human tables by default, --json for scripts. Exit codes: 0 done, 1 the
// operation failed (the message on stderr says why), 2 bad usage.
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "http/tsan_suppressions.h"

namespace porter::cli {
void add_job_commands(CLI::App& app, const Globals& g, int& exit_code);
void add_system_commands(CLI::App& app, const Globals& g, int& exit_code);
}  // namespace porter::cli

int main(int argc, char** argv) {
  using namespace porter::cli;
  CLI::App app{"porter: inspect and manage the background jobs in a Porter job file"};
  app.require_subcommand(1);
  app.fallthrough();
  Globals g;
  int exit_code = 0;
  app.add_option("--db", g.db, "The job file (a Porter SQLite database)")->envname("PORTER_DB");
  app.add_flag("--json", g.json, "JSON output for scripts");
  add_job_commands(app, g, exit_code);
  add_system_commands(app, g, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kUsage;
  }
  return exit_code;
}
