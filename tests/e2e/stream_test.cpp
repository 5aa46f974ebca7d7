// Live delivery over WebSocket end to end: `intercomm run`, and split mode
// (two gateways, an MTA and an MDA over real RabbitMQ and Redis) with alice on
// one gateway and bob on the other.
#include "core/ids.hpp"
#include "gateway/jwt.hpp"
#include "support/deployment.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"
#include "support/ws_client.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <map>
#include <thread>
#include <vector>

namespace {

namespace json = boost::json;
using intercomm::testing::Client;
using intercomm::testing::WsClient;
using namespace std::chrono_literals;

constexpr const char* kSecret = "stream-secret-0123456789abcdef0123456789abcdef";

std::string token(const std::string& user, std::chrono::seconds ttl = 3600s) {
  return intercomm::gateway::mint_hs256(kSecret, user, ttl);
}

class Stream : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    suffix_ = intercomm::core::new_message_id();
    alice_ = "alice_" + suffix_;
    bob_ = "bob_" + suffix_;
    // Split: alice on one gateway, bob on the other.
    deployment_ = std::make_unique<intercomm::testing::Deployment>(GetParam(), kSecret);
    ASSERT_TRUE(deployment_->started()) << deployment_->error();
    alice_port_ = deployment_->port(0);
    bob_port_ = deployment_->port(1);
  }

  void TearDown() override {
    if (deployment_) {
      EXPECT_TRUE(deployment_->stop()) << "a process did not stop cleanly on SIGTERM";
    }
  }

  // alice sends `body` to bob through her gateway; returns the message id.
  std::string send(const std::string& body) {
    Client client(alice_port_);
    auto response =
        client.request("POST", "/v1/messages", R"({"receiver":")" + bob_ + R"(","body":")" + body + "\"}",
                       {"Authorization: Bearer " + token(alice_), "Content-Type: application/json"});
    EXPECT_EQ(response.status, 202) << response.body;
    return response.status == 202 ? std::string(json::parse(response.body).at("message_id").as_string()) : "";
  }

  // Opens a stream as `user` on `port`, the token in the header.
  std::unique_ptr<WsClient> open(const std::string& user, std::uint16_t port, const std::string& query = "") {
    auto ws = std::make_unique<WsClient>();
    EXPECT_TRUE(ws->connect(port, "/v1/stream" + query, {"Authorization: Bearer " + token(user)}))
        << "upgrade refused: " << ws->refused_status();
    return ws;
  }

  // The next frame, parsed; delivery receipts (signals these tests do not
  // look at, which may come at any time) skipped.
  static json::object next(WsClient& ws, std::chrono::milliseconds timeout = 20s) {
    while (auto text = ws.read(timeout)) {
      auto frame = json::parse(*text).as_object();
      if (frame.at("type") != "delivered") return frame;
    }
    return {};
  }

  static std::string id_in(const json::object& event) {
    const auto* message = event.if_contains("message");
    return message ? std::string(message->at("message_id").as_string()) : "";
  }

  // Waits for the socket's {"type":"live"}; then sends one message to bob
  // and returns its id once `ws` got it.
  std::string until_live(WsClient& ws) {
    auto first = next(ws);
    EXPECT_FALSE(first.empty()) << "no frame after the upgrade";
    if (first.empty()) return "";
    EXPECT_EQ(first.at("type").as_string(), "live");
    const std::string id = send("first");
    auto event = next(ws);
    EXPECT_EQ(id_in(event), id) << "a live socket misses nothing";
    return id;
  }

  std::string suffix_, alice_, bob_;
  std::unique_ptr<intercomm::testing::Deployment> deployment_;
  std::uint16_t alice_port_ = 0, bob_port_ = 0;
};

TEST_P(Stream, BobReceivesLiveAndAlicesOtherDeviceToo) {
  auto bob = open(bob_, bob_port_);
  until_live(*bob);
  auto alice_device = open(alice_, alice_port_);
  until_live(*alice_device);
  EXPECT_FALSE(next(*bob).empty()) << "bob gets alice's second 'first' too";

  const std::string id = send("merhaba");
  auto received = next(*bob);
  ASSERT_FALSE(received.empty()) << "bob got nothing";
  EXPECT_EQ(received.at("type").as_string(), "message");
  const auto& message = received.at("message").as_object();
  EXPECT_EQ(message.at("message_id").as_string(), id);
  EXPECT_EQ(message.at("sender").as_string(), alice_);
  EXPECT_EQ(message.at("receiver").as_string(), bob_);
  EXPECT_EQ(message.at("body").as_string(), "merhaba");
  EXPECT_EQ(received.at("seq").to_number<int>(), 3) << "bob's third message: 'first', 'first', 'merhaba'";
  auto copy = next(*alice_device);
  EXPECT_EQ(id_in(copy), id) << "the sender's other sockets get it too";
  EXPECT_EQ(copy.at("seq").to_number<int>(), 3) << "with its seq in alice's inbox";
}

