// The REST API end to end, over real sockets and real processes: `intercomm run`
// (in-process bus, RocksDB) and split mode (`intercomm gateway` + two
// `intercomm mta` over real RabbitMQ and Redis).
#include "core/ids.hpp"
#include "core/limits.hpp"
#include "core/message.hpp"
#include "gateway/jwt.hpp"
#include "support/bus_backends.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <set>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::ChildProcess;
using intercomm::testing::Client;
using namespace std::chrono_literals;

constexpr const char* kSecret = "e2e-secret-0123456789abcdef0123456789abcdef";

std::string bearer(const std::string& user, std::chrono::seconds ttl = 3600s) {
  return "Authorization: Bearer " + intercomm::gateway::mint_hs256(kSecret, user, ttl);
}

const std::string kJson = "Content-Type: application/json";

class Rest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    suffix_ = intercomm::core::new_message_id();
    alice_ = "alice_" + suffix_;
    bob_ = "bob_" + suffix_;
    carol_ = "carol_" + suffix_;
    std::string line;
    if (GetParam() == "embedded") {
      data_ = intercomm::testing::servers_dir() + "/run-" + suffix_;
      processes_.push_back(std::make_unique<ChildProcess>(
          std::vector<std::string>{INTERCOMM_BINARY, "run", "--listen", "127.0.0.1:0", "--store",
                                   "rocksdb:" + data_, "--secret", kSecret}));
      line = processes_.back()->wait_for_line("intercomm ");
    } else {
      const std::string amqp = intercomm::testing::test_amqp_url();
      const char* redis = std::getenv("INTERCOMM_TEST_REDIS");
      ASSERT_FALSE(amqp.empty()) << "INTERCOMM_TEST_AMQP is not set: run through scripts/test.sh";
      ASSERT_NE(redis, nullptr) << "INTERCOMM_TEST_REDIS is not set: run through scripts/test.sh";
      for (int i = 0; i < 2; ++i) {
        processes_.push_back(std::make_unique<ChildProcess>(
            std::vector<std::string>{INTERCOMM_BINARY, "mta", "--amqp", amqp, "--store", redis}));
        // Bound before the gateway takes requests: a send must never find no queue.
        ASSERT_FALSE(processes_.back()->wait_for_line("intercomm mta: serving ").empty());
      }
      processes_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
          INTERCOMM_BINARY, "gateway", "--listen", "127.0.0.1:0", "--amqp", amqp, "--secret", kSecret}));
      line = processes_.back()->wait_for_line("intercomm gateway: listening on ");
    }
    ASSERT_FALSE(line.empty()) << "the server did not say where it listens";
    const auto colon = line.rfind(':');
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
  }

  void TearDown() override {
    for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) {
      EXPECT_EQ((*it)->terminate(), 0) << "a process did not stop cleanly on SIGTERM";
    }
    processes_.clear();
    if (!data_.empty()) std::filesystem::remove_all(data_);
  }

  // POSTs a message as `as`; returns the response.
  Client::Response send(const std::string& as, const std::string& body_json) {
    Client client(port_);
    return client.request("POST", "/v1/messages", body_json, {bearer(as), kJson});
  }

  Client::Response send_with(const std::string& as, const std::string& body_json, const std::string& header) {
    Client client(port_);
    return client.request("POST", "/v1/messages", body_json, {bearer(as), kJson, header});
  }

  // The message ids in `user`'s inbox (first page of 100), newest first.
  std::vector<std::string> inbox(const std::string& user) {
    Client client(port_);
    auto response = client.request("GET", "/v1/users/" + user + "/messages?limit=100", "", {bearer(user)});
    EXPECT_EQ(response.status, 200) << response.body;
    std::vector<std::string> ids;
    if (response.status != 200) return ids;
    const auto body = json::parse(response.body);
    for (const auto& m : body.at("messages").as_array()) ids.emplace_back(m.at("message_id").as_string());
    return ids;
  }

  // Waits until `user`'s inbox holds `count` messages (sends are asynchronous: 202 first).
  std::vector<std::string> inbox_with(const std::string& user, std::size_t count) {
    std::vector<std::string> ids;
    intercomm::testing::wait_until([&] { return (ids = inbox(user)).size() >= count; }, 20s);
    return ids;
  }

  std::string suffix_, alice_, bob_, carol_, data_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  std::uint16_t port_ = 0;
};

