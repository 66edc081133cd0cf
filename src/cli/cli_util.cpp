#include "cli/cli_util.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "core/bounds.h"
#include "porter/sqlite_store.h"

namespace porter::cli {

Result<std::shared_ptr<Store>> open_job_file(const std::string& path) {
  std::error_code ec;
  if (path.empty()) return make_error(ErrorCode::invalid_argument, "no job file: pass --db FILE or set PORTER_DB");
  if (!std::filesystem::exists(path, ec))
    return make_error(ErrorCode::not_found, "no such job file: " + path);
  if (!std::filesystem::is_regular_file(path, ec))
    return make_error(ErrorCode::invalid_argument, path + " is not a file");
  auto store = open_sqlite_store(path);
  if (!store && store.error().code() == ErrorCode::corruption)
    return make_error(ErrorCode::corruption, path + " is not a Porter job file (" + store.error().message() + ")");
  return store;
}

Result<Duration> parse_duration(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  auto bad = [&] {
    return make_error(ErrorCode::invalid_argument,
                      "bad duration '" + std::string(text) + "': use a number and a unit (500ms, 90s, 15m, 12h, 7d)");
  };
  if (ec != std::errc() || end == text.data() || value < 0) return bad();
  double seconds = 0;
  if (unit == "ms") seconds = value / 1000;
  else if (unit == "s") seconds = value;
  else if (unit == "m") seconds = value * 60;
  else if (unit == "h") seconds = value * 3600;
  else if (unit == "d") seconds = value * 86400;
  else return bad();
  return detail::saturating_cast(std::chrono::duration<double>(seconds));
}

Result<JobId> parse_job_id(std::string_view text) {
  JobId id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || id <= 0)
    return make_error(ErrorCode::invalid_argument, "bad job id '" + std::string(text) + "': a positive number");
  return id;
}

std::string format_duration(Duration d) {
  using namespace std::chrono;
  if (d < seconds(1)) return fmt::format("{} ms", duration_cast<milliseconds>(d).count());
  const auto s = duration_cast<seconds>(d).count();
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m {:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h {:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d {:02}h", s / 86400, (s % 86400) / 3600);
}

std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

std::string format_time(TimePoint t) {
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", std::chrono::floor<std::chrono::seconds>(t));
}

int fail(const Error& error) {
  fmt::print(stderr, "porter: {}: {}\n", to_string(error.code()), error.message());
  return kFailed;
}

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i + 1 == cells.size()) out += cells[i];
      else out += fmt::format("{:<{}}  ", cells[i], width[i]);
    }
    fmt::print("{}\n", out);
  };
  line(header);
  for (const auto& row : rows) line(row);
}

}  // namespace porter::cli