TEST_P(Stream, ReconnectingWithAfterReplaysExactlyWhatWasMissedThenGoesLive) {
  auto bob = open(bob_, bob_port_);
  const std::string last_seen = until_live(*bob);
  ASSERT_FALSE(last_seen.empty());
  bob->close();

  std::vector<std::string> missed;
  for (int i = 0; i < 20; ++i) missed.push_back(send("missed " + std::to_string(i)));
  // They are stored a moment after the 202s: wait until bob's inbox has them.
  ASSERT_TRUE(intercomm::testing::wait_until(
      [&] {
        Client client(bob_port_);
        auto page = client.request("GET", "/v1/users/" + bob_ + "/messages?limit=1", "",
                                   {"Authorization: Bearer " + token(bob_)});
        return page.status == 200 && page.body.find(missed.back()) != std::string::npos;
      },
      20s));

  auto again = open(bob_, bob_port_, "?after=" + last_seen);
  std::vector<std::string> replayed;
  while (true) {
    auto event = next(*again);
    ASSERT_FALSE(event.empty()) << "the replay stopped after " << replayed.size();
    if (event.at("type").as_string() == "replayed") {
      EXPECT_EQ(event.at("count").as_int64(), 20);
      break;
    }
    replayed.push_back(id_in(event));
  }
  EXPECT_EQ(replayed, missed) << "exactly the 20 missed, oldest first";
  EXPECT_EQ(next(*again).at("type").as_string(), "live");

  const std::string live = send("after the replay");
  EXPECT_EQ(id_in(next(*again)), live);
  EXPECT_TRUE(next(*again, 1s).empty()) << "nothing twice";
}

TEST_P(Stream, UpgradesAreAuthenticatedAndChecked) {
  WsClient anonymous;
  EXPECT_FALSE(anonymous.connect(bob_port_, "/v1/stream"));
  EXPECT_EQ(anonymous.refused_status(), 401);
  for (const char* bad : {"?after=nope", "?after_seq=-1", "?after_seq=ten", "?after_seq=1&after=X9J0UI76GBWQTF",
                          "?after_seq=1&after_seq=2", "?since=1"}) {
    WsClient bad_cursor;
    EXPECT_FALSE(
        bad_cursor.connect(bob_port_, std::string("/v1/stream") + bad, {"Authorization: Bearer " + token(bob_)}))
        << bad;
    EXPECT_EQ(bad_cursor.refused_status(), 400) << bad;
  }
  // Well-formed but not in bob's inbox: the socket opens, then says why it closes.
  WsClient unknown_id;
  ASSERT_TRUE(unknown_id.connect(bob_port_, "/v1/stream?after=X9J0UI76GBWQTF", {"Authorization: Bearer " + token(bob_)}));
  EXPECT_FALSE(unknown_id.read(20s));
  EXPECT_EQ(unknown_id.close_code(), 1008);
  EXPECT_NE(unknown_id.close_reason().find("after"), std::string::npos) << unknown_id.close_reason();
  WsClient forged;
  EXPECT_FALSE(forged.connect(
      bob_port_, "/v1/stream?access_token=" + intercomm::gateway::mint_hs256("wrong-secret", bob_, 3600s)));
  EXPECT_EQ(forged.refused_status(), 401);
  // Browsers put the token in the query.
  WsClient browser;
  EXPECT_TRUE(browser.connect(bob_port_, "/v1/stream?access_token=" + token(bob_)));
  // A plain GET is told to upgrade.
  Client client(bob_port_);
  EXPECT_EQ(client.request("GET", "/v1/stream", "", {"Authorization: Bearer " + token(bob_)}).status, 426);
}

TEST_P(Stream, TheSocketClosesWhenItsTokenExpires) {
  WsClient ws;
  ASSERT_TRUE(ws.connect(bob_port_, "/v1/stream", {"Authorization: Bearer " + token(bob_, 2s)}));
  while (!ws.closed()) {
    if (!ws.read(10s) && !ws.closed()) break;
  }
  ASSERT_TRUE(ws.closed()) << "still open long after the token expired";
  EXPECT_EQ(ws.close_code(), 1008);
  EXPECT_EQ(ws.close_reason(), "token expired");
}

