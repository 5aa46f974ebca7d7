// Redis Cluster routing: hash slots, the slot map, MOVED/ASK redirects.
//
// Written here because Debian 12 ships no maintained C/C++ Redis Cluster
// client (hiredis-cluster is not packaged). It is deliberately small: a
// future Redis client library with cluster support replaces this file.
#pragma once

#include "store/redis_node.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace intercomm::store::redis {

inline constexpr int kSlots = 16384;

// CRC16-CCITT (XMODEM), as Redis Cluster specifies.
std::uint16_t crc16(std::string_view bytes) noexcept;

// The slot of `key`: of the text inside the first {...} when that is not empty.
int key_slot(std::string_view key) noexcept;

// A MOVED or ASK error: where a slot lives now.
struct Redirect {
  bool ask = false;
  int slot = 0;
  std::string host;
  int port = 0;
};

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381"; nullopt for any
// other text, or one whose slot or port is out of range.
std::optional<Redirect> parse_redirect(std::string_view error);

// One range of a CLUSTER SLOTS reply and its master.
struct SlotRange {
  int first = 0;
  int last = 0;
  std::string host;
  int port = 0;
};

// The well-formed ranges of a CLUSTER SLOTS reply (others are skipped: a
// slot out of 0..16383, a port out of 1..65535, a wrong type anywhere); an
// empty host is the node that answered, `asked_host`.
std::vector<SlotRange> parse_cluster_slots(const redisReply* reply, const std::string& asked_host);

struct ClusterOptions {
  std::vector<std::pair<std::string, int>> seeds;
  std::chrono::milliseconds timeout{2000};
  std::size_t pool_size = 2;  // per node
  // How long one call keeps following redirects and retrying while the
  // cluster fails over (a replica takes over after cluster-node-timeout).
  std::chrono::milliseconds retry_budget{10000};
};

// Routes each pipeline to the master of the slot of its routing key. Follows
// MOVED (updating the slot map, then refreshing it from the cluster) and ASK
// (sending ASKING first, without changing the map). On a transport failure or
// CLUSTERDOWN/TRYAGAIN it refreshes the slot map from any reachable node and
// retries within the retry budget. Thread-safe.
class ClusterRouter {
 public:
  explicit ClusterRouter(ClusterOptions options);

  // Loads the slot map; fails when no seed answers CLUSTER SLOTS.
  core::Result<void> refresh();

  core::Result<std::vector<Reply>> pipeline(std::string_view routing_key,
                                            const std::vector<Command>& commands);

  // pipeline() for a write: NodePool::durable_pipeline on the node that
  // serves the slot (following redirects as pipeline() does).
  core::Result<std::vector<Reply>> durable_pipeline(std::string_view routing_key,
                                                    const std::vector<Command>& commands,
                                                    std::chrono::milliseconds wait_timeout, bool& degraded);

  // The master currently mapped for `slot`, as "host:port" (for tests).
  std::string master_of(int slot);

 private:
  // wait_timeout set: a durable write.
  core::Result<std::vector<Reply>> route(std::string_view routing_key, const std::vector<Command>& commands,
                                         std::optional<std::chrono::milliseconds> wait_timeout,
                                         bool& degraded);
  std::shared_ptr<NodePool> pool_for(const std::string& host, int port);
  std::shared_ptr<NodePool> node_of(int slot);

  ClusterOptions options_;
  std::shared_mutex mu_;
  std::array<std::shared_ptr<NodePool>, kSlots> slots_{};
  std::map<std::string, std::shared_ptr<NodePool>> nodes_;  // by "host:port"
};

}  // namespace intercomm::store::redis
