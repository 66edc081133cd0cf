// The diagnostics sinks (porter/diagnostics.h) and the one-line format.
#include "porter/diagnostics.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "core/diagnose.h"
#include "core/utf8.h"

namespace porter {
namespace {

constexpr auto kRepeatWindow = std::chrono::seconds(10);

void append_hex(std::string& out, unsigned value, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(value >> shift) & 0xF];
}

// Text for a terminal line: printable UTF-8 as it is; controls, invalid
// bytes and bidirectional controls escaped; `quote` escapes '"' and '\\' too.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (std::size_t i = 0; i < text.size();) {
    const detail::CodePoint c = detail::next_code_point(text, i);
    if (!c.valid) {
      for (std::size_t k = 0; k < c.size; ++k) {
        out += "\\x";
        append_hex(out, static_cast<unsigned char>(text[i + k]), 2);
      }
    } else if (c.value == '\n') {
      out += "\\n";
    } else if (c.value == '\t') {
      out += "\\t";
    } else if (quote && (c.value == '"' || c.value == '\\')) {
      out += '\\';
      out += static_cast<char>(c.value);
    } else if (detail::is_display_control(c.value)) {
      if (c.value < 0x100) {
        out += "\\x";
        append_hex(out, static_cast<unsigned>(c.value), 2);
      } else {
        out += "\\u{";
        append_hex(out, static_cast<unsigned>(c.value), 4);
        out += '}';
      }
    } else {
      out.append(text.substr(i, c.size));
    }
    i += c.size;
  }
}

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char ch : value) {
    if (ch == ' ' || ch == '"' || ch == '=' || static_cast<unsigned char>(ch) < 0x20) return true;
  }
  return false;
}

}  // namespace

std::string_view to_string(Severity severity) noexcept {
  switch (severity) {
    case Severity::debug: return "debug";
    case Severity::info: return "info";
    case Severity::warning: return "warning";
    case Severity::error: return "error";
  }
  return "unknown";
}

std::string format_diagnostic(const Diagnostic& d) {
  std::string out = "porter ";
  out += to_string(d.severity);
  out += " [";
  append_escaped(out, d.component, false);
  out += "] ";
  append_escaped(out, d.message, false);
  for (std::size_t i = 0; i < d.fields.size(); ++i) {
    out += i == 0 ? ": " : " ";
    append_escaped(out, d.fields[i].key, false);
    out += '=';
    const bool quoted = needs_quotes(d.fields[i].value);
    if (quoted) out += '"';
    append_escaped(out, d.fields[i].value, quoted);
    if (quoted) out += '"';
  }
  return out;
}

DiagnosticSink stderr_sink(Severity min) {
  // Per (component, message): when it was last printed and how many were
  // held back since. Shared by the copies of this sink.
  struct State {
    std::mutex mu;
    std::map<std::pair<std::string, std::string>, std::pair<std::chrono::steady_clock::time_point, long>> seen;
  };
  auto state = std::make_shared<State>();
  return [state, min](const Diagnostic& d) {
    if (d.severity < min) return;
    const auto now = std::chrono::steady_clock::now();
    long held = 0;
    {
      std::lock_guard lock(state->mu);
      auto [it, fresh] = state->seen.try_emplace({d.component, d.message}, now, 0);
      if (!fresh) {
        if (now - it->second.first < kRepeatWindow) {
          ++it->second.second;
          return;
        }
        held = it->second.second;
        it->second = {now, 0};
      }
      if (state->seen.size() > 1024) {  // a bounded memory of messages: forget the quiet ones
        std::erase_if(state->seen, [&](const auto& e) { return now - e.second.first >= kRepeatWindow; });
      }
    }
    std::string line = format_diagnostic(d);
    if (held > 0) line += " (" + std::to_string(held) + " more like this held back)";
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
}

DiagnosticSink discard_diagnostics() {
  return [](const Diagnostic&) {};
}

namespace detail {

void diagnose(const DiagnosticSink& sink, Severity severity, std::string_view component, std::string message,
              std::vector<DiagnosticField> fields) noexcept {
  if (!sink) return;
  try {
    sink(Diagnostic{.severity = severity, .component = std::string(component), .message = std::move(message),
                    .fields = std::move(fields)});
  } catch (...) {
    // A sink that throws (or an allocation that failed) has nowhere else to say it.
  }
}

}  // namespace detail
}  // namespace porter
