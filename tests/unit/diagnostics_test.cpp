// The diagnostics line (porter/diagnostics.h): readable, one line, and no
// job text can forge a second line or reorder the terminal.
#include <catch2/catch.hpp>

#include "porter/diagnostics.h"

using namespace porter;

TEST_CASE("diagnostics: one readable line with quoted fields", "[unit][diagnostics]") {
  const Diagnostic d{.severity = Severity::error, .component = "engine", .message = "outcome dropped",
                     .fields = {{"job", "42"}, {"queue", "mail"}, {"error", "store unavailable"}}};
  CHECK(format_diagnostic(d) == R"(porter error [engine] outcome dropped: job=42 queue=mail error="store unavailable")");
}

TEST_CASE("diagnostics: job text cannot forge lines, escape sequences or bidi reordering", "[unit][diagnostics]") {
  const Diagnostic d{.severity = Severity::warning, .component = "engine", .message = "failed",
                     .fields = {{"error", "caf\xe9\nporter error [engine] fake\x1b[2J\xe2\x80\xae" "evil\""}}};
  const std::string line = format_diagnostic(d);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find('\x1b') == std::string::npos);
  CHECK(line.find("\xe2\x80\xae") == std::string::npos);
  CHECK(line == R"(porter warning [engine] failed: error="caf\xe9\nporter error [engine] fake\x1b[2J\u{202e}evil\"")");
}

TEST_CASE("diagnostics: a sink below its level prints nothing; repeats are held back", "[unit][diagnostics]") {
  // The stderr sink's behaviour that can be observed without capturing stderr:
  // it never throws and accepts any text.
  auto sink = stderr_sink(Severity::error);
  REQUIRE_NOTHROW(sink(Diagnostic{.severity = Severity::debug, .component = "t", .message = "quiet"}));
  auto none = discard_diagnostics();
  REQUIRE_NOTHROW(none(Diagnostic{}));
  CHECK(to_string(Severity::warning) == "warning");
}
