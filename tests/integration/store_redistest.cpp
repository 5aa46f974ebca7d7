// One conformance suite for every store backend: RocksDB, standalone Redis and
// Redis Cluster (values and indexes; inboxes are in inbox_redistest.cpp).
#include "store/store.hpp"  // first: the header is self-contained

#include "core/ids.hpp"
#include "integration/store_fixture.hpp"
#include "store/redis_store.hpp"
#include "store/rocksdb_store.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

namespace intercomm::store {
namespace {

using namespace std::chrono_literals;

using intercomm::testing::servers_dir;

class StoreConformance : public StoreFixture {
 protected:
  static constexpr int kRacers = 8;
  static constexpr int kRaceKeys = 200;

  // Runs race(t, wins) on kRacers threads at once; the wins they counted.
  static int race(const std::function<void(int, std::atomic<int>&)>& racer) {
    std::atomic<int> wins{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kRacers; ++t) threads.emplace_back([&, t] { racer(t, wins); });
    for (auto& thread : threads) thread.join();
    return wins.load();
  }
};

TEST_P(StoreConformance, RoundTripAndMissingKeys) {
  EXPECT_EQ(*store_->get(bucket_, "absent"), std::nullopt);
  ASSERT_TRUE(
      store_->put(bucket_, "X9J0UI76GBWQTF", R"({"sender":"user_1","receiver":"user_2","body":"merhaba"})"));
  EXPECT_EQ(*store_->get(bucket_, "X9J0UI76GBWQTF"),
            R"({"sender":"user_1","receiver":"user_2","body":"merhaba"})");
  ASSERT_TRUE(store_->put(bucket_, "X9J0UI76GBWQTF", "replaced"));
  EXPECT_EQ(*store_->get(bucket_, "X9J0UI76GBWQTF"), "replaced");
  EXPECT_TRUE(*store_->remove(bucket_, "X9J0UI76GBWQTF"));
  EXPECT_FALSE(*store_->remove(bucket_, "X9J0UI76GBWQTF"));
  EXPECT_EQ(*store_->get(bucket_, "X9J0UI76GBWQTF"), std::nullopt);
}

TEST_P(StoreConformance, BucketsAndBucketTypesAreSeparate) {
  Bucket other = bucket_;
  other.name += "_other";
  Bucket other_type = bucket_;
  other_type.type = "another_type";
  ASSERT_TRUE(store_->put(bucket_, "k", "a"));
  ASSERT_TRUE(store_->put(other, "k", "b"));
  ASSERT_TRUE(store_->put(other_type, "k", "c"));
  EXPECT_EQ(*store_->get(bucket_, "k"), "a");
  EXPECT_EQ(*store_->get(other, "k"), "b");
  EXPECT_EQ(*store_->get(other_type, "k"), "c");
}

TEST_P(StoreConformance, PutIfAbsentWritesOnceAndKeepsTheFirstValue) {
  EXPECT_TRUE(*store_->put_if_absent(bucket_, "id", "first"));
  EXPECT_FALSE(*store_->put_if_absent(bucket_, "id", "second"));
  EXPECT_EQ(*store_->get(bucket_, "id"), "first");
}

TEST_P(StoreConformance, PutIfAbsentManyWritesOnlyTheAbsentKeysAndTheFirstOfTwins) {
  ASSERT_TRUE(store_->put_if_absent(bucket_, "there", "before"));
  const std::vector<Store::KeyValue> entries{
      {"new-1", "a"}, {"there", "b"}, {"new-2", "c"}, {"new-1", "d"}, {"new-3", "e"}};
  const auto outcomes = store_->put_if_absent_many(bucket_, entries);
  ASSERT_EQ(outcomes.size(), entries.size());
  std::vector<bool> wrote;
  for (const auto& outcome : outcomes) {
    ASSERT_TRUE(outcome) << outcome.error().message;
    wrote.push_back(*outcome);
  }
  EXPECT_EQ(wrote, (std::vector<bool>{true, false, true, false, true}));
  EXPECT_EQ(*store_->get(bucket_, "there"), "before");
  EXPECT_EQ(*store_->get(bucket_, "new-1"), "a");
  EXPECT_EQ(*store_->get(bucket_, "new-2"), "c");
  EXPECT_EQ(*store_->get(bucket_, "new-3"), "e");
  EXPECT_TRUE(store_->put_if_absent_many(bucket_, {}).empty());
}

TEST_P(StoreConformance, PutIfAbsentManyRacingItselfHasExactlyOneWinnerPerKey) {
  const int wins = race([&](int t, std::atomic<int>& won) {
    std::vector<std::string> keys;
    for (int k = 0; k < kRaceKeys; ++k)
      keys.push_back("many-race-" + std::to_string((k * 7 + t * 13) % kRaceKeys));
    const std::string value = "thread-" + std::to_string(t);
    for (int from = 0; from < kRaceKeys; from += 50) {  // batches of 50, each thread in its own order
      std::vector<Store::KeyValue> entries;
      for (int k = from; k < from + 50; ++k) entries.push_back({keys[k], value});
      for (const auto& outcome : store_->put_if_absent_many(bucket_, entries)) {
        ASSERT_TRUE(outcome);
        if (*outcome) won.fetch_add(1);
      }
    }
  });
  EXPECT_EQ(wins, kRaceKeys);
}

TEST_P(StoreConformance, PutIfAbsentRaceHasExactlyOneWinner) {
  const int wins = race([&](int t, std::atomic<int>& won) {
    for (int k = 0; k < kRaceKeys; ++k) {
      auto written =
          store_->put_if_absent(bucket_, "race-" + std::to_string(k), "thread-" + std::to_string(t));
      ASSERT_TRUE(written);
      if (*written) won.fetch_add(1);
    }
  });
  EXPECT_EQ(wins, kRaceKeys);
  for (int k = 0; k < kRaceKeys; ++k) {
    auto value = store_->get(bucket_, "race-" + std::to_string(k));
    ASSERT_TRUE(value && value->has_value());
    EXPECT_EQ(value->value().rfind("thread-", 0), 0U);
  }
}

TEST_P(StoreConformance, IndexPagesForwardsAndBackwardsOverTenThousandEntries) {
  constexpr int kEntries = 10'000;
  std::vector<std::string> ids;
  for (int i = 0; i < kEntries; ++i) ids.push_back(core::new_message_id());
  // Added out of order: the index sorts.
  for (int i = kEntries - 1; i >= 0; i -= 2) ASSERT_TRUE(store_->index_add(bucket_, "alice", ids[i]));
  for (int i = 0; i < kEntries; i += 2) ASSERT_TRUE(store_->index_add(bucket_, "alice", ids[i]));
  ASSERT_TRUE(store_->index_add(bucket_, "alice", ids[0]));  // idempotent
  ASSERT_TRUE(store_->index_add(bucket_, "bob", "not alice's"));

  const auto forwards = page_through("alice", 100, Order::ascending);
  EXPECT_EQ(forwards, ids);
  auto backwards = page_through("alice", 37, Order::descending);
  std::reverse(backwards.begin(), backwards.end());
  EXPECT_EQ(backwards, ids);
}

TEST_P(StoreConformance, IndexBoundsAreExclusiveAndNextMarksMore) {
  for (const char* entry : {"a", "b", "c", "d", "e"}) ASSERT_TRUE(store_->index_add(bucket_, "u", entry));
  RangeQuery query;
  query.limit = 2;
  query.order = Order::ascending;
  query.after = "b";
  auto page = store_->range(bucket_, "u", query);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->entries, (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(page->next, "d");
  query.limit = 10;
  query.before = "e";
  page = store_->range(bucket_, "u", query);
  EXPECT_EQ(page->entries, (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(page->next, std::nullopt);
  query = RangeQuery{};
  query.limit = 10;
  query.before = "c";
  page = store_->range(bucket_, "u", query);  // newest first, before "c"
  EXPECT_EQ(page->entries, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(page->next, std::nullopt);
  EXPECT_TRUE(*store_->index_remove(bucket_, "u", "a"));
  EXPECT_FALSE(*store_->index_remove(bucket_, "u", "a"));
  EXPECT_EQ(store_->range(bucket_, "empty", RangeQuery{})->entries.size(), 0U);
}

TEST_P(StoreConformance, LargeValuesSurviveIntact) {
  std::string large(1024 * 1024, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 131) % 256);
  ASSERT_TRUE(store_->put(bucket_, "large", large));
  auto read = store_->get(bucket_, "large");
  ASSERT_TRUE(read && read->has_value());
  EXPECT_EQ(read->value().size(), large.size());
  EXPECT_TRUE(read->value() == large);
}

TEST_P(StoreConformance, KeysValuesAndEntriesAreBinarySafe) {
  const std::string key("k\0{x}\xff:\n", 9);
  const std::string value("\0\x01\xfe\xff{}", 6);
  ASSERT_TRUE(store_->put(bucket_, key, value));
  EXPECT_EQ(*store_->get(bucket_, key), value);
  EXPECT_EQ(*store_->get(bucket_, std::string("k", 1)), std::nullopt);
  const std::string index("us\0er}", 6);
  for (const std::string& entry : {std::string("\0", 1), std::string("\x01"), std::string("\xff\xff", 2)}) {
    ASSERT_TRUE(store_->index_add(bucket_, index, entry));
  }
  RangeQuery query;
  query.order = Order::ascending;
  auto page = store_->range(bucket_, index, query);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->entries, (std::vector<std::string>{std::string("\0", 1), std::string("\x01"),
                                                     std::string("\xff\xff", 2)}));
}

TEST_P(StoreConformance, ConcurrentWritersAllLand) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = std::to_string(t) + "-" + std::to_string(i);
        ASSERT_TRUE(store_->put(bucket_, id, id));
        ASSERT_TRUE(store_->index_add(bucket_, "shared", id));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(page_through("shared", 100, Order::ascending).size(),
            static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(*store_->get(bucket_, "3-499"), "3-499");
}

TEST_P(StoreConformance, DataOutlivesTheConnection) {
  ASSERT_TRUE(store_->put(bucket_, "kept", "value"));
  ASSERT_TRUE(store_->index_add(bucket_, "u", "entry"));
  store_.reset();
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(*store_->get(bucket_, "kept"), "value");
  EXPECT_EQ(store_->range(bucket_, "u", RangeQuery{})->entries, std::vector<std::string>{"entry"});
  EXPECT_TRUE(store_->ping());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::Values("rocksdb", "redis", "redis_cluster"),
                         [](const auto& info) { return info.param; });

TEST(RocksStore, AFolderLockedByAnotherOpenerIsRefusedClearly) {
  const std::string path = servers_dir() + "/rocksdb-lock-" + core::new_message_id();
  auto first = open_rocksdb(RocksOptions{path, true});
  ASSERT_TRUE(first);
  auto second = open_rocksdb(RocksOptions{path, true});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, core::ErrorCode::unavailable);
  EXPECT_NE(second.error().message.find("in use by another process"), std::string::npos)
      << second.error().message;
  first->reset();
  std::filesystem::remove_all(path);
}

TEST(RedisStore, UrlsAreCheckedAndAnAbsentServerIsUnavailable) {
  EXPECT_FALSE(parse_redis_url("http://x:1"));
  EXPECT_FALSE(parse_redis_url("redis://nohost"));
  EXPECT_FALSE(parse_redis_url("redis://127.0.0.1:1,127.0.0.1:2"));
  EXPECT_FALSE(parse_redis_url("redis-cluster://127.0.0.1:1,oops"));
  auto cluster = parse_redis_url("redis-cluster://127.0.0.1:7000,[::1]:7001/");
  ASSERT_TRUE(cluster);
  EXPECT_TRUE(cluster->cluster);
  EXPECT_EQ(cluster->durability, RedisOptions::Durability::replica)
      << "a cluster waits for a replica by default";
  EXPECT_EQ(parse_redis_url("redis://127.0.0.1:1")->durability, RedisOptions::Durability::local);
  EXPECT_EQ(parse_redis_url("redis-cluster://127.0.0.1:7000?durability=local")->durability,
            RedisOptions::Durability::local);
  EXPECT_EQ(parse_redis_url("redis://127.0.0.1:1?durability=replica")->durability,
            RedisOptions::Durability::replica);
  EXPECT_FALSE(parse_redis_url("redis://127.0.0.1:1?durability=eventually"));
  EXPECT_FALSE(parse_redis_url("redis://127.0.0.1:1?timeout=5"));
  EXPECT_EQ(cluster->nodes.size(), 2U);
  EXPECT_EQ(cluster->nodes[1].first, "::1");
  auto options = parse_redis_url("redis://127.0.0.1:1");
  ASSERT_TRUE(options);
  options->timeout = 200ms;
  auto opened = open_redis(*options);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, core::ErrorCode::unavailable);
}

}  // namespace
}  // namespace intercomm::store
