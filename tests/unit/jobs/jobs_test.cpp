#include "jobs/jobs.hpp"  // first: the header is self-contained

#include "core/jsonrpc.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace intercomm::jobs {
namespace {

namespace json = boost::json;

core::Message stored_message() {
  core::Message message;
  message.message_id = "01JC7Z3K9Q4W8E6R2T1Y5U0I3O";
  message.sender = "alice";
  message.receiver = "bob";
  message.body = "merhaba";
  message.created_at = "2026-11-29T01:00:00.000Z";
  return message;
}

json::object object_of(std::string_view text) { return json::parse(text).as_object(); }

// The field a -32602 names, as the caller sees it.
template <class T>
std::string refused_field(const core::Result<T>& result) {
  EXPECT_FALSE(result);
  if (result) return "";
  const core::Error error = result.error();
  EXPECT_EQ(error.code, core::ErrorCode::invalid_params) << error.message;
  const auto* field = error.data.is_object() ? error.data.as_object().if_contains("field") : nullptr;
  return field != nullptr && field->is_string() ? std::string(field->get_string()) : error.message;
}

const core::MessageLimits kLimits{};
const PageBounds kBounds{50, 100};

TEST(Jobs, EachJobDecodesWhatItsEncodeWrote) {
  const auto message = stored_message();

  auto send = SendMessage::decode(SendMessage{message}.encode(), kLimits);
  ASSERT_TRUE(send) << send.error().message;
  EXPECT_EQ(send->message.body, message.body);
  EXPECT_EQ(send->message.message_id, message.message_id);

  auto get = GetMessage::decode(GetMessage{message.message_id}.encode());
  ASSERT_TRUE(get);
  EXPECT_EQ(get->message_id, message.message_id);

  ListMessages list;
  list.user = "bob";
  list.after_seq = 7;
  list.before = message.message_id;
  list.limit = 20;
  auto listed = ListMessages::decode(list.encode(), kBounds);
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_EQ(listed->user, "bob");
  EXPECT_EQ(listed->after_seq, 7U);
  EXPECT_EQ(listed->before, message.message_id);
  EXPECT_FALSE(listed->after);
  EXPECT_EQ(listed->limit, 20U);

  auto deliveries = ListDeliveries::decode(ListDeliveries{message.message_id, "sub-1/2", 3}.encode(), kBounds);
  ASSERT_TRUE(deliveries);
  EXPECT_EQ(deliveries->after, "sub-1/2");
  EXPECT_EQ(deliveries->limit, 3U);

  auto subscribe = SubscribeUser::decode(SubscribeUser{"bob", "https://hooks.example/in?x=1"}.encode());
  ASSERT_TRUE(subscribe);
  EXPECT_EQ(subscribe->url, "https://hooks.example/in?x=1");

  auto subscriptions = ListSubscriptions::decode(ListSubscriptions{"bob"}.encode());
  ASSERT_TRUE(subscriptions);
  EXPECT_EQ(subscriptions->user, "bob");

  auto unsubscribe = UnsubscribeUser::decode(UnsubscribeUser{"bob", message.message_id}.encode());
  ASSERT_TRUE(unsubscribe);
  EXPECT_EQ(unsubscribe->subscription_id, message.message_id);

  auto claim = ClaimIdempotencyKey::decode(ClaimIdempotencyKey{"alice", "k-1", message}.encode(), kLimits);
  ASSERT_TRUE(claim) << claim.error().message;
  EXPECT_EQ(claim->key, "k-1");
  EXPECT_EQ(claim->message.created_at, message.created_at);
  auto claimed = ClaimIdempotencyKey::decode_result(ClaimIdempotencyKey::Claimed{"X1", "T1", true}.encode());
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->message_id, "X1");
  EXPECT_TRUE(claimed->replayed);

