// The chat features end to end, in `intercomm run` and in split mode (alice
// on one gateway, bob on the other, over real RabbitMQ and Redis):
// conversations, the read marker and its live signals, with bad input.
#include "core/ids.hpp"
#include "gateway/jwt.hpp"
#include "support/deployment.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"
#include "support/webhook_receiver.hpp"
#include "support/ws_client.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::Client;
using intercomm::testing::WsClient;
using namespace std::chrono_literals;

constexpr const char* kSecret = "chat-secret-0123456789abcdef0123456789abcdef";

class Chat : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    suffix_ = intercomm::core::new_message_id();
    alice_ = "alice_" + suffix_;
    bob_ = "bob_" + suffix_;
    carol_ = "carol_" + suffix_;
    intercomm::testing::DeploymentOptions options;
    // Webhooks to this machine (the tests' receiver) are refused unless allowed.
    (GetParam() == "embedded" ? options.extra_args : options.mda_args) = {"--allow-private-webhooks"};
    deployment_ = std::make_unique<intercomm::testing::Deployment>(GetParam(), kSecret, options);
    ASSERT_TRUE(deployment_->started()) << deployment_->error();
    port_[alice_] = deployment_->port(0);
    port_[bob_] = deployment_->port(1);
    port_[carol_] = deployment_->port(0);
  }

  void TearDown() override {
    if (deployment_) {
      EXPECT_TRUE(deployment_->stop()) << "a process did not stop cleanly on SIGTERM";
    }
  }

  std::string token(const std::string& user) { return intercomm::gateway::mint_hs256(kSecret, user, 3600s); }

  // A request as `user`, through their gateway.
  Client::Response call(const std::string& user, const std::string& method, const std::string& target,
                        const std::string& body = "") {
    Client client(port_.at(user));
    std::vector<std::string> headers{"Authorization: Bearer " + token(user)};
    if (!body.empty()) headers.push_back("Content-Type: application/json");
    return client.request(method, target, body, headers);
  }

  json::value call_json(const std::string& user, const std::string& method, const std::string& target,
                        int status = 200, const std::string& body = "") {
    auto response = call(user, method, target, body);
    EXPECT_EQ(response.status, status) << method << " " << target << ": " << response.body;
    return response.body.empty() ? json::value() : json::parse(response.body);
  }

  std::string send(const std::string& from, const std::string& to, const std::string& body) {
    auto accepted = call_json(from, "POST", "/v1/messages", 202,
                              json::serialize(json::object{{"receiver", to}, {"body", body}}));
    return accepted.is_object() ? std::string(accepted.at("message_id").as_string()) : "";
  }

  // Waits (bounded) until `ready` holds for user's conversations; returns the last list.
  json::array conversations_when(const std::string& user, const std::function<bool(const json::array&)>& ready,
                                 const std::string& query = "") {
    json::array list;
    for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
      auto page = call_json(user, "GET", "/v1/users/" + user + "/conversations" + query);
      if (page.is_object()) list = page.at("conversations").as_array();
      if (ready(list)) return list;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "the conversations of " << user << " never got there: " << json::serialize(list);
    return list;
  }

  static const json::object* find_peer(const json::array& list, const std::string& peer) {
    for (const auto& item : list) {
      if (item.at("peer") == peer.c_str()) return &item.as_object();
    }
    return nullptr;
  }

  std::unique_ptr<WsClient> open(const std::string& user) {
    auto ws = std::make_unique<WsClient>();
    EXPECT_TRUE(ws->connect(port_.at(user), "/v1/stream", {"Authorization: Bearer " + token(user)}));
    auto first = ws->read(20s);
    EXPECT_TRUE(first && json::parse(*first).at("type") == "live") << "no live frame";
    return ws;
  }

  // The next frame of `type` on `ws` (others skipped), or an empty object.
  static json::object next_of(WsClient& ws, std::string_view type) { return next_of_within(ws, type, 20s); }

  static json::object next_of_within(WsClient& ws, std::string_view type, std::chrono::milliseconds wait) {
    while (auto text = ws.read(wait)) {
      auto frame = json::parse(*text).as_object();
      if (frame.at("type").is_string() && frame.at("type").get_string() == type) return frame;
    }
    return {};
  }

  std::string suffix_, alice_, bob_, carol_;
  std::map<std::string, std::uint16_t> port_;
  std::unique_ptr<intercomm::testing::Deployment> deployment_;
};

