// UTF-8 as Porter reads it: one decoder for every sink that writes text a
// job or a client supplied (JSON, Prometheus exposition, the terminal, the
// diagnostics log). Job text is bytes: a handler may throw an error message
// in Latin-1, a progress message may hold a NUL. Every sink decodes with
// next_code_point and decides per sink what an invalid sequence becomes
// (U+FFFD in JSON, \xNN in a log line), so no encoder ever throws on it.
//
// Validity is RFC 3629's: no overlong forms, no encoded surrogates (so no
// CESU-8 and no lone surrogates), nothing above U+10FFFF. An invalid
// sequence is consumed as its maximal subpart (Unicode 15, section 3.9,
// "U+FFFD substitution of maximal subparts", as WHATWG's decoder does).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace porter::detail {

struct CodePoint {
  char32_t value = 0;     // the code point; meaningless when !valid
  std::size_t size = 0;   // bytes consumed, >= 1 whenever text remains
  bool valid = false;
};

// Decodes the code point at text[at] (at < text.size()).
CodePoint next_code_point(std::string_view text, std::size_t at) noexcept;

// Whether `text` is entirely valid UTF-8 (NUL and control characters are valid).
bool is_valid_utf8(std::string_view text) noexcept;

// `text` with every invalid sequence replaced by U+FFFD.
std::string scrub_utf8(std::string_view text);

// Appends code point `cp` (<= U+10FFFF, not a surrogate) as UTF-8.
void append_utf8(std::string& out, char32_t cp);

// Characters that reorder or hide text on a page or a terminal: C0 and C1
// controls, DEL, and the bidirectional overrides, embeddings and isolates
// (U+202A..U+202E, U+2066..U+2069, U+200E/U+200F, U+061C).
bool is_display_control(char32_t cp) noexcept;

}  // namespace porter::detail
