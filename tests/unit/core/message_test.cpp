#include "core/message.hpp"  // first: the header is self-contained

#include "core/ids.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

namespace intercomm::core {
namespace {
namespace json = boost::json;

Result<Message> read(std::string_view text, MessageShape shape = MessageShape::new_message,
                     MessageLimits limits = {}) {
  return message_from_json(json::parse(text), limits, shape);
}

// The field named in the error's data, which the gateway shows the user.
std::string failing_field(const Result<Message>& result) {
  EXPECT_FALSE(result);
  if (result) return {};
  EXPECT_EQ(result.error().code, ErrorCode::invalid_params);
  return std::string(result.error().data.at("field").as_string());
}

TEST(UserId, AcceptsTheDocumentedCharsetAndLength) {
  for (std::string_view id : {"a", "user_1", "Alice.B-2", "0", "_.-"}) {
    EXPECT_TRUE(is_user_id(id)) << id;
  }
  EXPECT_TRUE(is_user_id(std::string(kMaxUserIdLength, 'x')));
}

TEST(UserId, RefusesEverythingElse) {
  for (std::string_view id : {"", "a b", "alice@example.com", "bob/1", "ü", "a\nb", "<script>"}) {
    EXPECT_FALSE(is_user_id(id)) << id;
  }
  EXPECT_FALSE(is_user_id(std::string(kMaxUserIdLength + 1, 'x')));
}

TEST(MessageId, AcceptsSeedExampleAndGeneratedIds) {
  EXPECT_TRUE(is_message_id("X9J0UI76GBWQTF"));
  EXPECT_TRUE(is_message_id(new_message_id()));
  for (std::string_view id : {"", "short", "x9j0ui76gbwqtf", "X9J0UI76-GBWQTF", "X9J0UI76 GBWQTF"}) {
    EXPECT_FALSE(is_message_id(id)) << id;
  }
  EXPECT_FALSE(is_message_id(std::string(kMaxMessageIdLength + 1, 'A')));
}

TEST(Rfc3339, FormatsWhatItAccepts) {
  const auto now = std::chrono::system_clock::now();
  const std::string text = format_rfc3339(now);
  EXPECT_TRUE(is_rfc3339_utc(text)) << text;
  EXPECT_EQ(text.size(), 24U) << text;
  EXPECT_EQ(format_rfc3339(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
}

TEST(Rfc3339, RefusesBadTimes) {
  EXPECT_TRUE(is_rfc3339_utc("2024-02-29T23:59:60Z"));
  EXPECT_TRUE(is_rfc3339_utc("2026-11-25T15:49:18.123456Z"));
  for (std::string_view text : {"", "2026-11-25", "2026-11-25T15:49:18", "2026-11-25T15:49:18+01:00",
                                "2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z",
                                "2026-11-25T24:00:00Z", "2026-11-25T15:49:18.Z", "2026-11-25 15:49:18Z"}) {
    EXPECT_FALSE(is_rfc3339_utc(text)) << text;
  }
}

TEST(Message, SeedResultShapeIsAValidNewMessage) {
  // The seed's get_message result: {"sender","receiver","body"}.
  auto message = read(R"({"sender": "user_1", "receiver":"user_2", "body": "merhaba"})");
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_EQ(message->sender, "user_1");
  EXPECT_EQ(json::value(to_json(*message)),
            json::parse(R"({"sender": "user_1", "receiver":"user_2", "body": "merhaba"})"));
}

TEST(Message, StoredMessageRoundTrips) {
  Message original{new_message_id(), "alice", "bob", "hi \xF0\x9F\x91\x8B",
                   format_rfc3339(std::chrono::system_clock::now()), ""};
  auto read_back = message_from_json(to_json(original), {}, MessageShape::stored);
  ASSERT_TRUE(read_back) << read_back.error().message;
  EXPECT_EQ(*read_back, original);
}

TEST(Message, ARetractedMessageIsAStoredTombstoneOnly) {
  const std::string id = new_message_id();
  const std::string tombstone = R"({"message_id":")" + id +
                                R"(","sender":"a","receiver":"b","body":"","created_at":"2026-11-29T10:00:00.000Z",)"
                                R"("retracted_at":"2026-11-29T10:05:00.000Z"})";
  auto read_back = read(tombstone, MessageShape::stored);
  ASSERT_TRUE(read_back) << read_back.error().message;
  EXPECT_EQ(read_back->retracted_at, "2026-11-29T10:05:00.000Z");
  EXPECT_EQ(json::value(to_json(*read_back)), json::parse(tombstone));
  EXPECT_EQ(failing_field(read(tombstone, MessageShape::new_message)), "retracted_at") << "a client cannot send one";
  std::string with_body = tombstone;
  with_body.replace(with_body.find(R"("body":"")"), 9, R"("body":"x")");
  EXPECT_EQ(failing_field(read(with_body, MessageShape::stored)), "body");
  std::string bad_time = tombstone;
  bad_time.replace(bad_time.find("2026-11-29T10:05"), 16, "yesterday at ten");
  EXPECT_EQ(failing_field(read(bad_time, MessageShape::stored)), "retracted_at");
}

TEST(Message, StoredShapeRequiresIdAndTime) {
  EXPECT_EQ(failing_field(read(R"({"sender":"a","receiver":"b","body":"x"})", MessageShape::stored)),
            "message_id");
}

TEST(Message, EachBadFieldIsNamedWithItsRule) {
  struct Case {
    const char* json;
    const char* field;
  };
  for (const auto& c : {
           Case{R"({"receiver":"b","body":"x"})", "sender"},
           Case{R"({"sender":"a","body":"x"})", "receiver"},
           Case{R"({"sender":"a","receiver":"b"})", "body"},
           Case{R"({"sender":"a","receiver":"b","body":""})", "body"},
           Case{R"({"sender":"a b","receiver":"b","body":"x"})", "sender"},
           Case{R"({"sender":"a","receiver":"","body":"x"})", "receiver"},
           Case{R"({"sender":1,"receiver":"b","body":"x"})", "sender"},
           Case{R"({"sender":"a","receiver":["b"],"body":"x"})", "receiver"},
           Case{R"({"sender":"a","receiver":"b","body":{"text":"x"}})", "body"},
           Case{R"({"sender":"a","receiver":"b","body":"x","reciever":"c"})", "reciever"},
           Case{R"({"sender":"a","receiver":"b","body":"x","message_id":"lower-case"})", "message_id"},
           Case{R"({"sender":"a","receiver":"b","body":"x","message_id":""})", "message_id"},
           Case{R"({"sender":"a","receiver":"b","body":"x","created_at":"yesterday"})", "created_at"},
       }) {
    auto result = read(c.json);
    EXPECT_EQ(failing_field(result), c.field) << c.json;
    if (!result) {
      EXPECT_EQ(result.error().message.rfind(std::string(c.field) + ": ", 0), 0U) << result.error().message;
    }
  }
}

TEST(Message, NotAnObjectIsRefused) {
  EXPECT_EQ(failing_field(read(R"(["a","b","x"])")), "message");
}

TEST(Message, BodyLimitIsConfigurable) {
  MessageLimits limits{.max_body_bytes = 8};
  Message message{"", "a", "b", std::string(8, 'x'), "", ""};
  EXPECT_TRUE(validate(message, limits, MessageShape::new_message));
  message.body += 'x';
  auto result = validate(message, limits, MessageShape::new_message);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "body: must be 1 to 8 bytes");
}

TEST(Message, DefaultBodyLimitIs64KiB) {
  Message message{"", "a", "b", std::string(kDefaultMaxBodyBytes, 'x'), "", ""};
  EXPECT_TRUE(validate(message, {}, MessageShape::new_message));
  message.body += 'x';
  EXPECT_FALSE(validate(message, {}, MessageShape::new_message));
}

TEST(Message, InvalidUtf8BodyIsRefused) {
  // JSON text cannot carry invalid UTF-8 past the parser, but a Message built in
  // code (or from another transport) can; validate() is the last line.
  Message message{"", "a", "b", "caf\xC3", "", ""};
  auto result = validate(message, {}, MessageShape::new_message);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "body: must be valid UTF-8 text");
}

}  // namespace
}  // namespace intercomm::core
