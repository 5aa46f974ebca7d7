// The distributed store: Redis, standalone or Cluster, over hiredis.
#pragma once

#include "store/store.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace intercomm::store {

struct RedisOptions {
  // One address for a standalone server; for a cluster, any reachable nodes.
  std::vector<std::pair<std::string, int>> nodes{{"127.0.0.1", 6379}};
  bool cluster = false;
  std::chrono::milliseconds timeout{2000};  // connect and per-command
  std::size_t pool_size = 4;                // connections per node
  // When a write is acknowledged (?durability= in the URL):
  //  local    after the node's own AOF (appendfsync always): losing that node's
  //           disk loses nothing, but a failover to a replica loses the writes
  //           it had not yet copied (asynchronous replication: the last few ms);
  //  replica  also after one replica has it (WAIT 1, up to `timeout`; not
  //           confirmed in time: unavailable, and the caller retries
  //           idempotently). A node with no replica connected (a promoted
  //           replica whose old master is not back yet) acknowledges after its
  //           AOF, logged: a master failover then costs nothing acknowledged
  //           unless that node is lost too before a replica is back.
  // Default: replica on a cluster, local on a standalone server.
  enum class Durability { local, replica };
  Durability durability = Durability::local;
  // Cluster: how long one call follows redirects and retries through a failover.
  std::chrono::milliseconds retry_budget{10000};
};

// Values are strings at rh:<type>:<bucket>:<key>; an index is a sorted set at
// rh:idx:{<index_key>}:<type>:<bucket> with every score 0, so members sort as
// bytes and pages are ZRANGEBYLEX/ZREVRANGEBYLEX. The hash tag keeps one
// index in one Redis Cluster slot. Connections come from per-node pools; a
// broken connection is replaced on next use. Durability comes from the
// server's AOF setting (appendfsync always) and options.durability.
core::Result<std::unique_ptr<Store>> open_redis(const RedisOptions& options);

// "redis://HOST:PORT" or "redis-cluster://HOST:PORT,HOST:PORT,...", each with
// an optional "?durability=local|replica" -> options.
core::Result<RedisOptions> parse_redis_url(std::string_view url);

}  // namespace intercomm::store
