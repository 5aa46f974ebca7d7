// Bearer tokens checked, limits spent, and refusals shaped.
#include "gateway/auth.hpp"

#include <fmt/core.h>
#include <boost/json/object.hpp>

#include <algorithm>
#include <cctype>

namespace intercomm::gateway {

using core::Error;
using core::ErrorCode;

Error rate_limited(std::string_view limit, std::chrono::milliseconds retry_after) {
  const auto seconds = std::max<std::int64_t>(1, (retry_after.count() + 999) / 1000);
  Error error = Error::of(ErrorCode::rate_limited,
                          fmt::format("too many requests ({}): retry after {} s", limit, seconds));
  error.data = boost::json::object{{"limit", limit}, {"retry_after", seconds}};
  return error;
}

HttpResponse refusal(const Error& error) {
  auto response = error_response(error);
  if (error.code == ErrorCode::unauthorized) {
    response.headers.emplace_back(
        "WWW-Authenticate",
        fmt::format(R"(Bearer error="invalid_token", error_description="{}")", error.message));
  } else if (error.code == ErrorCode::rate_limited && error.data.is_object()) {
    if (const auto* seconds = error.data.as_object().if_contains("retry_after")) {
      response.headers.emplace_back("Retry-After", std::to_string(seconds->to_number<std::int64_t>()));
    }
  }
  return response;
}

Guard::Guard(TokenVerifier verifier, RateLimits limits, Metrics* metrics)
    : verifier_(std::move(verifier)),
      metrics_(metrics),
      sends_(limits.send),
      subscriptions_(limits.subscription),
      typings_(limits.typing),
      auth_failures_(limits.auth_failure) {}

core::Result<Claims> Guard::authenticate(const HttpRequest& request, std::optional<std::string_view> token) {
  // An address that keeps failing is refused before its token is looked at:
  // guessing learns nothing while the limit holds.
  if (const auto wait = auth_failures_.empty(request.remote)) {
    if (metrics_) metrics_->rate_limited("auth_failure");
    return rate_limited("auth_failure", *wait);
  }
  core::Result<Claims> claims = Error::of(ErrorCode::unauthorized, "Authorization: Bearer <token> required");
  if (token) {
    claims = verifier_.verify(*token);
  } else if (const std::string header = request.header("authorization"); !header.empty()) {
    // The scheme is case-insensitive (RFC 9110 §11.1): Bearer, bearer, BEARER.
    constexpr std::string_view kScheme = "bearer";
    const std::string_view value = header;
    const bool bearer = value.size() > kScheme.size() + 1 && value[kScheme.size()] == ' ' &&
                        std::equal(kScheme.begin(), kScheme.end(), value.begin(), [](char a, char b) {
                          return a == std::tolower(static_cast<unsigned char>(b));
                        });
    const auto start = bearer ? value.find_first_not_of(' ', kScheme.size()) : std::string_view::npos;
    claims = start == std::string_view::npos
                 ? core::Result<Claims>(Error::of(ErrorCode::unauthorized, "Authorization: must be Bearer <token>"))
                 : verifier_.verify(value.substr(start));
  }
  if (!claims) (void)auth_failures_.take(request.remote);
  return claims;
}

core::Result<void> Guard::spend(Limit limit, const std::string& user) {
  auto& limiter = limit == Limit::send ? sends_ : limit == Limit::typing ? typings_ : subscriptions_;
  const std::string_view name = limit == Limit::send ? "send" : limit == Limit::typing ? "typing" : "subscription";
  if (const auto wait = limiter.take(user)) {
    if (metrics_) metrics_->rate_limited(name);
    return rate_limited(name, *wait);
  }
  return {};
}

}  // namespace intercomm::gateway
