// Redis backend: the Store operations as Redis commands, on one node or routed by slot.
#include "store/redis_store.hpp"

#include "core/config.hpp"
#include "store/buckets.hpp"
#include "store/redis_cluster.hpp"
#include "store/redis_node.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>

#include <charconv>
#include <functional>

namespace intercomm::store {
namespace {

using core::Error;
using core::ErrorCode;
using redis::Command;
using redis::Reply;

// Runs a pipeline on the node that owns `routing_key`; for a write (`durable`),
// as NodePool::durable_pipeline does.
using Executor = std::function<core::Result<std::vector<Reply>>(
    std::string_view routing_key, const std::vector<Command>& commands, bool durable)>;

std::string value_key(const Bucket& bucket, std::string_view key) {
  return fmt::format("rh:{}:{}:{}", bucket.type, bucket.name, key);
}

std::string index_key_of(const Bucket& bucket, std::string_view index_key) {
  return fmt::format("rh:idx:{{{}}}:{}:{}", index_key, bucket.type, bucket.name);
}

// A user's inbox: the last seq given (a counter) and a sorted set of message
// ids scored by seq. The hash tag keeps both in one cluster slot, so one
// script updates them together.
std::string inbox_last_key(std::string_view user) {
  return fmt::format("rh:inbox:{{{}}}:last", user);
}
std::string inbox_set_key(std::string_view user) {
  return fmt::format("rh:inbox:{{{}}}:seq", user);
}

// KEYS: last, set. ARGV: message id. The id's seq, appending it when absent.
constexpr std::string_view kInboxAppendScript = R"lua(
local seq = redis.call('ZSCORE', KEYS[2], ARGV[1])
if seq then return tonumber(seq) end
seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
return seq
)lua";

// Stores messages in order, each once, and appends each to its inboxes.
// ARGV: count, then per message: id, value, number of inboxes. KEYS: per
// message: its key, then per inbox: last, set. Returns {seqs} or, stopping at
// the first id already stored, {seqs, its 1-based index, its value}.
constexpr std::string_view kStoreMessagesScript = R"lua(
local key, arg, stored = 1, 2, {}
for m = 1, tonumber(ARGV[1]) do
  local id, value, inboxes = ARGV[arg], ARGV[arg + 1], tonumber(ARGV[arg + 2])
  arg = arg + 3
  local existing = redis.call('GET', KEYS[key])
  if existing then return {stored, m, existing} end
  redis.call('SET', KEYS[key], value)
  key = key + 1
  local seqs = {}
  for i = 1, inboxes do
    local seq = redis.call('ZSCORE', KEYS[key + 1], id)
    if seq then
      seq = tonumber(seq)
    else
      seq = redis.call('INCR', KEYS[key])
      redis.call('ZADD', KEYS[key + 1], seq, id)
    end
    seqs[i] = seq
    key = key + 2
  end
  stored[#stored + 1] = seqs
end
return {stored}
)lua";

std::optional<std::uint64_t> number_of(const redisReply* reply) {
  if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0)
    return static_cast<std::uint64_t>(reply->integer);
  if (reply->type != REDIS_REPLY_STRING) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(reply->str, reply->str + reply->len, value);
  if (ec != std::errc() || end != reply->str + reply->len) return std::nullopt;
  return value;
}

class RedisStore final : public Store {
 public:
  RedisStore(Executor executor, bool cluster) : run_(std::move(executor)), cluster_(cluster) {}

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

