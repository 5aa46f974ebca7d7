// Bearer tokens: HS256 and RS256 JSON Web Tokens (RFC 7519), minted and verified with OpenSSL.
#pragma once

#include "core/errors.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace intercomm::gateway {

using SystemClock = std::chrono::system_clock;

struct Claims {
  std::string subject;  // the user the token acts for
  std::int64_t expires_at = 0;
  // The time claims besides exp (seconds since the epoch), when the token has them.
  std::optional<std::int64_t> not_before;  // nbf
  std::optional<std::int64_t> issued_at;   // iat
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

// A token for `subject` signed RS256 with a PEM private key (for tools and
// tests: the gateway only verifies). Fails when the key is not an RSA private key.
core::Result<std::string> mint_rs256(std::string_view private_key_pem, std::string_view subject,
                                     std::chrono::seconds ttl,
                                     SystemClock::time_point now = SystemClock::now());

// Claims a deployment requires besides the signature, each when not empty:
// `iss` equal to issuer; `aud` (a string or an array) naming audience.
struct TokenRules {
  std::string audience;
  std::string issuer;
};

// The gateway's verifier: HS256 with the secret, and RS256 with a public key
// when one is configured. The header's alg picks the check, and each alg only
// ever uses its own key, so a token "signed" HS256 with the public key as the
// secret (algorithm switching) fails, as do "none" and every other alg. The
// claims are checked as verify_hs256 describes. A token verified once is
// remembered (by the SHA-256 of its text, in a bounded cache shared by the
// copies) and its time claims alone are checked again on its next use: a
// client sends the same token with every request. Thread-safe; cheap to copy.
class TokenVerifier {
 public:
  // `public_key_pem` may be empty (HS256 only); `secret` may be empty when a
  // public key is given (RS256 only). Fails when neither is usable, or the
  // secret is shorter than core::kMinSecretBytes.
  static core::Result<TokenVerifier> make(std::string secret, std::string_view public_key_pem = {},
                                          TokenRules rules = {});

  core::Result<Claims> verify(std::string_view token, SystemClock::time_point now = SystemClock::now(),
                              std::chrono::seconds leeway = std::chrono::seconds(30)) const;

 private:
  struct Keys;
  class Cache;
  std::shared_ptr<const Keys> keys_;
  std::shared_ptr<Cache> cache_;
};

// base64url without padding (RFC 4648 §5), as JWTs use it.
std::string base64url_encode(std::string_view bytes);
// nullopt-like failure: false when `text` is not base64url.
bool base64url_decode(std::string_view text, std::string& out);

}  // namespace intercomm::gateway
