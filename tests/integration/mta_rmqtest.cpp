// The MTA's jobs over the bus, on each bus backend with a real store.
#include "mta/mta.hpp"  // first: the header is self-contained

#include "integration/mta_fixture.hpp"

#include "bus/rpc_client.hpp"
#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "jobs/jobs.hpp"
#include "store/redis_store.hpp"
#include "store/rocksdb_store.hpp"
#include "support/bus_backends.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <set>

namespace intercomm::mta {
namespace {

TEST_P(MtaSuite, SentMessageIsStoredAndReadBackAsTheSeedShapesIt) {
  const auto alice = user("alice");
  const auto bob = user("bob");
  const std::string id = send(alice, bob, "merhaba");
  ASSERT_TRUE(core::is_message_id(id));
  auto got = call(jobs::GetMessage::name, {{"message_id", id}});
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->at("sender").as_string(), alice);
  EXPECT_EQ(got->at("receiver").as_string(), bob);
  EXPECT_EQ(got->at("body").as_string(), "merhaba");
  EXPECT_EQ(got->at("message_id").as_string(), id);
  EXPECT_TRUE(core::is_rfc3339_utc(got->at("created_at").as_string()));
}

TEST_P(MtaSuite, GetMessageErrorsAreTheSeeds) {
  for (const json::object& params :
       {json::object{}, json::object{{"message_id", 42}}, json::object{{"message_id", "lower-case"}},
        json::object{{"message_id", "X9J0UI76GBWQTF"}, {"extra", 1}}}) {
    auto got = call(jobs::GetMessage::name, params);
    ASSERT_FALSE(got) << json::serialize(params);
    EXPECT_EQ(got.error().code, ErrorCode::invalid_params);
    EXPECT_EQ(got.error().message, "Invalid params");
  }
  auto missing = call(jobs::GetMessage::name, {{"message_id", core::new_message_id()}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
}

TEST_P(MtaSuite, BadMessagesAreRefusedAndNothingIsStored) {
  const auto alice = user("alice");
  for (const char* bad :
       {R"({})", R"({"message":{"sender":"a b","receiver":"b","body":"x"}})",
        R"({"message":{"receiver":"b","body":"x"}})",
        R"({"message":{"sender":"a","receiver":"b","body":""}})",
        R"({"message":{"sender":"a","receiver":"b","body":"x","reciever":"c"}})", R"({"message":"text"})",
        R"({"message":{"sender":"a","receiver":"b","body":"x"},"more":1})"}) {
    auto sent = call(jobs::SendMessage::name, json::parse(bad).as_object());
    ASSERT_FALSE(sent) << bad;
    EXPECT_EQ(sent.error().code, ErrorCode::invalid_params) << bad;
  }
  // A refused send leaves no trace in the inboxes.
  auto sent = call(jobs::SendMessage::name,
                   {{"message", {{"sender", alice}, {"receiver", "b"}, {"body", std::string(70000, 'x')}}}});
  ASSERT_FALSE(sent);
  auto listed = call(jobs::ListMessages::name, {{"user", alice}});
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->at("messages").as_array().empty());
}

TEST_P(MtaSuite, ResendingTheSameMessageIdStoresOnceAndADifferentOneConflicts) {
  const auto alice = user("alice");
  const auto bob = user("bob");
  const std::string id = core::new_message_id();
  json::object message{{"message_id", id}, {"sender", alice}, {"receiver", bob}, {"body", "once"}};
  for (int i = 0; i < 3; ++i) {
    auto sent = call(jobs::SendMessage::name, {{"message", message}});
    ASSERT_TRUE(sent);
    EXPECT_EQ(sent->at("message_id").as_string(), id);
  }
  auto listed = call(jobs::ListMessages::name, {{"user", bob}});
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->at("messages").as_array().size(), 1U);
  message["body"] = "another";
  auto conflict = call(jobs::SendMessage::name, {{"message", message}});
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, ErrorCode::conflict);
}

TEST_P(MtaSuite, AJobFromAnotherServiceWithoutIdOrReplyIsStored) {
  const auto alice = user("alice");
  const auto bob = user("bob");
  bus::Envelope job;
  job.routing_key = jobs::SendMessage::name;
  job.body = json::serialize(json::object{
      {"jsonrpc", "2.0"},
      {"job", jobs::SendMessage::name},
      {"params", {{"message", {{"sender", alice}, {"receiver", bob}, {"body", "from elsewhere"}}}}}});
  ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, job, kTimeout),
            bus::PublishStatus::confirmed);
  json::array messages;
  for (auto until = bus::Clock::now() + kTimeout; bus::Clock::now() < until && messages.empty();) {
    auto listed = call(jobs::ListMessages::name, {{"user", bob}});
    ASSERT_TRUE(listed);
    messages = listed->at("messages").as_array();
    if (messages.empty()) std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(messages.size(), 1U);
  EXPECT_EQ(messages[0].at("body").as_string(), "from elsewhere");
  EXPECT_TRUE(core::is_message_id(messages[0].at("message_id").as_string()));
}

