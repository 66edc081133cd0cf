// The page: static files compiled in, served with a strict Content Security
// Policy (no inline script, nothing from elsewhere), so even a mistake in the
// page could not run script from job data.
#include <httplib.h>

#include "http/assets.h"
#include "http/context.h"

namespace porter::http::detail {

void add_asset_routes(httplib::Server& server, Context&) {
  for (const Asset& asset : assets()) {
    server.Get(std::string(asset.path), [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                     "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
      res.set_header("X-Frame-Options", "DENY");
      res.set_header("Cache-Control", "no-cache");
      const bool text = asset.content_type.starts_with("text/");
      res.set_content(std::string(asset.body), std::string(asset.content_type) + (text ? "; charset=utf-8" : ""));
    });
  }
}

}  // namespace porter::http::detail
