// Redis failures under a stream of writes: a cluster master killed (its replica
// takes over), and a standalone server killed and restarted. Every write the
// store acknowledged must still be readable afterwards.
#include "core/ids.hpp"
#include "store/redis_cluster.hpp"
#include "store/redis_node.hpp"
#include "store/redis_store.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <thread>

namespace intercomm::store {
namespace {

using namespace std::chrono_literals;

using intercomm::testing::servers_dir;

std::string script(const std::string& name, const std::string& args) {
  return intercomm::testing::run_support_script(name, args);
}

// Stops the servers kept in `dir` when the test ends, passed or not.
struct ServersGuard {
  std::string script_name;
  std::string dir;
  ~ServersGuard() { script(script_name, "stop " + dir); }
};

// Writes key-0, key-1, ... until `stop_after` acknowledged writes; every
// failed write is retried (as a caller would) until acknowledged. Calls
// `midway` once, after a third of them. Returns the acknowledged keys.
std::set<std::string> stream_of_writes(Store& store, const Bucket& bucket, int stop_after,
                                       const std::function<void()>& midway, int& failures) {
  std::set<std::string> acknowledged;
  bool done_midway = false;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  for (int n = 0;
       static_cast<int>(acknowledged.size()) < stop_after && std::chrono::steady_clock::now() < deadline;) {
    const std::string key = "key-" + std::to_string(n);
    if (store.put(bucket, key, "value-" + std::to_string(n))) {
      acknowledged.insert(key);
      ++n;
    } else {
      ++failures;
      std::this_thread::sleep_for(20ms);
    }
    if (!done_midway && static_cast<int>(acknowledged.size()) >= stop_after / 3) {
      done_midway = true;
      midway();
    }
  }
  return acknowledged;
}

TEST(RedisCluster, KillingAMasterLosesNoAcknowledgedWrite) {
  const std::string dir = servers_dir() + "/redis-cluster-kill-" + std::to_string(getpid());
  ServersGuard guard{"redis_cluster.sh", dir};
  const std::string url = script("redis_cluster.sh", "start " + dir);
  ASSERT_FALSE(url.empty()) << "could not start a Redis Cluster";
  auto options = parse_redis_url(url);
  ASSERT_TRUE(options);
  options->durability = RedisOptions::Durability::replica;
  options->timeout = 1000ms;
  options->retry_budget = 3000ms;
  auto store = open_redis(*options);
  ASSERT_TRUE(store) << store.error().message;

  // The master that owns most of this bucket's keys' slots: slot of key-0.
  const Bucket bucket = store::bucket("failover");
  redis::ClusterRouter router(redis::ClusterOptions{options->nodes});
  ASSERT_TRUE(router.refresh());
  const std::string victim = router.master_of(redis::key_slot("rh:rabbit_hook:failover:key-0"));
  ASSERT_FALSE(victim.empty());
  const std::string victim_port = victim.substr(victim.rfind(':') + 1);

  int failures = 0;
  std::thread restarter;
  auto acknowledged = stream_of_writes(
      **store, bucket, 3000,
      [&] {
        ASSERT_FALSE(script("redis_cluster.sh", "kill-node " + dir + " " + victim_port).empty());
        // Back after the failover, as a replica of its successor: WAIT 1 can succeed again.
        restarter = std::thread([&] {
          std::this_thread::sleep_for(5s);
          script("redis_cluster.sh", "start-node " + dir + " " + victim_port);
        });
      },
      failures);
  if (restarter.joinable()) restarter.join();

  EXPECT_EQ(acknowledged.size(), 3000U);
  EXPECT_GT(failures, 0) << "the kill did not interrupt the stream";
  ASSERT_TRUE(router.refresh());
  EXPECT_NE(router.master_of(redis::key_slot("rh:rabbit_hook:failover:key-0")), victim)
      << "no replica took over the killed master's slots";
  std::size_t missing = 0;
  for (const auto& key : acknowledged) {
    auto value = (*store)->get(bucket, key);
    if (!value || !value->has_value()) ++missing;
  }
  EXPECT_EQ(missing, 0U) << "acknowledged writes lost";
  std::cout << acknowledged.size() << " writes acknowledged, " << failures
            << " failed across the failover and retried, " << missing << " lost\n";
}

// With durability=replica, a master lost for good leaves its promoted replica
// with no replica of its own: WAIT 1 can never succeed there. Writes must go
// on (acknowledged after its AOF), not wait for ever.
TEST(RedisCluster, AMasterLostForGoodDoesNotBlockWritesOnItsPromotedReplica) {
  const std::string dir = servers_dir() + "/redis-cluster-lost-" + std::to_string(getpid());
  ServersGuard guard{"redis_cluster.sh", dir};
  const std::string url = script("redis_cluster.sh", "start " + dir);
  ASSERT_FALSE(url.empty()) << "could not start a Redis Cluster";
  auto options = parse_redis_url(url + "?durability=replica");
  ASSERT_TRUE(options) << options.error().message;
  ASSERT_EQ(options->durability, RedisOptions::Durability::replica);
  options->timeout = 1000ms;
  options->retry_budget = 3000ms;
  auto store = open_redis(*options);
  ASSERT_TRUE(store) << store.error().message;
  const Bucket bucket = store::bucket("lost");
  redis::ClusterRouter router(redis::ClusterOptions{options->nodes});
  ASSERT_TRUE(router.refresh());
  const std::string victim = router.master_of(redis::key_slot("rh:rabbit_hook:lost:key-0"));
  ASSERT_FALSE(victim.empty());

  int failures = 0;
  auto acknowledged = stream_of_writes(
      **store, bucket, 1500,
      [&] {
        ASSERT_FALSE(
            script("redis_cluster.sh", "kill-node " + dir + " " + victim.substr(victim.rfind(':') + 1))
                .empty());
      },
      failures);
  EXPECT_EQ(acknowledged.size(), 1500U) << "writes stopped after the master was lost";
  EXPECT_GT(failures, 0) << "the kill did not interrupt the stream";
  ASSERT_TRUE(router.refresh());
  EXPECT_NE(router.master_of(redis::key_slot("rh:rabbit_hook:lost:key-0")), victim);
  std::size_t missing = 0;
  for (const auto& key : acknowledged) {
    auto value = (*store)->get(bucket, key);
    if (!value || !value->has_value()) ++missing;
  }
  EXPECT_EQ(missing, 0U);
}

TEST(RedisCluster, OurSlotsAreTheServersSlots) {
  const char* url = std::getenv("INTERCOMM_TEST_REDIS_CLUSTER");
  ASSERT_NE(url, nullptr) << "INTERCOMM_TEST_REDIS_CLUSTER is not set: run through scripts/test.sh";
  auto options = parse_redis_url(url);
  ASSERT_TRUE(options);
  redis::NodePool node(options->nodes[0].first, options->nodes[0].second, 2000ms, 1);
  for (int i = 0; i < 200; ++i) {
    const std::string key = i % 3 == 0   ? "{user" + std::to_string(i) + "}.inbox"
                            : i % 3 == 1 ? "rh:rabbit_hook:message:" + core::new_message_id()
                                         : std::string("x{}{y") + std::to_string(i) + "}";
    auto replies = node.pipeline({{"CLUSTER", "KEYSLOT", key}});
    ASSERT_TRUE(replies);
    EXPECT_EQ((*replies)[0]->integer, redis::key_slot(key)) << key;
  }
}

TEST(RedisStandalone, RestartLosesNoAcknowledgedWrite) {
  const std::string dir = servers_dir() + "/redis-restart-" + std::to_string(getpid());
  ServersGuard guard{"redis.sh", dir};
  const std::string url = script("redis.sh", "start " + dir);
  ASSERT_FALSE(url.empty());
  auto options = parse_redis_url(url);
  ASSERT_TRUE(options);
  options->timeout = 500ms;
  auto store = open_redis(*options);
  ASSERT_TRUE(store);

  int failures = 0;
  std::thread restarter;
  auto acknowledged = stream_of_writes(
      **store, bucket("restart"), 3000,
      [&] {
        ASSERT_FALSE(script("redis.sh", "kill " + dir).empty());
        restarter = std::thread([&] {
          std::this_thread::sleep_for(1s);
          script("redis.sh", "start " + dir);
        });
      },
      failures);
  if (restarter.joinable()) restarter.join();

  EXPECT_EQ(acknowledged.size(), 3000U);
  EXPECT_GT(failures, 0) << "the kill did not interrupt the stream";
  std::size_t missing = 0;
  for (const auto& key : acknowledged) {
    auto value = (*store)->get(bucket("restart"), key);
    if (!value || !value->has_value()) ++missing;
  }
  EXPECT_EQ(missing, 0U) << "acknowledged writes lost (AOF appendfsync always)";
}

}  // namespace
}  // namespace intercomm::store
