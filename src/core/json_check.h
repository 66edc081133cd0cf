// A strict, non-allocating JSON syntax check for job args (RFC 8259).
//
// validate(NewJob) runs on every enqueue, and nlohmann::json::accept (a full
// SAX parser with token buffers) was half of the batch-enqueue time. This is a
// single pass over the bytes that builds nothing: it only answers "is this
// exactly one JSON value?" and, if not, where and why it stopped.
//
// It accepts exactly what nlohmann::json::accept (3.11) accepts, so args that
// pass here parse in handlers that use nlohmann, with three deliberate
// differences, all rejections:
//   - a leading UTF-8 byte order mark (RFC 8259 section 8.1: senders MUST NOT
//     add one; nlohmann skips it),
//   - a NUL byte outside a string (nlohmann takes it as the end of the input
//     and ignores the rest, so it accepts "{}\0garbage"),
//   - nesting deeper than kMaxJsonDepth arrays/objects (nlohmann has no limit),
//     so no consumer's recursive parser can be sent too deep.
// Like nlohmann, numbers whose value overflows a double are rejected (RFC 8259
// section 9 lets a parser limit the range of numbers).
// Lone UTF-16 surrogates in \u escapes, surrogates encoded in UTF-8, overlong
// UTF-8 and code points above U+10FFFF are rejected, as nlohmann does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace porter::detail {

// Deepest nesting of arrays and objects accepted ("[[1]]" has depth 2).
inline constexpr int kMaxJsonDepth = 512;

enum class JsonFault : std::uint8_t {
  none,
  unexpected_byte,      // a byte that cannot start or continue a value here
  unexpected_end,       // the text stops inside a value (or is empty)
  trailing_characters,  // something other than whitespace after the value
  control_character,    // an unescaped byte < 0x20 inside a string
  bad_escape,           // a backslash followed by something other than "\/bfnrtu
  bad_unicode_escape,   // \u not followed by four hex digits
  lone_surrogate,       // \uD800-\uDBFF not followed by \uDC00-\uDFFF, or a lone \uDC00-\uDFFF
  bad_utf8,             // invalid, overlong, surrogate, > U+10FFFF or truncated UTF-8
  leading_zero,         // a number such as 01 or -00
  number_out_of_range,  // a number too large for a double (e.g. 1e999)
  too_deep,             // nesting deeper than kMaxJsonDepth
  byte_order_mark,      // the text starts with EF BB BF
};

// The outcome of check_json: fault == none, or the fault and the byte offset
// of the first byte that made the text invalid (text.size() for unexpected_end).
struct JsonCheck {
  JsonFault fault = JsonFault::none;
  std::size_t offset = 0;

  [[nodiscard]] bool ok() const noexcept { return fault == JsonFault::none; }
};

// Checks that `text` is exactly one JSON value with optional whitespace around it.
[[nodiscard]] JsonCheck check_json(std::string_view text) noexcept;

[[nodiscard]] inline bool is_valid_json(std::string_view text) noexcept { return check_json(text).ok(); }

// A short English reason for a failed check of `text`, e.g.
// "unexpected '}' at byte 17" or "invalid UTF-8 at byte 4". Only for !check.ok().
[[nodiscard]] std::string describe_json_fault(std::string_view text, const JsonCheck& check);

}  // namespace porter::detail
