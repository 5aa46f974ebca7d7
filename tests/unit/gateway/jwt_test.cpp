#include "gateway/jwt.hpp"  // first: the header is self-contained

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <boost/json/serialize.hpp>

namespace intercomm::gateway {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

const SystemClock::time_point kNow = SystemClock::time_point(std::chrono::seconds(1'800'000'000));
constexpr std::string_view kSecret = "jwt-test-secret-0123456789abcdef0123456789";

// A token with any header and claims, HMAC-SHA256-signed with `secret`
// independently of the code under test.
std::string sign_text(const json::object& header, std::string_view claims, std::string_view secret) {
  const std::string input = base64url_encode(json::serialize(header)) + "." + base64url_encode(claims);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest, &length);
  return input + "." + base64url_encode(std::string(reinterpret_cast<const char*>(digest), length));
}

std::string sign(const json::object& header, const json::object& claims, std::string_view secret) {
  return sign_text(header, json::serialize(claims), secret);
}

const json::object kHeader{{"alg", "HS256"}, {"typ", "JWT"}};

std::string reason(const core::Result<Claims>& result) {
  return result ? "accepted" : result.error().message;
}

TEST(Base64Url, RoundTripsEveryLengthAndRefusesOtherAlphabets) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    std::string decoded;
    const std::string encoded = base64url_encode(bytes);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos) << encoded;
    ASSERT_TRUE(base64url_decode(encoded, decoded)) << encoded;
    EXPECT_EQ(decoded, bytes);
    bytes.push_back(static_cast<char>(i * 37));
  }
  std::string out;
  EXPECT_FALSE(base64url_decode("ab+c", out));
  EXPECT_FALSE(base64url_decode("abc=", out));
  EXPECT_FALSE(base64url_decode("a", out));
  EXPECT_FALSE(base64url_decode("a$bc", out));
}