TEST_P(Rest, SendGetAndListAsTheSeedDescribes) {
  auto sent = send(alice_, R"({"receiver":")" + bob_ + R"(","body":"merhaba"})");
  ASSERT_EQ(sent.status, 202) << sent.body;
  const auto accepted = json::parse(sent.body);
  const std::string id(accepted.at("message_id").as_string());
  EXPECT_EQ(accepted.at("status").as_string(), "accepted");
  EXPECT_EQ(sent.headers["location"], "/v1/messages/" + id);
  ASSERT_EQ(inbox_with(bob_, 1), std::vector<std::string>{id});

  for (const auto& reader : {alice_, bob_}) {
    Client client(port_);
    auto got = client.request("GET", "/v1/messages/" + id, "", {bearer(reader)});
    ASSERT_EQ(got.status, 200) << got.body;
    const auto message = json::parse(got.body);
    EXPECT_EQ(message.at("sender").as_string(), alice_);
    EXPECT_EQ(message.at("receiver").as_string(), bob_);
    EXPECT_EQ(message.at("body").as_string(), "merhaba");
    EXPECT_EQ(message.at("message_id").as_string(), id);
  }
  Client client(port_);
  auto as_carol = client.request("GET", "/v1/messages/" + id, "", {bearer(carol_)});
  EXPECT_EQ(as_carol.status, 403) << as_carol.body;
  EXPECT_EQ(json::parse(as_carol.body).at("error").at("code").as_int64(), -32003);
  EXPECT_EQ(inbox(alice_), std::vector<std::string>{id});
}

TEST_P(Rest, InboxPagesNewestFirstWithACursor) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    auto sent = send(i % 2 ? alice_ : bob_, R"({"receiver":")" + (i % 2 ? bob_ : alice_) + R"(","body":")" +
                                                std::to_string(i) + "\"}");
    ASSERT_EQ(sent.status, 202);
    ids.emplace_back(json::parse(sent.body).at("message_id").as_string());
  }
  inbox_with(bob_, 7);
  std::vector<std::string> paged;
  std::string target = "/v1/users/" + bob_ + "/messages?limit=3";
  for (int pages = 0; pages < 5; ++pages) {
    Client client(port_);
    auto page = client.request("GET", target, "", {bearer(bob_)});
    ASSERT_EQ(page.status, 200) << page.body;
    const auto body = json::parse(page.body);
    for (const auto& m : body.at("messages").as_array()) paged.emplace_back(m.at("message_id").as_string());
    if (body.at("next").is_null()) break;
    target = "/v1/users/" + bob_ + "/messages?limit=3&before=" + std::string(body.at("next").as_string());
  }
  EXPECT_EQ(paged, std::vector<std::string>(ids.rbegin(), ids.rend()));
}

struct BadRequest {
  const char* name;
  std::string method;
  std::string target;  // {alice} {bob} replaced
  std::string body;
  std::vector<std::string> headers;  // "auth:alice", "auth:expired", "auth:forged", "auth:none", "json"
  int status;
};

std::string expand(std::string text, const std::string& alice, const std::string& bob) {
  for (auto [from, to] : {std::pair<std::string, std::string>{"{alice}", alice}, {"{bob}", bob}}) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from))
      text.replace(at, from.size(), to);
  }
  return text;
}

