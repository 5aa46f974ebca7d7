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
  // After each write, WAIT until this many replicas have it (0: no WAIT). A
  // write the replicas did not confirm in `timeout` is reported unavailable
  // (it may still have happened: callers retry idempotently).
  int wait_replicas = 0;
  // Cluster: how long one call follows redirects and retries through a failover.
  std::chrono::milliseconds retry_budget{10000};
};

// Values are strings at rh:<type>:<bucket>:<key>; an index is a sorted set at
// rh:idx:{<index_key>}:<type>:<bucket> with every score 0, so members sort as
// bytes and pages are ZRANGEBYLEX/ZREVRANGEBYLEX. The hash tag keeps one
// index in one Redis Cluster slot. Connections come from per-node pools; a
// broken connection is replaced on next use. Durability comes from the
// server's AOF setting (appendfsync always) and wait_replicas.
core::Result<std::unique_ptr<Store>> open_redis(const RedisOptions& options);

// "redis://HOST:PORT" or "redis-cluster://HOST:PORT,HOST:PORT,..." -> options.
core::Result<RedisOptions> parse_redis_url(std::string_view url);

}  // namespace intercomm::store
