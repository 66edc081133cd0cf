// Result rows: how they print as a table and as JSON.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "harness.h"

namespace porter::bench {

std::string human(double v) {
  char buf[64];
  const double a = std::abs(v);
  if (a >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  } else if (a >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  } else if (a >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (a >= 1) {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
  }
  return buf;
}

std::string target_text(const Row& row) {
  if (!row.target) return "";
  return std::string(row.target->at_least ? ">=" : "<") + human(row.target->value) + (*row.met() ? " met" : " NOT met");
}

void print_header(const std::string& store) {
  std::printf("\n== store: %s ==\n", store.c_str());
  std::printf("%-4s %-28s %-14s %10s %10s %10s %10s %8s  %s\n", "", "variant", "metric", "median", "min", "max",
              "baseline", "ratio", "target");
}

void print_row(const Row& row) {
  const auto ratio = row.ratio();
  std::printf("%-4s %-28s %-14s %10s %10s %10s %10s %8s  %s%s%s\n", row.workload.c_str(), row.variant.c_str(),
              (row.metric + " " + row.unit).c_str(), human(row.med()).c_str(), human(row.lo()).c_str(),
              human(row.hi()).c_str(), row.baseline.empty() ? "-" : human(median(row.baseline)).c_str(),
              ratio ? (human(*ratio) + "x").c_str() : "-", target_text(row).c_str(), row.note.empty() ? "" : "  # ",
              row.note.c_str());
  std::fflush(stdout);
}

nlohmann::json to_json(const Row& row) {
  nlohmann::json j{{"store", row.store},   {"workload", row.workload}, {"variant", row.variant},
                   {"metric", row.metric}, {"unit", row.unit},         {"median", row.med()},
                   {"min", row.lo()},      {"max", row.hi()},          {"samples", row.samples}};
  if (!row.baseline.empty()) {
    j["baseline_median"] = median(row.baseline);
    j["baseline_samples"] = row.baseline;
    j["ratio"] = *row.ratio();
  }
  if (row.target) {
    j["target"] = {{"value", row.target->value}, {"at_least", row.target->at_least}, {"met", *row.met()}};
  }
  if (!row.note.empty()) j["note"] = row.note;
  return j;
}

// Waits for `done()` under `mutex`/`cv`, failing loudly instead of hanging a benchmark run.
void wait_or_throw(std::mutex& mutex, std::condition_variable& cv, const std::function<bool()>& done,
                   std::string_view what, std::chrono::seconds limit) {
  std::unique_lock lock(mutex);
  if (!cv.wait_for(lock, limit, done)) throw std::runtime_error(std::string(what) + ": timed out");
}


}  // namespace porter::bench
