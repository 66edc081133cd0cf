// The JSON syntax check behind validate(NewJob): one pass over the bytes, no
// allocation, nesting tracked in a fixed bit stack instead of recursion, so a
// hostile "[[[[..." cannot overflow the stack. Strings, the bulk of typical
// args, skip eight plain ASCII bytes at a time (SWAR) before falling back to a
// byte table. See json_check.h for what is accepted and why.
#include "core/json_check.h"

#include <array>
#include <charconv>
#include <cstring>
#include <system_error>

namespace porter::detail {

namespace {

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Bytes a string may contain as they are: printable ASCII except '"' and '\'.
constexpr std::array<bool, 256> kPlainStringByte = [] {
  std::array<bool, 256> table{};
  for (int c = 0x20; c < 0x80; ++c) table[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return table;
}();

// True if any of the eight bytes of `x` is zero (exact as a whole, though the
// marked bit may be wrong above the first zero byte; callers only test != 0).
constexpr std::uint64_t has_zero_byte(std::uint64_t x) noexcept { return (x - kOnes) & ~x & kHighBits; }

// True if any byte of the chunk is not a plain string byte: < 0x20, '"', '\' or >= 0x80.
inline bool chunk_needs_care(std::uint64_t x) noexcept {
  const std::uint64_t below_space = (x - kOnes * 0x20) & ~x & kHighBits;
  return (below_space | has_zero_byte(x ^ (kOnes * '"')) | has_zero_byte(x ^ (kOnes * '\\')) | (x & kHighBits)) != 0;
}

constexpr bool is_digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }

constexpr int hex_value(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) noexcept
      : begin_(reinterpret_cast<const unsigned char*>(text.data())), p_(begin_), end_(begin_ + text.size()) {}

  JsonCheck run() noexcept {
    scan_document();
    if (fault_ == JsonFault::none) return {};
    return {fault_, static_cast<std::size_t>(at_ - begin_)};
  }

 private:
  bool scan_document() noexcept {
    if (end_ - p_ >= 3 && p_[0] == 0xEF && p_[1] == 0xBB && p_[2] == 0xBF) return fail(JsonFault::byte_order_mark, p_);
    // Bit d of the stack is set when the container at depth d+1 is an object.
    std::array<std::uint64_t, kMaxJsonDepth / 64> is_object{};
    int depth = 0;
    skip_whitespace();
    for (;;) {
      // A value starts at p_.
      if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
      const unsigned char c = *p_;
      if (c == '{' || c == '[') {
        if (depth == kMaxJsonDepth) return fail(JsonFault::too_deep, p_);
        const std::uint64_t bit = std::uint64_t{1} << (depth % 64);
        auto& word = is_object[static_cast<std::size_t>(depth / 64)];
        word = c == '{' ? (word | bit) : (word & ~bit);
        ++depth;
        ++p_;
        skip_whitespace();
        if (p_ != end_ && *p_ == (c == '{' ? '}' : ']')) {
          ++p_;
          --depth;
        } else {
          if (c == '{' && !member_key()) return false;
          continue;  // the container's first value
        }
      } else if (!scan_scalar(c)) {
        return false;
      }
      // After a value: close finished containers until a ',' asks for the next value.
      for (;;) {
        skip_whitespace();
        if (depth == 0) {
          return p_ == end_ || fail(JsonFault::trailing_characters, p_);
        }
        if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
        const bool in_object =
            (is_object[static_cast<std::size_t>((depth - 1) / 64)] >> ((depth - 1) % 64) & 1U) != 0;
        if (*p_ == ',') {
          ++p_;
          skip_whitespace();
          if (in_object && !member_key()) return false;
          break;
        }
        if (*p_ != (in_object ? '}' : ']')) return fail(JsonFault::unexpected_byte, p_);
        ++p_;
        --depth;
      }
    }
  }

  bool fail(JsonFault fault, const unsigned char* at) noexcept {
    fault_ = fault;
    at_ = at;
    return false;
  }