TEST_P(MtaSuite, InboxesPageNewestFirstForSenderAndReceiver) {
  const auto alice = user("alice");
  const auto bob = user("bob");
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i)
    ids.push_back(send(i % 2 ? alice : bob, i % 2 ? bob : alice, std::to_string(i)));
  for (const auto& who : {alice, bob}) {
    std::vector<std::string> seen;
    json::object params{{"user", who}, {"limit", 10}};
    for (int pages = 0; pages < 10; ++pages) {
      auto listed = call(jobs::ListMessages::name, params);
      ASSERT_TRUE(listed) << listed.error().message;
      for (const auto& m : listed->at("messages").as_array())
        seen.emplace_back(m.at("message_id").as_string());
      if (listed->at("next").is_null()) break;
      params["before"] = listed->at("next");
    }
    std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
    EXPECT_EQ(seen, newest_first) << who;
  }
  auto bad_limit = call(jobs::ListMessages::name, {{"user", alice}, {"limit", 101}});
  ASSERT_FALSE(bad_limit);
  EXPECT_EQ(bad_limit.error().code, ErrorCode::invalid_params);
}

TEST_P(MtaSuite, DeliverMessageIsQueuedAfterTheMessageIsStored) {
  // Stand in for the MDA: a queue of this test's bound to deliver_message.
  auto mda_bus = factory_->connect();
  const std::string queue = "test_mda_" + core::new_message_id();
  ASSERT_TRUE(mda_bus->declare_queue(bus::QueueSpec{
      queue, {std::string(jobs::DeliverMessage::name)}, bus::QueueType::classic, 0, std::nullopt, {}, {}, {}, false}));
  Collector<std::string> delivered;
  auto subscription = mda_bus->consume(queue, 16, [&](std::unique_ptr<bus::Delivery> d) {
    delivered.push(d->message().body);
    d->ack();
  });
  const std::string id = send(user("alice"), user("bob"), "to deliver");
  bool found = false;
  for (auto until = bus::Clock::now() + kTimeout; !found && bus::Clock::now() < until;) {
    for (const auto& body : delivered.items()) {
      const auto request = json::parse(body).as_object();
      if (request.at("params").at("message").at("message_id").as_string() == id) {
        found = true;
        EXPECT_EQ(request.at("method").as_string(), jobs::DeliverMessage::name);
        EXPECT_EQ(request.at("params").at("message").at("body").as_string(), "to deliver");
      }
    }
    if (!found) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(found);
}

TEST_P(MtaSuite, SubscriptionsAreValidatedListedWithoutSecretsAndRemoved) {
  const auto bob = user("bob");
  for (const char* url : {"ftp://example.com/hook", "http://user:pw@example.com/hook", "not a url",
                          "https:///x", "https://example.com/hook#frag"}) {
    auto refused = call(jobs::SubscribeUser::name, {{"user", bob}, {"webhook", {{"url", url}}}});
    ASSERT_FALSE(refused) << url;
    EXPECT_EQ(refused.error().code, ErrorCode::invalid_params) << url;
  }
  auto created = call(jobs::SubscribeUser::name, {{"user", bob}, {"webhook", {{"url", "https://example.com/hook"}}}});
  ASSERT_TRUE(created) << created.error().message;
  const std::string id(created->at("subscription_id").as_string());
  EXPECT_TRUE(created->at("secret").as_string().starts_with("whsec_"));
  auto second = call(jobs::SubscribeUser::name, {{"user", bob}, {"webhook", {{"url", "http://127.0.0.1:9/x"}}}});
  ASSERT_TRUE(second);
  EXPECT_NE(second->at("secret"), created->at("secret"));

  auto listed = call(jobs::ListSubscriptions::name, {{"user", bob}});
  ASSERT_TRUE(listed);
  const auto& subscriptions = listed->at("subscriptions").as_array();
  ASSERT_EQ(subscriptions.size(), 2U);
  for (const auto& s : subscriptions) EXPECT_FALSE(s.as_object().contains("secret"));

  ASSERT_TRUE(call(jobs::UnsubscribeUser::name, {{"user", bob}, {"subscription_id", id}}));
  auto again = call(jobs::UnsubscribeUser::name, {{"user", bob}, {"subscription_id", id}});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::not_found);
  EXPECT_EQ(call(jobs::ListSubscriptions::name, {{"user", bob}})->at("subscriptions").as_array().size(), 1U);
}

INSTANTIATE_TEST_SUITE_P(Backends, MtaSuite, mta_backends(), mta_backend_name);

}  // namespace
}  // namespace intercomm::mta
