// Webhook POSTs: Standard Webhooks signatures and a bounded, checked, asynchronous HTTP(S) client.
#pragma once

#include "core/message.hpp"

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
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

// True for every address a webhook must not reach from the server's network:
// loopback, private (RFC 1918, IPv6 unique-local and site-local), shared
// (100.64/10), link-local, unspecified, multicast, benchmarking (198.18/15),
// IETF protocol (192.0.0/24), reserved (240/4, broadcast), IPv4-compatible
// IPv6 (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses that
// embed one of those, and anything that is not an IP address at all.
bool is_private_address(std::string_view ip);

// What a webhook POST announces about a message: "message.received" (id:
// the message id), or "message.retracted" once its sender took it back (id:
// <message id>.retracted, its attempts recorded apart).
struct WebhookEvent {
  std::string type;
  std::string id;            // webhook-id: the same on every retry of this event
  std::string entry_suffix;  // for store::delivery_entry
};
WebhookEvent webhook_event(const core::Message& message);

using WebhookHeaders = std::vector<std::pair<std::string, std::string>>;

struct WebhookOptions {
  std::chrono::milliseconds timeout{10000};  // the whole attempt: resolve, connect, TLS, write, read
  bool allow_private = false;                // tests and closed networks only
  std::size_t max_response_bytes = 16 * 1024;
  std::size_t max_idle_per_host = 4;           // kept-alive connections kept for reuse, per host
  std::chrono::seconds idle_timeout{30};       // a kept-alive connection idle longer is closed
};

struct WebhookAttempt {
  int status = 0;                        // HTTP status; 0 when none came back
  std::chrono::milliseconds latency{0};  // from start to the response head (or the failure)
  std::string error;                     // empty when a response came back
  bool cancelled = false;                // cut short by WebhookClient::stop(): not the receiver's fault

  bool delivered() const { return status >= 200 && status < 300; }
};

// An asynchronous client for webhook POSTs: one I/O thread drives every
// attempt; one TLS context (the system's roots) serves every connection;
// kept-alive connections are reused per scheme, host and port.
//
// Each attempt POSTs `body` (application/json) with `headers` to `url`
// (http or https), and ends within options.timeout, DNS resolution
// included. https verifies the certificate chain and the host name;
// redirects are not followed (a 3xx is not delivered); at most
// max_response_bytes of the response are read; addresses that
// is_private_address() names are refused unless allowed.
class WebhookClient {
 public:
  explicit WebhookClient(WebhookOptions options = {});
  ~WebhookClient();  // stop()
  WebhookClient(const WebhookClient&) = delete;
  WebhookClient& operator=(const WebhookClient&) = delete;

  // Starts one attempt; the future is ready when it ended (never later than
  // the timeout, plus scheduling).
  std::future<WebhookAttempt> post(std::string url, std::string body, WebhookHeaders headers);

  // Ends every attempt in flight at once (cancelled = true) and refuses new
  // ones. Idempotent; bounded (it does not wait for any receiver).
  void stop();

  struct Stats {
    std::uint64_t attempts = 0;    // started
    std::uint64_t reused = 0;      // of those, on a kept-alive connection
    std::uint64_t in_flight = 0;   // not ended yet
  };
  Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// One attempt on a client of its own: for tests and one-off calls.
WebhookAttempt post_webhook(const std::string& url, const std::string& body, const WebhookHeaders& headers,
                            const WebhookOptions& options);

}  // namespace intercomm::mda
