// RocksDB's reads never walk the tombstones of other keys: every message
// replaces its conversations' order keys (a delete each), and a read of
// another index — the MDA reads the receiver's subscriptions for every
// message — must not step over them. Counted with RocksDB's perf context
// (how many deleted or overwritten entries an iterator stepped over), not
// timed.
#include "store/rocksdb_store.hpp"

#include "core/ids.hpp"
#include "store/buckets.hpp"

#include <gtest/gtest.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include <filesystem>

namespace intercomm::store {
namespace {

class RocksBounds : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() / ("rocksdb-bounds-" + core::new_message_id())).string();
    auto opened = open_rocksdb(RocksOptions{path_, false});
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(path_);
  }

  // Entries (deleted, or older versions) the reads `read` makes on this
  // thread stepped over without returning them.
  template <class Read>
  std::uint64_t tombstones_skipped(Read read) {
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
    rocksdb::get_perf_context()->Reset();
    read();
    const auto* counts = rocksdb::get_perf_context();
    const auto skipped = counts->internal_delete_skipped_count + counts->internal_key_skipped_count;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    return skipped;
  }

  std::string path_;
  std::unique_ptr<Store> store_;
};

TEST_F(RocksBounds, ReadsOfOtherIndexesSkipNoneOfTheOrderKeysEachMessageReplaces) {
  constexpr int kMessages = 2000;
  for (int i = 0; i < kMessages; ++i) {
    NewMessage message{core::new_message_id(), "v", {"alice", "bob"}};
    ASSERT_FALSE(store_->store_messages(std::vector{message}).error);
  }
  // bob has no subscription: the MDA's read for every message finds nothing, at once.
  EXPECT_EQ(tombstones_skipped([&] { ASSERT_TRUE(store_->range(kSubscriptions, "bob", RangeQuery{})); }), 0U);
  EXPECT_EQ(tombstones_skipped([&] { ASSERT_TRUE(store_->range(kDeliveries, "nothing", RangeQuery{})); }), 0U);
  EXPECT_EQ(tombstones_skipped([&] { ASSERT_TRUE(store_->inbox_range("carol", InboxQuery{})); }), 0U);
  // The list itself has one live order key per conversation among bob's replaced ones.
  auto listed = store_->conversations("bob", std::nullopt, 10);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->conversations.size(), 1U);
  EXPECT_EQ(listed->conversations[0].last_seq, static_cast<std::uint64_t>(kMessages));
}

}  // namespace
}  // namespace intercomm::store
