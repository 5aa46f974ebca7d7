// Abuse resistance end to end: what one user can do must not hurt the others.
// Webhooks that never answer, too many subscriptions; in `intercomm run` and in
// split mode over real RabbitMQ and Redis.
#include "core/ids.hpp"
#include "support/deployment.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"
#include "support/tarpit.hpp"
#include "support/ws_client.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <optional>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::Client;
using intercomm::testing::Deployment;
using intercomm::testing::DeploymentOptions;
using namespace std::chrono_literals;

constexpr const char* kSecret = "abuse-test-secret-of-at-least-32-bytes";

class Abuse : public ::testing::TestWithParam<std::string> {
 protected:
  // A deployment whose webhooks may target loopback and wait `webhook_timeout` for an answer.
  void start(const std::string& webhook_timeout_ms, std::vector<std::string> gateway_args = {},
             std::vector<std::string> worker_args = {}) {
    const std::vector<std::string> hooks{"--allow-private-webhooks", "--webhook-timeout-ms", webhook_timeout_ms};
    DeploymentOptions options;
    options.gateways = 1;
    options.extra_args = std::move(gateway_args);
    if (GetParam() == "embedded") {
      options.extra_args.insert(options.extra_args.end(), hooks.begin(), hooks.end());
      options.extra_args.insert(options.extra_args.end(), worker_args.begin(), worker_args.end());
    } else {
      options.mda_args = hooks;
      options.worker_args = std::move(worker_args);
    }
    deployment_ = std::make_unique<Deployment>(GetParam(), kSecret, options);
    ASSERT_TRUE(deployment_->started()) << deployment_->error();
    suffix_ = intercomm::core::new_message_id();
  }

  std::string user(const std::string& name) const { return name + "_" + suffix_; }
  std::string auth(const std::string& user) const { return "Authorization: Bearer " + deployment_->token(user); }

  Client::Response subscribe(const std::string& owner, const std::string& url) {
    Client client(deployment_->port());
    return client.request("POST", "/v1/users/" + owner + "/subscriptions", R"({"webhook":{"url":")" + url + "\"}}",
                          {auth(owner), "Content-Type: application/json"});
  }

  Client::Response send(const std::string& from, const std::string& to, const std::string& body) {
    Client client(deployment_->port());
    return client.request("POST", "/v1/messages", R"({"receiver":")" + to + R"(","body":")" + body + "\"}",
                          {auth(from), "Content-Type: application/json"});
  }

  std::unique_ptr<Deployment> deployment_;
  std::string suffix_;
};