TEST_P(Chat, ConversationsAppearOnBothSidesNewestFirstWithUnreadCounts) {
  for (int i = 0; i < 3; ++i) send(alice_, bob_, "hi " + std::to_string(i));
  const auto last = send(bob_, alice_, "hello back");
  // Messages of different conversations are not ordered among themselves:
  // carol writes once alice's conversation is stored, so hers is the newest.
  conversations_when(bob_, [&](const json::array& list) {
    const auto* with_alice = find_peer(list, alice_);
    return with_alice && with_alice->at("last_message").at("message_id") == last.c_str();
  });
  const auto from_carol = send(carol_, bob_, "from carol");

  auto bobs = conversations_when(bob_, [&](const json::array& list) {
    const auto* with_carol = find_peer(list, carol_);
    return list.size() == 2 && with_carol && with_carol->at("last_message").at("message_id") == from_carol.c_str();
  });
  ASSERT_EQ(bobs.size(), 2U);
  EXPECT_EQ(bobs[0].at("peer"), carol_.c_str()) << "carol wrote last: her conversation first";
  const auto& with_alice = *find_peer(bobs, alice_);
  EXPECT_EQ(with_alice.at("unread").to_number<int>(), 3) << "alice's three, not bob's own";
  EXPECT_EQ(with_alice.at("read_seq").to_number<int>(), 0);
  EXPECT_EQ(with_alice.at("last_seq"), with_alice.at("last_message").at("seq"));
  EXPECT_EQ(with_alice.at("last_message").at("body"), "hello back");

  auto alices = conversations_when(alice_, [&](const json::array& list) { return list.size() == 1; });
  EXPECT_EQ(alices[0].at("peer"), bob_.c_str());
  EXPECT_EQ(alices[0].at("unread").to_number<int>(), 1);

  // Pages: one at a time, by `next`.
  auto first = call_json(bob_, "GET", "/v1/users/" + bob_ + "/conversations?limit=1");
  ASSERT_EQ(first.at("conversations").as_array().size(), 1U);
  ASSERT_TRUE(first.at("next").is_number());
  auto second = call_json(bob_, "GET",
                          "/v1/users/" + bob_ + "/conversations?limit=1&before=" +
                              std::to_string(first.at("next").to_number<std::uint64_t>()));
  ASSERT_EQ(second.at("conversations").as_array().size(), 1U);
  EXPECT_EQ(second.at("conversations").at(0).at("peer"), alice_.c_str());
  EXPECT_TRUE(second.at("next").is_null());
}

