// `intercomm mta` as separate processes: two of them serve the seed's RPC over
// real RabbitMQ with a real Redis store, and stop cleanly on SIGTERM.
#include "bus/rpc_client.hpp"
#include "core/ids.hpp"
#include "support/bus_backends.hpp"
#include "support/child_process.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

using Process = intercomm::testing::ChildProcess;

TEST(MtaProcess, TwoProcessesServeTheSeedsRpcAndStopOnSigterm) {
  const std::string amqp = intercomm::testing::test_amqp_url();
  const char* redis = std::getenv("INTERCOMM_TEST_REDIS");
  ASSERT_FALSE(amqp.empty()) << "INTERCOMM_TEST_AMQP is not set: run through scripts/test.sh";
  ASSERT_NE(redis, nullptr) << "INTERCOMM_TEST_REDIS is not set: run through scripts/test.sh";
  Process first({INTERCOMM_BINARY, "mta", "--amqp", amqp, "--store", redis});
  Process second({INTERCOMM_BINARY, "mta", "--amqp", amqp, "--store", redis});
  ASSERT_TRUE(first.started() && second.started());

  intercomm::testing::BusFactory factory("amqp");
  auto bus = factory.connect();
  ASSERT_NE(bus, nullptr);
  auto rpc = intercomm::bus::RpcClient::open(*bus);
  ASSERT_TRUE(rpc);

  const std::string alice = "alice_" + intercomm::core::new_message_id();
  const std::string bob = "bob_" + intercomm::core::new_message_id();
  // The processes may still be starting: the first call waits for them.
  intercomm::bus::RpcResult sent = intercomm::core::Error::of(intercomm::core::ErrorCode::unavailable);
  for (auto until = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < until;) {
    sent = (*rpc)->call_and_wait(
        "send_message", {{"message", {{"sender", alice}, {"receiver", bob}, {"body", "merhaba"}}}}, 5s);
    if (sent || sent.error().code != intercomm::core::ErrorCode::unavailable) break;
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(sent) << sent.error().message;
  const std::string id(sent->at("message_id").as_string());

  // Many calls: both processes take a share of rpc_queue_mta (competing consumers).
  for (int i = 0; i < 50; ++i) {
    auto got = (*rpc)->call_and_wait("get_message", {{"message_id", id}}, 10s);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(got->at("body").as_string(), "merhaba");
    EXPECT_EQ(got->at("sender").as_string(), alice);
  }
  EXPECT_EQ(first.terminate(20s), 0);
  // With one process gone the other still answers.
  auto got = (*rpc)->call_and_wait("get_message", {{"message_id", id}}, 10s);
  EXPECT_TRUE(got);
  EXPECT_EQ(second.terminate(20s), 0);
}

}  // namespace