  auto deliver = DeliverMessage::decode(DeliverMessage{message, {{"alice", 4}, {"bob", 9}}}.encode());
  ASSERT_TRUE(deliver) << deliver.error().message;
  EXPECT_EQ(deliver->seqs, (Seqs{{"alice", 4}, {"bob", 9}}));

  auto webhook = DeliverWebhook::decode(DeliverWebhook{message, "bob", "S1", 3}.encode());
  ASSERT_TRUE(webhook) << webhook.error().message;
  EXPECT_EQ(webhook->attempt, 3U);
  EXPECT_EQ(webhook->subscription_id, "S1");
}

TEST(Jobs, DecodeRefusesBadParamsNamingTheField) {
  const std::string message = R"("message":{"sender":"alice","receiver":"bob","body":"hi"})";
  EXPECT_EQ(refused_field(SendMessage::decode(object_of("{" + message + R"(,"extra":1})"), kLimits)), "extra");
  EXPECT_EQ(refused_field(SendMessage::decode(object_of("{}"), kLimits)), "message");
  // get_message's failure is the seed's: -32602 with the field and what it expects.
  auto get = GetMessage::decode(object_of(R"({"message_id":"not an id"})"));
  EXPECT_EQ(refused_field(get), "message_id");
  const core::Error refused = get.error();
  ASSERT_TRUE(refused.data.is_object());
  EXPECT_TRUE(refused.data.as_object().contains("expected"));
  EXPECT_EQ(refused_field(GetMessage::decode(object_of(R"({"message_id":"01JC7Z3K9Q","x":1})"))), "message_id");

  EXPECT_EQ(refused_field(ListMessages::decode(object_of(R"({"user":"bob","after":"01JC7Z3K9Q","after_seq":3})"),
                                               kBounds)),
            "after");
  EXPECT_EQ(refused_field(ListMessages::decode(object_of(R"({"user":"bob","after_seq":-1})"), kBounds)),
            "after_seq");
  EXPECT_EQ(refused_field(ListMessages::decode(object_of(R"({"user":"bob","limit":101})"), kBounds)), "limit");
  EXPECT_EQ(refused_field(ListMessages::decode(object_of(R"({"user":"bob","limit":0})"), kBounds)), "limit");
  EXPECT_EQ(refused_field(ListMessages::decode(object_of(R"({"user":"b o b"})"), kBounds)), "user");
  EXPECT_EQ(refused_field(ListMessages::decode(object_of(R"({"user":"bob","befor":"x"})"), kBounds)), "befor");
  auto defaulted = ListMessages::decode(object_of(R"({"user":"bob"})"), kBounds);
  ASSERT_TRUE(defaulted);
  EXPECT_EQ(defaulted->limit, kBounds.fallback);

  EXPECT_EQ(refused_field(ListDeliveries::decode(object_of(R"({"message_id":"01JC7Z3K9Q","after":""})"), kBounds)),
            "after");
  for (const char* url : {"ftp://hooks.example/", "https://u:p@hooks.example/", "https://hooks.example/#x",
                          "/relative", "https:///nohost"}) {
    EXPECT_EQ(refused_field(SubscribeUser::decode(
                  json::object{{"user", "bob"}, {"webhook", json::object{{"url", url}}}})),
              "webhook.url")
        << url;
  }
  EXPECT_EQ(refused_field(SubscribeUser::decode(object_of(
                R"({"user":"bob","webhook":{"url":"https://hooks.example/","secret":"x"}})"))),
            "webhook");
  EXPECT_EQ(refused_field(UnsubscribeUser::decode(object_of(R"({"user":"bob"})"))), "subscription_id");
  EXPECT_EQ(refused_field(ClaimIdempotencyKey::decode(object_of(R"({"user":"alice","key":"a b",)" + message + "}"),
                                                      kLimits)),
            "key");
  EXPECT_EQ(refused_field(ClaimIdempotencyKey::decode(object_of(R"({"user":"alice","key":"k",)" + message + "}"),
                                                      kLimits)),
            "message");  // without message_id and created_at

  const std::string stored = json::serialize(core::to_json(stored_message()));
  EXPECT_EQ(refused_field(DeliverMessage::decode(object_of(R"({"message":)" + stored + R"(,"seqs":{"bob":0}})"))),
            "seqs");
  EXPECT_EQ(refused_field(DeliverMessage::decode(object_of(R"({"message":)" + stored + R"(,"seqs":[1]})"))),
            "seqs");
  for (const char* attempt : {"0", "101", "\"2\""}) {
    EXPECT_EQ(refused_field(DeliverWebhook::decode(object_of(R"({"message":)" + stored +
                                                             R"(,"user":"bob","subscription_id":"S","attempt":)" +
                                                             attempt + "}"))),
              "attempt")
        << attempt;
  }
}

TEST(Jobs, AJobGoesOnTheBusAsANotificationRoutedByItsName) {
  const auto envelope = jobs::envelope(GetMessage{"01JC7Z3K9Q"});
  EXPECT_EQ(envelope.routing_key, GetMessage::name);
  const auto parsed = core::jsonrpc::parse_request(json::parse(envelope.body));
  const auto* request = std::get_if<core::jsonrpc::Request>(&parsed);
  ASSERT_NE(request, nullptr) << envelope.body;
  EXPECT_EQ(request->method, GetMessage::name);
  EXPECT_TRUE(request->is_notification());
  EXPECT_EQ(request->params_or_empty().at("message_id"), "01JC7Z3K9Q");
}

TEST(Jobs, ResultsOfTheWrongShapeAreErrorsNotThrows) {
  EXPECT_FALSE(ListMessages::decode_result(json::parse(R"({"messages":[{"seq":"x"}]})")));
  EXPECT_FALSE(ListMessages::decode_result(json::parse(R"({"messages":{}})")));
  EXPECT_FALSE(ListMessages::decode_result(json::parse("[]")));
  EXPECT_FALSE(ClaimIdempotencyKey::decode_result(json::parse(R"({"message_id":"X"})")));
  EXPECT_FALSE(GetMessage::decode_result(json::parse(R"({"sender":"alice"})")));

  auto page = ListMessages::decode_result(json::parse(
      R"({"messages":[{"seq":3,"message_id":"A"},{"seq":4,"message_id":"B"}],"next":"B","next_seq":4,"after_seq":2})"));
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->messages.size(), 2U);
  EXPECT_EQ(page->messages[1].seq, 4U);
  EXPECT_FALSE(page->messages[1].message.contains("seq"));
  EXPECT_EQ(page->next_seq, 4U);
  EXPECT_EQ(page->after_seq, 2U);
  auto last = ListMessages::decode_result(json::parse(R"({"messages":[],"next":null,"next_seq":null})"));
  ASSERT_TRUE(last);
  EXPECT_FALSE(last->next_seq);
}

}  // namespace
}  // namespace intercomm::jobs

