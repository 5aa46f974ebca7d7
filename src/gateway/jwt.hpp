// Bearer tokens: HS256 JSON Web Tokens (RFC 7519), minted and verified with OpenSSL.
#pragma once

#include "core/errors.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace intercomm::gateway {

using SystemClock = std::chrono::system_clock;

struct Claims {
  std::string subject;  // the user the token acts for
  std::int64_t expires_at = 0;
};

// A token for `subject`, valid for `ttl` from `now`: header {"alg":"HS256","typ":"JWT"},
// claims sub, iat, exp.
std::string mint_hs256(std::string_view secret, std::string_view subject, std::chrono::seconds ttl,
                       SystemClock::time_point now = SystemClock::now());

// Verifies a token: exactly three base64url parts; header alg must be HS256
// (so "none" and algorithm switching are refused); the HMAC-SHA256 signature
// compared in constant time; `sub` a valid user id; `exp` required and not
// passed; `nbf` and `iat` not in the future — each with `leeway` for clock
// skew. Any failure is ErrorCode::unauthorized with a message saying which
// check failed (safe to show: it names no secret).
core::Result<Claims> verify_hs256(std::string_view token, std::string_view secret,
                                  SystemClock::time_point now = SystemClock::now(),
                                  std::chrono::seconds leeway = std::chrono::seconds(30));

// base64url without padding (RFC 4648 §5), as JWTs use it.
std::string base64url_encode(std::string_view bytes);
// nullopt-like failure: false when `text` is not base64url.
bool base64url_decode(std::string_view text, std::string& out);

}  // namespace intercomm::gateway
