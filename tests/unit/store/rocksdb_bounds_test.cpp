// RocksDB's reads never walk the tombstones of other keys: every message
// replaces its conversations' order keys (a delete each), and a read of
// another index — the MDA reads the receiver's subscriptions for every
// message — must not step over them. Counted with RocksDB's perf context
// (how many deleted or overwritten entries an iterator stepped over), not
// timed.
#include "store/rocksdb_store.hpp"

#include "store/rocksdb_keys.hpp"

#include "core/ids.hpp"
#include "store/buckets.hpp"

#include <gtest/gtest.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice_transform.h>

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

TEST(RocksHints, AHintPrefixIsAnIndexABucketOfGrowingIdsOrTheKeyItself) {
  using rocks::hint_prefix_of;
  const std::string inbox = rocks::index_prefix(kInbox, "bob");
  EXPECT_EQ(hint_prefix_of(inbox + rocks::big_endian(7)), inbox);
  EXPECT_EQ(hint_prefix_of(inbox), inbox) << "an index's own prefix";
  EXPECT_EQ(hint_prefix_of(rocks::value_key(kMessages, "01JC7Z3K9Q")), rocks::value_key(kMessages, ""));
  EXPECT_EQ(hint_prefix_of(rocks::value_key(kDelivered, "01JC7Z3K9Q")), rocks::value_key(kDelivered, ""));
  const std::string last = rocks::value_key(rocks::kInboxLast, "alice");
  EXPECT_EQ(hint_prefix_of(last), last) << "a value rewritten in place is its own prefix";
  std::string alice;
  rocks::append_component(alice, "alice");
  EXPECT_EQ(hint_prefix_of(rocks::value_key(rocks::kInboxSeq, alice + "01JC7Z3K9Q")),
            rocks::value_key(rocks::kInboxSeq, alice));
  EXPECT_FALSE(hint_prefix_of(rocks::value_key(kIdempotency, "alice/key-1"))) << "written once: no hint";
  EXPECT_FALSE(hint_prefix_of(""));
  EXPECT_FALSE(hint_prefix_of("x123"));
  EXPECT_FALSE(hint_prefix_of(inbox.substr(0, inbox.size() - 1))) << "a component cut short";
  EXPECT_FALSE(hint_prefix_of(std::string("i\xFF\xFF\xFF\xFF" "ab", 7))) << "a length past the end";
}

// The memtable finds an appended key's place from the last key of its
// prefix: counted as key comparisons (RocksDB's perf context), with and
// without the hints, as a message writes them: two users' inboxes growing
// side by side, their last seqs rewritten, the message under a new id.
TEST(RocksHints, AppendsToAnIndexCompareFarFewerKeysWithHints) {
  const auto comparisons = [](bool hints) {
    const auto path =
        (std::filesystem::temp_directory_path() / ("rocksdb-hints-" + core::new_message_id())).string();
    rocksdb::Options options;
    options.create_if_missing = true;
    options.allow_concurrent_memtable_write = false;
    if (hints) options.memtable_insert_with_hint_prefix_extractor = rocks::insert_hint_prefix();
    rocksdb::DB* raw = nullptr;
    EXPECT_TRUE(rocksdb::DB::Open(options, path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::uint64_t counted = 0;
    for (std::uint64_t seq = 1; seq <= 20000; ++seq) {
      rocksdb::WriteBatch batch;
      batch.Put(rocks::value_key(kMessages, core::new_message_id()), "{}");
      for (const char* user : {"alice", "bob"}) {
        batch.Put(rocks::index_prefix(kInbox, user) + rocks::big_endian(seq), "01JC7Z3K9Q4W8E6R2T1Y5U0I3O");
        batch.Put(rocks::value_key(rocks::kInboxLast, user), rocks::big_endian(seq));
      }
      const bool count = seq > 19000;  // the last thousand, on a full memtable
      if (count) {
        rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
        rocksdb::get_perf_context()->Reset();
      }
      EXPECT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
      if (count) {
        counted += rocksdb::get_perf_context()->user_key_comparison_count;
        rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
      }
    }
    db.reset();
    std::filesystem::remove_all(path);
    return counted;
  };
  const auto without = comparisons(false);
  const auto with = comparisons(true);
  EXPECT_GT(without, 0U);
  EXPECT_LT(with * 2, without) << "with hints " << with << ", without " << without;
}

}  // namespace
}  // namespace intercomm::store