// 100 users with 10 webhooks each on a server that accepts and never
// answers: 1,000 attempts, each allowed a minute. Meanwhile Alice's live
// messages to Carol still arrive, one by one, and /healthz answers.
TEST_P(Abuse, WebhooksThatNeverAnswerDoNotHoldUpLiveDelivery) {
  intercomm::testing::Tarpit tarpit;
  ASSERT_NO_FATAL_FAILURE(start("60000"));
  const std::string alice = user("alice");
  const std::string carol = user("carol");
  for (int victim = 0; victim < 100; ++victim) {
    for (int hook = 0; hook < 10; ++hook) {
      const auto created =
          subscribe(user("tarpitted" + std::to_string(victim)), tarpit.url("/" + std::to_string(hook)));
      ASSERT_EQ(created.status, 201) << created.body;
    }
  }
  for (int victim = 0; victim < 100; ++victim) {
    const auto sent = send(alice, user("tarpitted" + std::to_string(victim)), "to a tarpit");
    ASSERT_EQ(sent.status, 202) << sent.body;
  }
  // The webhook workers are busy: every slot they have hangs on the tarpit.
  intercomm::testing::wait_until([&] { return tarpit.accepted() >= 64; }, 60s);
  ASSERT_GE(tarpit.accepted(), 64U) << "the webhook attempts never reached the tarpit";

  intercomm::testing::WsClient socket;
  ASSERT_TRUE(socket.connect(deployment_->port(), "/v1/stream", {auth(carol)}));
  // Without a cursor a socket starts at the end of the inbox, announced by {"type":"live"}.
  const auto live = socket.read(30s);
  ASSERT_TRUE(live.has_value());
  ASSERT_EQ(json::parse(*live).at("type"), "live") << *live;
  std::vector<double> waits_ms;
  for (int i = 0; i < 50; ++i) {
    const auto started = std::chrono::steady_clock::now();
    const auto sent = send(alice, carol, "live " + std::to_string(i));
    ASSERT_EQ(sent.status, 202) << sent.body;
    std::optional<json::value> frame;
    while (!frame) {
      const auto text = socket.read(10s);  // a bounded wait: generous, never hit when live delivery works
      ASSERT_TRUE(text.has_value()) << "live message " << i << " did not arrive while webhooks hang";
      auto parsed = json::parse(*text);
      if (parsed.at("type") == "message") frame = std::move(parsed);
    }
    const auto& message = frame->at("message");
    EXPECT_EQ(message.at("body").as_string(), "live " + std::to_string(i));
    waits_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
  }
  std::sort(waits_ms.begin(), waits_ms.end());
  std::printf("live delivery with %zu webhook attempts hanging: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              tarpit.accepted(), waits_ms[waits_ms.size() / 2], waits_ms[waits_ms.size() * 99 / 100],
              waits_ms.back());
  Client health(deployment_->port());
  EXPECT_EQ(health.request("GET", "/healthz", "", {}).status, 200);
  // The global cap: no more attempts in flight than the webhook worker's 64 slots.
  EXPECT_LE(tarpit.accepted(), 64U);
  // SIGTERM ends the hanging attempts (their jobs wait for the next start) and exits 0 within the grace period.
  socket.close();
  EXPECT_TRUE(deployment_->stop());
}

// A subscription has one attempt in flight at a time: its other messages wait.
TEST_P(Abuse, OneAttemptPerSubscriptionAtATime) {
  intercomm::testing::Tarpit tarpit;
  ASSERT_NO_FATAL_FAILURE(start("60000"));
  const std::string bob = user("bob");
  ASSERT_EQ(subscribe(bob, tarpit.url()).status, 201);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(send(user("alice"), bob, "m" + std::to_string(i)).status, 202);
  intercomm::testing::wait_until([&] { return tarpit.accepted() >= 1; }, 30s);
  std::this_thread::sleep_for(3s);  // the other four are bounced meanwhile, never attempted
  EXPECT_EQ(tarpit.accepted(), 1U);
  EXPECT_TRUE(deployment_->stop());
}

TEST_P(Abuse, AUserHasAtMostTheConfiguredNumberOfWebhooks) {
  ASSERT_NO_FATAL_FAILURE(start("10000", {}, {"--max-subscriptions-per-user", "3"}));
  const std::string bob = user("bob");
  std::string first;
  for (int i = 0; i < 3; ++i) {
    const auto created = subscribe(bob, "https://example.com/hook/" + std::to_string(i));
    ASSERT_EQ(created.status, 201) << created.body;
    if (i == 0) first = std::string(json::parse(created.body).at("subscription_id").as_string());
  }
  const auto refused = subscribe(bob, "https://example.com/hook/3");
  EXPECT_EQ(refused.status, 409) << refused.body;
  const auto error = json::parse(refused.body).at("error");
  EXPECT_EQ(error.at("code").as_int64(), -32009);
  EXPECT_NE(std::string(error.at("message").as_string()).find("remove one first"), std::string::npos) << refused.body;
  // Another user is not affected; removing one makes room.
  EXPECT_EQ(subscribe(user("carol"), "https://example.com/hook").status, 201);
  Client client(deployment_->port());
  EXPECT_EQ(client.request("DELETE", "/v1/users/" + bob + "/subscriptions/" + first, "", {auth(bob)}).status, 204);
  EXPECT_EQ(subscribe(bob, "https://example.com/hook/4").status, 201);
}

