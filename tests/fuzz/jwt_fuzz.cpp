// The token verifier. Two halves: the input as a whole token (anything the
// network sends), and the input as the claims (then the header) of a token
// correctly signed with the secret, so the fuzzer gets past the signature to
// the claim checks. A token that verifies must name a valid user.
#include "core/message.hpp"
#include "gateway/jwt.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef0123456789abcdef";

std::string signed_token(std::string_view header, std::string_view claims) {
  using intercomm::gateway::base64url_encode;
  const std::string input = base64url_encode(header) + "." + base64url_encode(claims);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest, &length);
  return input + "." + base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto verifier = intercomm::gateway::TokenVerifier::make(
      std::string(kSecret), "", intercomm::gateway::TokenRules{"intercomm", "fuzz"});
  if (!verifier) std::abort();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto check = [](const intercomm::core::Result<intercomm::gateway::Claims>& claims) {
    if (claims && !intercomm::core::is_user_id(claims->subject)) {
      std::fprintf(stderr, "a verified token names no valid user: %s\n", claims->subject.c_str());
      std::abort();
    }
    if (!claims && claims.error().code != intercomm::core::ErrorCode::unauthorized) std::abort();
  };
  check(verifier->verify(input));
  check(verifier->verify(signed_token(R"({"alg":"HS256","typ":"JWT"})", input)));
  check(verifier->verify(signed_token(input, R"({"sub":"alice","exp":4000000000,"aud":"intercomm","iss":"fuzz"})")));
  return 0;
}