namespace intercomm::jobs {
namespace {

TEST(ConversationJobs, EachDecodesWhatItsEncodeWrote) {
  ListConversations list{"bob", 42, 10};
  auto listed = ListConversations::decode(list.encode(), kBounds);
  ASSERT_TRUE(listed) << listed.error().message;
  EXPECT_EQ(listed->user, "bob");
  EXPECT_EQ(listed->before, std::optional<std::uint64_t>(42));
  EXPECT_EQ(listed->limit, std::optional<std::size_t>(10));
  auto defaulted = ListConversations::decode(object_of(R"({"user":"bob"})"), kBounds);
  ASSERT_TRUE(defaulted);
  EXPECT_EQ(defaulted->before, std::nullopt);
  EXPECT_EQ(defaulted->limit, std::optional<std::size_t>(kBounds.fallback));

  ListConversation one{"bob", "alice", 3, 9, 5};
  auto decoded = ListConversation::decode(one.encode(), kBounds);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->peer, "alice");
  EXPECT_EQ(decoded->after_seq, std::optional<std::uint64_t>(3));
  EXPECT_EQ(decoded->before_seq, std::optional<std::uint64_t>(9));

  auto read = MarkRead::decode(MarkRead{"bob", "alice", 7}.encode());
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->user, "bob");
  EXPECT_EQ(read->peer, "alice");
  EXPECT_EQ(read->seq, 7U);
}