TEST_P(Chat, AConversationHoldsTheTwoUsersMessagesOnlyBySeq) {
  std::vector<std::string> between;
  for (int i = 0; i < 6; ++i) {
    between.push_back(i % 2 ? send(bob_, alice_, "b" + std::to_string(i)) : send(alice_, bob_, "a" + std::to_string(i)));
    send(carol_, bob_, "noise " + std::to_string(i));
  }
  conversations_when(bob_, [&](const json::array& list) {
    const auto* with_alice = find_peer(list, alice_);
    return with_alice && with_alice->at("last_message").at("message_id") == between.back().c_str() &&
           find_peer(list, carol_) && find_peer(list, carol_)->at("unread").to_number<int>() == 6;
  });
  const std::string path = "/v1/users/" + bob_ + "/conversations/" + alice_ + "/messages";
  auto newest = call_json(bob_, "GET", path + "?limit=4");
  auto messages = newest.at("messages").as_array();
  ASSERT_EQ(messages.size(), 4U);
  EXPECT_EQ(messages[0].at("message_id"), between[5].c_str()) << "newest first without after_seq";
  EXPECT_EQ(messages[3].at("message_id"), between[2].c_str());
  const auto next_seq = newest.at("next_seq").to_number<std::uint64_t>();
  auto older = call_json(bob_, "GET", path + "?before_seq=" + std::to_string(next_seq));
  ASSERT_EQ(older.at("messages").as_array().size(), 2U);
  EXPECT_EQ(older.at("messages").at(1).at("message_id"), between[0].c_str());

  // Oldest first after a seq, and the two users' messages only.
  const auto first_seq = older.at("messages").at(1).at("seq").to_number<std::uint64_t>();
  auto after = call_json(bob_, "GET", path + "?after_seq=" + std::to_string(first_seq) + "&limit=100");
  ASSERT_EQ(after.at("messages").as_array().size(), 5U);
  std::uint64_t previous = first_seq;
  for (std::size_t i = 0; i < 5; ++i) {
    const auto& message = after.at("messages").at(i);
    EXPECT_EQ(message.at("message_id"), between[i + 1].c_str());
    EXPECT_GT(message.at("seq").to_number<std::uint64_t>(), previous);
    previous = message.at("seq").to_number<std::uint64_t>();
  }
}

TEST_P(Chat, MarkingReadMovesForwardOnlyAndTellsThePeerLive) {
  auto alice_socket = open(alice_);
  auto bob_socket = open(bob_);
  for (int i = 0; i < 4; ++i) send(alice_, bob_, "m" + std::to_string(i));
  auto bobs = conversations_when(bob_, [&](const json::array& list) {
    return find_peer(list, alice_) && find_peer(list, alice_)->at("unread").to_number<int>() == 4;
  });
  const auto last_seq = find_peer(bobs, alice_)->at("last_seq").to_number<std::uint64_t>();
  const std::string read_path = "/v1/users/" + bob_ + "/conversations/" + alice_ + "/read";

  auto marked = call_json(bob_, "POST", read_path, 200, R"({"seq":)" + std::to_string(last_seq - 2) + "}");
  EXPECT_EQ(marked.at("read_seq").to_number<std::uint64_t>(), last_seq - 2);
  EXPECT_EQ(marked.at("unread").to_number<int>(), 2);

  // alice (on the other gateway in split mode) learns it, in her own seqs.
  auto signal = next_of(*alice_socket, "read");
  ASSERT_FALSE(signal.empty()) << "no read signal reached alice";
  EXPECT_EQ(signal.at("user"), bob_.c_str());
  EXPECT_EQ(signal.at("peer"), alice_.c_str());
  auto alices_view = call_json(alice_, "GET", "/v1/users/" + alice_ + "/conversations/" + bob_ + "/messages?limit=4");
  EXPECT_EQ(signal.at("seq"), alices_view.at("messages").at(2).at("seq")) << "up to alice's second message";
  auto own = next_of(*bob_socket, "read");
  EXPECT_EQ(own.at("seq").to_number<std::uint64_t>(), last_seq - 2) << "bob's other devices, in bob's seqs";

  marked = call_json(bob_, "POST", read_path, 200, R"({"seq":1})");
  EXPECT_EQ(marked.at("read_seq").to_number<std::uint64_t>(), last_seq - 2) << "never back";
  marked = call_json(bob_, "POST", read_path, 200, R"({"seq":)" + std::to_string(last_seq) + "}");
  EXPECT_EQ(marked.at("unread").to_number<int>(), 0);
  auto listed = call_json(bob_, "GET", "/v1/users/" + bob_ + "/conversations");
  EXPECT_EQ(find_peer(listed.at("conversations").as_array(), alice_)->at("unread").to_number<int>(), 0);
  EXPECT_EQ(find_peer(listed.at("conversations").as_array(), alice_)->at("read_seq").to_number<std::uint64_t>(),
            last_seq);
}

