// JSON shapes of the HTTP API (one place, so the page, the CLI's --json and
// the tests agree). Times are milliseconds since the Unix epoch, durations
// milliseconds; job text (args, errors, names) is passed through as strings:
// the page renders it as text, never as HTML.
#pragma once

#include <nlohmann/json.hpp>

#include "porter/admin.h"
#include "porter/job.h"
#include "porter/status.h"
#include "porter/store.h"

namespace porter::http::detail {

double to_ms(Duration d);
double to_ms(TimePoint t);

nlohmann::json job_summary(const Job& job, TimePoint now);
nlohmann::json job_details(const JobDetails& details, TimePoint now);
nlohmann::json page_json(const JobPage& page, TimePoint now);
nlohmann::json stats_json(const Stats& stats);

// {"error": {"code": "not_found", "message": "..."}}
nlohmann::json error_json(const Error& error);
// 400, 403, 404, 409, 503, ... for a Porter error code.
int http_status(ErrorCode code);

}  // namespace porter::http::detail
