// open_redis and the URLs it takes: a standalone node's pool or a cluster's
// router, as the executor of the Redis store.
#include "core/config.hpp"
#include "store/redis_cluster.hpp"
#include "store/redis_detail.hpp"
#include "store/redis_store.hpp"

#include <fmt/core.h>

namespace intercomm::store {

using core::Error;
using core::ErrorCode;
using redis::Command;

core::Result<RedisOptions> parse_redis_url(std::string_view url) {
  RedisOptions options;
  std::string_view rest;
  if (url.starts_with("redis://")) {
    rest = url.substr(8);
  } else if (url.starts_with("redis-cluster://")) {
    rest = url.substr(16);
    options.cluster = true;
  } else {
    return Error::of(ErrorCode::invalid_params,
                     fmt::format("'{}': must be redis://HOST:PORT or redis-cluster://HOST:PORT,...", url));
  }
  options.durability = options.cluster ? RedisOptions::Durability::replica : RedisOptions::Durability::local;
  if (const auto query = rest.find('?'); query != std::string_view::npos) {
    const std::string_view setting = rest.substr(query + 1);
    rest = rest.substr(0, query);
    if (setting == "durability=local") {
      options.durability = RedisOptions::Durability::local;
    } else if (setting == "durability=replica") {
      options.durability = RedisOptions::Durability::replica;
    } else {
      return Error::of(
          ErrorCode::invalid_params,
          fmt::format("'{}': the only setting is ?durability=local or ?durability=replica", url));
    }
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  options.nodes.clear();
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    auto host_port = core::parse_host_port(rest.substr(0, comma));
    if (!host_port || host_port->port == 0) {
      return Error::of(ErrorCode::invalid_params, fmt::format("'{}': every node must be HOST:PORT", url));
    }
    options.nodes.emplace_back(host_port->host, host_port->port);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  if (options.nodes.empty() || (!options.cluster && options.nodes.size() != 1)) {
    return Error::of(ErrorCode::invalid_params,
                     fmt::format("'{}': must name one node (redis://HOST:PORT)", url));
  }
  return options;
}

core::Result<std::unique_ptr<Store>> open_redis(const RedisOptions& options) {
  redis_detail::Executor executor;
  const bool replica = options.durability == RedisOptions::Durability::replica;
  const auto wait = options.timeout;
  if (options.cluster) {
    auto router = std::make_shared<redis::ClusterRouter>(
        redis::ClusterOptions{options.nodes, options.timeout, options.pool_size, options.retry_budget});
    if (auto loaded = router->refresh(); !loaded) return loaded.error();
    executor = [router, replica, wait](std::string_view key, const std::vector<Command>& commands,
                                       bool durable) {
      bool degraded = false;
      return durable && replica ? router->durable_pipeline(key, commands, wait, degraded)
                                : router->pipeline(key, commands);
    };
  } else {
    if (options.nodes.size() != 1)
      return Error::of(ErrorCode::invalid_params, "store: standalone Redis takes one node");
    auto pool = std::make_shared<redis::NodePool>(options.nodes[0].first, options.nodes[0].second,
                                                  options.timeout, options.pool_size);
    executor = [pool, replica, wait](std::string_view, const std::vector<Command>& commands, bool durable) {
      bool degraded = false;
      return durable && replica ? pool->durable_pipeline(commands, wait, degraded) : pool->pipeline(commands);
    };
  }
  auto store = redis_detail::make_redis_store(std::move(executor), options.cluster);
  if (!store->ping()) return Error::of(ErrorCode::unavailable, "store: Redis does not answer PING");
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace intercomm::store