TEST(ConversationJobs, DecodeRefusesBadParamsNamingTheField) {
  EXPECT_EQ(refused_field(ListConversations::decode(object_of(R"({"user":"bob","before":-1})"), kBounds)), "before");
  EXPECT_EQ(refused_field(ListConversations::decode(object_of(R"({"user":"bob","limit":101})"), kBounds)), "limit");
  EXPECT_EQ(refused_field(ListConversations::decode(object_of(R"({"user":"bob","peer":"x"})"), kBounds)), "peer");
  EXPECT_EQ(refused_field(ListConversations::decode(object_of(R"({"user":"b o b"})"), kBounds)), "user");
  EXPECT_EQ(refused_field(ListConversation::decode(object_of(R"({"user":"bob"})"), kBounds)), "peer");
  EXPECT_EQ(refused_field(ListConversation::decode(object_of(R"({"user":"bob","peer":"a{b}"})"), kBounds)), "peer");
  EXPECT_EQ(refused_field(ListConversation::decode(object_of(R"({"user":"bob","peer":"al","after_seq":"3"})"),
                                                   kBounds)),
            "after_seq");
  EXPECT_EQ(refused_field(MarkRead::decode(object_of(R"({"user":"bob","peer":"al"})"))), "seq");
  EXPECT_EQ(refused_field(MarkRead::decode(object_of(R"({"user":"bob","peer":"al","seq":-2})"))), "seq");
  EXPECT_EQ(refused_field(MarkRead::decode(object_of(R"({"user":"bob","peer":"al","seq":2.5})"))), "seq");
  EXPECT_EQ(refused_field(MarkRead::decode(object_of(R"({"user":"bob","peer":"al","seq":1,"at":"x"})"))), "at");
}

TEST(BlockJobs, DecodeWhatEncodeWroteAndNeverOneself) {
  auto block = BlockUser::decode(BlockUser{"bob", "alice"}.encode());
  ASSERT_TRUE(block);
  EXPECT_EQ(block->user, "bob");
  EXPECT_EQ(block->other, "alice");
  auto unblock = UnblockUser::decode(UnblockUser{"bob", "alice"}.encode());
  ASSERT_TRUE(unblock);
  EXPECT_EQ(unblock->other, "alice");
  EXPECT_EQ(refused_field(BlockUser::decode(object_of(R"({"user":"bob","other":"bob"})"))), "other");
  EXPECT_EQ(refused_field(UnblockUser::decode(object_of(R"({"user":"bob","other":"bob"})"))), "other");
  EXPECT_EQ(refused_field(BlockUser::decode(object_of(R"({"user":"bob"})"))), "other");
  EXPECT_EQ(refused_field(BlockUser::decode(object_of(R"({"user":"bob","other":"x","why":"y"})"))), "why");
  EXPECT_EQ(refused_field(ListBlocks::decode(object_of(R"({"user":7})"))), "user");

  auto users = ListBlocks::decode_result(json::parse(R"({"blocks":["alice","carol"]})"));
  ASSERT_TRUE(users);
  EXPECT_EQ(*users, (std::vector<std::string>{"alice", "carol"}));
  EXPECT_FALSE(ListBlocks::decode_result(json::parse(R"({"blocks":[1]})")));
  EXPECT_FALSE(ListBlocks::decode_result(json::parse(R"({"users":[]})")));
}