TEST_P(Rest, BadRequestsGetTheirDocumentedStatusAndStoreNothing) {
  const std::string alg_none =
      intercomm::gateway::base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
      intercomm::gateway::base64url_encode(R"({"sub":")" + alice_ + R"(","exp":4000000000})") + ".";
  const std::string good = R"({"receiver":"{bob}","body":"ok"})";
  const std::vector<BadRequest> table = {
      {"no_token", "POST", "/v1/messages", good, {"json"}, 401},
      {"not_bearer", "POST", "/v1/messages", good, {"json", "Authorization: Basic YTpi"}, 401},
      {"expired_token", "POST", "/v1/messages", good, {"json", "auth:expired"}, 401},
      {"forged_token", "POST", "/v1/messages", good, {"json", "auth:forged"}, 401},
      {"alg_none_token", "POST", "/v1/messages", good, {"json", "Authorization: Bearer " + alg_none}, 401},
      {"garbage_token", "POST", "/v1/messages", good, {"json", "Authorization: Bearer abc.def"}, 401},
      {"other_users_sender",
       "POST",
       "/v1/messages",
       R"({"sender":"{bob}","receiver":"{alice}","body":"x"})",
       {"json", "auth:alice"},
       403},
      {"wrong_content_type", "POST", "/v1/messages", good, {"auth:alice", "Content-Type: text/plain"}, 415},
      {"no_content_type", "POST", "/v1/messages", good, {"auth:alice"}, 415},
      {"bad_json", "POST", "/v1/messages", R"({"receiver":)", {"json", "auth:alice"}, 400},
      {"json_array", "POST", "/v1/messages", R"(["{bob}","x"])", {"json", "auth:alice"}, 400},
      {"missing_receiver", "POST", "/v1/messages", R"({"body":"x"})", {"json", "auth:alice"}, 400},
      {"missing_body", "POST", "/v1/messages", R"({"receiver":"{bob}"})", {"json", "auth:alice"}, 400},
      {"empty_body",
       "POST",
       "/v1/messages",
       R"({"receiver":"{bob}","body":""})",
       {"json", "auth:alice"},
       400},
      {"receiver_not_string",
       "POST",
       "/v1/messages",
       R"({"receiver":42,"body":"x"})",
       {"json", "auth:alice"},
       400},
      {"receiver_bad_chars",
       "POST",
       "/v1/messages",
       R"({"receiver":"b o b","body":"x"})",
       {"json", "auth:alice"},
       400},
      {"body_not_string",
       "POST",
       "/v1/messages",
       R"({"receiver":"{bob}","body":{"t":1}})",
       {"json", "auth:alice"},
       400},
      {"unknown_field",
       "POST",
       "/v1/messages",
       R"({"receiver":"{bob}","body":"x","priority":1})",
       {"json", "auth:alice"},
       400},
      {"invalid_utf8",
       "POST",
       "/v1/messages",
       "{\"receiver\":\"{bob}\",\"body\":\"caf\xC3\"}",
       {"json", "auth:alice"},
       400},
      {"body_over_limit",
       "POST",
       "/v1/messages",
       R"({"receiver":"{bob}","body":")" + std::string(66000, 'x') + "\"}",
       {"json", "auth:alice"},
       400},
      {"request_over_limit",
       "POST",
       "/v1/messages",
       std::string(intercomm::core::max_request_bytes(intercomm::core::kDefaultMaxBodyBytes) + 1, ' '),
       {"json", "auth:alice"},
       413},
      {"bad_message_id", "GET", "/v1/messages/not-an-id", "", {"auth:alice"}, 400},
      {"unknown_message_id", "GET", "/v1/messages/ZZZZZZZZZZZZZZZZ", "", {"auth:alice"}, 404},
      {"other_users_inbox", "GET", "/v1/users/{bob}/messages", "", {"auth:alice"}, 403},
      {"limit_too_large", "GET", "/v1/users/{alice}/messages?limit=1000", "", {"auth:alice"}, 400},
      {"limit_not_a_number", "GET", "/v1/users/{alice}/messages?limit=ten", "", {"auth:alice"}, 400},
      {"unknown_query", "GET", "/v1/users/{alice}/messages?sort=asc", "", {"auth:alice"}, 400},
      {"bad_cursor", "GET", "/v1/users/{alice}/messages?before=nope", "", {"auth:alice"}, 400},
      {"wrong_method", "PUT", "/v1/messages", good, {"json", "auth:alice"}, 405},
      {"unknown_route", "GET", "/v2/everything", "", {"auth:alice"}, 404},
      {"subscription_bad_url",
       "POST",
       "/v1/users/{alice}/subscriptions",
       R"({"webhook":{"url":"ftp://x/y"}})",
       {"json", "auth:alice"},
       400},
      {"others_subscriptions", "GET", "/v1/users/{bob}/subscriptions", "", {"auth:alice"}, 403},
  };
  for (const auto& bad : table) {
    std::vector<std::string> headers;
    for (const auto& header : bad.headers) {
      if (header == "json")
        headers.push_back(kJson);
      else if (header == "auth:alice")
        headers.push_back(bearer(alice_));
      else if (header == "auth:expired")
        headers.push_back(
            "Authorization: Bearer " +
            intercomm::gateway::mint_hs256(kSecret, alice_, 60s, std::chrono::system_clock::now() - 1h));
      else if (header == "auth:forged")
        headers.push_back("Authorization: Bearer " +
                          intercomm::gateway::mint_hs256("not-the-secret", alice_, 3600s));
      else
        headers.push_back(header);
    }
    Client client(port_);
    auto response =
        client.request(bad.method, expand(bad.target, alice_, bob_), expand(bad.body, alice_, bob_), headers);
    EXPECT_EQ(response.status, bad.status) << bad.name << ": " << response.body;
    boost::system::error_code ec;
    const auto body = json::parse(response.body, ec);
    ASSERT_FALSE(ec) << bad.name << ": not JSON: " << response.body;
    EXPECT_TRUE(body.is_object() && body.as_object().contains("error")) << bad.name << ": " << response.body;
    EXPECT_FALSE(body.at("error").at("message").as_string().empty()) << bad.name;
    if (bad.status == 401) {
      EXPECT_FALSE(response.headers["www-authenticate"].empty()) << bad.name;
    }
    if (bad.status == 405) {
      EXPECT_FALSE(response.headers["allow"].empty()) << bad.name;
    }
  }
  // One good message afterwards: the inboxes hold it and nothing else.
  auto sent = send(alice_, expand(good, alice_, bob_));
  ASSERT_EQ(sent.status, 202);
  const std::string id(json::parse(sent.body).at("message_id").as_string());
  EXPECT_EQ(inbox_with(bob_, 1), std::vector<std::string>{id});
  EXPECT_EQ(inbox(alice_), std::vector<std::string>{id});
}

