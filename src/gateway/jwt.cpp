// HS256 and RS256 JWTs: base64url via OpenSSL's EVP block coding, HMAC and RSA via OpenSSL.
#include "gateway/jwt.hpp"

#include "core/limits.hpp"
#include "core/message.hpp"

#include <fmt/core.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cmath>
#include <array>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <optional>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

Error refused(std::string_view why) {
  return Error::of(ErrorCode::unauthorized, fmt::format("token: {}", why));
}

std::string hmac_sha256(std::string_view secret, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::int64_t seconds_since_epoch(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

using PKey = std::shared_ptr<EVP_PKEY>;

PKey read_pem_key(std::string_view pem, bool private_key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                &BIO_free);
  if (!bio) return nullptr;
  EVP_PKEY* key = private_key ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                              : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    EVP_PKEY_free(key);
    return nullptr;
  }
  return PKey(key, &EVP_PKEY_free);
}

// RSASSA-PKCS1-v1_5 with SHA-256 (JWS "RS256"); empty on failure.
std::string rsa_sha256_sign(EVP_PKEY* key, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    return {};
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return {};
  }
  signature.resize(length);
  return signature;
}

bool rsa_sha256_verify(EVP_PKEY* key, std::string_view data, std::string_view signature) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1;
}

std::string claims_part(std::string_view subject, std::chrono::seconds ttl, SystemClock::time_point now) {
  const std::int64_t issued = seconds_since_epoch(now);
  return base64url_encode(
      json::serialize(json::object{{"sub", subject}, {"iat", issued}, {"exp", issued + ttl.count()}}));
}

// Which keys a verification may use: the secret for HS256, the public key for RS256.
struct KeyRing {
  std::string_view secret;
  EVP_PKEY* public_key = nullptr;
  const TokenRules* rules = nullptr;  // aud and iss to require, when set
};

core::Result<Claims> verify_with(std::string_view token, const KeyRing& keys, SystemClock::time_point now,
                                 std::chrono::seconds leeway);

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

bool base64url_decode(std::string_view text, std::string& out) {
  if (text.size() % 4 == 1) return false;
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return false;  // not the URL-safe alphabet, or padding
    }
  }
  const std::size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');
  out.assign(3 * standard.size() / 4, '\0');
  const int decoded = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(standard.data()),
                                      static_cast<int>(standard.size()));
  if (decoded < 0) return false;
  out.resize(static_cast<std::size_t>(decoded) - padding);
  return true;
}

std::string mint_hs256(std::string_view secret, std::string_view subject, std::chrono::seconds ttl,
                       SystemClock::time_point now) {
  const std::string signing_input =
      base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + claims_part(subject, ttl, now);
  return signing_input + "." + base64url_encode(hmac_sha256(secret, signing_input));
}

core::Result<std::string> mint_rs256(std::string_view private_key_pem, std::string_view subject,
                                     std::chrono::seconds ttl, SystemClock::time_point now) {
  const PKey key = read_pem_key(private_key_pem, true);
  if (!key) return Error::of(ErrorCode::invalid_params, "private key: not an RSA private key in PEM");
  const std::string signing_input =
      base64url_encode(R"({"alg":"RS256","typ":"JWT"})") + "." + claims_part(subject, ttl, now);
  const std::string signature = rsa_sha256_sign(key.get(), signing_input);
  if (signature.empty()) return Error::of(ErrorCode::internal_error, "private key: signing failed");
  return signing_input + "." + base64url_encode(signature);
}

core::Result<Claims> verify_hs256(std::string_view token, std::string_view secret,
                                  SystemClock::time_point now, std::chrono::seconds leeway) {
  return verify_with(token, KeyRing{secret, nullptr}, now, leeway);
}

struct TokenVerifier::Keys {
  std::string secret;
  PKey public_key;
  TokenRules rules;
};