  void skip_whitespace() noexcept {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // `"key" :` and the whitespace after it, at p_.
  bool member_key() noexcept {
    if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
    if (*p_ != '"') return fail(JsonFault::unexpected_byte, p_);
    ++p_;
    if (!scan_string()) return false;
    skip_whitespace();
    if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
    if (*p_ != ':') return fail(JsonFault::unexpected_byte, p_);
    ++p_;
    skip_whitespace();
    return true;
  }

  bool scan_scalar(unsigned char c) noexcept {
    switch (c) {
      case '"': ++p_; return scan_string();
      case 't': return scan_literal("true");
      case 'f': return scan_literal("false");
      case 'n': return scan_literal("null");
      case '-': case '0': case '1': case '2': case '3': case '4':
      case '5': case '6': case '7': case '8': case '9': return scan_number();
      default: return fail(JsonFault::unexpected_byte, p_);
    }
  }

  bool scan_literal(std::string_view word) noexcept {
    for (char expected : word) {
      if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
      if (*p_ != static_cast<unsigned char>(expected)) return fail(JsonFault::unexpected_byte, p_);
      ++p_;
    }
    return true;
  }

  // The string's body after its opening quote, through its closing quote.
  bool scan_string() noexcept {
    for (;;) {
      while (end_ - p_ >= 8) {
        std::uint64_t chunk;
        std::memcpy(&chunk, p_, sizeof chunk);
        if (chunk_needs_care(chunk)) break;
        p_ += 8;
      }
      while (p_ != end_ && kPlainStringByte[*p_]) ++p_;
      if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
      const unsigned char c = *p_;
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c == '\\') {
        if (!scan_escape()) return false;
      } else if (c < 0x20) {
        return fail(JsonFault::control_character, p_);
      } else if (!scan_utf8()) {
        return false;
      }
    }
  }

  // Four hex digits after "\u", as a code unit.
  bool scan_hex4(int& unit) noexcept {
    unit = 0;
    for (int i = 0; i < 4; ++i) {
      if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
      const int digit = hex_value(*p_);
      if (digit < 0) return fail(JsonFault::bad_unicode_escape, p_);
      unit = unit * 16 + digit;
      ++p_;
    }
    return true;
  }

  bool scan_escape() noexcept {
    const unsigned char* backslash = p_;
    ++p_;
    if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
    switch (*p_) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': ++p_; return true;
      case 'u': break;
      default: return fail(JsonFault::bad_escape, backslash);
    }
    ++p_;
    int unit = 0;
    if (!scan_hex4(unit)) return false;
    if (unit >= 0xDC00 && unit <= 0xDFFF) return fail(JsonFault::lone_surrogate, backslash);
    if (unit < 0xD800 || unit > 0xDBFF) return true;
    // A high surrogate: the low half must follow at once as another \u escape.
    if (end_ - p_ < 2) {
      return p_ == end_ || *p_ == '\\' ? fail(JsonFault::unexpected_end, end_) : fail(JsonFault::lone_surrogate, backslash);
    }
    if (p_[0] != '\\' || p_[1] != 'u') return fail(JsonFault::lone_surrogate, backslash);
    p_ += 2;
    if (!scan_hex4(unit)) return false;
    if (unit < 0xDC00 || unit > 0xDFFF) return fail(JsonFault::lone_surrogate, backslash);
    return true;
  }

