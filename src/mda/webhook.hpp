// Webhook POSTs: Standard Webhooks signatures and a bounded, checked HTTP(S) client.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace intercomm::mda {

// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the secret's
// bytes: the base64 after "whsec_" (Standard Webhooks). Receivers verify it
// with any Standard Webhooks library.
std::string sign_webhook(std::string_view secret, std::string_view id, std::int64_t timestamp,
                         std::string_view body);

// Loopback, private (RFC 1918, IPv6 unique-local), link-local, unspecified,
// multicast, or not an IP address at all.
bool is_private_address(std::string_view ip);

struct WebhookOptions {
  std::chrono::milliseconds timeout{10000};  // the whole attempt: resolve, connect, TLS, write, read
  bool allow_private = false;                // tests and closed networks only
  std::size_t max_response_bytes = 16 * 1024;
};

struct WebhookAttempt {
  int status = 0;                        // HTTP status; 0 when none came back
  std::chrono::milliseconds latency{0};  // from start to the response head (or the failure)
  std::string error;                     // empty when a response came back

  bool delivered() const { return status >= 200 && status < 300; }
};

// POSTs `body` (application/json) with `headers` to `url` (http or https).
// https verifies the certificate chain against the system's roots and the
// host name; redirects are not followed (a 3xx is not delivered); at most
// max_response_bytes of the response are read; addresses that
// is_private_address() names are refused unless allowed. Blocking, bounded
// by options.timeout: call it from a worker thread.
WebhookAttempt post_webhook(const std::string& url, const std::string& body,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            const WebhookOptions& options);

}  // namespace intercomm::mda
