// The MTA's chat jobs over the bus, on each bus backend with a real store
// (RocksDB, Redis, Redis Cluster): conversations and the read marker with
// its signal, receipts, retraction, blocks with their signal, presence.
#include "integration/mta_fixture.hpp"

#include "bus/topology.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <future>
#include <thread>

namespace intercomm::mta {
namespace {

// Stands in for a gateway: a reply queue bound to live keys of
// inter_comm.live, collecting what arrives there.
class LiveListener {
 public:
  explicit LiveListener(BusFactory& factory) : bus_(factory.connect()) {
    auto rpc = bus::RpcClient::open(*bus_, [this](bus::Envelope& envelope) {
      if (envelope.routing_key == "blocks" || envelope.routing_key.starts_with(bus::kLivePrefix)) {
        got_.push(json::parse(envelope.body).as_object());
        return true;
      }
      return false;
    });
    EXPECT_TRUE(rpc);
    if (rpc) rpc_ = std::move(*rpc);
  }

  // Binds (or unbinds) `key`, as a gateway does while a user has sockets there.
  void bind(const std::string& key, bool bind = true) {
    std::promise<core::Result<void>> done;
    bus_->bind_reply_queue(std::string(bus::kLiveExchange), key, bind,
                           [&](core::Result<void> result) { done.set_value(result); });
    EXPECT_TRUE(done.get_future().get());
  }

  // The first frame of `type` (waiting a bounded time), or an empty object.
  json::object first(std::string_view type) {
    for (auto until = bus::Clock::now() + kTimeout; bus::Clock::now() < until;) {
      for (const auto& frame : got_.items()) {
        if (frame.at("type").as_string() == type) return frame;
      }
      std::this_thread::sleep_for(10ms);
    }
    return {};
  }

 private:
  std::unique_ptr<bus::Bus> bus_;
  std::unique_ptr<bus::RpcClient> rpc_;
  Collector<json::object> got_;
};

class MtaChat : public MtaSuite {
 protected:
  json::object ok(std::string_view job, json::object params) {
    auto result = call(job, std::move(params));
    EXPECT_TRUE(result) << job << ": " << (result ? "" : result.error().message);
    return result && result->is_object() ? result->as_object() : json::object();
  }

