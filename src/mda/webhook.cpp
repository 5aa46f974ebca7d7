// The webhook client: one coroutine per attempt on a private io_context, Beast
// for HTTP, OpenSSL for TLS and the signature.
#include "mda/webhook.hpp"

#include <fmt/core.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

namespace intercomm::mda {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

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

struct Target {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;  // with the query
};

std::string failure(WebhookAttempt& attempt, std::string why) {
  attempt.error = std::move(why);
  return attempt.error;
}

// Connects to the first allowed address of `host`; refuses private ones unless allowed.
asio::awaitable<beast::error_code> connect(beast::tcp_stream& stream, const Target& target,
                                           const WebhookOptions& options, std::string& refused) {
  tcp::resolver resolver(stream.get_executor());
  auto [resolve_error, results] =
      co_await resolver.async_resolve(target.host, target.port, asio::as_tuple(asio::use_awaitable));
  if (resolve_error) co_return resolve_error;
  std::vector<tcp::endpoint> allowed;
  for (const auto& entry : results) {
    if (options.allow_private || !is_private_address(entry.endpoint().address().to_string())) {
      allowed.push_back(entry.endpoint());
    }
  }
  if (allowed.empty()) {
    refused = fmt::format("{} resolves only to private or loopback addresses", target.host);
    co_return beast::error_code(asio::error::access_denied);
  }
  auto [ec, endpoint] = co_await stream.async_connect(allowed, asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, beast::tcp_stream& lowest, const Target& target,
                               const std::string& body,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const WebhookOptions& options, Clock::time_point started,
                               WebhookAttempt& attempt) {
  http::request<http::string_body> request{http::verb::post, target.path, 11};
  request.set(http::field::host, target.host);
  request.set(http::field::user_agent, "intercomm-webhooks/1");
  request.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  (void)lowest;
  auto [write_error, written] =
      co_await http::async_write(stream, request, asio::as_tuple(asio::use_awaitable));
  if (write_error) {
    failure(attempt, "sending the request: " + write_error.message());
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  auto [read_error, read] =
      co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
  attempt.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  if (read_error) {
    failure(attempt, "reading the response: " + read_error.message());
    co_return;
  }
  attempt.status = static_cast<int>(parser.get().result_int());
  // Read (a bounded amount of) the body so the peer is not cut off mid-write;
  // what it says does not matter.
  (void)co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
}

}  // namespace

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
  beast::error_code ec;
  const auto address = asio::ip::make_address(std::string(ip), ec);
  if (ec) return true;
  if (address.is_unspecified() || address.is_loopback() || address.is_multicast()) return true;
  if (address.is_v4()) {
    const auto bytes = address.to_v4().to_bytes();
    return bytes[0] == 10 || (bytes[0] == 172 && (bytes[1] & 0xF0) == 16) ||
           (bytes[0] == 192 && bytes[1] == 168) || (bytes[0] == 169 && bytes[1] == 254) ||
           (bytes[0] == 100 && (bytes[1] & 0xC0) == 64) || bytes[0] == 0;
  }
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped())
    return is_private_address(asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string());
  const auto bytes = v6.to_bytes();
  return v6.is_link_local() || (bytes[0] & 0xFE) == 0xFC;  // fe80::/10, fc00::/7
}

WebhookAttempt post_webhook(const std::string& url, const std::string& body,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            const WebhookOptions& options) {
  WebhookAttempt attempt;
  const auto started = Clock::now();
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") || parsed->host().empty()) {
    failure(attempt, "not an http(s) URL");
    return attempt;
  }
  Target target;
  target.tls = parsed->scheme() == "https";
  target.host = std::string(parsed->encoded_host());
  if (target.host.size() > 2 && target.host.front() == '[')
    target.host = target.host.substr(1, target.host.size() - 2);
  target.port = parsed->has_port() ? std::string(parsed->port()) : (target.tls ? "443" : "80");
  target.path = std::string(parsed->encoded_resource());
  if (target.path.empty() || target.path.front() != '/') target.path = "/" + target.path;

  asio::io_context io;
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.set_default_verify_paths();
  tls.set_verify_mode(asio::ssl::verify_peer);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        beast::tcp_stream stream(io);
        stream.expires_after(options.timeout);
        std::string refused;
        if (auto ec = co_await connect(stream, target, options, refused); ec) {
          failure(attempt, refused.empty() ? "connecting: " + ec.message() : refused);
          co_return;
        }
        if (!target.tls) {
          co_await exchange(stream, stream, target, body, headers, options, started, attempt);
          co_return;
        }
        beast::ssl_stream<beast::tcp_stream> secure(std::move(stream), tls);
        if (!SSL_set_tlsext_host_name(secure.native_handle(), target.host.c_str())) {
          failure(attempt, "TLS: cannot set the server name");
          co_return;
        }
        secure.set_verify_callback(asio::ssl::host_name_verification(target.host));
        auto [handshake_error] = co_await secure.async_handshake(asio::ssl::stream_base::client,
                                                                 asio::as_tuple(asio::use_awaitable));
        if (handshake_error) {
          failure(attempt, "TLS: " + handshake_error.message());
          co_return;
        }
        co_await exchange(secure, beast::get_lowest_layer(secure), target, body, headers, options, started,
                          attempt);
      },
      asio::detached);
  io.run();
  if (attempt.status == 0 && attempt.error.empty()) failure(attempt, "no response");
  if (attempt.latency.count() == 0) {
    attempt.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  }
  return attempt;
}

}  // namespace intercomm::mda
