// porter_bench's command line.
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "harness.h"

namespace porter::bench {
namespace {

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto end = comma == std::string_view::npos ? text.size() : comma;
    if (end > start) parts.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::int64_t parse_int(std::string_view flag, std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
    throw std::invalid_argument(std::string(flag) + " wants a non-negative integer, got '" + std::string(text) + "'");
  }
  return value;
}

constexpr std::string_view kUsage =
    "usage: porter_bench [--store memory,sqlite,sqlite-normal] [--jobs N] [--repeat K] [--json FILE]\n"
    "                    [--workloads W1,W2,W3,W4,W5,W6,W7,W8,W9,MEM] [--workers 8,1,2] [--batch B]\n"
    "                    [--latency-samples S] [--mixed-seconds T] [--mixed-work-us U]\n"
    "                    [--scale 10000,100000,1000000] [--sqlite-scale-max M] [--single-threads 1,8]\n"
    "                    [--remote-samples S] [--scheduled N] [--smoke]\n";

}  // namespace

Options parse_options(int argc, char** argv) {
  Options o;
  bool jobs_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--store") {
      o.stores = split(value());
    } else if (flag == "--jobs") {
      o.jobs = parse_int(flag, value());
      jobs_set = true;
    } else if (flag == "--repeat") {
      o.repeat = static_cast<int>(parse_int(flag, value()));
    } else if (flag == "--json") {
      o.json_path = value();
    } else if (flag == "--workloads") {
      o.workloads.clear();
      for (auto& w : split(value())) o.workloads.insert(w);
    } else if (flag == "--workers") {
      o.workers.clear();
      for (auto& w : split(value())) o.workers.push_back(static_cast<int>(parse_int(flag, w)));
    } else if (flag == "--batch") {
      o.batch = static_cast<int>(parse_int(flag, value()));
    } else if (flag == "--latency-samples") {
      o.latency_samples = static_cast<int>(parse_int(flag, value()));
    } else if (flag == "--mixed-seconds") {
      o.mixed_duration = std::chrono::milliseconds(parse_int(flag, value()) * 1000);
    } else if (flag == "--mixed-work-us") {
      o.mixed_work = std::chrono::microseconds(parse_int(flag, value()));
    } else if (flag == "--scale") {
      o.scale_sizes.clear();
      for (auto& s : split(value())) o.scale_sizes.push_back(parse_int(flag, s));
    } else if (flag == "--sqlite-scale-max") {
      o.sqlite_scale_max = parse_int(flag, value());
    } else if (flag == "--smoke") {
      o.smoke = true;
    } else if (flag == "--single-threads") {
      o.single_threads.clear();
      for (auto& t : split(value())) o.single_threads.push_back(static_cast<int>(parse_int(flag, t)));
    } else if (flag == "--remote-samples") {
      o.remote_samples = static_cast<int>(parse_int(flag, value()));
    } else if (flag == "--remote-interval-ms") {
      o.remote_interval = std::chrono::milliseconds(parse_int(flag, value()));
    } else if (flag == "--scheduled") {
      o.scheduled_jobs = parse_int(flag, value());
    } else if (flag == "--producer") {
      o.producer_path = value();
    } else if (flag == "--mem-probe") {
      o.mem_probe = parse_int(flag, value());
    } else if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown option " + std::string(flag) + "\n" + std::string(kUsage));
    }
  }
  if (o.smoke) {
    // Every workload with tiny sizes: keeps the harness working, measures nothing.
    if (!jobs_set) o.jobs = 300;
    o.repeat = 1;
    o.batch = 100;
    o.workers = {2, 1};
    o.latency_samples = 20;
    o.latency_interval = 200us;
    o.mixed_duration = 300ms;
    o.scale_sizes = {1000, 2000};
    o.scale_claims = 50;
    o.mem_jobs = 2000;
    o.remote_samples = 20;
    o.remote_interval = 2ms;
    o.scheduled_jobs = 2000;
  }
  if (o.jobs < 1 || o.repeat < 1 || o.batch < 1 || o.workers.empty() ||
      std::any_of(o.workers.begin(), o.workers.end(), [](int w) { return w < 1; }) || o.single_threads.empty() ||
      std::any_of(o.single_threads.begin(), o.single_threads.end(), [](int t) { return t < 1 || t > 256; }) ||
      o.remote_samples < 1) {
    throw std::invalid_argument(
        "--jobs, --repeat, --batch, --workers and --remote-samples must be >= 1; --single-threads 1..256");
  }
  return o;
}

}  // namespace porter::bench
