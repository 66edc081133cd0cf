// The page's files, compiled into the binary from src/http/assets/ by
// embed_assets.cmake (no CDN, nothing fetched at build or run time).
#pragma once

#include <span>
#include <string_view>

namespace porter::http::detail {

struct Asset {
  std::string_view path;  // "/", "/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

std::span<const Asset> assets();

}  // namespace porter::http::detail
