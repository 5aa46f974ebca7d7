#include "store/redis_cluster.hpp"  // first: the header is self-contained

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace intercomm::store::redis