TEST_P(Chat, BadConversationRequestsGetClearErrors) {
  send(alice_, bob_, "one");
  auto bobs = conversations_when(bob_, [&](const json::array& list) { return list.size() == 1; });
  const auto last_seq = bobs[0].at("last_seq").to_number<std::uint64_t>();
  const std::string mine = "/v1/users/" + bob_ + "/conversations";
  const auto error_code = [](const Client::Response& response) {
    return json::parse(response.body).at("error").at("code").to_number<int>();
  };

  auto response = call(bob_, "GET", "/v1/users/" + alice_ + "/conversations");
  EXPECT_EQ(response.status, 403) << "another user's conversations";
  response = call(bob_, "GET", "/v1/users/" + alice_ + "/conversations/" + bob_ + "/messages");
  EXPECT_EQ(response.status, 403);
  response = call(bob_, "POST", "/v1/users/" + alice_ + "/conversations/" + bob_ + "/read", R"({"seq":1})");
  EXPECT_EQ(response.status, 403);

  response = call(bob_, "GET", mine + "/" + carol_ + "/messages");
  EXPECT_EQ(response.status, 404) << "no conversation with that peer: " << response.body;
  EXPECT_EQ(error_code(response), -32004);
  response = call(bob_, "POST", mine + "/" + carol_ + "/read", R"({"seq":1})");
  EXPECT_EQ(response.status, 404);

  const std::vector<std::string> bodies{R"({"seq":-1})", R"({"seq":1.5})", R"({"seq":"1"})", R"({})",
                                       R"({"seq":1,"x":2})", R"([1])",
                                       R"({"seq":)" + std::to_string(last_seq + 1) + "}"};
  for (const auto& body : bodies) {
    response = call(bob_, "POST", mine + "/" + alice_ + "/read", body);
    EXPECT_EQ(response.status, 400) << body << ": " << response.body;
    EXPECT_EQ(error_code(response), -32602) << body;
  }
  for (const std::string query : {"?before=-1", "?limit=0", "?limit=x", "?after=1", "?before=1&before=2"}) {
    response = call(bob_, "GET", mine + query);
    EXPECT_EQ(response.status, 400) << query << ": " << response.body;
  }
  for (const std::string query : {"?after_seq=-3", "?before_seq=x", "?limit=0", "?seq=1"}) {
    response = call(bob_, "GET", mine + "/" + alice_ + "/messages" + query);
    EXPECT_EQ(response.status, 400) << query << ": " << response.body;
  }
  response = call(bob_, "GET", mine + "/al%20ice/messages");
  EXPECT_EQ(response.status, 400) << "a peer that is no user name";
  Client anonymous(port_.at(bob_));
  EXPECT_EQ(anonymous.request("GET", mine, "", {}).status, 401);

  // Nothing above moved the marker.
  auto after = call_json(bob_, "GET", mine);
  EXPECT_EQ(after.at("conversations").at(0).at("read_seq").to_number<int>(), 0);
  EXPECT_EQ(after.at("conversations").at(0).at("unread").to_number<int>(), 1);
}