  // One multi-byte UTF-8 sequence at p_ (RFC 3629 section 4): no overlong
  // forms, no encoded surrogates, nothing above U+10FFFF.
  bool scan_utf8() noexcept {
    const unsigned char lead = *p_;
    unsigned char low = 0x80, high = 0xBF;  // range of the second byte
    int continuation = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      continuation = 2;
      if (lead == 0xE0) low = 0xA0;   // overlong below U+0800
      if (lead == 0xED) high = 0x9F;  // U+D800..U+DFFF
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      continuation = 3;
      if (lead == 0xF0) low = 0x90;   // overlong below U+10000
      if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return fail(JsonFault::bad_utf8, p_);
    }
    if (end_ - p_ <= continuation) return fail(JsonFault::bad_utf8, p_);
    if (p_[1] < low || p_[1] > high) return fail(JsonFault::bad_utf8, p_);
    for (int i = 2; i <= continuation; ++i) {
      if ((p_[i] & 0xC0) != 0x80) return fail(JsonFault::bad_utf8, p_);
    }
    p_ += continuation + 1;
    return true;
  }

  // -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?, finite as a double.
  bool scan_number() noexcept {
    const unsigned char* start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
    const unsigned char* int_begin = p_;
    if (*p_ == '0') {
      ++p_;
      if (p_ != end_ && is_digit(*p_)) return fail(JsonFault::leading_zero, int_begin);
    } else if (is_digit(*p_)) {
      while (p_ != end_ && is_digit(*p_)) ++p_;
    } else {
      return fail(JsonFault::unexpected_byte, p_);
    }
    const std::int64_t int_digits = p_ - int_begin;
    std::int64_t first_nonzero_fraction = -1;  // index after the '.', if any
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (!digits_follow()) return false;
      const unsigned char* fraction = p_;
      while (p_ != end_ && is_digit(*p_)) {
        if (first_nonzero_fraction < 0 && *p_ != '0') first_nonzero_fraction = p_ - fraction;
        ++p_;
      }
    }
    std::int64_t exponent = 0;
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      const bool negative = p_ != end_ && *p_ == '-';
      if (p_ != end_ && (*p_ == '-' || *p_ == '+')) ++p_;
      if (!digits_follow()) return false;
      while (p_ != end_ && is_digit(*p_)) {
        if (exponent < 1'000'000'000) exponent = exponent * 10 + (*p_ - '0');  // saturates: far beyond any double
        ++p_;
      }
      if (negative) exponent = -exponent;
    }
    // Decimal exponent of the leading nonzero digit: the value is in [10^m, 10^(m+1)).
    std::int64_t magnitude = 0;
    if (*int_begin != '0') {
      magnitude = int_digits - 1;
    } else if (first_nonzero_fraction >= 0) {
      magnitude = -(first_nonzero_fraction + 1);
    } else {
      return true;  // zero
    }
    magnitude += exponent;
    if (magnitude < 308) return true;  // below 1e308 < DBL_MAX
    if (magnitude > 308) return fail(JsonFault::number_out_of_range, start);
    // Between 1e308 and 1e309: only exact rounding tells (DBL_MAX is ~1.798e308).
    double value = 0;
    const auto [end, error] = std::from_chars(reinterpret_cast<const char*>(start), reinterpret_cast<const char*>(p_), value);
    if (error == std::errc::result_out_of_range) return fail(JsonFault::number_out_of_range, start);
    return true;
  }

  bool digits_follow() noexcept {
    if (p_ == end_) return fail(JsonFault::unexpected_end, p_);
    if (!is_digit(*p_)) return fail(JsonFault::unexpected_byte, p_);
    return true;
  }

  const unsigned char* begin_;
  const unsigned char* p_;
  const unsigned char* end_;
  JsonFault fault_ = JsonFault::none;
  const unsigned char* at_ = nullptr;
};

}  // namespace

JsonCheck check_json(std::string_view text) noexcept { return Scanner(text).run(); }

std::string describe_json_fault(std::string_view text, const JsonCheck& check) {
  std::string what;
  switch (check.fault) {
    case JsonFault::none: return "valid JSON";
    case JsonFault::unexpected_byte:
    case JsonFault::trailing_characters: {
      const unsigned char c = check.offset < text.size() ? static_cast<unsigned char>(text[check.offset]) : 0;
      what = check.fault == JsonFault::trailing_characters ? "trailing characters after the value: " : "unexpected ";
      if (c > 0x20 && c < 0x7F) {
        what += '\'';
        what += static_cast<char>(c);
        what += '\'';
      } else {
        constexpr char kHex[] = "0123456789abcdef";
        what += "byte 0x";
        what += kHex[c >> 4];
        what += kHex[c & 0xF];
      }
      break;
    }
    case JsonFault::unexpected_end: what = "unexpected end of input"; break;
    case JsonFault::control_character: what = "unescaped control character in a string"; break;
    case JsonFault::bad_escape: what = "invalid escape in a string"; break;
    case JsonFault::bad_unicode_escape: what = "\\u not followed by four hex digits"; break;
    case JsonFault::lone_surrogate: what = "unpaired UTF-16 surrogate escape"; break;
    case JsonFault::bad_utf8: what = "invalid UTF-8"; break;
    case JsonFault::leading_zero: what = "number with a leading zero"; break;
    case JsonFault::number_out_of_range: what = "number too large for a double"; break;
    case JsonFault::too_deep:
      what = "nesting deeper than " + std::to_string(kMaxJsonDepth) + " arrays/objects";
      break;
    case JsonFault::byte_order_mark: what = "byte order mark before the value"; break;
  }
  return what + " at byte " + std::to_string(check.offset);
}

}  // namespace porter::detail
