// Webhook signatures (OpenSSL) and the address filter; the client is in webhook_client.cpp.
#include "mda/webhook.hpp"

#include <fmt/core.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <boost/asio/ip/address.hpp>

namespace intercomm::mda {
namespace {

namespace asio = boost::asio;

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

std::string unbase64(std::string_view text) {
  std::string out(3 * ((text.size() + 3) / 4), '\0');
  const int decoded =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (decoded < 0) return std::string(text);  // not base64: the text is the key
  std::size_t padding = 0;
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) ++padding;
  out.resize(static_cast<std::size_t>(decoded) - padding);
  return out;
}

bool is_private_v4(const asio::ip::address_v4::bytes_type& b) {
  return b[0] == 0 || b[0] == 10 || b[0] == 127 || (b[0] == 100 && (b[1] & 0xC0) == 64) ||
         (b[0] == 169 && b[1] == 254) || (b[0] == 172 && (b[1] & 0xF0) == 16) ||
         (b[0] == 192 && b[1] == 0 && b[2] == 0) || (b[0] == 192 && b[1] == 168) ||
         (b[0] == 198 && (b[1] & 0xFE) == 18) || b[0] >= 224;  // multicast, 240/4 and broadcast
}

}  // namespace

WebhookEvent webhook_event(const core::Message& message) {
  if (message.retracted_at.empty()) return {"message.received", message.message_id, ""};
  return {"message.retracted", message.message_id + ".retracted", "/retracted"};
}

std::string sign_webhook(std::string_view secret, std::string_view id, std::int64_t timestamp,
                         std::string_view body) {
  constexpr std::string_view kPrefix = "whsec_";
  const std::string key = unbase64(secret.starts_with(kPrefix) ? secret.substr(kPrefix.size()) : secret);
  const std::string input = fmt::format("{}.{}.{}", id, timestamp, body);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest, &length);
  return "v1," + base64(std::string_view(reinterpret_cast<const char*>(digest), length));
}

bool is_private_address(std::string_view ip) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(std::string(ip), ec);
  if (ec) return true;
  if (address.is_v4()) return is_private_v4(address.to_v4().to_bytes());
  const auto v6 = address.to_v6();
  if (v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || v6.is_link_local() ||
      v6.is_site_local()) {
    return true;
  }
  const auto b = v6.to_bytes();
  if ((b[0] & 0xFE) == 0xFC) return true;  // fc00::/7 unique-local
  const auto embedded = [&](std::size_t at) {
    return is_private_v4(asio::ip::address_v4::bytes_type{b[at], b[at + 1], b[at + 2], b[at + 3]});
  };
  if (v6.is_v4_mapped()) return embedded(12);
  const auto zeros = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i)
      if (b[i] != 0) return false;
    return true;
  };
  if (zeros(0, 12)) return true;  // ::/96, IPv4-compatible: deprecated, never a public host
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && zeros(4, 12)) return embedded(12);  // NAT64
  if (b[0] == 0x20 && b[1] == 0x02) return embedded(2);  // 6to4
  return false;
}

WebhookAttempt post_webhook(const std::string& url, const std::string& body, const WebhookHeaders& headers,
                            const WebhookOptions& options) {
  WebhookClient client(options);
  return client.post(url, body, headers).get();
}

}  // namespace intercomm::mda
