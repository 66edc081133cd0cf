// The JSON check behind validate(NewJob) (src/core/json_check.h): a table of valid
// and invalid documents with the fault and byte offset each must report, and a
// differential test against nlohmann::json::accept (the oracle) over the table,
// exhaustive short strings, and seeded random documents and their mutations.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_check.h"
#include "porter/job.h"

using porter::detail::check_json;
using porter::detail::is_valid_json;
using porter::detail::JsonFault;
using porter::detail::kMaxJsonDepth;

namespace {

using namespace std::literals;

bool oracle_accepts(std::string_view text) { return nlohmann::json::accept(text.begin(), text.end()); }

// What Porter should answer, by the oracle, minus the documented differences
// (json_check.h), all of them things nlohmann accepts and Porter rejects:
//   - nlohmann skips a leading byte order mark;
//   - nlohmann takes a NUL byte outside a string as the end of the input and
//     ignores what follows ("{}\0garbage" is accepted). Porter rejects NUL
//     wherever it is, exactly as it rejects 0x01, so the oracle is asked about
//     the text with every NUL turned into 0x01, which nlohmann rejects everywhere;
//   - nesting deeper than kMaxJsonDepth (random documents stay far below it).
bool expected_valid(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") return false;
  if (text.find('\0') == std::string_view::npos) return oracle_accepts(text);
  std::string without_nul(text);
  for (char& c : without_nul) {
    if (c == '\0') c = '\x01';
  }
  return oracle_accepts(without_nul);
}

// A readable form of a document for failure messages.
std::string shown(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out.size() > 300 ? out.substr(0, 300) + "..." : out;
}

struct Case {
  std::string text;
  JsonFault fault = JsonFault::none;  // none: valid
  std::size_t offset = 0;             // of the first bad byte, for invalid cases
  bool nlohmann_accepts = false;      // a documented difference: nlohmann accepts what Porter rejects
};

std::string nested(int depth, std::string_view open, std::string_view inner, std::string_view close) {
  std::string out;
  for (int i = 0; i < depth; ++i) out += open;
  out += inner;
  for (int i = 0; i < depth; ++i) out += close;
  return out;
}

// 10^zeros written out as an integer.
std::string one_then_zeros(std::size_t zeros) {
  std::string out(zeros + 1, '0');
  out.front() = '1';
  return out;
}

std::vector<Case> table() {
  using F = JsonFault;
  std::vector<Case> cases = {
      // Every kind of value, and whitespace around it.
      {"{}"}, {"[]"}, {"0"}, {"-0"}, {"1"}, {"-1"}, {"123"}, {"0.5"}, {"-0.0"}, {"1e5"}, {"1E5"}, {"1e+5"},
      {"1e-5"}, {"1.5e10"}, {"0e0"}, {"-12.34E-056"}, {"\"\""}, {"\"abc\""}, {"true"}, {"false"}, {"null"},
      {" \t\n\r{} \t\n\r"}, {"{\"n\":123,\"to\":\"a@b.c\"}"}, {"[1,2,3]"}, {"[[],{}]"}, {"[ 1 , [ 2 ] , { } ]"},
      {"{\"a\":{\"b\":[null,true,false]}}"}, {"{\"a\":1,\"a\":2}"}, {"{ \"a\" : 1 , \"b\" : [ ] }"},
      // Escapes, including \u with both cases of hex and a surrogate pair.
      {R"("\" \\ \/ \b \f \n \r \t")"}, {R"("\u0000")"}, {R"("\u00e9\u00E9")"}, {R"("\uD83D\uDE00")"},
      {R"("\ud83d\ude00")"}, {R"("\uFFFF")"}, {R"("\uDBFF\uDFFF")"}, {R"("\uD7FF\uE000")"},
      // UTF-8: each length at its edges, and DEL (not a control character in JSON).
      {"\"\xC2\x80\""}, {"\"\xC3\xA9\""}, {"\"\xDF\xBF\""}, {"\"\xE0\xA0\x80\""}, {"\"\xE2\x82\xAC\""},
      {"\"\xED\x9F\xBF\""}, {"\"\xEE\x80\x80\""}, {"\"\xEF\xBF\xBF\""}, {"\"\xF0\x90\x80\x80\""},
      {"\"\xF3\xBF\xBF\xBF\""}, {"\"\xF4\x8F\xBF\xBF\""}, {"\"\x7F\""},
      {"\"a long ASCII string that crosses several eight-byte chunks \xC3\xA9 and then some more\""},
      // Numbers at the edge of a double (DBL_MAX is 1.7976931348623157e308; the halfway point to the
      // next power of two, which rounds to infinity, is 1.7976931348623158079...e308).
      {"1.7976931348623157e308"}, {"-1.7976931348623157e308"}, {"1.797693134862315807e308"}, {"1e308"},
      {"10e307"}, {"0.1e309"}, {"1e-400"}, {"0e999999999999999999"}, {"0.000e400"}, {"123456789012345678901234567890"},
      {one_then_zeros(308)}, {"0.00000000001e318"},
      {nested(kMaxJsonDepth, "[", "", "]")}, {nested(kMaxJsonDepth - 1, "{\"a\":", "[]", "}")},

      // Structure.
      {"", F::unexpected_end, 0}, {"   ", F::unexpected_end, 3}, {"{", F::unexpected_end, 1}, {"[", F::unexpected_end, 1},
      {"[1", F::unexpected_end, 2}, {"[1,", F::unexpected_end, 3}, {"{\"a\"", F::unexpected_end, 4},
      {"{\"a\":", F::unexpected_end, 5}, {"{\"a\":1", F::unexpected_end, 6}, {"\"abc", F::unexpected_end, 4},
      {"}", F::unexpected_byte, 0}, {"]", F::unexpected_byte, 0}, {"{\"a\":1}}", F::trailing_characters, 7},
      {"{} x", F::trailing_characters, 3}, {"1 2", F::trailing_characters, 2}, {"[1,]", F::unexpected_byte, 3},
      {"[,1]", F::unexpected_byte, 1}, {"{,}", F::unexpected_byte, 1}, {"{\"a\":1,}", F::unexpected_byte, 7},
      {"{\"a\" 1}", F::unexpected_byte, 5}, {"{a:1}", F::unexpected_byte, 1}, {"{1:1}", F::unexpected_byte, 1},
      {"['a']", F::unexpected_byte, 1}, {"[1 2]", F::unexpected_byte, 3}, {"{\"a\":1 \"b\":2}", F::unexpected_byte, 7},
      {"[}", F::unexpected_byte, 1}, {"{]", F::unexpected_byte, 1}, {"[1}", F::unexpected_byte, 2},
      {"{\"a\":1]", F::unexpected_byte, 6}, {"\f1", F::unexpected_byte, 0}, {"{}\v", F::trailing_characters, 2},
      {"/* c */ 1", F::unexpected_byte, 0}, {"1 // c", F::trailing_characters, 2},
      {"\0"s, F::unexpected_byte, 0}, {"[\0]"s, F::unexpected_byte, 1}, {"1\0"s, F::trailing_characters, 1, true},
      {"{}\0garbage"s, F::trailing_characters, 2, true}, {"[1]\0[2]"s, F::trailing_characters, 3, true},
      // Literals.
      {"tru", F::unexpected_end, 3}, {"trUe", F::unexpected_byte, 2}, {"nul", F::unexpected_end, 3},
      {"nulll", F::trailing_characters, 4}, {"True", F::unexpected_byte, 0}, {"NaN", F::unexpected_byte, 0},
      {"Infinity", F::unexpected_byte, 0}, {"-Infinity", F::unexpected_byte, 1}, {"truefalse", F::trailing_characters, 4},
      // Numbers.
      {"01", F::leading_zero, 0}, {"-01", F::leading_zero, 1}, {"00", F::leading_zero, 0}, {"[1,007]", F::leading_zero, 3},
      {"+1", F::unexpected_byte, 0}, {".5", F::unexpected_byte, 0}, {"5.", F::unexpected_end, 2},
      {"5.e3", F::unexpected_byte, 2}, {"-", F::unexpected_end, 1}, {"-a", F::unexpected_byte, 1},
      {"1e", F::unexpected_end, 2}, {"1e+", F::unexpected_end, 3}, {"1ea", F::unexpected_byte, 2},
      {"1.5e-", F::unexpected_end, 5}, {"1e+-1", F::unexpected_byte, 3}, {"0x10", F::trailing_characters, 1},
      {"- 1", F::unexpected_byte, 1}, {"--1", F::unexpected_byte, 1}, {"1.0.0", F::trailing_characters, 3},
      {"1e309", F::number_out_of_range, 0}, {"-1e309", F::number_out_of_range, 0},
      {"1.7976931348623159e308", F::number_out_of_range, 0}, {"1.797693134862315808e308", F::number_out_of_range, 0},
      {"[1,1e400]", F::number_out_of_range, 3}, {"100e307", F::number_out_of_range, 0},
      {"1e99999999999999999999", F::number_out_of_range, 0}, {one_then_zeros(309), F::number_out_of_range, 0},
      // Strings: control characters, escapes.
      {"\"a\x01z\"", F::control_character, 2}, {"\"\t\"", F::control_character, 1}, {"\"\n\"", F::control_character, 1},
      {"\"\0\""s, F::control_character, 1}, {"\"\x1F\"", F::control_character, 1},
      {R"("\x")", F::bad_escape, 1}, {R"("\U0041")", F::bad_escape, 1}, {R"("\'")", F::bad_escape, 1},
      {R"("ab\)", F::unexpected_end, 4}, {R"("\u12")", F::bad_unicode_escape, 5}, {R"("\u12G4")", F::bad_unicode_escape, 5},
      {R"("\u123)", F::unexpected_end, 6},
      // Surrogate escapes: only a high one followed at once by a low one.
      {R"("\uD800")", F::lone_surrogate, 1}, {R"("\uDC00")", F::lone_surrogate, 1}, {R"("\uD800\u0041")", F::lone_surrogate, 1},
      {R"("\uD800\uD800")", F::lone_surrogate, 1}, {R"("\uD800x")", F::lone_surrogate, 1},
      {R"("\uD800\n")", F::lone_surrogate, 1}, {R"("a\uDE00\uD83D")", F::lone_surrogate, 2},
      {R"("\uD800)", F::unexpected_end, 7}, {R"("\uD800\)", F::unexpected_end, 8}, {R"("\uD800\u)", F::unexpected_end, 9},
      {R"("\uD800\uDC0")", F::bad_unicode_escape, 12},
      // UTF-8: stray continuation bytes, overlong forms, encoded surrogates, > U+10FFFF, truncation.
      {"\"\x80\"", F::bad_utf8, 1}, {"\"\xBF\"", F::bad_utf8, 1}, {"\"\xC0\x80\"", F::bad_utf8, 1},
      {"\"\xC1\xBF\"", F::bad_utf8, 1}, {"\"\xE0\x80\x80\"", F::bad_utf8, 1}, {"\"\xE0\x9F\xBF\"", F::bad_utf8, 1},
      {"\"\xED\xA0\x80\"", F::bad_utf8, 1}, {"\"\xED\xBF\xBF\"", F::bad_utf8, 1}, {"\"\xF0\x80\x80\x80\"", F::bad_utf8, 1},
      {"\"\xF0\x8F\xBF\xBF\"", F::bad_utf8, 1}, {"\"\xF4\x90\x80\x80\"", F::bad_utf8, 1},
      {"\"\xF5\x80\x80\x80\"", F::bad_utf8, 1}, {"\"\xFF\"", F::bad_utf8, 1}, {"\"\xC3\"", F::bad_utf8, 1},
      {"\"\xE2\x82\"", F::bad_utf8, 1}, {"\"\xE2\x82z\"", F::bad_utf8, 1}, {"\"\xC3", F::bad_utf8, 1},
      {"\"\xF0\x9F\x98", F::bad_utf8, 1}, {"\"abcdefghij\xC3(\"", F::bad_utf8, 11},
      {"\xC3\xA9", F::unexpected_byte, 0}, {"[\xFF]", F::unexpected_byte, 1},
      // Nesting beyond the limit, at any depth; and a hostile depth that must not overflow the stack.
      {nested(kMaxJsonDepth + 1, "[", "", "]"), F::too_deep, kMaxJsonDepth, true},
      {nested(kMaxJsonDepth, "{\"a\":", "[]", "}"), F::too_deep, 5 * kMaxJsonDepth, true},
      {nested(200'000, "[", "", "]"), F::too_deep, kMaxJsonDepth, true},
      // A byte order mark (nlohmann skips it).
      {"\xEF\xBB\xBF{}", F::byte_order_mark, 0, true},
  };
  return cases;
}

}  // namespace

TEST_CASE("json check: every table case reports the expected fault at the expected byte", "[json]") {
  for (const Case& c : table()) {
    INFO("document: " << shown(c.text));
    const auto result = check_json(c.text);
    CHECK(result.fault == c.fault);
    CHECK(is_valid_json(c.text) == (c.fault == JsonFault::none));
    if (c.fault != JsonFault::none) {
      CHECK(result.offset == c.offset);
    }
  }
}

TEST_CASE("json check: agrees with nlohmann::json::accept on the table, except the documented rejections", "[json]") {
  for (const Case& c : table()) {
    INFO("document: " << shown(c.text));
    const bool ours = is_valid_json(c.text);
    if (c.nlohmann_accepts) {
      CHECK_FALSE(ours);
      CHECK(oracle_accepts(c.text));
    } else {
      CHECK(ours == oracle_accepts(c.text));
    }
  }
}

TEST_CASE("json check: agrees with nlohmann on every one- and two-byte string body and on multi-byte sequences", "[json]") {
  // Every byte pair inside quotes covers all escapes' first bytes, control
  // characters and every two-byte UTF-8 form; lead bytes E0-FF with chosen
  // continuations cover the three- and four-byte forms and their edges. Placed
  // at every offset of an eight-byte chunk, so the ASCII fast path is crossed too.
  int disagreements = 0;
  auto compare = [&](const std::string& doc) {
    if (is_valid_json(doc) != expected_valid(doc) && ++disagreements <= 10) FAIL_CHECK("disagree on " << shown(doc));
  };
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const char bytes[] = {'"', static_cast<char>(a), static_cast<char>(b), '"'};
      compare(std::string(bytes, sizeof bytes));
    }
  }
  const unsigned char continuations[] = {0x00, 0x22, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0};
  for (int lead = 0xE0; lead < 0x100; ++lead) {
    for (int second = 0; second < 256; ++second) {
      for (unsigned char third : continuations) {
        for (unsigned char fourth : {static_cast<unsigned char>(0x80), static_cast<unsigned char>('"')}) {
          std::string doc(1 + static_cast<std::size_t>(second % 8), 'x');  // the sequence starts at each chunk offset
          doc[0] = '"';
          doc += static_cast<char>(lead);
          doc += static_cast<char>(second);
          doc += static_cast<char>(third);
          doc += static_cast<char>(fourth);
          doc += "tail of eight\"";
          compare(doc);
        }
      }
    }
  }
  // A special byte at every position of a long ASCII string.
  for (std::string_view special : {"\"", "\\", "\x1F", "\x7F", "\x80", "\xC3\xA9", "\\n", "\\u00e9"}) {
    for (std::size_t at = 0; at < 40; ++at) {
      std::string doc(42, 'a');
      doc.front() = doc.back() = '"';
      doc.insert(1 + at, special);
      compare(doc);
    }
  }
  CHECK(disagreements == 0);
}

namespace {

// Random JSON documents from the grammar, then byte-level mutations of them.
class DocumentGenerator {
 public:
  explicit DocumentGenerator(std::uint64_t seed) : rng_(seed) {}