// Sending over the socket: 50 "send" frames, each answered once by its ref
// (accepted, with its id), and bob gets all 50, in the order they were sent.
TEST_P(Stream, MessagesSentOverTheSocketAreAnsweredPerRefAndDeliveredInOrder) {
  auto bob = open(bob_, bob_port_);
  ASSERT_EQ(next(*bob).at("type").as_string(), "live");
  auto alice = open(alice_, alice_port_);
  ASSERT_EQ(next(*alice).at("type").as_string(), "live");
  constexpr int kCount = 50;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(alice->write(json::serialize(json::object{
        {"type", "send"}, {"ref", "r" + std::to_string(i)}, {"receiver", bob_}, {"body", "m" + std::to_string(i)}})));
  }
  // alice's socket gets the answers and, as a sender's socket, each message.
  std::map<std::string, std::string> accepted;  // ref -> message id
  std::vector<std::string> copies;
  while (accepted.size() < kCount || copies.size() < kCount) {
    auto frame = next(*alice);
    ASSERT_FALSE(frame.empty()) << accepted.size() << " answers and " << copies.size() << " copies so far";
    const std::string type(frame.at("type").as_string());
    if (type == "message") {
      copies.push_back(id_in(frame));
      continue;
    }
    ASSERT_EQ(type, "accepted") << json::serialize(frame);
    EXPECT_FALSE(frame.at("replayed").as_bool());
    const std::string ref(frame.at("ref").as_string());
    EXPECT_TRUE(accepted.emplace(ref, std::string(frame.at("message_id").as_string())).second) << ref << " twice";
  }
  for (int i = 0; i < kCount; ++i) {
    auto frame = next(*bob);
    ASSERT_FALSE(frame.empty()) << "bob got " << i << " of " << kCount;
    const auto& message = frame.at("message").as_object();
    EXPECT_EQ(message.at("body").as_string(), "m" + std::to_string(i)) << "in the order sent";
    EXPECT_EQ(message.at("message_id").as_string(), accepted["r" + std::to_string(i)]);
    EXPECT_EQ(message.at("sender").as_string(), alice_);
  }
}

