// Shared by the `porter` command's subcommands: opening the job file,
// durations, tables, and printing errors.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "porter/admin.h"
#include "porter/status.h"
#include "porter/store.h"

namespace porter::cli {

// Exit codes: 0 done, 1 the operation failed (the message says why), 2 bad usage.
inline constexpr int kFailed = 1;
inline constexpr int kUsage = 2;

// Opens an existing Porter job file. not_found for a missing file (nothing is
// created), corruption for a file that is not a SQLite database or not Porter's.
Result<std::shared_ptr<Store>> open_job_file(const std::string& path);

// "90s", "15m", "12h", "7d", "500ms" -> a Duration (checked: non-negative, saturating).
Result<Duration> parse_duration(std::string_view text);
Result<JobId> parse_job_id(std::string_view text);

std::string format_duration(Duration d);
// Job text for a terminal: control characters (escape sequences) become '?'.
std::string printable(std::string_view text);
std::string format_time(TimePoint t);

// Prints "porter: <code>: <message>" on stderr and returns kFailed.
int fail(const Error& error);

// A plain-text table: header row, then rows, columns padded to fit.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

struct Globals {
  std::string db;    // --db FILE (or PORTER_DB)
  bool json = false; // --json
};

// The CLI acts with the file's full rights: whoever can read the file is its administrator.
inline Principal cli_principal() { return Principal::administrator("cli"); }

}  // namespace porter::cli
