// Webhooks end to end: signed POSTs, retries on a (short) schedule, attempts
// recorded and readable over REST, dead-lettering and a failing subscription;
// in `intercomm run` and in split mode over real RabbitMQ and Redis.
#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "gateway/jwt.hpp"
#include "support/bus_backends.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"
#include "support/webhook_receiver.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::ChildProcess;
using intercomm::testing::Client;
using intercomm::testing::WebhookReceiver;
using namespace std::chrono_literals;

constexpr const char* kSecret = "webhook-secret-0123456789abcdef0123456789abcdef";
const std::vector<std::string> kWebhookFlags{"--webhook-retry-schedule", "300ms,300ms,300ms",
                                             "--allow-private-webhooks"};

std::string bearer(const std::string& user) {
  return "Authorization: Bearer " + intercomm::gateway::mint_hs256(kSecret, user, 3600s);
}

// Standard Webhooks verification written here, apart from the code under test:
// HMAC-SHA256 keyed with the base64-decoded secret over id.timestamp.body.
bool signature_valid(const std::string& secret, const WebhookReceiver::Request& request) {
  const std::string encoded = secret.substr(6);  // after whsec_
  std::string key(encoded.size(), '\0');
  const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(key.data()),
                                     reinterpret_cast<const unsigned char*>(encoded.data()),
                                     static_cast<int>(encoded.size()));
  if (length < 0) return false;
  std::size_t padding = 0;
  for (auto it = encoded.rbegin(); it != encoded.rend() && *it == '='; ++it) ++padding;
  key.resize(static_cast<std::size_t>(length) - padding);
  const std::string input =
      request.headers.at("webhook-id") + "." + request.headers.at("webhook-timestamp") + "." + request.body;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest, &size);
  std::string expected(4 * ((size + 2) / 3) + 1, '\0');
  expected.resize(static_cast<std::size_t>(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(expected.data()), digest, static_cast<int>(size))));
  return request.headers.at("webhook-signature") == "v1," + expected;
}