  std::string document() {
    std::string out;
    whitespace(out);
    value(out, 0);
    whitespace(out);
    return out;
  }

  // One insert, delete, replace, truncate or duplication at a random place.
  std::string mutate(std::string doc) {
    const std::size_t at = pick(doc.size() + 1);
    switch (pick(6)) {
      case 0: doc.insert(doc.begin() + static_cast<std::ptrdiff_t>(at), interesting_byte()); break;
      case 1:
        if (at < doc.size()) doc.erase(at, 1);
        break;
      case 2:
      case 3:
        if (at < doc.size()) doc[at] = interesting_byte();
        break;
      case 4: doc.resize(at); break;
      default: {
        const std::size_t length = pick(6);
        if (at + length <= doc.size()) doc.insert(at, doc.substr(at, length));
        break;
      }
    }
    return doc;
  }

 private:
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool chance(std::size_t one_in) { return pick(one_in) == 0; }

  char interesting_byte() {
    static constexpr std::string_view kBytes =
        "{}[],:\"\\/ \t\n\r0123456789-+.eEtrufalsnu"
        "\x00\x01\x1F\x7F\x80\xBF\xC0\xC1\xC2\xDF\xE0\xED\xEF\xF0\xF4\xF5\xFF"sv;
    if (chance(8)) return static_cast<char>(pick(256));
    return kBytes[pick(kBytes.size())];
  }

