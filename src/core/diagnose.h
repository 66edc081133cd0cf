// diagnose(): the one way Porter's own code reports trouble to the host's
// DiagnosticSink (porter/diagnostics.h). Never throws: a sink that throws,
// or a report that cannot be built, must not end the thread that reports.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "porter/diagnostics.h"

namespace porter::detail {

void diagnose(const DiagnosticSink& sink, Severity severity, std::string_view component, std::string message,
              std::vector<DiagnosticField> fields = {}) noexcept;

}  // namespace porter::detail
