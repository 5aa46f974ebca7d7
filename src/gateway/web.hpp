// The web chat page (web/, compiled into the binary) and the development sign-in.
#pragma once

#include "gateway/metrics.hpp"
#include "gateway/rate_limit.hpp"
#include "gateway/router.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace intercomm::gateway {

struct WebAsset {
  std::string_view content_type;
  std::string_view content;
};

// The file of web/ at `path` ("/index.html", "/app.js" ...), if any.
std::optional<WebAsset> web_asset(std::string_view path);

struct WebOptions {
  // Set only by `intercomm run` when it generated its own secret: then
  // POST /v1/dev/token {"user"} mints a 24 h token for any user (a sign-in by
  // name for trying the page). Empty: that route does not exist.
  std::string dev_secret;
  RateLimit dev_token_limit{0.5, 10};  // per client address
  Metrics* metrics = nullptr;          // counts the requests that limit refuses
};

// GET / (the chat page), GET /app.js, GET /style.css; and, in development,
// POST /v1/dev/token (OPTIONS answers 204 so the page knows).
void add_web_routes(Router& router, WebOptions options);

}  // namespace intercomm::gateway