TEST(Jwt, MintedTokenVerifiesForItsSubject) {
  const std::string token = mint_hs256(kSecret, "alice", 3600s, kNow);
  auto claims = verify_hs256(token, kSecret, kNow);
  ASSERT_TRUE(claims) << reason(claims);
  EXPECT_EQ(claims->subject, "alice");
  EXPECT_EQ(claims->expires_at, 1'800'003'600);
}

TEST(Jwt, WrongSecretOrTamperingIsRefused) {
  const std::string token = mint_hs256(kSecret, "alice", 3600s, kNow);
  EXPECT_EQ(reason(verify_hs256(token, "other", kNow)), "token: bad signature");
  // Swap the claims for bob's, keep alice's signature.
  const std::string bob = mint_hs256(kSecret, "bob", 3600s, kNow);
  const auto cut = [](const std::string& t, int part) {
    const auto a = t.find('.');
    const auto b = t.find('.', a + 1);
    return part == 0 ? t.substr(0, a) : part == 1 ? t.substr(a + 1, b - a - 1) : t.substr(b + 1);
  };
  const std::string spliced = cut(token, 0) + "." + cut(bob, 1) + "." + cut(token, 2);
  EXPECT_EQ(reason(verify_hs256(spliced, kSecret, kNow)), "token: bad signature");
}

TEST(Jwt, ExpiryNotBeforeAndIssuedAtHonourTheLeeway) {
  const std::string token = mint_hs256("k", "alice", 60s, kNow);
  EXPECT_TRUE(verify_hs256(token, "k", kNow + 60s + 30s));
  EXPECT_EQ(reason(verify_hs256(token, "k", kNow + 60s + 31s)), "token: expired");
  EXPECT_EQ(reason(verify_hs256(token, "k", kNow - 31s)), "token: issued in the future (iat)");
  EXPECT_TRUE(verify_hs256(token, "k", kNow - 29s));
}

TEST(Jwt, MalformedTokensAreRefusedWithAReason) {
  for (const char* token : {"", "abc", "a.b", "a.b.c.d", "!!!.e30.e30", "e30.!!!.e30"}) {
    auto result = verify_hs256(token, "k", kNow);
    ASSERT_FALSE(result) << token;
    EXPECT_EQ(result.error().code, core::ErrorCode::unauthorized);
  }
  EXPECT_FALSE(verify_hs256(std::string(5000, 'a'), "k", kNow));
}

TEST(Jwt, ClaimsAreChecked) {
  const auto verdict = [](const json::object& claims) {
    return reason(verify_hs256(sign(kHeader, claims, "k"), "k", kNow));
  };
  EXPECT_EQ(verdict({{"sub", "alice"}, {"exp", 1'800'000'100}}), "accepted");
  EXPECT_EQ(verdict({{"sub", "alice"}}), "token: exp is required");
  EXPECT_EQ(verdict({{"sub", "alice"}, {"exp", "tomorrow"}}), "token: exp must be a number");
  EXPECT_EQ(verdict({{"exp", 1'800'000'100}}), "token: sub must be a user id");
  EXPECT_EQ(verdict({{"sub", "not a user"}, {"exp", 1'800'000'100}}), "token: sub must be a user id");
  EXPECT_EQ(verdict({{"sub", "alice"}, {"exp", 1'800'000'100}, {"nbf", 1'800'000'031}}),
            "token: not valid yet (nbf)");
  EXPECT_EQ(verdict({{"sub", "alice"}, {"exp", 1'800'000'100}, {"nbf", 1'800'000'029}}), "accepted");
  EXPECT_EQ(verdict({{"sub", "alice"}, {"exp", 1'800'000'100}, {"iat", "x"}}), "token: iat must be a number");
  EXPECT_EQ(reason(verify_hs256(
                sign({{"alg", "HS256"}, {"typ", "JOSE+JSON"}}, {{"sub", "a"}, {"exp", 1'900'000'000}}, "k"),
                "k", kNow)),
            "token: typ must be JWT");
}

TEST(Jwt, AlgNoneAndAlgorithmSwitchingAreRefused) {
  const json::object claims{{"sub", "alice"}, {"iat", 1'800'000'000}, {"exp", 1'900'000'000}};
  const std::string body = base64url_encode(json::serialize(claims));
  for (const char* alg : {"none", "None", "RS256", "HS512", "ES256"}) {
    const std::string header = base64url_encode(json::serialize(json::object{{"alg", alg}, {"typ", "JWT"}}));
    EXPECT_EQ(reason(verify_hs256(header + "." + body + ".", "k", kNow)), "token: alg must be HS256") << alg;
    // A real HS256 signature over this input does not help either.
    const std::string hs256 = mint_hs256("k", "alice", 3600s, kNow);
    const std::string signature = hs256.substr(hs256.rfind('.') + 1);
    EXPECT_FALSE(verify_hs256(header + "." + body + "." + signature, "k", kNow)) << alg;
  }
  const std::string no_alg = base64url_encode(R"({"typ":"JWT"})");
  EXPECT_EQ(reason(verify_hs256(no_alg + "." + body + ".", "k", kNow)), "token: alg must be HS256");
}

// A fresh 2048-bit RSA key pair as PEM (private, public), made with OpenSSL here.
std::pair<std::string, std::string> rsa_key_pair() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  EXPECT_NE(key, nullptr);
  const auto pem = [key](bool private_part) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (private_part) {
      PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    } else {
      PEM_write_bio_PUBKEY(bio, key);
    }
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    return text;
  };
  auto pair = std::make_pair(pem(true), pem(false));
  EVP_PKEY_free(key);
  return pair;
}

TEST(TokenVerifier, AcceptsRs256WithTheConfiguredPublicKeyOnly) {
  const auto [private_pem, public_pem] = rsa_key_pair();
  const auto [other_private, other_public] = rsa_key_pair();
  auto verifier = TokenVerifier::make(std::string(kSecret), public_pem);
  ASSERT_TRUE(verifier) << verifier.error().message;

  auto token = mint_rs256(private_pem, "alice", 3600s, kNow);
  ASSERT_TRUE(token) << token.error().message;
  auto claims = verifier->verify(*token, kNow);
  ASSERT_TRUE(claims) << reason(claims);
  EXPECT_EQ(claims->subject, "alice");
  // HS256 with the secret still works beside it.
  EXPECT_TRUE(verifier->verify(mint_hs256(kSecret, "bob", 3600s, kNow), kNow));
  // Signed by another key: refused.
  auto forged = mint_rs256(other_private, "alice", 3600s, kNow);
  ASSERT_TRUE(forged);
  EXPECT_EQ(reason(verifier->verify(*forged, kNow)), "token: bad signature");
  // Expiry is checked for RS256 as for HS256.
  EXPECT_EQ(reason(verifier->verify(*token, kNow + 2h)), "token: expired");
}

TEST(TokenVerifier, RefusesAlgorithmSwitchingToTheHmacOfThePublicKey) {
  const auto [private_pem, public_pem] = rsa_key_pair();
  // The classic attack: HS256 "signed" with the public key as the HMAC secret.
  const json::object claims{{"sub", "alice"}, {"exp", 1'900'000'000}};
  const std::string switched = sign(kHeader, claims, public_pem);
  auto rs256_only = TokenVerifier::make("", public_pem);
  ASSERT_TRUE(rs256_only);
  EXPECT_EQ(reason(rs256_only->verify(switched, kNow)), "token: alg must be RS256");
  auto both = TokenVerifier::make(std::string(kSecret), public_pem);
  ASSERT_TRUE(both);
  EXPECT_EQ(reason(both->verify(switched, kNow)), "token: bad signature");
  // An RS256 header over an HMAC signature, and "none": refused.
  EXPECT_EQ(reason(both->verify(sign({{"alg", "RS256"}, {"typ", "JWT"}}, claims, kSecret), kNow)),
            "token: bad signature");
  const std::string none =
      base64url_encode(R"({"alg":"none"})") + "." + base64url_encode(json::serialize(claims)) + ".";
  EXPECT_EQ(reason(both->verify(none, kNow)), "token: alg must be HS256 or RS256");
  // HS256-only verifiers refuse RS256 tokens.
  auto hs256_only = TokenVerifier::make(std::string(kSecret));
  ASSERT_TRUE(hs256_only);
  EXPECT_EQ(reason(hs256_only->verify(*mint_rs256(private_pem, "alice", 3600s, kNow), kNow)),
            "token: alg must be HS256");
}

// Found by jwt_fuzz: a time claim like 4e33 was cast to an integer (undefined).
TEST(TokenVerifier, HugeTimeClaimsAreClampedNotUndefined) {
  auto verifier = TokenVerifier::make(std::string(kSecret));
  ASSERT_TRUE(verifier);
  EXPECT_TRUE(verifier->verify(sign(kHeader, {{"sub", "alice"}, {"exp", 4e33}}, kSecret), kNow));
  EXPECT_EQ(reason(verifier->verify(sign(kHeader, {{"sub", "alice"}, {"exp", -4e33}}, kSecret), kNow)),
            "token: expired");
  EXPECT_EQ(reason(verifier->verify(sign(kHeader, {{"sub", "alice"}, {"exp", 4e33}, {"nbf", 1e300}}, kSecret), kNow)),
            "token: not valid yet (nbf)");
}

// Found by jwt_fuzz: "exp":0e330 reads as NaN, which no clamp makes a time.
TEST(TokenVerifier, ATimeClaimThatIsNotANumberIsRefused) {
  auto verifier = TokenVerifier::make(std::string(kSecret));
  ASSERT_TRUE(verifier);
  EXPECT_EQ(reason(verifier->verify(sign_text(kHeader, R"({"sub":"alice","exp":0e330})", kSecret), kNow)),
            "token: exp must be a number");
  EXPECT_EQ(reason(verifier->verify(
                sign_text(kHeader, R"({"sub":"alice","exp":4000000000,"nbf":0e999})", kSecret), kNow)),
            "token: nbf must be a number");
  EXPECT_TRUE(verifier->verify(sign_text(kHeader, R"({"sub":"alice","exp":1e999})", kSecret), kNow))
      << "infinity is a time far away: clamped";
}

TEST(TokenVerifier, ChecksAudienceAndIssuerWhenConfigured) {
  const std::string secret(kSecret);
  auto verifier = TokenVerifier::make(secret, "", TokenRules{"intercomm", "https://id.example.com"});
  ASSERT_TRUE(verifier) << verifier.error().message;
  const auto token = [&](json::object extra) {
    json::object claims{{"sub", "alice"}, {"exp", 1'900'000'000}};
    for (auto& [name, value] : extra) claims[name] = value;
    return sign(kHeader, claims, kSecret);
  };
  EXPECT_TRUE(verifier->verify(token({{"aud", "intercomm"}, {"iss", "https://id.example.com"}}), kNow));
  EXPECT_TRUE(verifier->verify(
      token({{"aud", json::array{"billing", "intercomm"}}, {"iss", "https://id.example.com"}}), kNow));
  EXPECT_EQ(reason(verifier->verify(token({{"aud", "billing"}, {"iss", "https://id.example.com"}}), kNow)),
            "token: aud does not name this service");
  EXPECT_EQ(reason(verifier->verify(token({{"iss", "https://id.example.com"}}), kNow)),
            "token: aud does not name this service");
  EXPECT_EQ(reason(verifier->verify(token({{"aud", "intercomm"}, {"iss", "https://evil.example"}}), kNow)),
            "token: iss is not the expected issuer");
  EXPECT_EQ(reason(verifier->verify(token({{"aud", "intercomm"}}), kNow)), "token: iss is not the expected issuer");
  // Not configured: not checked.
  auto open = TokenVerifier::make(secret);
  ASSERT_TRUE(open);
  EXPECT_TRUE(open->verify(token({{"aud", "billing"}}), kNow));
}

// The second use of a token is answered from the verifier's cache: its time
// claims must still be checked against the time of that use.
TEST(TokenVerifier, ARememberedTokenIsStillCheckedForTime) {
  auto verifier = TokenVerifier::make(std::string(kSecret));
  ASSERT_TRUE(verifier);
  const std::int64_t now_s = 1'800'000'000;
  const auto timed = sign({{"alg", "HS256"}}, {{"sub", "alice"}, {"nbf", now_s}, {"iat", now_s}, {"exp", now_s + 60}},
                          kSecret);
  const auto first = verifier->verify(timed, kNow);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first->not_before, now_s);
  const auto copy = *verifier;  // copies share the cache
  const auto again = copy.verify(timed, kNow + 10s);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->subject, "alice");
  EXPECT_EQ(again->expires_at, now_s + 60);
  EXPECT_EQ(reason(copy.verify(timed, kNow + 91s)), "token: expired");
  EXPECT_EQ(reason(copy.verify(timed, kNow - 31s)), "token: not valid yet (nbf)");
  EXPECT_TRUE(copy.verify(timed, kNow + 89s));  // within the leeway, as the first time

  // The same claims under another signature are another token: verified in full.
  auto forged = timed;
  char& c = forged[forged.size() - 10];  // inside the signature, clear of its unused low bits
  c = c == 'A' ? 'B' : 'A';
  EXPECT_EQ(reason(copy.verify(forged, kNow)), "token: bad signature");
}

// Many distinct tokens (more than the cache holds) all verify, and each one's subject is its own.
TEST(TokenVerifier, ManyTokensEachKeepTheirOwnSubject) {
  auto verifier = TokenVerifier::make(std::string(kSecret));
  ASSERT_TRUE(verifier);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 20000; i += 7) {
      const std::string user = "user_" + std::to_string(i);
      const auto claims = verifier->verify(mint_hs256(kSecret, user, 60s, kNow), kNow);
      ASSERT_TRUE(claims) << user;
      ASSERT_EQ(claims->subject, user);
    }
  }
}

TEST(TokenVerifier, RefusesUnusableKeys) {
  EXPECT_FALSE(TokenVerifier::make("", ""));
  // A secret shorter than the hash can be guessed offline from one token.
  auto short_secret = TokenVerifier::make(std::string(31, 'k'));
  ASSERT_FALSE(short_secret);
  EXPECT_NE(short_secret.error().message.find("at least 32 bytes"), std::string::npos)
      << short_secret.error().message;
  EXPECT_TRUE(TokenVerifier::make(std::string(32, 'k')));
  auto garbage =
      TokenVerifier::make(std::string(kSecret), "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, core::ErrorCode::invalid_params);
  EXPECT_FALSE(mint_rs256("not a key", "alice", 60s, kNow));
  EXPECT_EQ(reason(TokenVerifier().verify(mint_hs256("k", "alice", 60s, kNow), kNow)),
            "token: no key is configured to verify tokens");
}

}  // namespace
}  // namespace intercomm::gateway
