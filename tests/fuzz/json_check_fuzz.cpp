// libFuzzer target: detail::check_json on any bytes, checked against its
// oracle, nlohmann::json::accept. They must agree except for the three
// deliberate rejections that json_check.h lists (a byte order mark, a NUL
// outside a string, nesting deeper than kMaxJsonDepth); a fault's offset
// must lie within the text, and describing it must not crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/json_check.h"

namespace {

[[noreturn]] void disagree(std::string_view text, const char* what) {
  std::fprintf(stderr, "json_check_fuzz: %s for %zu bytes\n", what, text.size());
  std::abort();
}

// True when the check may reject what nlohmann accepts (json_check.h's list).
bool deliberate_rejection(std::string_view text, porter::detail::JsonFault fault) {
  using porter::detail::JsonFault;
  return fault == JsonFault::byte_order_mark || fault == JsonFault::too_deep ||
         text.find('\0') != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto check = porter::detail::check_json(text);
  const bool oracle = nlohmann::json::accept(text.begin(), text.end());
  if (check.ok()) {
    if (!oracle) disagree(text, "check_json accepts what nlohmann rejects");
    return 0;
  }
  if (check.offset > text.size()) disagree(text, "fault offset past the end");
  if (oracle && !deliberate_rejection(text, check.fault)) disagree(text, "check_json rejects what nlohmann accepts");
  if (porter::detail::describe_json_fault(text, check).empty()) disagree(text, "empty fault description");
  return 0;
}
