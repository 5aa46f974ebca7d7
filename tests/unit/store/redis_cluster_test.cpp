#include "store/redis_cluster.hpp"  // first: the header is self-contained

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>

namespace intercomm::store::redis {
namespace {

// The Redis Cluster specification's own examples.
TEST(HashSlots, Crc16MatchesTheSpecificationsCheckValue) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
}

TEST(HashSlots, HashTagsFollowTheSpecification) {
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") & 16383);  // empty tag: whole key
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));          // first { to first }
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
  EXPECT_EQ(key_slot("no-brace"), crc16("no-brace") & 16383);
  for (int i = 0; i < 1000; ++i) {
    const int slot = key_slot("key" + std::to_string(i));
    EXPECT_GE(slot, 0);
    EXPECT_LT(slot, kSlots);
  }
}

// Parses `bytes` as a Redis node's reply, with the reader every connection uses.
Reply read_reply(const std::string& bytes, bool* failed = nullptr) {
  redisReader* reader = redisReaderCreate();
  cap_reply_arrays(reader);
  redisReaderFeed(reader, bytes.data(), bytes.size());
  void* raw = nullptr;
  const bool ok = redisReaderGetReply(reader, &raw) == REDIS_OK;
  if (failed != nullptr) *failed = !ok;
  redisReaderFree(reader);
  return Reply(static_cast<redisReply*>(raw));
}

TEST(Replies, AnArrayHeaderOverTheCapFailsTheReplyInsteadOfAllocatingIt) {
  bool failed = false;
  EXPECT_EQ(read_reply("*904095690\r\n", &failed), nullptr);
  EXPECT_TRUE(failed);
  failed = false;
  auto small = read_reply("*2\r\n:7\r\n$2\r\nok\r\n", &failed);
  EXPECT_FALSE(failed);
  ASSERT_NE(small, nullptr);
  ASSERT_EQ(small->elements, 2U);
  EXPECT_EQ(small->element[0]->integer, 7);
}

TEST(Redirects, MovedAndAskAreReadAndAnythingElseIsNot) {
  const auto moved = parse_redirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved);
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->host, "127.0.0.1");
  EXPECT_EQ(moved->port, 6381);
  const auto ask = parse_redirect("ASK 0 ::1:7000");  // the last colon separates the port
  ASSERT_TRUE(ask);
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->host, "::1");
  for (const char* bad : {"MOVED 16384 h:1", "MOVED -1 h:1", "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 :1",
                          "MOVED 1", "ERR wrong", "MOVED x h:1", "ASK 1 h"}) {
    EXPECT_FALSE(parse_redirect(bad)) << bad;
  }
}

TEST(SlotMap, WellFormedRangesAreTakenAndTheRestSkipped) {
  // Three ranges: a good one, one past the last slot, one whose host is "" (the node asked).
  const auto reply = read_reply(
      "*3\r\n"
      "*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n"
      "*3\r\n:5461\r\n:16384\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
      "*3\r\n:10923\r\n:16383\r\n*2\r\n$0\r\n\r\n:7002\r\n");
  ASSERT_NE(reply, nullptr);
  const auto ranges = parse_cluster_slots(reply.get(), "10.0.0.9");
  ASSERT_EQ(ranges.size(), 2U);
  EXPECT_EQ(ranges[0].first, 0);
  EXPECT_EQ(ranges[0].last, 5460);
  EXPECT_EQ(ranges[0].host, "127.0.0.1");
  EXPECT_EQ(ranges[0].port, 7000);
  EXPECT_EQ(ranges[1].first, 10923);
  EXPECT_EQ(ranges[1].host, "10.0.0.9");
  EXPECT_TRUE(parse_cluster_slots(read_reply(":1\r\n").get(), "h").empty());
}

}  // namespace
}  // namespace intercomm::store::redis
