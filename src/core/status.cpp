#include "porter/status.h"

namespace porter {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::permission_denied: return "permission_denied";
    case ErrorCode::stale_lease: return "stale_lease";
    case ErrorCode::wrong_state: return "wrong_state";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::corruption: return "corruption";
    case ErrorCode::unsupported: return "unsupported";
    case ErrorCode::timeout: return "timeout";
    case ErrorCode::internal: return "internal";
  }
  return "unknown";
}

std::string Error::to_string() const {
  std::string out(porter::to_string(code_));
  out += ": ";
  out += message_;
  return out;
}

}  // namespace porter