  void whitespace(std::string& out) {
    static constexpr std::string_view kSpace = " \t\n\r";
    while (chance(4)) out += kSpace[pick(kSpace.size())];
  }

  void value(std::string& out, int depth) {
    switch (pick(depth >= 4 ? 4 : 6)) {
      case 0: string(out); break;
      case 1: number(out); break;
      case 2: out += std::string_view(pick(3) == 0 ? "true" : pick(2) == 0 ? "false" : "null"); break;
      case 3: number(out); break;
      case 4: {
        out += '[';
        whitespace(out);
        const std::size_t n = pick(4);
        for (std::size_t i = 0; i < n; ++i) {
          if (i > 0) out += ',';
          whitespace(out);
          value(out, depth + 1);
          whitespace(out);
        }
        out += ']';
        break;
      }
      default: {
        out += '{';
        whitespace(out);
        const std::size_t n = pick(4);
        for (std::size_t i = 0; i < n; ++i) {
          if (i > 0) out += ',';
          whitespace(out);
          string(out);
          whitespace(out);
          out += ':';
          whitespace(out);
          value(out, depth + 1);
          whitespace(out);
        }
        out += '}';
        break;
      }
    }
  }

  void digits(std::string& out, std::size_t max) {
    const std::size_t n = 1 + pick(max);
    for (std::size_t i = 0; i < n; ++i) out += static_cast<char>('0' + pick(10));
  }