// bob blocks alice on his gateway; alice, on hers (the other one in split
// mode), is refused at once — over POST and over her socket — and nothing of
// hers is stored; others still reach bob, bob still reaches alice; unblocking
// lets her through again.
TEST_P(Chat, ABlockedSenderIsRefusedOnEveryGatewayAndNothingIsStored) {
  send(alice_, bob_, "before the block");
  intercomm::testing::wait_for_inbox(port_.at(bob_), token(bob_), bob_, 1);
  auto alice_socket = open(alice_);
  const std::string blocks = "/v1/users/" + bob_ + "/blocks/" + alice_;
  EXPECT_EQ(call(bob_, "PUT", blocks).status, 204);
  EXPECT_EQ(call(bob_, "PUT", blocks).status, 204) << "idempotent";
  auto listed = call_json(bob_, "GET", "/v1/users/" + bob_ + "/blocks");
  EXPECT_EQ(listed.at("blocks"), (json::array{json::value(alice_)}));

  constexpr int kTries = 20;
  for (int i = 0; i < kTries; ++i) {
    auto refused = call(alice_, "POST", "/v1/messages",
                        json::serialize(json::object{{"receiver", bob_}, {"body", "blocked " + std::to_string(i)}}));
    ASSERT_EQ(refused.status, 403) << refused.body;
    EXPECT_EQ(json::parse(refused.body).at("error").at("code").to_number<int>(), -32003);
    ASSERT_TRUE(alice_socket->write(json::serialize(json::object{
        {"type", "send"}, {"ref", "s" + std::to_string(i)}, {"receiver", bob_}, {"body", "over the socket"}})));
    auto answer = next_of(*alice_socket, "error");
    EXPECT_EQ(answer.at("ref"), ("s" + std::to_string(i)).c_str());
    EXPECT_EQ(answer.at("status").to_number<int>(), 403);
  }
  send(carol_, bob_, "carol is not blocked");
  send(bob_, alice_, "bob may still write");
  intercomm::testing::wait_for_inbox(port_.at(bob_), token(bob_), bob_, 3);

  EXPECT_EQ(call(bob_, "DELETE", blocks).status, 204);
  EXPECT_EQ(call(bob_, "DELETE", blocks).status, 204) << "idempotent";
  send(alice_, bob_, "after the unblock");
  intercomm::testing::wait_for_inbox(port_.at(bob_), token(bob_), bob_, 4);
  auto inbox = call_json(bob_, "GET", "/v1/users/" + bob_ + "/messages?after_seq=0&limit=100");
  std::vector<std::string> bodies;
  for (const auto& message : inbox.at("messages").as_array()) bodies.emplace_back(message.at("body").as_string());
  // (carol's and bob's are of two conversations: stored in either order.)
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<std::string>{"after the unblock", "before the block", "bob may still write",
                                               "carol is not blocked"}))
      << "none of the " << 2 * kTries << " blocked sends was stored";
}

TEST_P(Chat, BadBlockRequestsGetClearErrors) {
  EXPECT_EQ(call(bob_, "PUT", "/v1/users/" + bob_ + "/blocks/" + bob_).status, 400) << "oneself";
  EXPECT_EQ(call(bob_, "PUT", "/v1/users/" + bob_ + "/blocks/a%20b").status, 400);
  EXPECT_EQ(call(bob_, "PUT", "/v1/users/" + alice_ + "/blocks/" + carol_).status, 403) << "another user's blocks";
  EXPECT_EQ(call(bob_, "DELETE", "/v1/users/" + alice_ + "/blocks/" + carol_).status, 403);
  EXPECT_EQ(call(bob_, "GET", "/v1/users/" + alice_ + "/blocks").status, 403);
  EXPECT_EQ(call(bob_, "GET", "/v1/users/" + bob_ + "/blocks?x=1").status, 400);
  Client anonymous(port_.at(bob_));
  EXPECT_EQ(anonymous.request("PUT", "/v1/users/" + bob_ + "/blocks/" + alice_, "", {}).status, 401);
  auto listed = call_json(bob_, "GET", "/v1/users/" + bob_ + "/blocks");
  EXPECT_TRUE(listed.at("blocks").as_array().empty()) << "nothing above blocked anyone";
}