class Webhooks : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    suffix_ = intercomm::core::new_message_id();
    alice_ = "alice_" + suffix_;
    bob_ = "bob_" + suffix_;
    std::vector<std::string> args;
    if (GetParam() == "embedded") {
      data_ = intercomm::testing::servers_dir() + "/webhooks-" + suffix_;
      args = {INTERCOMM_BINARY,   "run",      "--listen", "127.0.0.1:0", "--store",
              "rocksdb:" + data_, "--secret", kSecret};
      args.insert(args.end(), kWebhookFlags.begin(), kWebhookFlags.end());
      processes_.push_back(std::make_unique<ChildProcess>(args));
      port_ = port_of(processes_.back()->wait_for_line("intercomm "));
    } else {
      amqp_ = intercomm::testing::test_amqp_url();
      const char* redis = std::getenv("INTERCOMM_TEST_REDIS");
      ASSERT_FALSE(amqp_.empty()) << "INTERCOMM_TEST_AMQP is not set: run through scripts/test.sh";
      ASSERT_NE(redis, nullptr) << "INTERCOMM_TEST_REDIS is not set: run through scripts/test.sh";
      processes_.push_back(std::make_unique<ChildProcess>(
          std::vector<std::string>{INTERCOMM_BINARY, "mta", "--amqp", amqp_, "--store", redis}));
      ASSERT_FALSE(processes_.back()->wait_for_line("intercomm mta: serving").empty());
      args = {INTERCOMM_BINARY, "mda", "--amqp", amqp_, "--store", redis};
      args.insert(args.end(), kWebhookFlags.begin(), kWebhookFlags.end());
      processes_.push_back(std::make_unique<ChildProcess>(args));
      ASSERT_FALSE(processes_.back()->wait_for_line("intercomm mda: serving").empty());
      processes_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
          INTERCOMM_BINARY, "gateway", "--listen", "127.0.0.1:0", "--amqp", amqp_, "--secret", kSecret}));
      port_ = port_of(processes_.back()->wait_for_line("intercomm gateway: listening on "));
    }
    ASSERT_NE(port_, 0);
  }

  void TearDown() override {
    for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) EXPECT_EQ((*it)->terminate(), 0);
    processes_.clear();
    if (!data_.empty()) {
      std::filesystem::remove_all(data_);
      std::filesystem::remove_all(data_ + "-bus");
    }
  }

  static std::uint16_t port_of(const std::string& line) {
    return line.empty() ? 0 : static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  }

  // Subscribes bob's webhook; returns the subscription (with its secret).
  json::object subscribe(const std::string& url) {
    Client client(port_);
    auto created = client.request("POST", "/v1/users/" + bob_ + "/subscriptions",
                                  R"({"webhook":{"url":")" + url + "\"}}",
                                  {bearer(bob_), "Content-Type: application/json"});
    EXPECT_EQ(created.status, 201) << created.body;
    return json::parse(created.body).as_object();
  }

  std::string send(const std::string& body) {
    Client client(port_);
    auto sent =
        client.request("POST", "/v1/messages", R"({"receiver":")" + bob_ + R"(","body":")" + body + "\"}",
                       {bearer(alice_), "Content-Type: application/json"});
    EXPECT_EQ(sent.status, 202) << sent.body;
    return std::string(json::parse(sent.body).at("message_id").as_string());
  }

  // The recorded attempts of message `id`, read as `as`, once `count` are there.
  json::array deliveries(const std::string& id, std::size_t count, const std::string& as) {
    json::array attempts;
    intercomm::testing::wait_until(
        [&] {
          Client client(port_);
          auto response = client.request("GET", "/v1/messages/" + id + "/deliveries", "", {bearer(as)});
          if (response.status != 200) return false;
          attempts = json::parse(response.body).at("deliveries").as_array();
          return attempts.size() >= count;
        },
        20s);
    return attempts;
  }

  std::string subscription_status() {
    Client client(port_);
    auto listed = client.request("GET", "/v1/users/" + bob_ + "/subscriptions", "", {bearer(bob_)});
    const auto body = json::parse(listed.body);
    return std::string(body.at("subscriptions").as_array().at(0).at("status").as_string());
  }

  std::string suffix_, alice_, bob_, data_, amqp_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  std::uint16_t port_ = 0;
};

TEST_P(Webhooks, TwoFailuresThenSuccessAreRetriedSignedAndRecorded) {
  WebhookReceiver receiver([](std::size_t n) { return n < 2 ? 500 : 200; });
  const auto subscription = subscribe(receiver.url());
  const std::string secret(subscription.at("secret").as_string());
  const std::string id = send("hook me");

  const auto requests = receiver.wait_for(3, 30s);
  ASSERT_EQ(requests.size(), 3U) << "two failures and the success";
  for (const auto& request : requests) {
    EXPECT_EQ(request.headers.at("webhook-id"), id);
    EXPECT_TRUE(signature_valid(secret, request)) << request.headers.at("webhook-signature");
    const auto payload = json::parse(request.body);
    EXPECT_EQ(payload.at("type").as_string(), "message.received");
    EXPECT_EQ(payload.at("data").at("message_id").as_string(), id);
    EXPECT_EQ(payload.at("data").at("body").as_string(), "hook me");
  }
  EXPECT_TRUE(receiver.wait_for(4, 2s).size() == 3U) << "nothing after the success";

  // The receiver, whose webhook it is, sees every attempt whole.
  const auto attempts = deliveries(id, 3, bob_);
  ASSERT_EQ(attempts.size(), 3U);
  const std::vector<std::pair<std::int64_t, std::string>> expected{
      {500, "retrying"}, {500, "retrying"}, {200, "delivered"}};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(attempts[i].at("attempt").as_int64(), static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(attempts[i].at("status").as_int64(), expected[i].first);
    EXPECT_EQ(attempts[i].at("outcome").as_string(), expected[i].second);
    EXPECT_EQ(attempts[i].at("url").as_string(), receiver.url());
  }
  // The sender sees how each attempt ended, and nothing of the receiver's webhook.
  const auto seen_by_sender = deliveries(id, 3, alice_);
  ASSERT_EQ(seen_by_sender.size(), 3U);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& attempt = seen_by_sender[i].as_object();
    EXPECT_EQ(attempt.at("attempt").as_int64(), static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(attempt.at("outcome").as_string(), expected[i].second);
    for (const char* hidden : {"url", "subscription_id", "status", "error", "latency_ms"}) {
      EXPECT_FALSE(attempt.contains(hidden))
          << hidden << " shown to the sender: " << json::serialize(attempt);
    }
  }
  Client client(port_);
  EXPECT_EQ(
      client.request("GET", "/v1/messages/" + id + "/deliveries", "", {bearer("carol_" + suffix_)}).status,
      403);
  EXPECT_EQ(subscription_status(), "active");
}