// A bad frame gets an error naming what to fix (the status POST would have
// answered), a reused idempotency key the first send's id; nothing bad is stored.
TEST_P(Stream, BadSendFramesGetErrorsAndStoreNothing) {
  auto alice = open(alice_, alice_port_);
  ASSERT_EQ(next(*alice).at("type").as_string(), "live");
  const auto answer = [&](const std::string& text) {
    EXPECT_TRUE(alice->write(text));
    for (;;) {  // skips the copies of alice's own messages
      auto frame = next(*alice);
      if (frame.empty() || frame.at("type") != "message") return frame;
    }
  };
  const auto send = [&](const std::string& ref, json::object fields) {
    fields["type"] = "send";
    fields["ref"] = ref;
    return answer(json::serialize(fields));
  };
  const auto error_of = [](const json::object& frame) {
    EXPECT_EQ(frame.at("type").as_string(), "error") << json::serialize(frame);
    return frame.contains("error") ? frame.at("error").as_object() : json::object{};
  };

  auto not_json = answer("merhaba");
  EXPECT_EQ(error_of(not_json).at("code").to_number<int>(), -32700);
  EXPECT_TRUE(not_json.at("ref").is_null());
  EXPECT_EQ(not_json.at("status").to_number<int>(), 400);
  auto no_ref = answer(json::serialize(json::object{{"type", "send"}, {"receiver", bob_}, {"body", "x"}}));
  EXPECT_EQ(error_of(no_ref).at("data").at("field"), "ref");
  auto unknown_type = answer(R"({"type":"shout","ref":"t1"})");
  EXPECT_EQ(unknown_type.at("ref"), "t1");
  EXPECT_EQ(error_of(unknown_type).at("data").at("field"), "type");
  auto misspelt = send("t2", {{"reciever", bob_}, {"body", "x"}});
  EXPECT_EQ(misspelt.at("status").to_number<int>(), 400);
  EXPECT_NE(error_of(misspelt).at("message").as_string().find("reciever"), std::string::npos);
  auto as_bob = send("t3", {{"sender", bob_}, {"receiver", alice_}, {"body", "x"}});
  EXPECT_EQ(as_bob.at("status").to_number<int>(), 403);
  auto too_big = send("t4", {{"receiver", bob_}, {"body", std::string(64 * 1024 + 1, 'x')}});
  EXPECT_EQ(too_big.at("status").to_number<int>(), 400) << json::serialize(too_big).substr(0, 300);
  auto bad_key = send("t5", {{"receiver", bob_}, {"body", "x"}, {"idempotency_key", "two words"}});
  EXPECT_EQ(error_of(bad_key).at("code").to_number<int>(), -32602);

  auto once = send("k1", {{"receiver", bob_}, {"body", "once"}, {"idempotency_key", "key-1"}});
  ASSERT_EQ(once.at("type").as_string(), "accepted") << json::serialize(once);
  auto again = send("k2", {{"receiver", bob_}, {"body", "once"}, {"idempotency_key", "key-1"}});
  ASSERT_EQ(again.at("type").as_string(), "accepted") << json::serialize(again);
  EXPECT_EQ(again.at("message_id"), once.at("message_id")) << "the key, not the ref, names the send";
  EXPECT_TRUE(again.at("replayed").as_bool());
  auto other = send("k3", {{"receiver", bob_}, {"body", "another"}, {"idempotency_key", "key-1"}});
  EXPECT_EQ(other.at("status").to_number<int>(), 409) << json::serialize(other);

  // bob's inbox holds the one message, once (accepted is queued, not yet stored: wait for it).
  Client client(bob_port_);
  const auto inbox = [&] {
    auto got = client.request("GET", "/v1/users/" + bob_ + "/messages", "", {"Authorization: Bearer " + token(bob_)});
    EXPECT_EQ(got.status, 200) << got.body;
    return got.status == 200 ? json::parse(got.body).at("messages").as_array() : json::array{};
  };
  ASSERT_TRUE(intercomm::testing::wait_until([&] { return !inbox().empty(); }, 20s));
  std::this_thread::sleep_for(300ms);  // and nothing more comes
  const json::array messages = inbox();
  ASSERT_EQ(messages.size(), 1U) << json::serialize(messages);
  EXPECT_EQ(messages[0].at("body").as_string(), "once");
  EXPECT_EQ(messages[0].at("message_id"), once.at("message_id"));
}

// Typing signals reach the peer's sockets (across gateways in split mode),
// are rate-limited per sender, and are never stored.
TEST_P(Stream, TypingIsRelayedRateLimitedAndNeverStored) {
  auto bob = open(bob_, bob_port_);
  ASSERT_EQ(next(*bob).at("type").as_string(), "live");
  auto alice = open(alice_, alice_port_);
  ASSERT_EQ(next(*alice).at("type").as_string(), "live");
  constexpr int kSignals = 10;  // twice the default burst (typing=2/s:5)
  for (int i = 0; i < kSignals; ++i) {
    ASSERT_TRUE(alice->write(json::serialize(json::object{{"type", "typing"}, {"to", bob_}})));
  }
  int relayed = 0;
  while (auto frame = bob->read(relayed == 0 ? 20s : 1s)) {
    const auto signal = json::parse(*frame).as_object();
    EXPECT_EQ(signal.at("type").as_string(), "typing");
    EXPECT_EQ(signal.at("from").as_string(), alice_);
    ++relayed;
  }
  int refused = 0;
  while (auto frame = alice->read(1s)) {
    const auto answer = json::parse(*frame).as_object();
    EXPECT_EQ(answer.at("type").as_string(), "error");
    EXPECT_EQ(answer.at("status").to_number<int>(), 429);
    ++refused;
  }
  EXPECT_GE(relayed, 5);
  EXPECT_LT(relayed, kSignals) << "the typing limit never refused";
  EXPECT_EQ(relayed + refused, kSignals) << "each signal relayed or refused, once";

  ASSERT_TRUE(alice->write(R"({"type":"typing","to":"b o b","ref":"t1"})"));
  auto bad = next(*alice);
  EXPECT_EQ(bad.at("ref"), "t1");
  EXPECT_EQ(bad.at("error").at("data").at("field"), "to");

  Client client(bob_port_);
  auto inbox = client.request("GET", "/v1/users/" + bob_ + "/messages", "", {"Authorization: Bearer " + token(bob_)});
  ASSERT_EQ(inbox.status, 200) << inbox.body;
  EXPECT_TRUE(json::parse(inbox.body).at("messages").as_array().empty()) << "a signal is never stored";
}

INSTANTIATE_TEST_SUITE_P(Modes, Stream, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