// Each user has a budget of sends and of subscription changes; a failing
// address has a budget of failures. Beyond: 429 with Retry-After, and
// success again after that wait. Other users are not affected.
TEST_P(Abuse, RateLimitsAnswer429WithRetryAfterThenRecover) {
  ASSERT_NO_FATAL_FAILURE(
      start("10000", {"--rate-limits", "send=1/s:3,subscription=1/s:2,auth_failure=1/s:2"}));
  const std::string alice = user("alice");
  const std::string bob = user("bob");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(send(alice, bob, "burst " + std::to_string(i)).status, 202) << i;
  const auto limited = send(alice, bob, "one too many");
  ASSERT_EQ(limited.status, 429) << limited.body;
  const auto error = json::parse(limited.body).at("error");
  EXPECT_EQ(error.at("code").as_int64(), -32029);
  EXPECT_EQ(error.at("data").at("limit"), "send");
  ASSERT_TRUE(limited.headers.contains("retry-after"));
  const int retry_after = std::stoi(limited.headers.at("retry-after"));
  EXPECT_GE(retry_after, 1);
  EXPECT_EQ(error.at("data").at("retry_after").as_int64(), retry_after);
  EXPECT_EQ(send(bob, alice, "bob has his own budget").status, 202);
  std::this_thread::sleep_for(std::chrono::seconds(retry_after));
  EXPECT_EQ(send(alice, bob, "after the wait").status, 202);

  EXPECT_EQ(subscribe(bob, "https://example.com/a").status, 201);
  EXPECT_EQ(subscribe(bob, "https://example.com/b").status, 201);
  const auto too_many = subscribe(bob, "https://example.com/c");
  EXPECT_EQ(too_many.status, 429) << too_many.body;
  EXPECT_TRUE(too_many.headers.contains("retry-after"));

  // Bad tokens from one address: 401 twice, then 429 without looking at the token.
  Client client(deployment_->port());
  const auto bad = [&] {
    return client.request("GET", "/v1/users/" + bob + "/subscriptions", "", {"Authorization: Bearer not.a.token"});
  };
  EXPECT_EQ(bad().status, 401);
  EXPECT_EQ(bad().status, 401);
  const auto guessing = bad();
  EXPECT_EQ(guessing.status, 429) << guessing.body;
  EXPECT_EQ(json::parse(guessing.body).at("error").at("data").at("limit"), "auth_failure");
  const auto metrics = client.request("GET", "/metrics", "", {});
  EXPECT_NE(metrics.body.find("intercomm_rate_limited_total{limit=\"send\"} 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("intercomm_rate_limited_total{limit=\"auth_failure\"} 1"), std::string::npos);
  EXPECT_NE(metrics.body.find("intercomm_rate_limited_total{limit=\"subscription\"} 1"), std::string::npos);
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(guessing.headers.at("retry-after"))));
  EXPECT_EQ(client.request("GET", "/v1/users/" + bob + "/subscriptions", "", {auth(bob)}).status, 200);
}

// The scheme of Authorization is case-insensitive (RFC 9110).
TEST_P(Abuse, BearerIsMatchedWithoutRegardToCase) {
  ASSERT_NO_FATAL_FAILURE(start("10000"));
  const std::string bob = user("bob");
  const std::string token = deployment_->token(bob);
  for (const std::string scheme : {"Bearer", "bearer", "BEARER", "bEaReR"}) {
    Client client(deployment_->port());
    EXPECT_EQ(client.request("GET", "/v1/users/" + bob + "/subscriptions", "",
                             {"Authorization: " + scheme + " " + token})
                  .status,
              200)
        << scheme;
  }
  Client client(deployment_->port());
  EXPECT_EQ(client.request("GET", "/v1/users/" + bob + "/subscriptions", "", {"Authorization: Basic " + token})
                .status,
            401);
}

INSTANTIATE_TEST_SUITE_P(Modes, Abuse, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