  ErrorCode refused(std::string_view job, json::object params) {
    auto result = call(job, std::move(params));
    EXPECT_FALSE(result) << job << " was not refused";
    return result ? ErrorCode::internal_error : result.error().code;
  }
};

TEST_P(MtaChat, ConversationsFollowTheMessagesAndTheReadMarkerTellsThePeer) {
  const auto alice = user("alice"), bob = user("bob");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(send(alice, bob, "a" + std::to_string(i)));
  ids.push_back(send(bob, alice, "b"));

  auto listed = ok(jobs::ListConversations::name, {{"user", bob}});
  ASSERT_EQ(listed.at("conversations").as_array().size(), 1U);
  const auto& conversation = listed.at("conversations").at(0);
  EXPECT_EQ(conversation.at("peer"), alice.c_str());
  EXPECT_EQ(conversation.at("unread").to_number<int>(), 3);
  EXPECT_EQ(conversation.at("last_seq").to_number<int>(), 4);
  EXPECT_EQ(conversation.at("last_message").at("message_id"), ids[3].c_str());
  EXPECT_TRUE(listed.at("next").is_null());

  auto page = ok(jobs::ListConversation::name, {{"user", bob}, {"peer", alice}, {"after_seq", 0}, {"limit", 2}});
  ASSERT_EQ(page.at("messages").as_array().size(), 2U);
  EXPECT_EQ(page.at("messages").at(0).at("message_id"), ids[0].c_str());
  EXPECT_EQ(page.at("next_seq").to_number<int>(), 2);

  LiveListener alices_gateway(*factory_);
  alices_gateway.bind(bus::live_key(alice));
  auto marked = ok(jobs::MarkRead::name, {{"user", bob}, {"peer", alice}, {"seq", 2}});
  EXPECT_EQ(marked.at("read_seq").to_number<int>(), 2);
  EXPECT_EQ(marked.at("unread").to_number<int>(), 1);
  auto signal = alices_gateway.first("read");
  ASSERT_FALSE(signal.empty()) << "no read signal for alice";
  EXPECT_EQ(signal.at("user"), bob.c_str());
  EXPECT_EQ(signal.at("seq").to_number<int>(), 2) << "alice's seq of the message the marker is at";

  auto receipt = ok(jobs::GetReceipt::name, {{"message_id", ids[1]}});
  EXPECT_TRUE(receipt.at("read_at").is_string());
  EXPECT_EQ(receipt.at("delivered_at"), receipt.at("read_at")) << "read implies delivered";
  EXPECT_TRUE(ok(jobs::GetReceipt::name, {{"message_id", ids[2]}}).at("read_at").is_null());

  EXPECT_EQ(refused(jobs::MarkRead::name, {{"user", bob}, {"peer", alice}, {"seq", 5}}), ErrorCode::invalid_params);
  EXPECT_EQ(refused(jobs::MarkRead::name, {{"user", bob}, {"peer", user("nobody")}, {"seq", 1}}),
            ErrorCode::not_found);
  EXPECT_EQ(refused(jobs::ListConversation::name, {{"user", bob}, {"peer", user("nobody")}}), ErrorCode::not_found);
}

TEST_P(MtaChat, OnlyTheSenderRetractsAndTheTombstoneKeepsItsPlace) {
  const auto alice = user("alice"), bob = user("bob");
  const auto id = send(alice, bob, "take it back");
  EXPECT_EQ(refused(jobs::RetractMessage::name, {{"user", bob}, {"message_id", id}}), ErrorCode::forbidden);
  auto retracted = ok(jobs::RetractMessage::name, {{"user", alice}, {"message_id", id}});
  auto again = ok(jobs::RetractMessage::name, {{"user", alice}, {"message_id", id}});
  EXPECT_EQ(again.at("retracted_at"), retracted.at("retracted_at")) << "the first retraction's time stays";
  auto stored = ok(jobs::GetMessage::name, {{"message_id", id}});
  EXPECT_EQ(stored.at("body"), "");
  EXPECT_EQ(stored.at("retracted_at"), retracted.at("retracted_at"));
  auto inbox = ok(jobs::ListConversation::name, {{"user", bob}, {"peer", alice}});
  EXPECT_EQ(inbox.at("messages").at(0).at("seq").to_number<int>(), 1) << "the same seq";
  EXPECT_EQ(inbox.at("messages").at(0).at("body"), "");
  EXPECT_EQ(refused(jobs::RetractMessage::name, {{"user", alice}, {"message_id", core::new_message_id()}}),
            ErrorCode::not_found);
}

TEST_P(MtaChat, BlocksAreKeptListedAndSignalledToEveryGateway) {
  const auto alice = user("alice"), bob = user("bob");
  LiveListener gateway(*factory_);
  gateway.bind("blocks");
  ok(jobs::BlockUser::name, {{"user", bob}, {"other", alice}});
  ok(jobs::BlockUser::name, {{"user", bob}, {"other", alice}});  // idempotent
  EXPECT_EQ(ok(jobs::ListBlocks::name, {{"user", bob}}).at("blocks"), (json::array{json::value(alice)}));
  auto signal = gateway.first("blocks");
  ASSERT_FALSE(signal.empty()) << "no blocks signal";
  EXPECT_EQ(signal.at("user"), bob.c_str());
  EXPECT_EQ(ok(jobs::UnblockUser::name, {{"user", bob}, {"other", alice}}).at("removed"), true);
  EXPECT_EQ(ok(jobs::UnblockUser::name, {{"user", bob}, {"other", alice}}).at("removed"), false);
  EXPECT_TRUE(ok(jobs::ListBlocks::name, {{"user", bob}}).at("blocks").as_array().empty());
  EXPECT_EQ(refused(jobs::BlockUser::name, {{"user", bob}, {"other", bob}}), ErrorCode::invalid_params);
}

TEST_P(MtaChat, PresenceIsWhereTheBrokerRoutesElseLastSeenForPeersOnly) {
  const auto alice = user("alice"), bob = user("bob");
  EXPECT_EQ(refused(jobs::GetPresence::name, {{"user", alice}, {"users", json::array{json::value(bob)}}}),
            ErrorCode::forbidden)
      << "no conversation yet";
  send(alice, bob, "hi");
  const json::object ask{{"user", alice}, {"users", json::array{json::value(bob)}}};
  EXPECT_EQ(ok(jobs::GetPresence::name, ask).at("users").at(bob),
            (json::object{{"online", false}, {"last_seen", nullptr}}));

  LiveListener bobs_gateway(*factory_);
  bobs_gateway.bind(bus::live_key(bob));  // bob opened a socket there
  EXPECT_EQ(ok(jobs::GetPresence::name, ask).at("users").at(bob), (json::object{{"online", true}}));

  ok(jobs::RecordLastSeen::name, {{"user", bob}, {"at", "2026-11-29T10:00:00.000Z"}});
  ok(jobs::RecordLastSeen::name, {{"user", bob}, {"at", "2026-11-29T09:00:00.000Z"}});  // older: ignored
  bobs_gateway.bind(bus::live_key(bob), false);  // his last socket closed
  EXPECT_EQ(ok(jobs::GetPresence::name, ask).at("users").at(bob),
            (json::object{{"online", false}, {"last_seen", "2026-11-29T10:00:00.000Z"}}));
}

INSTANTIATE_TEST_SUITE_P(Backends, MtaChat, mta_backends(), mta_backend_name);

}  // namespace
}  // namespace intercomm::mta