  void number(std::string& out) {
    if (chance(3)) out += '-';
    if (chance(4)) {
      out += '0';
    } else {
      out += static_cast<char>('1' + pick(9));
      if (chance(2)) digits(out, 20);
    }
    if (chance(3)) {
      out += '.';
      digits(out, 8);
    }
    if (chance(3)) {
      out += chance(2) ? 'e' : 'E';
      if (chance(2)) out += chance(2) ? '+' : '-';
      if (chance(3)) {
        out += std::to_string(290 + pick(30));  // around where a double overflows
      } else {
        digits(out, 3);
      }
    }
  }

  void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  void hex4(std::string& out, std::uint32_t unit) {
    constexpr char kHex[] = "0123456789abcdefABCDEF";
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) {
      const std::uint32_t nibble = (unit >> shift) & 0xF;
      out += nibble >= 10 && chance(2) ? kHex[nibble + 6] : kHex[nibble];  // either case of a-f
    }
  }

  void string(std::string& out) {
    out += '"';
    const std::size_t n = pick(chance(5) ? 40 : 8);
    for (std::size_t i = 0; i < n; ++i) {
      switch (pick(10)) {
        case 0: {
          static constexpr std::string_view kEscapes = "\"\\/bfnrt";
          out += '\\';
          out += kEscapes[pick(kEscapes.size())];
          break;
        }
        case 1: {
          std::uint32_t unit = static_cast<std::uint32_t>(pick(0x10000));
          if (unit >= 0xD800 && unit <= 0xDFFF) unit -= 0x800;
          hex4(out, unit);
          break;
        }
        case 2:
          hex4(out, 0xD800 + static_cast<std::uint32_t>(pick(0x400)));
          hex4(out, 0xDC00 + static_cast<std::uint32_t>(pick(0x400)));
          break;
        case 3: {
          // Any scalar value, weighted towards each encoding length and its edges.
          static constexpr std::uint32_t kEdges[] = {0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF};
          std::uint32_t cp = chance(3) ? kEdges[pick(8)] : 0x80 + static_cast<std::uint32_t>(pick(0x10FFFF - 0x80));
          if (cp >= 0xD800 && cp <= 0xDFFF) cp += 0x800;
          append_utf8(out, cp);
          break;
        }
        default: {
          const auto c = static_cast<char>(0x20 + pick(0x60));  // printable ASCII and DEL
          if (c == '"' || c == '\\') out += '\\';
          out += c;
        }
      }
    }
    out += '"';
  }