TEST_P(Rest, SubscriptionsThroughRest) {
  Client client(port_);
  auto created =
      client.request("POST", "/v1/users/" + bob_ + "/subscriptions",
                     R"({"webhook":{"url":"https://example.com/hooks/bob"}})", {bearer(bob_), kJson});
  ASSERT_EQ(created.status, 201) << created.body;
  const auto subscription = json::parse(created.body);
  EXPECT_TRUE(subscription.at("secret").as_string().starts_with("whsec_"));
  const std::string id(subscription.at("subscription_id").as_string());
  auto listed = client.request("GET", "/v1/users/" + bob_ + "/subscriptions", "", {bearer(bob_)});
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(json::parse(listed.body).at("subscriptions").as_array().size(), 1U);
  auto removed = client.request("DELETE", "/v1/users/" + bob_ + "/subscriptions/" + id, "", {bearer(bob_)});
  EXPECT_EQ(removed.status, 204);
  auto again = client.request("DELETE", "/v1/users/" + bob_ + "/subscriptions/" + id, "", {bearer(bob_)});
  EXPECT_EQ(again.status, 404);
}

TEST_P(Rest, HealthAndReadiness) {
  Client client(port_);
  EXPECT_EQ(client.request("GET", "/healthz").status, 200);
  auto ready = client.request("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_TRUE(json::parse(ready.body).at("bus").as_bool());
  const std::string metrics = client.request("GET", "/metrics").body;
  EXPECT_NE(metrics.find("\nintercomm_dead_letters "), std::string::npos) << metrics;
  if (GetParam() == "embedded") {
    // The in-process workers' breakers are part of readiness, and gauges.
    EXPECT_TRUE(json::parse(ready.body).at("workers").as_bool()) << ready.body;
    EXPECT_NE(metrics.find("intercomm_worker_circuit_open{queue=\"rpc_queue_mta\"} 0"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("intercomm_worker_jobs_held{queue=\"rpc_queue_mda\"} 0"), std::string::npos) << metrics;
  }
}

TEST_P(Rest, TenConcurrentRetriesWithOneIdempotencyKeyStoreOneMessage) {
  const std::string key = "Idempotency-Key: order-" + suffix_;
  const std::string body = R"({"receiver":")" + bob_ + R"(","body":"pay once"})";
  std::vector<Client::Response> responses(10);
  {
    std::vector<std::thread> senders;
    for (auto& response : responses) {
      senders.emplace_back([&] {
        Client client(port_);
        response = client.request("POST", "/v1/messages", body, {bearer(alice_), kJson, key});
      });
    }
    for (auto& sender : senders) sender.join();
  }
  std::set<std::string> ids;
  int replayed = 0;
  for (const auto& response : responses) {
    ASSERT_EQ(response.status, 202) << response.body;
    ids.insert(std::string(json::parse(response.body).at("message_id").as_string()));
    replayed += response.headers.contains("idempotent-replayed");
  }
  ASSERT_EQ(ids.size(), 1U) << "every retry must get the first send's id";
  EXPECT_EQ(replayed, 9) << "all but the first are replays";
  const std::string id = *ids.begin();
  EXPECT_EQ(inbox_with(bob_, 1), std::vector<std::string>{id});

  // The same key with another body is a conflict; another user's same key is theirs.
  auto conflict = send_with(alice_, R"({"receiver":")" + bob_ + R"(","body":"pay twice"})", key);
  EXPECT_EQ(conflict.status, 409) << conflict.body;
  EXPECT_EQ(json::parse(conflict.body).at("error").at("code").as_int64(), -32009);
  auto carols = send_with(carol_, body, key);
  ASSERT_EQ(carols.status, 202) << carols.body;
  EXPECT_NE(json::parse(carols.body).at("message_id").as_string(), id);
  auto bad_key = send_with(alice_, body, "Idempotency-Key: has space");
  EXPECT_EQ(bad_key.status, 400) << bad_key.body;

  // Every send is stored once: bob's inbox holds alice's one message and carol's.
  EXPECT_EQ(inbox_with(bob_, 2).size(), 2U);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(inbox(bob_).size(), 2U);
  EXPECT_EQ(inbox(alice_), std::vector<std::string>{id});
}

TEST_P(Rest, MetricsCountWhatWasServed) {
  ASSERT_EQ(send(alice_, R"({"receiver":")" + bob_ + R"(","body":"counted"})").status, 202);
  Client client(port_);
  ASSERT_EQ(client.request("GET", "/v1/messages/ZZZZZZZZZZZZZZZZ", "", {bearer(alice_)}).status, 404);
  auto metrics = client.request("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_TRUE(metrics.headers["content-type"].starts_with("text/plain; version=0.0.4"));
  const auto count = [&](const std::string& series) {
    const auto at = metrics.body.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics.body.substr(at + series.size() + 2));
  };
  EXPECT_GE(count(R"(intercomm_http_requests_total{route="send_message",status="202"})"), 1) << metrics.body;
  EXPECT_GE(count(R"(intercomm_http_requests_total{route="get_message",status="404"})"), 1);
  EXPECT_GE(count(R"(intercomm_jobs_published_total{outcome="confirmed"})"), 1);
  EXPECT_GE(count(R"(intercomm_rpc_calls_total{method="get_message"})"), 1);
  EXPECT_GE(count(R"(intercomm_http_request_duration_seconds_count{route="send_message"})"), 1);
  // The /metrics request itself is in flight while it renders.
  EXPECT_EQ(count("intercomm_http_requests_in_flight"), 1);
}

INSTANTIATE_TEST_SUITE_P(Modes, Rest, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
