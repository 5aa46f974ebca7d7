// Who may ask, and how often: bearer tokens, per-user rate limits, and a
// per-address limit on failed authentication.
#pragma once

#include "gateway/http.hpp"
#include "gateway/jwt.hpp"
#include "gateway/metrics.hpp"
#include "gateway/rate_limit.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace intercomm::gateway {

// -32029 "rate limited": `limit` names the limit, `retry_after` is in seconds.
core::Error rate_limited(std::string_view limit, std::chrono::milliseconds retry_after);

// The answer to an authentication or limit error: 401 with WWW-Authenticate,
// 429 with Retry-After, else the error's own status.
HttpResponse refusal(const core::Error& error);

class Guard {
 public:
  Guard(TokenVerifier verifier, RateLimits limits, Metrics* metrics);

  // The claims of the request's bearer token (`Authorization: Bearer`, any
  // case; or `token` when given, from ?access_token=). Fails 401, or 429
  // without looking at the token when the request's address has failed
  // too often lately (limits.auth_failure).
  core::Result<Claims> authenticate(const HttpRequest& request,
                                    std::optional<std::string_view> token = std::nullopt);

  enum class Limit { send, subscription, typing };
  // Spends one of `user`'s requests of this kind; 429 when none is left.
  core::Result<void> spend(Limit limit, const std::string& user);

 private:
  TokenVerifier verifier_;
  Metrics* metrics_;
  RateLimiter sends_;
  RateLimiter subscriptions_;
  RateLimiter typings_;
  RateLimiter auth_failures_;
};

}  // namespace intercomm::gateway
