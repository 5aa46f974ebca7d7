// Receipts and presence end to end, in `intercomm run` and in split mode:
// delivered (live and from a catch-up) and read, to the sender only; online
// across gateways, then last seen, for peers only.
#include "chat_fixture.hpp"

namespace {

using namespace intercomm::testing::chat;

class ChatSignals : public Chat {};

// The sender learns when the message first reached the receiver (live, then
// on GET /v1/messages/{id}) and when the receiver read it; nobody else sees
// those times.
TEST_P(ChatSignals, DeliveredAndReadReceiptsReachTheSenderOnly) {
  auto alice_socket = open(alice_);
  auto bob_socket = open(bob_);
  const auto id = send(alice_, bob_, "did you get this?");
  const auto alice_seq = next_of(*alice_socket, "message").at("seq").to_number<std::uint64_t>();
  auto delivered = next_of(*alice_socket, "delivered");
  ASSERT_FALSE(delivered.empty()) << "no delivered signal";
  EXPECT_EQ(delivered.at("message_id"), id.c_str());
  EXPECT_EQ(delivered.at("seq").to_number<std::uint64_t>(), alice_seq);
  auto seen = call_json(alice_, "GET", "/v1/messages/" + id);
  EXPECT_EQ(seen.at("delivered_at"), delivered.at("at"));
  EXPECT_TRUE(seen.at("read_at").is_null());
  auto bobs_view = call_json(bob_, "GET", "/v1/messages/" + id);
  EXPECT_FALSE(bobs_view.as_object().contains("delivered_at")) << "receipts are the sender's";

  const auto bob_seq = next_of(*bob_socket, "message").at("seq").to_number<std::uint64_t>();
  call_json(bob_, "POST", "/v1/users/" + bob_ + "/conversations/" + alice_ + "/read", 200,
            R"({"seq":)" + std::to_string(bob_seq) + "}");
  auto read = call_json(alice_, "GET", "/v1/messages/" + id);
  EXPECT_TRUE(read.at("read_at").is_string());
  EXPECT_EQ(read.at("delivered_at"), seen.at("delivered_at")) << "the first delivery stays";

  // carol has no socket and no webhook: nothing reached her yet.
  const auto offline = send(alice_, carol_, "are you there?");
  intercomm::testing::wait_for_inbox(port_.at(carol_), token(carol_), carol_, 1);
  auto waiting = call_json(alice_, "GET", "/v1/messages/" + offline);
  EXPECT_TRUE(waiting.at("delivered_at").is_null());
  EXPECT_TRUE(waiting.at("read_at").is_null());
}

// A receiver who was offline gets their messages by catching up from the
// inbox: each one is delivered then, once, and its sender is told — counted
// over many messages, across gateways in split mode.
TEST_P(ChatSignals, MessagesCaughtUpFromTheInboxAreDeliveredOnceEach) {
  constexpr int kCount = 150;  // more than one catch-up page
  auto alice_socket = open(alice_);
  std::set<std::string> sent;
  for (int i = 0; i < kCount; ++i) sent.insert(send(alice_, bob_, "while you were away " + std::to_string(i)));
  send(bob_, alice_, "bob's own message in his inbox is no receipt for alice");
  intercomm::testing::wait_for_inbox(port_.at(bob_), token(bob_), bob_, kCount + 1);
  for (const auto& id : {*sent.begin(), *sent.rbegin()}) {
    EXPECT_TRUE(call_json(alice_, "GET", "/v1/messages/" + id).at("delivered_at").is_null()) << "bob was offline";
  }

  const auto catch_up = [&] {
    WsClient bob;
    EXPECT_TRUE(bob.connect(port_.at(bob_), "/v1/stream?after_seq=0", {"Authorization: Bearer " + token(bob_)}));
    std::size_t messages = 0;
    while (auto text = bob.read(20s)) {
      const auto frame = json::parse(*text);
      if (frame.at("type") == "message") ++messages;
      if (frame.at("type") == "live") break;
    }
    EXPECT_EQ(messages, kCount + 1u);
  };
  catch_up();
  std::set<std::string> told;
  std::map<std::string, std::string> told_at;
  while (told.size() < sent.size()) {
    auto delivered = next_of(*alice_socket, "delivered");
    if (delivered.empty()) break;
    const std::string id(delivered.at("message_id").as_string());
    EXPECT_TRUE(sent.contains(id)) << "a receipt for " << id;
    EXPECT_TRUE(told.insert(id).second) << id << " told twice";
    told_at[id] = delivered.at("at").as_string();
  }
  EXPECT_EQ(told, sent) << told.size() << " of " << sent.size() << " told";
  for (const auto& id : sent) {
    auto seen = call_json(alice_, "GET", "/v1/messages/" + id);
    EXPECT_EQ(seen.at("delivered_at"), json::value(told_at[id])) << id;
  }

  // Catching up again delivers nothing new: the first time stays, nobody is told twice.
  catch_up();
  const auto again = next_of_within(*alice_socket, "delivered", 2s);
  EXPECT_TRUE(again.empty()) << "told again: " << json::serialize(again);
  EXPECT_EQ(call_json(alice_, "GET", "/v1/messages/" + *sent.begin()).at("delivered_at"),
            json::value(told_at[*sent.begin()]));
}

// Presence follows sockets on any gateway (split: bob's socket is on the
// other gateway), then shows when the user was last seen; only for users one
// has a conversation with; over REST and over the socket.
TEST_P(ChatSignals, PresenceFollowsSocketsOnAnyGatewayForPeersOnly) {
  send(alice_, bob_, "hi");
  intercomm::testing::wait_for_inbox(port_.at(bob_), token(bob_), bob_, 1);
  const std::string presence = "/v1/users/" + alice_ + "/presence?users=";
  auto offline = call_json(alice_, "GET", presence + bob_);
  EXPECT_EQ(offline.at("users").at(bob_).at("online"), false);
  EXPECT_TRUE(offline.at("users").at(bob_).at("last_seen").is_null()) << "never seen yet";

  auto bob_socket = open(bob_);
  auto online = call_json(alice_, "GET", presence + bob_ + "," + alice_);
  EXPECT_EQ(online.at("users").at(bob_), (json::object{{"online", true}}));
  EXPECT_EQ(online.at("users").at(alice_).at("online"), false) << "alice has no socket open";

  auto alice_socket = open(alice_);
  ASSERT_TRUE(alice_socket->write(json::serialize(json::object{{"type", "presence"}, {"ref", "p1"}, {"users", json::array{json::value(bob_)}}})));
  auto answer = next_of(*alice_socket, "presence");
  EXPECT_EQ(answer.at("ref"), "p1");
  EXPECT_EQ(answer.at("users").at(bob_).at("online"), true);
  ASSERT_TRUE(alice_socket->write(json::serialize(json::object{{"type", "presence"}, {"ref", "p2"}, {"users", json::array{json::value(carol_)}}})));
  auto refused = next_of(*alice_socket, "error");
  EXPECT_EQ(refused.at("ref"), "p2");
  EXPECT_EQ(refused.at("status").to_number<int>(), 403);

  bob_socket->close();
  json::value seen;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
    seen = call_json(alice_, "GET", presence + bob_).at("users").at(bob_);
    if (seen.at("online") == false && seen.at("last_seen").is_string()) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(seen.at("online"), false);
  EXPECT_TRUE(seen.at("last_seen").is_string()) << json::serialize(seen);

  EXPECT_EQ(call(alice_, "GET", presence + carol_).status, 403) << "no conversation with carol";
  EXPECT_EQ(call(alice_, "GET", presence + bob_ + "," + carol_).status, 403);
  EXPECT_EQ(call(alice_, "GET", presence).status, 400) << "no users";
  EXPECT_EQ(call(alice_, "GET", "/v1/users/" + alice_ + "/presence").status, 400);
  EXPECT_EQ(call(alice_, "GET", presence + "a%20b").status, 400);
  EXPECT_EQ(call(alice_, "GET", presence + bob_ + ",,").status, 400);
  std::string many;
  for (int i = 0; i < 51; ++i) many += (i ? "," : "") + bob_;
  EXPECT_EQ(call(alice_, "GET", presence + many).status, 400) << "more than 50";
  EXPECT_EQ(call(bob_, "GET", presence + bob_).status, 403) << "another user's view";
}

INSTANTIATE_TEST_SUITE_P(Modes, ChatSignals, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
