// Redis backend: the Store operations as Redis commands, on one node or routed by slot.
#include "store/redis_store.hpp"

#include "core/config.hpp"
#include "store/redis_cluster.hpp"
#include "store/redis_node.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>

#include <functional>

namespace intercomm::store {
namespace {

using core::Error;
using core::ErrorCode;
using redis::Command;
using redis::Reply;

// Runs a pipeline on the node that owns `routing_key`.
using Executor = std::function<core::Result<std::vector<Reply>>(std::string_view routing_key,
                                                                const std::vector<Command>& commands)>;

std::string value_key(const Bucket& bucket, std::string_view key) {
  return fmt::format("rh:{}:{}:{}", bucket.type, bucket.name, key);
}

std::string index_key_of(const Bucket& bucket, std::string_view index_key) {
  return fmt::format("rh:idx:{{{}}}:{}:{}", index_key, bucket.type, bucket.name);
}

class RedisStore final : public Store {
 public:
  RedisStore(Executor executor, int wait_replicas, std::chrono::milliseconds timeout)
      : run_(std::move(executor)), wait_replicas_(wait_replicas), timeout_(timeout) {}

  core::Result<std::optional<std::string>> get(const Bucket& bucket, std::string_view key) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = read(full_key, {"GET", full_key});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return std::optional<std::string>();
    if ((*reply)->type != REDIS_REPLY_STRING) return unexpected("GET");
    return std::optional<std::string>(std::string((*reply)->str, (*reply)->len));
  }

  core::Result<void> put(const Bucket& bucket, std::string_view key, std::string_view value) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = write(full_key, {"SET", full_key, value});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_STATUS) return unexpected("SET");
    return {};
  }

  core::Result<bool> put_if_absent(const Bucket& bucket, std::string_view key,
                                   std::string_view value) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = write(full_key, {"SET", full_key, value, "NX"});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return false;
    if ((*reply)->type != REDIS_REPLY_STATUS) return unexpected("SET NX");
    return true;
  }

  core::Result<bool> remove(const Bucket& bucket, std::string_view key) override {
    const std::string full_key = value_key(bucket, key);
    auto reply = write(full_key, {"DEL", full_key});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("DEL");
    return (*reply)->integer > 0;
  }

  core::Result<void> index_add(const Bucket& bucket, std::string_view index_key,
                               std::string_view entry) override {
    const std::string key = index_key_of(bucket, index_key);
    auto reply = write(key, {"ZADD", key, "0", entry});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("ZADD");
    return {};
  }

  core::Result<bool> index_remove(const Bucket& bucket, std::string_view index_key,
                                  std::string_view entry) override {
    const std::string key = index_key_of(bucket, index_key);
    auto reply = write(key, {"ZREM", key, entry});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("ZREM");
    return (*reply)->integer > 0;
  }

  core::Result<Page> range(const Bucket& bucket, std::string_view index_key,
                           const RangeQuery& query) override {
    const std::string key = index_key_of(bucket, index_key);
    const std::string count = std::to_string(query.limit + 1);  // one more: is there a next page?
    const std::string low = query.after ? "(" + *query.after : "-";
    const std::string high = query.before ? "(" + *query.before : "+";
    auto reply = query.order == Order::ascending
                     ? read(key, {"ZRANGEBYLEX", key, low, high, "LIMIT", "0", count})
                     : read(key, {"ZREVRANGEBYLEX", key, high, low, "LIMIT", "0", count});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_ARRAY) return unexpected("ZRANGEBYLEX");
    Page page;
    for (std::size_t i = 0; i < (*reply)->elements && i < query.limit; ++i) {
      const redisReply* element = (*reply)->element[i];
      page.entries.emplace_back(element->str, element->len);
    }
    if ((*reply)->elements > query.limit && !page.entries.empty()) page.next = page.entries.back();
    return page;
  }

  bool ping() override {
    auto reply = read("ping", {"PING"});
    return reply && (*reply)->type == REDIS_REPLY_STATUS;
  }

 private:
  static Error unexpected(std::string_view what) {
    return Error::of(ErrorCode::unavailable, fmt::format("store: unexpected Redis reply to {}", what));
  }

  // The replies of one pipeline, with Redis error replies turned into errors.
  core::Result<std::vector<Reply>> checked(std::string_view routing_key,
                                           const std::vector<Command>& commands) {
    auto replies = run_(routing_key, commands);
    if (!replies) return replies.error();
    for (const auto& reply : *replies) {
      if (auto text = redis::error_text(reply); !text.empty()) {
        return Error::of(ErrorCode::unavailable, fmt::format("store: Redis error: {}", text));
      }
    }
    return replies;
  }

  core::Result<Reply> read(std::string_view routing_key, Command command) {
    auto replies = checked(routing_key, {std::move(command)});
    if (!replies) return replies.error();
    return std::move(replies->front());
  }

  // A write, followed in the same round trip (same node) by WAIT when replicas are required.
  core::Result<Reply> write(std::string_view routing_key, Command command) {
    if (wait_replicas_ <= 0) return read(routing_key, std::move(command));
    const std::string replicas = std::to_string(wait_replicas_);
    const std::string timeout = std::to_string(timeout_.count());
    auto replies = checked(routing_key, {std::move(command), {"WAIT", replicas, timeout}});
    if (!replies) return replies.error();
    if ((*replies)[1]->type != REDIS_REPLY_INTEGER || (*replies)[1]->integer < wait_replicas_) {
      return Error::of(ErrorCode::unavailable, "store: write not confirmed by a replica in time");
    }
    return std::move((*replies)[0]);
  }

  Executor run_;
  int wait_replicas_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

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
  Executor executor;
  if (options.cluster) {
    auto router = std::make_shared<redis::ClusterRouter>(
        redis::ClusterOptions{options.nodes, options.timeout, options.pool_size, options.retry_budget});
    if (auto loaded = router->refresh(); !loaded) return loaded.error();
    executor = [router](std::string_view key, const std::vector<Command>& commands) {
      return router->pipeline(key, commands);
    };
  } else {
    if (options.nodes.size() != 1)
      return Error::of(ErrorCode::invalid_params, "store: standalone Redis takes one node");
    auto pool = std::make_shared<redis::NodePool>(options.nodes[0].first, options.nodes[0].second,
                                                  options.timeout, options.pool_size);
    executor = [pool](std::string_view, const std::vector<Command>& commands) {
      return pool->pipeline(commands);
    };
  }
  auto store = std::make_unique<RedisStore>(std::move(executor), options.wait_replicas, options.timeout);
  if (!store->ping()) return Error::of(ErrorCode::unavailable, "store: Redis does not answer PING");
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace intercomm::store
