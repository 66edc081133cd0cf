// Diagnostics: how Porter tells its host about trouble it handled itself.
//
// An outcome the store would not keep, a retention pass that failed, a
// heartbeat that did not reach the store, a watcher thread that stopped, an
// HTTP request a route could not answer: each is handled (retried, rescued,
// answered with an error), and each is also said here, whether or not
// anybody subscribed to engine events. Nothing Porter catches is swallowed.
//
// A sink receives one Diagnostic per report. The default writes one
// readable line to stderr:
//
//   porter warning [engine] outcome dropped: job=42 queue=mail error="store unavailable"
//
// so a host that does nothing still sees trouble; a host with its own
// logging passes a sink that forwards to it (spdlog, syslog, OpenTelemetry).
//
// Thread safety: a sink is called from Porter's own threads, possibly from
// several at once; it must be thread-safe, quick, and must not call back
// into the engine or the store. An exception it throws is dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace porter {

enum class Severity : std::uint8_t {
  debug,    // detail for whoever chases a problem
  info,     // something worth knowing that is not a fault (a queue resumed after an outage)
  warning,  // trouble Porter handled, that may need a look if it repeats
  error,    // something was lost or given up on (a dropped outcome, a thread that stopped)
};
std::string_view to_string(Severity severity) noexcept;

struct DiagnosticField {
  std::string key;    // a short name: job, queue, kind, error, ...
  std::string value;  // any bytes (sinks escape them for their medium)
};

struct Diagnostic {
  Severity severity = Severity::warning;
  std::string component;  // who reports it: "engine", "sqlite", "postgres", "http", "cli"
  std::string message;    // one short sentence, lower case, no trailing period
  std::vector<DiagnosticField> fields;
};

using DiagnosticSink = std::function<void(const Diagnostic&)>;

// The one-line form the stderr sink writes (without the newline): severity,
// component, message, then key=value pairs, values quoted when they hold
// spaces. Control characters, invalid UTF-8 and bidirectional overrides are
// escaped (\xNN, \u{NNNN}), so a job's text cannot forge lines or reorder a
// terminal.
std::string format_diagnostic(const Diagnostic& diagnostic);

// One line per diagnostic at `min` and above on stderr. The same component
// and message repeated within 10 s are counted instead of printed, and the
// count is said with the next one printed ("... (37 more like this in 10 s)"),
// so a failing store cannot flood the log.
DiagnosticSink stderr_sink(Severity min = Severity::warning);

// A sink that drops everything (tests that provoke trouble on purpose).
DiagnosticSink discard_diagnostics();

}  // namespace porter
