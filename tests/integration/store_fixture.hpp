// The store suites' fixture: a fresh store of the backend the test is
// instantiated for (RocksDB in a scratch folder, or the Redis / Redis Cluster
// that scripts/test.sh started) and a bucket no other test uses.
#pragma once

#include "core/ids.hpp"
#include "store/redis_store.hpp"
#include "store/rocksdb_store.hpp"
#include "store/store.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace intercomm::store {

class StoreFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // Unique names: every test, and both builds, share one Redis.
    bucket_ = bucket("t_" + core::new_message_id());
    if (GetParam() == "rocksdb") {
      path_ = intercomm::testing::servers_dir() + "/rocksdb-" + std::to_string(getpid()) + "-" +
              core::new_message_id();
    }
    store_ = open();
    ASSERT_NE(store_, nullptr);
  }

  void TearDown() override {
    store_.reset();
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }

  std::unique_ptr<Store> open() {
    if (GetParam() == "rocksdb") {
      auto opened = open_rocksdb(RocksOptions{path_, true});
      EXPECT_TRUE(opened) << opened.error().message;
      return opened ? std::move(*opened) : nullptr;
    }
    const bool cluster = GetParam() == "redis_cluster";
    const char* variable = cluster ? "INTERCOMM_TEST_REDIS_CLUSTER" : "INTERCOMM_TEST_REDIS";
    const char* url = std::getenv(variable);
    if (url == nullptr) {
      ADD_FAILURE() << variable << " is not set: run through scripts/test.sh, which starts Redis";
      return nullptr;
    }
    auto options = parse_redis_url(url);
    EXPECT_TRUE(options);
    if (!options) return nullptr;
    // The cluster acknowledges a write once a replica has it too.
    if (cluster) options->durability = RedisOptions::Durability::replica;
    auto opened = open_redis(*options);
    EXPECT_TRUE(opened) << opened.error().message;
    return opened ? std::move(*opened) : nullptr;
  }

  // Every entry of the index, paging `limit` at a time in `order`.
  std::vector<std::string> page_through(std::string_view index, std::size_t limit, Order order) {
    std::vector<std::string> all;
    RangeQuery query;
    query.limit = limit;
    query.order = order;
    for (int pages = 0; pages < 100000; ++pages) {
      auto page = store_->range(bucket_, index, query);
      EXPECT_TRUE(page);
      if (!page) break;
      EXPECT_LE(page->entries.size(), limit);
      all.insert(all.end(), page->entries.begin(), page->entries.end());
      if (!page->next) break;
      (order == Order::ascending ? query.after : query.before) = page->next;
    }
    return all;
  }

  Bucket bucket_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

}  // namespace intercomm::store