  std::mt19937_64 rng_;
};

}  // namespace

TEST_CASE("json check: agrees with nlohmann on random documents and their mutations", "[json]") {
  // The seed is fixed so a failure reproduces; the documents printed on failure are enough to add to the table.
  DocumentGenerator generator(20240611);
  constexpr int kDocuments = 30'000;
  constexpr int kMutationsPerDocument = 4;
  int disagreements = 0;
  int valid_documents = 0;
  int valid_mutants = 0;
  int invalid_mutants = 0;
  auto compare = [&](const std::string& doc) {
    const bool ours = is_valid_json(doc);
    const bool expected = expected_valid(doc);
    if (ours != expected && ++disagreements <= 10) {
      FAIL_CHECK("porter says " << (ours ? "valid" : "invalid") << ", nlohmann the opposite: " << shown(doc));
    }
    if (!ours && check_json(doc).offset > doc.size()) FAIL_CHECK("offset past the end: " << shown(doc));
    return ours;
  };
  for (int i = 0; i < kDocuments; ++i) {
    std::string doc = generator.document();
    valid_documents += compare(doc) ? 1 : 0;  // invalid only when a number overflows a double
    for (int m = 0; m < kMutationsPerDocument; ++m) {
      doc = generator.mutate(doc);  // mutations accumulate: 1, 2, 3, 4 edits away from valid
      (compare(doc) ? valid_mutants : invalid_mutants) += 1;
    }
  }
  CHECK(disagreements == 0);
  // Both answers are exercised (a generator that only produced garbage would prove little).
  CHECK(valid_documents > kDocuments * 8 / 10);
  CHECK(valid_mutants > kDocuments / 10);
  CHECK(invalid_mutants > kDocuments);
}

