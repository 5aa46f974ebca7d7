#include "gateway/rate_limit.hpp"  // first: the header is self-contained

#include <gtest/gtest.h>

#include <thread>

namespace intercomm::gateway {
namespace {

using namespace std::chrono_literals;

TEST(RateLimit, ParsesRatesPerUnitWithABurst) {
  auto per_second = parse_rate_limit("50/s:200");
  ASSERT_TRUE(per_second);
  EXPECT_DOUBLE_EQ(per_second->per_second, 50);
  EXPECT_DOUBLE_EQ(per_second->burst, 200);
  auto per_minute = parse_rate_limit("30/m:10");
  ASSERT_TRUE(per_minute);
  EXPECT_DOUBLE_EQ(per_minute->per_second, 0.5);
  EXPECT_FALSE(parse_rate_limit("off")->enabled());
  for (const char* bad : {"", "50", "50/s", "50:200", "0/s:1", "5/s:0", "5/d:1", "-1/s:3", "x/s:1", "5/s:2:1"}) {
    EXPECT_FALSE(parse_rate_limit(bad)) << bad;
  }
  auto limits = RateLimits::parse("send=10/s:20,auth_failure=off");
  ASSERT_TRUE(limits);
  EXPECT_DOUBLE_EQ(limits->send.per_second, 10);
  EXPECT_FALSE(limits->auth_failure.enabled());
  EXPECT_DOUBLE_EQ(limits->subscription.per_second, RateLimits{}.subscription.per_second);  // default kept
  auto unknown = RateLimits::parse("sends=1/s:1");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("send, subscription, dev_token, auth_failure and typing"), std::string::npos);
}

TEST(RateLimiter, AllowsTheBurstThenSaysHowLongToWait) {
  RateLimiter limiter(RateLimit{1, 3});  // 1 a second, 3 at once
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.take("alice")) << i;
  const auto wait = limiter.take("alice");
  ASSERT_TRUE(wait);
  EXPECT_GT(wait->count(), 0);
  EXPECT_LE(wait->count(), 1000);
  EXPECT_FALSE(limiter.take("bob")) << "another key has its own bucket";
  EXPECT_TRUE(limiter.empty("alice"));
  EXPECT_FALSE(limiter.empty("carol")) << "a key never seen is full";
  std::this_thread::sleep_for(*wait + 50ms);
  EXPECT_FALSE(limiter.take("alice")) << "refilled after the wait it named";
}

TEST(RateLimiter, OffNeverRefuses) {
  RateLimiter limiter(RateLimit{});
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(limiter.take("alice"));
}

TEST(RateLimiter, ForgetsRefilledBucketsWhenTheTableIsFull) {
  RateLimiter limiter(RateLimit{1000, 1}, /*max_keys=*/4);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(limiter.take("k" + std::to_string(i)));
  std::this_thread::sleep_for(10ms);  // every bucket refills (1 token at 1000/s)
  for (int i = 4; i < 100; ++i) EXPECT_FALSE(limiter.take("k" + std::to_string(i)));
  EXPECT_TRUE(limiter.take("k99")) << "a bucket just spent is still limited";
}

}  // namespace
}  // namespace intercomm::gateway
