// Token buckets per key (a user, an IP address): how the gateway refuses
// floods with 429 instead of queuing them.
#pragma once

#include "core/errors.hpp"

#include <chrono>
#include <cstddef>
#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace intercomm::gateway {

// `burst` requests at once, refilled at `per_second`; off when per_second is 0.
struct RateLimit {
  double per_second = 0;
  double burst = 0;
  bool enabled() const { return per_second > 0 && burst >= 1; }
};

// "50/s:200", "30/m:10", "1000/h:100" (rate per unit, then burst), or "off".
core::Result<RateLimit> parse_rate_limit(std::string_view text);

// The limits the gateway applies (per gateway process; see docs/SECURITY.md).
struct RateLimits {
  RateLimit send{50, 200};            // POST /v1/messages, per authenticated user
  RateLimit subscription{0.5, 10};    // subscription changes, per user (30 a minute)
  RateLimit dev_token{0.5, 10};       // POST /v1/dev/token, per client IP address
  RateLimit auth_failure{1, 20};      // requests refused 401, per client IP address
  RateLimit typing{2, 5};             // typing signals sent on a socket, per user

  // "send=50/s:200,subscription=30/m:10,dev_token=30/m:10,auth_failure=60/m:20,typing=2/s:5":
  // any subset; the others keep their defaults.
  static core::Result<RateLimits> parse(std::string_view text);
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimit limit, std::size_t max_keys = 100000) : limit_(limit), max_keys_(max_keys) {}

  // Takes one token for `key`: nullopt when allowed, else how long until one
  // is there (the Retry-After).
  std::optional<std::chrono::milliseconds> take(const std::string& key);
  // Like take() without spending: is `key` out of tokens now?
  std::optional<std::chrono::milliseconds> empty(const std::string& key);

 private:
  using Clock = std::chrono::steady_clock;
  struct Bucket {
    double tokens = 0;
    Clock::time_point at;
  };
  std::optional<std::chrono::milliseconds> use(const std::string& key, double cost);
  void forget_full_buckets(Clock::time_point now);  // under mu_

  RateLimit limit_;
  std::size_t max_keys_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::atomic<bool> any_{false};  // buckets_ is not empty: empty() needs the lock
};

}  // namespace intercomm::gateway
