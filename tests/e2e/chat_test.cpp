// The chat features end to end, in `intercomm run` and in split mode:
// conversations, the read marker and its live signals, blocking and
// retraction, with bad input. Receipts and presence: chat_signals_test.cpp.
#include "chat_fixture.hpp"

namespace {

using namespace intercomm::testing::chat;

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

INSTANTIATE_TEST_SUITE_P(Modes, Chat, ::testing::Values("embedded", "split"),
                         [](const auto& info) { return info.param; });

}  // namespace
