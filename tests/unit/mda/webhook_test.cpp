#include "mda/webhook.hpp"  // first: the header is self-contained

#include "mda/mda.hpp"
#include "support/tarpit.hpp"
#include "support/webhook_receiver.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace intercomm::mda {
namespace {

using namespace std::chrono_literals;

TEST(WebhookSignature, MatchesTheStandardWebhooksTestVector) {
  // The example of the Standard Webhooks specification (and Svix's libraries).
  EXPECT_EQ(sign_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                         R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(WebhookTargets, PrivateAndLoopbackAddressesAreNamed) {
  for (const char* ip :
       {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.1.1", "0.0.0.0",
        "100.64.0.1", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "224.0.0.1", "not-an-ip",
        // What the filter missed before: NAT64 and 6to4 embedding private
        // addresses, IPv4-compatible, site-local, benchmarking, IETF, reserved.
        "64:ff9b::a00:1", "64:ff9b::7f00:1", "2002:c0a8:101::1", "2002:7f00:1::", "::10.0.0.1", "::8.8.8.8",
        "fec0::1", "198.18.0.1", "198.19.255.255", "192.0.0.8", "240.0.0.1", "255.255.255.255"}) {
    EXPECT_TRUE(is_private_address(ip)) << ip;
  }
  for (const char* ip : {"8.8.8.8", "172.32.0.1", "93.184.216.34", "2606:4700::1111", "64:ff9b::808:808",
                         "2002:808:808::1", "198.20.0.1", "192.0.1.1"}) {
    EXPECT_FALSE(is_private_address(ip)) << ip;
  }
}

TEST(WebhookClient, RefusesLoopbackUnlessAllowedAndReportsTheStatus) {
  intercomm::testing::WebhookReceiver receiver([](std::size_t) { return 204; });
  WebhookOptions options;
  options.timeout = 5s;
  auto refused = post_webhook(receiver.url(), "{}", {}, options);
  EXPECT_FALSE(refused.delivered());
  EXPECT_EQ(refused.status, 0);
  EXPECT_NE(refused.error.find("private or loopback"), std::string::npos) << refused.error;

  options.allow_private = true;
  auto delivered = post_webhook(receiver.url("/in?x=1"), R"({"a":1})", {{"webhook-id", "m1"}}, options);
  EXPECT_TRUE(delivered.delivered()) << delivered.error;
  EXPECT_EQ(delivered.status, 204);
  const auto requests = receiver.wait_for(1, 5s);
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].target, "/in?x=1");
  EXPECT_EQ(requests[0].body, R"({"a":1})");
  EXPECT_EQ(requests[0].headers.at("webhook-id"), "m1");
  EXPECT_EQ(requests[0].headers.at("content-type"), "application/json");
}

TEST(WebhookClient, FailuresAreReportedNotThrown) {
  WebhookOptions options;
  options.allow_private = true;
  options.timeout = 2s;
  // Nothing listens on port 1.
  auto refused = post_webhook("http://127.0.0.1:1/x", "{}", {}, options);
  EXPECT_FALSE(refused.delivered());
  EXPECT_NE(refused.error.find("connecting"), std::string::npos) << refused.error;
  EXPECT_FALSE(post_webhook("ftp://example.com/x", "{}", {}, options).delivered());
  // A redirect is not followed and is not a delivery.
  intercomm::testing::WebhookReceiver redirect([](std::size_t) { return 302; });
  auto moved = post_webhook(redirect.url(), "{}", {}, options);
  EXPECT_EQ(moved.status, 302);
  EXPECT_FALSE(moved.delivered());
}

// A TLS server whose certificate nobody trusts (self-signed, made here with the
// openssl command): the client must refuse it.
TEST(WebhookClient, HttpsRefusesACertificateItCannotVerify) {
  const std::string dir = ::testing::TempDir() + "/tls-" + std::to_string(getpid());
  const std::string make = "mkdir -p " + dir +
                           " && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost "
                           "-days 1 -keyout " +
                           dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null";
  ASSERT_EQ(std::system(make.c_str()), 0) << "openssl could not make a certificate";
  // A port nobody holds right now (a fixed guess collided with other tests' servers).
  int port = 0;
  {
    const int probe = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port = ntohs(address.sin_port);
    close(probe);
  }
  const std::string serve = "openssl s_server -quiet -accept 127.0.0.1:" + std::to_string(port) + " -cert " +
                            dir + "/cert.pem -key " + dir + "/key.pem -www > /dev/null 2>&1 & echo $! > " +
                            dir + "/pid";
  ASSERT_EQ(std::system(serve.c_str()), 0);
  WebhookOptions options;
  options.allow_private = true;
  options.timeout = 3s;
  WebhookAttempt attempt;
  for (int tries = 0; tries < 150; ++tries) {  // until the server listens (slow under ASan)
    attempt = post_webhook("https://127.0.0.1:" + std::to_string(port) + "/", "{}", {}, options);
    if (attempt.error.find("connecting") == std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  std::system(("kill $(cat " + dir + "/pid); rm -rf " + dir).c_str());
  EXPECT_FALSE(attempt.delivered());
  EXPECT_EQ(attempt.status, 0);
  EXPECT_NE(attempt.error.find("TLS"), std::string::npos) << attempt.error;
}

TEST(WebhookClient, AReceiverThatNeverAnswersEndsAtTheDeadline) {
  intercomm::testing::Tarpit tarpit;
  WebhookOptions options;
  options.allow_private = true;
  options.timeout = 300ms;
  auto attempt = post_webhook(tarpit.url(), "{}", {}, options);
  EXPECT_FALSE(attempt.delivered());
  EXPECT_FALSE(attempt.cancelled);
  EXPECT_EQ(attempt.status, 0);
  EXPECT_NE(attempt.error.find("no response within 300 ms"), std::string::npos) << attempt.error;
  EXPECT_EQ(tarpit.accepted(), 1U);
}

TEST(WebhookClient, StopEndsEveryAttemptInFlightAtOnce) {
  intercomm::testing::Tarpit tarpit;
  WebhookOptions options;
  options.allow_private = true;
  options.timeout = 10min;  // only stop() can end them
  WebhookClient client(options);
  std::vector<std::future<WebhookAttempt>> attempts;
  for (int i = 0; i < 20; ++i) attempts.push_back(client.post(tarpit.url(), "{}", {}));
  for (int i = 0; i < 200 && tarpit.accepted() < 20; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(tarpit.accepted(), 20U);
  EXPECT_EQ(client.stats().in_flight, 20U);
  client.stop();
  for (auto& attempt : attempts) {
    ASSERT_EQ(attempt.wait_for(0s), std::future_status::ready);  // stop() returned: all ended
    const auto ended = attempt.get();
    EXPECT_TRUE(ended.cancelled) << ended.error;
    EXPECT_FALSE(ended.delivered());
  }
  EXPECT_EQ(client.stats().in_flight, 0U);
  const auto after = client.post(tarpit.url(), "{}", {}).get();  // refused at once after stop
  EXPECT_TRUE(after.cancelled);
}

TEST(WebhookClient, ReusesAKeptAliveConnection) {
  intercomm::testing::WebhookReceiver receiver([](std::size_t) { return 200; }, /*keep_alive=*/true);
  WebhookOptions options;
  options.allow_private = true;
  options.timeout = 5s;
  WebhookClient client(options);
  for (int i = 0; i < 3; ++i) {
    const auto attempt = client.post(receiver.url(), "{\"n\":" + std::to_string(i) + "}", {}).get();
    EXPECT_TRUE(attempt.delivered()) << attempt.error;
  }
  EXPECT_EQ(receiver.wait_for(3, 5s).size(), 3U);
  EXPECT_EQ(receiver.connections(), 1U);
  EXPECT_EQ(client.stats().attempts, 3U);
  EXPECT_EQ(client.stats().reused, 2U);
}

TEST(RetrySchedule, ParsesUnitsAndRefusesNonsense) {
  auto schedule = parse_retry_schedule("5s,30s,2m,10m,1h,250ms");
  ASSERT_TRUE(schedule);
  EXPECT_EQ(*schedule, (std::vector<std::chrono::milliseconds>{5s, 30s, 2min, 10min, 1h, 250ms}));
  for (const char* bad : {"", "5", "5x", "-1s", "0s", "5s,,1m", "1d"})
    EXPECT_FALSE(parse_retry_schedule(bad)) << bad;
  EXPECT_EQ(delay_queue(30s), "inter_comm.delay.30000ms");
}

}  // namespace
}  // namespace intercomm::mda
