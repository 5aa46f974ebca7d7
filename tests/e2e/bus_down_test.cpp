// RabbitMQ stopped under a running gateway: POST /v1/messages answers 503 and
// never 202; once RabbitMQ is back, sends are accepted and stored again.
#include "gateway/jwt.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/rabbitmq_node.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <boost/json/parse.hpp>

#include <filesystem>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::ChildProcess;
using intercomm::testing::Client;
using namespace std::chrono_literals;

constexpr const char* kSecret = "bus-down-secret";

TEST(BusDown, SendsAre503WhileRabbitMqIsStoppedAnd202AfterItIsBack) {
  const std::string dir = intercomm::testing::servers_dir() + "/bus-down-" + std::to_string(getpid());
  intercomm::testing::RabbitNode node(dir + "/rabbitmq");
  ASSERT_TRUE(node.started()) << "could not start a private RabbitMQ node";

  ChildProcess mta({INTERCOMM_BINARY, "mta", "--amqp", node.url(), "--store", "rocksdb:" + dir + "/store"});
  ASSERT_FALSE(mta.wait_for_line("intercomm mta: serving ").empty());
  ChildProcess gateway({INTERCOMM_BINARY, "gateway", "--listen", "127.0.0.1:0", "--amqp", node.url(),
                        "--secret", kSecret, "--rpc-timeout-ms", "2000"});
  const std::string line = gateway.wait_for_line("intercomm gateway: listening on ");
  ASSERT_FALSE(line.empty());
  const auto port = static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  const std::string alice =
      "Authorization: Bearer " + intercomm::gateway::mint_hs256(kSecret, "alice", 3600s);
  const std::string bob = "Authorization: Bearer " + intercomm::gateway::mint_hs256(kSecret, "bob", 3600s);

  const auto send = [&](const std::string& body) {
    Client client(port);
    return client.request("POST", "/v1/messages", R"({"receiver":"bob","body":")" + body + "\"}",
                          {alice, "Content-Type: application/json"});
  };
  const auto stored = [&](const std::string& id) {
    return intercomm::testing::wait_until(
        [&] {
          Client client(port);
          return client.request("GET", "/v1/messages/" + id, "", {bob}).status == 200;
        },
        60s);
  };

  // Up: accepted and stored. The queue lives a few seconds before the stop
  // (see docs/BUS.md on young quorum queues).
  auto before = send("before");
  ASSERT_EQ(before.status, 202) << before.body;
  ASSERT_TRUE(stored(std::string(json::parse(before.body).at("message_id").as_string())));
  std::this_thread::sleep_for(3s);

  ASSERT_TRUE(node.stop());
  int refused = 0;
  for (int i = 0; i < 5; ++i) {
    auto response = send("while down " + std::to_string(i));
    EXPECT_EQ(response.status, 503) << "with RabbitMQ stopped a send must never be accepted: "
                                    << response.body;
    EXPECT_EQ(response.headers["retry-after"], "1");
    EXPECT_EQ(json::parse(response.body).at("error").at("code").as_int64(), -32010);
    refused += response.status == 503;
  }
  EXPECT_EQ(refused, 5);
  {
    Client client(port);
    EXPECT_EQ(client.request("GET", "/readyz").status, 503) << "not ready without the bus";
  }

  ASSERT_TRUE(node.restart());
  Client::Response after;
  ASSERT_TRUE(intercomm::testing::wait_until(
      [&] {
        after = send("after");
        EXPECT_TRUE(after.status == 202 || after.status == 503) << after.status << " " << after.body;
        return after.status == 202;
      },
      60s))
      << "the gateway did not accept sends again after RabbitMQ came back";
  EXPECT_TRUE(stored(std::string(json::parse(after.body).at("message_id").as_string())))
      << "the MTA did not store a message accepted after the restart";

  EXPECT_EQ(gateway.terminate(), 0);
  EXPECT_EQ(mta.terminate(), 0);
  std::filesystem::remove_all(dir + "/store");
}

}  // namespace