core::Result<TokenVerifier> TokenVerifier::make(std::string secret, std::string_view public_key_pem,
                                                TokenRules rules) {
  auto keys = std::make_shared<Keys>();
  keys->secret = std::move(secret);
  keys->rules = std::move(rules);
  if (!keys->secret.empty() && keys->secret.size() < core::kMinSecretBytes) {
    return Error::of(ErrorCode::invalid_params,
                     fmt::format("secret: at least {} bytes, this one has {}", core::kMinSecretBytes,
                                 keys->secret.size()));
  }
  if (!public_key_pem.empty()) {
    keys->public_key = read_pem_key(public_key_pem, false);
    if (!keys->public_key) {
      return Error::of(ErrorCode::invalid_params,
                       "jwt public key: not an RSA public key in PEM (BEGIN PUBLIC KEY)");
    }
  }
  if (keys->secret.empty() && !keys->public_key) {
    return Error::of(ErrorCode::invalid_params, "no token key: set a secret or a public key");
  }
  TokenVerifier verifier;
  verifier.keys_ = std::move(keys);
  verifier.cache_ = std::make_shared<Cache>();
  return verifier;
}

// Verified tokens by the SHA-256 of their text, sharded by its first byte.
// A full shard first drops what expired, then everything: forgetting costs a
// verification, never a wrong answer.
class TokenVerifier::Cache {
 public:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kPerShard = 1024;
  using Digest = std::array<unsigned char, 32>;

  static Digest digest_of(std::string_view token) {
    Digest digest{};
    unsigned int length = 0;
    EVP_Digest(token.data(), token.size(), digest.data(), &length, EVP_sha256(), nullptr);
    return digest;
  }

  std::optional<Claims> find(const Digest& digest) {
    auto& shard = shards_[digest[0] % kShards];
    std::lock_guard lock(shard.mu);
    const auto found = shard.entries.find(digest);
    if (found == shard.entries.end()) return std::nullopt;
    return found->second;
  }

  void remember(const Digest& digest, const Claims& claims, std::int64_t now_s) {
    auto& shard = shards_[digest[0] % kShards];
    std::lock_guard lock(shard.mu);
    if (shard.entries.size() >= kPerShard) {
      std::erase_if(shard.entries, [&](const auto& entry) { return entry.second.expires_at < now_s; });
      if (shard.entries.size() >= kPerShard) shard.entries.clear();
    }
    shard.entries.insert_or_assign(digest, claims);
  }

 private:
  struct DigestHash {
    std::size_t operator()(const Digest& digest) const noexcept {
      std::size_t hash;  // a prefix of a cryptographic digest is already uniform
      std::memcpy(&hash, digest.data() + 1, sizeof hash);
      return hash;
    }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<Digest, Claims, DigestHash> entries;
  };
  std::array<Shard, kShards> shards_;
};

core::Result<Claims> TokenVerifier::verify(std::string_view token, SystemClock::time_point now,
                                           std::chrono::seconds leeway) const {
  if (!keys_) return refused("no key is configured to verify tokens");
  const auto digest = Cache::digest_of(token);
  const std::int64_t now_s = seconds_since_epoch(now);
  if (auto known = cache_->find(digest)) {
    // Signature, header and sub were checked when it was remembered; time moves.
    const bool in_time = now_s <= known->expires_at + leeway.count() &&
                         (!known->not_before || now_s + leeway.count() >= *known->not_before) &&
                         (!known->issued_at || *known->issued_at <= now_s + leeway.count());
    if (in_time) return *known;
    // Out of its time: verified again, which says which claim failed.
  }
  auto claims = verify_with(token, KeyRing{keys_->secret, keys_->public_key.get(), &keys_->rules}, now, leeway);
  if (claims) cache_->remember(digest, *claims, now_s);
  return claims;
}

namespace {

core::Result<Claims> verify_with(std::string_view token, const KeyRing& keys, SystemClock::time_point now,
                                 std::chrono::seconds leeway) {
  if (token.size() > 4096) return refused("too long");
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return refused("must be three base64url parts separated by dots");
  }
  const std::string_view header_part = token.substr(0, first);
  const std::string_view claims_part = token.substr(first + 1, second - first - 1);
  const std::string_view signature_part = token.substr(second + 1);