TEST_CASE("validate reports where and why args are not valid JSON", "[json][job]") {
  auto message = [](std::string args) {
    const auto status = porter::validate(porter::NewJob{.kind = "k", .args = std::move(args)});
    REQUIRE_FALSE(status.has_value());
    return status.error().message();
  };
  CHECK(message("{\"n\":123,\"to\":\"a\"}}") == "args are not valid JSON: trailing characters after the value: '}' at byte 18");
  CHECK(message("{\"n\":123,}") == "args are not valid JSON: unexpected '}' at byte 9");
  CHECK(message("[1,") == "args are not valid JSON: unexpected end of input at byte 3");
  CHECK(message("\"\x01\"") == "args are not valid JSON: unescaped control character in a string at byte 1");
  CHECK(message("{\"a\":\"\xC0\x80\"}") == "args are not valid JSON: invalid UTF-8 at byte 6");
  CHECK(message("[\x01]") == "args are not valid JSON: unexpected byte 0x01 at byte 1");
  CHECK(message(nested(kMaxJsonDepth + 1, "[", "", "]")) ==
        "args are not valid JSON: nesting deeper than 512 arrays/objects at byte 512");
  CHECK(porter::validate(porter::NewJob{.kind = "k", .args = "{\"n\":123,\"to\":\"a@b.c\"}"}).has_value());
}
