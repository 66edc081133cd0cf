// The one UTF-8 decoder (src/core/utf8.h) every text sink uses.
#include <catch2/catch.hpp>

#include "core/utf8.h"

using porter::detail::is_display_control;
using porter::detail::is_valid_utf8;
using porter::detail::scrub_utf8;

TEST_CASE("utf8: valid text passes unchanged, NUL and controls included", "[unit][utf8]") {
  const std::string text = std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 a\0b\x01", 18);
  CHECK(is_valid_utf8(text));
  CHECK(scrub_utf8(text) == text);
}

TEST_CASE("utf8: every class of invalid sequence is rejected and scrubbed to U+FFFD", "[unit][utf8]") {
  const std::string fffd = "\xef\xbf\xbd";
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"caf\xe9", "caf" + fffd},                               // Latin-1
      {"\xc0\xaf", fffd + fffd},                               // overlong '/'
      {"\xe0\x80\xaf", fffd + fffd + fffd},                    // overlong, three bytes
      {"\xed\xa0\x80", fffd + fffd + fffd},                    // lone high surrogate, encoded
      {"\xed\xb0\x80", fffd + fffd + fffd},                    // lone low surrogate, encoded
      {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},         // above U+10FFFF
      {"\xe2\x82", fffd},                                      // truncated: one maximal subpart
      {"\xe2\x82x", fffd + "x"},
      {"\x80\xbf", fffd + fffd},                               // stray continuation bytes
      {"\xff\xfe", fffd + fffd},
  };
  for (const Case& c : cases) {
    INFO(c.in);
    CHECK_FALSE(is_valid_utf8(c.in));
    CHECK(scrub_utf8(c.in) == c.out);
    CHECK(is_valid_utf8(scrub_utf8(c.in)));
  }
}

TEST_CASE("utf8: display controls are the C0/C1 controls and the bidi overrides", "[unit][utf8]") {
  CHECK(is_display_control(0x00));
  CHECK(is_display_control(0x1b));
  CHECK(is_display_control(0x7f));
  CHECK(is_display_control(0x85));
  CHECK(is_display_control(0x202e));  // RIGHT-TO-LEFT OVERRIDE
  CHECK(is_display_control(0x2067));  // RIGHT-TO-LEFT ISOLATE
  CHECK_FALSE(is_display_control('a'));
  CHECK_FALSE(is_display_control(0xe9));
  CHECK_FALSE(is_display_control(0x4e2d));
}