// Sent from four clients at once, the messages reach the MDA in batches,
// which read bob's subscriptions once per batch: each message is hooked once.
TEST_P(Webhooks, EveryMessageOfABurstToOneReceiverIsHookedOnce) {
  WebhookReceiver receiver([](std::size_t) { return 200; });
  subscribe(receiver.url());
  constexpr int kClients = 4;
  constexpr int kEach = 40;  // 160 in all: within the default send burst (200)
  std::mutex sent_mu;
  std::set<std::string> sent;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kEach; ++i) {
        const std::string id = send("burst " + std::to_string(c) + "-" + std::to_string(i));
        std::lock_guard lock(sent_mu);
        sent.insert(id);
      }
    });
  }
  for (auto& client : clients) client.join();
  ASSERT_EQ(sent.size(), static_cast<std::size_t>(kClients * kEach));
  const auto requests = receiver.wait_for(sent.size(), 60s);
  std::multiset<std::string> hooked;
  for (const auto& request : requests) hooked.insert(request.headers.at("webhook-id"));
  EXPECT_EQ(hooked.size(), sent.size());
  EXPECT_EQ(std::set<std::string>(hooked.begin(), hooked.end()), sent)
      << "a message missed, or another's hooked";
  EXPECT_EQ(receiver.wait_for(sent.size() + 1, 2s).size(), sent.size()) << "a message hooked twice";
}

TEST_P(Webhooks, AReceiverThatAlwaysFailsEndsInDeadLettersAndTheSubscriptionIsMarkedFailing) {
  WebhookReceiver receiver([](std::size_t) { return 503; });
  subscribe(receiver.url());
  const std::string id = send("never arrives");

  // One attempt and three retries (the schedule has three waits).
  const auto attempts = deliveries(id, 4, alice_);
  ASSERT_EQ(attempts.size(), 4U);
  EXPECT_EQ(attempts[3].at("outcome").as_string(), "failed");
  EXPECT_TRUE(intercomm::testing::wait_until([&] { return subscription_status() == "failing"; }, 10s));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(receiver.wait_for(5, 1s).size(), 4U) << "no attempt after the last";

  if (GetParam() == "split") {
    // The job is in dead_letters on the broker (others' dead letters are put back).
    intercomm::testing::BusFactory factory("amqp");
    auto bus = factory.connect();
    ASSERT_NE(bus, nullptr);
    intercomm::testing::Collector<std::string> ours;
    auto consumer = bus->consume(std::string(intercomm::bus::kDeadLetterQueue), 16,
                                 [&](std::unique_ptr<intercomm::bus::Delivery> d) {
                                   if (d->message().body.find(id) != std::string::npos) {
                                     ours.push(d->message().headers.at("x-first-death-reason"));
                                     d->ack();
                                   } else {
                                     d->reject(true);
                                   }
                                 });
    ASSERT_EQ(ours.wait_for(1, 20s), 1U) << "the failed delivery is not in dead_letters";
    EXPECT_EQ(ours.items()[0], "webhook_failed");
  } else {
    // intercomm run's own dead_letters holds it, and /metrics counts it.
    Client client(port_);
    const std::string metrics = client.request("GET", "/metrics").body;
    EXPECT_NE(metrics.find("\nintercomm_dead_letters 1\n"), std::string::npos) << metrics;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, Webhooks, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