TEST(MessageJobs, RetractAndReceiptDecodeWhatEncodeWrote) {
  auto retract = RetractMessage::decode(RetractMessage{"alice", "01JC7Z3K9Q4W8E6R2T1Y5U0I3O"}.encode());
  ASSERT_TRUE(retract);
  EXPECT_EQ(retract->user, "alice");
  EXPECT_EQ(retract->message_id, "01JC7Z3K9Q4W8E6R2T1Y5U0I3O");
  EXPECT_EQ(refused_field(RetractMessage::decode(object_of(R"({"user":"alice"})"))), "message_id");
  EXPECT_EQ(refused_field(RetractMessage::decode(object_of(R"({"user":"alice","message_id":"x y"})"))), "message_id");
  auto receipt = GetReceipt::decode(GetReceipt{"01JC7Z3K9Q"}.encode());
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->message_id, "01JC7Z3K9Q");
  EXPECT_EQ(refused_field(GetReceipt::decode(object_of(R"({"message_id":"01JC7Z3K9Q","user":"x"})"))), "user");
}

TEST(MessageJobs, RecordDeliveredCarriesMessagesThatReachedTheirReceivers) {
  const RecordDelivered sent{{{"01JC7Z3K9Q", "alice", "bob", std::nullopt}, {"01JC7Z3K9R", "carol", "bob", 7}}};
  auto job = RecordDelivered::decode(sent.encode());
  ASSERT_TRUE(job);
  ASSERT_EQ(job->messages.size(), 2u);
  EXPECT_EQ(job->messages[0].receiver, "bob");
  EXPECT_FALSE(job->messages[0].sender_seq);
  EXPECT_EQ(job->messages[1].message_id, "01JC7Z3K9R");
  EXPECT_EQ(job->messages[1].sender, "carol");
  EXPECT_EQ(job->messages[1].sender_seq, 7u);
  EXPECT_EQ(RecordDelivered::worker, kMda);
  const auto refused = [](std::string_view text) { return refused_field(RecordDelivered::decode(object_of(text))); };
  EXPECT_EQ(refused(R"({"messages":[]})"), "messages");
  EXPECT_EQ(refused(R"({"user":"bob","messages":[{"message_id":"01JC7Z3K9Q","sender":"al","receiver":"b"}]})"),
            "user");
  EXPECT_EQ(refused(R"({"messages":[{"message_id":"01JC7Z3K9Q","sender":"al"}]})"), "messages");
  EXPECT_EQ(refused(R"({"messages":[{"message_id":"01JC7Z3K9Q","sender":"a b","receiver":"b"}]})"), "messages");
  EXPECT_EQ(refused(R"({"messages":[{"message_id":"01JC7Z3K9Q","sender":"al","receiver":"b","x":1}]})"),
            "messages");
  EXPECT_EQ(refused(R"({"messages":[{"message_id":"01JC7Z3K9Q","sender":"al","receiver":"b","sender_seq":0}]})"),
            "messages");
  json::array many(RecordDelivered::kMaxMessages + 1,
                   json::object{{"message_id", "01JC7Z3K9Q"}, {"sender", "al"}, {"receiver", "b"}});
  EXPECT_EQ(refused_field(RecordDelivered::decode(json::object{{"messages", many}})), "messages");
}

TEST(ConversationJobs, SignalsAreLiveNonPersistentFramesForOneUser) {
  EXPECT_TRUE(is_signal("typing"));
  EXPECT_TRUE(is_signal("read"));
  EXPECT_FALSE(is_signal("message"));
  const auto envelope = signal("bob", json::object{{"type", "read"}, {"seq", 3}});
  EXPECT_EQ(envelope.routing_key, "user.bob");
  EXPECT_FALSE(envelope.persistent);
  EXPECT_EQ(json::parse(envelope.body).at("seq"), 3);
}

}  // namespace
}  // namespace intercomm::jobs
