// Token buckets: refilled lazily on each use; full ones forgotten when the table grows.
#include "gateway/rate_limit.hpp"

#include <fmt/core.h>

#include <charconv>
#include <cmath>

namespace intercomm::gateway {
namespace {

core::Error bad_limit(std::string_view text) {
  return core::Error::of(core::ErrorCode::invalid_params,
                         fmt::format("rate limit '{}': must be RATE/UNIT:BURST like 50/s:200 or 30/m:10 "
                                     "(units s, m, h), or off",
                                     text));
}

bool parse_number(std::string_view text, double& out) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  out = value;
  return true;
}

}  // namespace

core::Result<RateLimit> parse_rate_limit(std::string_view text) {
  if (text == "off") return RateLimit{};
  const auto slash = text.find('/');
  const auto colon = text.find(':');
  if (slash == std::string_view::npos || colon == std::string_view::npos || colon < slash) return bad_limit(text);
  double rate = 0;
  double burst = 0;
  if (!parse_number(text.substr(0, slash), rate) || !parse_number(text.substr(colon + 1), burst) || rate < 1 ||
      burst < 1) {
    return bad_limit(text);
  }
  const std::string_view unit = text.substr(slash + 1, colon - slash - 1);
  const double seconds = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
  if (seconds == 0) return bad_limit(text);
  return RateLimit{rate / seconds, burst};
}

core::Result<RateLimits> RateLimits::parse(std::string_view text) {
  RateLimits limits;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto equals = item.find('=');
    if (equals == std::string_view::npos) return bad_limit(item);
    const std::string_view name = item.substr(0, equals);
    auto limit = parse_rate_limit(item.substr(equals + 1));
    if (!limit) return limit.error();
    if (name == "send") {
      limits.send = *limit;
    } else if (name == "subscription") {
      limits.subscription = *limit;
    } else if (name == "dev_token") {
      limits.dev_token = *limit;
    } else if (name == "auth_failure") {
      limits.auth_failure = *limit;
    } else if (name == "typing") {
      limits.typing = *limit;
    } else {
      return core::Error::of(core::ErrorCode::invalid_params,
                             fmt::format("rate limit '{}': the limits are send, subscription, dev_token, "
                                         "auth_failure and typing",
                                         name));
    }
  }
  return limits;
}

std::optional<std::chrono::milliseconds> RateLimiter::take(const std::string& key) {
  return use(key, 1);
}

std::optional<std::chrono::milliseconds> RateLimiter::empty(const std::string& key) {
  // Asked on every authenticated request: no lock while nobody has a bucket.
  if (!any_.load(std::memory_order_relaxed)) return std::nullopt;
  return use(key, 0);
}

std::optional<std::chrono::milliseconds> RateLimiter::use(const std::string& key, double cost) {
  if (!limit_.enabled()) return std::nullopt;
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  auto found = buckets_.find(key);
  if (found == buckets_.end()) {
    if (cost == 0) return std::nullopt;  // never seen: full
    if (buckets_.size() >= max_keys_) forget_full_buckets(now);
    found = buckets_.emplace(key, Bucket{limit_.burst, now}).first;
    any_.store(true, std::memory_order_relaxed);
  }
  Bucket& bucket = found->second;
  const double elapsed = std::chrono::duration<double>(now - bucket.at).count();
  bucket.tokens = std::min(limit_.burst, bucket.tokens + elapsed * limit_.per_second);
  bucket.at = now;
  if (bucket.tokens >= std::max(cost, 1.0)) {
    bucket.tokens -= cost;
    return std::nullopt;
  }
  const double wait_s = (std::max(cost, 1.0) - bucket.tokens) / limit_.per_second;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(wait_s * 1000)));
}

void RateLimiter::forget_full_buckets(Clock::time_point now) {
  // A bucket that has refilled is the same as none: forgetting it changes nothing.
  std::erase_if(buckets_, [&](const auto& entry) {
    const double elapsed = std::chrono::duration<double>(now - entry.second.at).count();
    return entry.second.tokens + elapsed * limit_.per_second >= limit_.burst;
  });
  if (buckets_.size() >= max_keys_) buckets_.clear();  // a flood of distinct keys: start over rather than grow
  any_.store(!buckets_.empty(), std::memory_order_relaxed);
}

}  // namespace intercomm::gateway