  // Standalone: one script for the whole call (one round trip, atomic).
  // Cluster: a message and its inboxes live in different slots, so the steps
  // go one by one, each atomic in its slot and idempotent.
  StoredMessages store_messages(std::span<const NewMessage> messages) override {
    if (cluster_) return store_messages_in_steps(messages);
    StoredMessages out;
    if (messages.empty()) return out;
    std::vector<std::string> keys;
    std::vector<std::string> counts{std::to_string(messages.size())};
    for (const auto& message : messages) {
      keys.push_back(value_key(kMessages, message.message_id));
      for (const auto& user : message.inboxes) {
        keys.push_back(inbox_last_key(user));
        keys.push_back(inbox_set_key(user));
      }
      counts.push_back(std::to_string(message.inboxes.size()));
    }
    const std::string key_count = std::to_string(keys.size());
    Command command{"EVAL", kStoreMessagesScript, key_count};
    command.insert(command.end(), keys.begin(), keys.end());
    command.emplace_back(counts[0]);
    for (std::size_t i = 0; i < messages.size(); ++i) {
      command.emplace_back(messages[i].message_id);
      command.emplace_back(messages[i].value);
      command.emplace_back(counts[i + 1]);
    }
    auto reply = write(keys.front(), std::move(command));
    if (!reply) {
      out.error = reply.error();
      return out;
    }
    const redisReply* top = reply->get();
    if (top->type != REDIS_REPLY_ARRAY || top->elements < 1 || top->element[0]->type != REDIS_REPLY_ARRAY) {
      out.error = unexpected("EVAL store_messages");
      return out;
    }
    for (std::size_t m = 0; m < top->element[0]->elements; ++m) {
      const redisReply* seqs = top->element[0]->element[m];
      std::vector<std::uint64_t> parsed;
      for (std::size_t i = 0; seqs->type == REDIS_REPLY_ARRAY && i < seqs->elements; ++i) {
        auto seq = number_of(seqs->element[i]);
        if (!seq) {
          out.error = unexpected("EVAL store_messages");
          return out;
        }
        parsed.push_back(*seq);
      }
      out.seqs.push_back(std::move(parsed));
    }
    if (top->elements == 3) {
      auto index = number_of(top->element[1]);
      if (!index || *index < 1 || top->element[2]->type != REDIS_REPLY_STRING) {
        out.error = unexpected("EVAL store_messages");
        return out;
      }
      out.existing_index = *index - 1;
      out.existing_value.assign(top->element[2]->str, top->element[2]->len);
    }
    return out;
  }

  core::Result<std::uint64_t> inbox_append(std::string_view user, std::string_view message_id) override {
    const std::string last = inbox_last_key(user);
    const std::string set = inbox_set_key(user);
    auto reply = write(last, {"EVAL", kInboxAppendScript, "2", last, set, message_id});
    if (!reply) return reply.error();
    auto seq = number_of(reply->get());
    if (!seq) return unexpected("EVAL inbox_append");
    return *seq;
  }

  core::Result<std::optional<std::uint64_t>> inbox_seq(std::string_view user,
                                                       std::string_view message_id) override {
    const std::string set = inbox_set_key(user);
    auto reply = read(set, {"ZSCORE", set, message_id});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return std::optional<std::uint64_t>();
    auto seq = number_of(reply->get());
    if (!seq) return unexpected("ZSCORE");
    return std::optional<std::uint64_t>(*seq);
  }

  core::Result<std::uint64_t> inbox_last_seq(std::string_view user) override {
    const std::string last = inbox_last_key(user);
    auto reply = read(last, {"GET", last});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return std::uint64_t{0};
    auto seq = number_of(reply->get());
    if (!seq) return unexpected("GET");
    return *seq;
  }

  core::Result<InboxPage> inbox_range(std::string_view user, const InboxQuery& query) override {
    const std::string set = inbox_set_key(user);
    const std::string count = std::to_string(query.limit + 1);  // one more: is there a next page?
    const std::string low = query.after_seq ? "(" + std::to_string(*query.after_seq) : "-inf";
    const std::string high = query.before_seq ? "(" + std::to_string(*query.before_seq) : "+inf";
    auto reply = query.order == Order::ascending
                     ? read(set, {"ZRANGEBYSCORE", set, low, high, "WITHSCORES", "LIMIT", "0", count})
                     : read(set, {"ZREVRANGEBYSCORE", set, high, low, "WITHSCORES", "LIMIT", "0", count});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_ARRAY || (*reply)->elements % 2 != 0)
      return unexpected("ZRANGEBYSCORE");
    InboxPage page;
    const std::size_t found = (*reply)->elements / 2;
    for (std::size_t i = 0; i < found && i < query.limit; ++i) {
      const redisReply* member = (*reply)->element[2 * i];
      auto seq = number_of((*reply)->element[2 * i + 1]);
      if (!seq || member->type != REDIS_REPLY_STRING) return unexpected("ZRANGEBYSCORE");
      page.entries.push_back(InboxEntry{*seq, std::string(member->str, member->len)});
    }
    page.more = found > query.limit;
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
  core::Result<std::vector<Reply>> checked(std::string_view routing_key, const std::vector<Command>& commands,
                                           bool durable = false) {
    auto replies = run_(routing_key, commands, durable);
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

  // A write: acknowledged as the store's durability says.
  core::Result<Reply> write(std::string_view routing_key, Command command) {
    auto replies = checked(routing_key, {std::move(command)}, true);
    if (!replies) return replies.error();
    return std::move(replies->front());
  }

  Executor run_;
  bool cluster_;
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
  Executor executor;
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
  auto store = std::make_unique<RedisStore>(std::move(executor), options.cluster);
  if (!store->ping()) return Error::of(ErrorCode::unavailable, "store: Redis does not answer PING");
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace intercomm::store