// The sender takes a message back: both inboxes and the conversation keep its
// seq with a tombstone, both users' sockets are told, the receiver's webhook
// gets message.retracted; only the sender may, and only an existing message.
TEST_P(Chat, ARetractedMessageBecomesATombstoneEverywhere) {
  intercomm::testing::WebhookReceiver receiver([](std::size_t) { return 200; });
  call_json(bob_, "POST", "/v1/users/" + bob_ + "/subscriptions", 201,
            json::serialize(json::object{{"webhook", json::object{{"url", receiver.url()}}}}));
  auto alice_socket = open(alice_);
  auto bob_socket = open(bob_);
  const auto id = send(alice_, bob_, "I should not have said that");
  auto live = next_of(*bob_socket, "message");
  ASSERT_EQ(live.at("message").at("message_id"), id.c_str());
  const auto bob_seq = live.at("seq").to_number<std::uint64_t>();
  const auto alice_seq = next_of(*alice_socket, "message").at("seq").to_number<std::uint64_t>();
  ASSERT_EQ(receiver.wait_for(1, 30s).size(), 1U);

  EXPECT_EQ(call(bob_, "DELETE", "/v1/messages/" + id).status, 403) << "the receiver may not";
  EXPECT_EQ(call(carol_, "DELETE", "/v1/messages/" + id).status, 403);
  EXPECT_EQ(call(alice_, "DELETE", "/v1/messages/" + id).status, 204);
  EXPECT_EQ(call(alice_, "DELETE", "/v1/messages/" + id).status, 204) << "idempotent";
  EXPECT_EQ(call(alice_, "DELETE", "/v1/messages/01M8ZZZZZZZZZZZZZZZZZZZZZZ").status, 404);
  EXPECT_EQ(call(alice_, "DELETE", "/v1/messages/not-an-id").status, 400);

  for (auto [socket, seq] : {std::pair{bob_socket.get(), bob_seq}, std::pair{alice_socket.get(), alice_seq}}) {
    auto retracted = next_of(*socket, "retracted");
    ASSERT_FALSE(retracted.empty()) << "no retracted frame";
    EXPECT_EQ(retracted.at("message_id"), id.c_str());
    EXPECT_EQ(retracted.at("seq").to_number<std::uint64_t>(), seq) << "the seq of this socket's user";
  }
  auto stored = call_json(bob_, "GET", "/v1/messages/" + id);
  EXPECT_EQ(stored.at("body"), "");
  EXPECT_TRUE(stored.at("retracted_at").is_string());
  auto inbox = call_json(bob_, "GET", "/v1/users/" + bob_ + "/messages?after_seq=0");
  ASSERT_EQ(inbox.at("messages").as_array().size(), 1U);
  EXPECT_EQ(inbox.at("messages").at(0).at("seq").to_number<std::uint64_t>(), bob_seq) << "same seq";
  EXPECT_EQ(inbox.at("messages").at(0).at("body"), "");
  auto alices = call_json(alice_, "GET", "/v1/users/" + alice_ + "/conversations/" + bob_ + "/messages");
  EXPECT_EQ(alices.at("messages").at(0).at("body"), "");
  auto listed = call_json(bob_, "GET", "/v1/users/" + bob_ + "/conversations");
  EXPECT_TRUE(listed.at("conversations").at(0).at("last_message").at("retracted_at").is_string());

  // The webhook: message.retracted, its own webhook-id, the tombstone.
  std::optional<intercomm::testing::WebhookReceiver::Request> retraction;
  for (const auto& request : receiver.wait_for(3, 30s)) {
    if (json::parse(request.body).at("type") == "message.retracted") retraction = request;
  }
  ASSERT_TRUE(retraction) << "no message.retracted webhook";
  EXPECT_EQ(retraction->headers.at("webhook-id"), id + ".retracted");
  EXPECT_EQ(json::parse(retraction->body).at("data").at("body"), "");
}

// The sender learns when the message first reached the receiver (live, then
// on GET /v1/messages/{id}) and when the receiver read it; nobody else sees
// those times.
TEST_P(Chat, DeliveredAndReadReceiptsReachTheSenderOnly) {
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
TEST_P(Chat, MessagesCaughtUpFromTheInboxAreDeliveredOnceEach) {
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
TEST_P(Chat, PresenceFollowsSocketsOnAnyGatewayForPeersOnly) {
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

INSTANTIATE_TEST_SUITE_P(Modes, Chat, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