  std::string header_text;
  std::string claims_text;
  std::string signature;
  if (!base64url_decode(header_part, header_text) || !base64url_decode(claims_part, claims_text) ||
      !base64url_decode(signature_part, signature)) {
    return refused("a part is not base64url");
  }
  boost::system::error_code ec;
  const json::value header = json::parse(header_text, ec);
  if (ec || !header.is_object()) return refused("header is not a JSON object");
  // Only the algorithms with a configured key; so never "none", and never a
  // key of one algorithm used for another.
  const bool hs256_allowed = !keys.secret.empty();
  const bool rs256_allowed = keys.public_key != nullptr;
  const auto* alg = header.as_object().if_contains("alg");
  const bool is_hs256 = alg != nullptr && alg->is_string() && alg->get_string() == "HS256";
  const bool is_rs256 = alg != nullptr && alg->is_string() && alg->get_string() == "RS256";
  if (!(is_hs256 && hs256_allowed) && !(is_rs256 && rs256_allowed)) {
    return refused(hs256_allowed && rs256_allowed ? "alg must be HS256 or RS256"
                   : rs256_allowed                ? "alg must be RS256"
                                                  : "alg must be HS256");
  }
  if (const auto* typ = header.as_object().if_contains("typ");
      typ && (!typ->is_string() || typ->get_string() != "JWT")) {
    return refused("typ must be JWT");
  }
  if (is_hs256) {
    const std::string expected = hmac_sha256(keys.secret, token.substr(0, second));
    if (signature.size() != expected.size() ||
        CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
      return refused("bad signature");
    }
  } else if (!rsa_sha256_verify(keys.public_key, token.substr(0, second), signature)) {
    return refused("bad signature");
  }

  const json::value claims = json::parse(claims_text, ec);
  if (ec || !claims.is_object()) return refused("claims are not a JSON object");
  const auto& object = claims.as_object();
  const auto* sub = object.if_contains("sub");
  if (sub == nullptr || !sub->is_string() || !core::is_user_id(sub->get_string())) {
    return refused("sub must be a user id");
  }
  for (std::string_view name : {"exp", "nbf", "iat"}) {
    const auto* value = object.if_contains(name);
    // Not NaN either: Boost.JSON reads 0e330 as 0 x 10^330, which is NaN
    // (found by jwt_fuzz: clamping NaN leaves it NaN, and its cast is undefined).
    const bool nan = value != nullptr && value->is_double() && std::isnan(value->get_double());
    if (value != nullptr && (!value->is_number() || nan)) return refused(fmt::format("{} must be a number", name));
  }
  const auto number = [&](std::string_view name) -> std::optional<std::int64_t> {
    const auto* value = object.if_contains(name);
    if (value == nullptr) return std::nullopt;
    // Clamped to about ±285 years around 1970: casting a larger double (4e33) to
    // an integer is undefined, and a time past ~2262 does not fit a system_clock
    // time_point. Nothing real is lost: such a token is expired or never is.
    constexpr double kFarthest = 9e9;
    return static_cast<std::int64_t>(std::clamp(value->to_number<double>(), -kFarthest, kFarthest));
  };
  const std::int64_t now_s = seconds_since_epoch(now);
  const auto exp = number("exp");
  if (!exp) return refused("exp is required");
  if (now_s > *exp + leeway.count()) return refused("expired");
  if (const auto nbf = number("nbf"); nbf && now_s + leeway.count() < *nbf)
    return refused("not valid yet (nbf)");
  if (const auto iat = number("iat"); iat && *iat > now_s + leeway.count())
    return refused("issued in the future (iat)");
  if (keys.rules != nullptr && !keys.rules->issuer.empty()) {
    const auto* iss = object.if_contains("iss");
    if (iss == nullptr || !iss->is_string() || iss->get_string() != keys.rules->issuer) {
      return refused("iss is not the expected issuer");
    }
  }
  if (keys.rules != nullptr && !keys.rules->audience.empty()) {
    // aud: one string, or an array of them (RFC 7519 §4.1.3).
    const auto* aud = object.if_contains("aud");
    const auto names = [&](const json::value& v) { return v.is_string() && v.get_string() == keys.rules->audience; };
    bool ours = aud != nullptr && names(*aud);
    if (aud != nullptr && aud->is_array()) ours = std::any_of(aud->get_array().begin(), aud->get_array().end(), names);
    if (!ours) return refused("aud does not name this service");
  }
  return Claims{std::string(sub->get_string()), *exp, number("nbf"), number("iat")};
}

}  // namespace

}  // namespace intercomm::gateway
