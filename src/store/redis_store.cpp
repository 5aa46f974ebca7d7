// Redis backend: a small pool of hiredis connections, argv commands, pipelined WAIT.
#include "store/redis_store.hpp"

#include "core/config.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>

#include <condition_variable>
#include <mutex>
#include <vector>

namespace intercomm::store {
namespace {

using core::Error;
using core::ErrorCode;

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

std::string value_key(const Bucket& bucket, std::string_view key) {
  return fmt::format("rh:{}:{}:{}", bucket.type, bucket.name, key);
}

std::string index_key_of(const Bucket& bucket, std::string_view index_key) {
  return fmt::format("rh:idx:{{{}}}:{}:{}", index_key, bucket.type, bucket.name);
}

timeval timeval_of(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

class RedisStore final : public Store {
 public:
  explicit RedisStore(RedisOptions options) : options_(std::move(options)) {}

  core::Result<std::optional<std::string>> get(const Bucket& bucket, std::string_view key) override {
    auto reply = command({"GET", value_key(bucket, key)});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return std::optional<std::string>();
    if ((*reply)->type != REDIS_REPLY_STRING) return unexpected("GET");
    return std::optional<std::string>(std::string((*reply)->str, (*reply)->len));
  }

  core::Result<void> put(const Bucket& bucket, std::string_view key, std::string_view value) override {
    auto reply = write({"SET", value_key(bucket, key), value});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_STATUS) return unexpected("SET");
    return {};
  }

  core::Result<bool> put_if_absent(const Bucket& bucket, std::string_view key,
                                   std::string_view value) override {
    auto reply = write({"SET", value_key(bucket, key), value, "NX"});
    if (!reply) return reply.error();
    if ((*reply)->type == REDIS_REPLY_NIL) return false;
    if ((*reply)->type != REDIS_REPLY_STATUS) return unexpected("SET NX");
    return true;
  }

  core::Result<bool> remove(const Bucket& bucket, std::string_view key) override {
    auto reply = write({"DEL", value_key(bucket, key)});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("DEL");
    return (*reply)->integer > 0;
  }

  core::Result<void> index_add(const Bucket& bucket, std::string_view index_key,
                               std::string_view entry) override {
    auto reply = write({"ZADD", index_key_of(bucket, index_key), "0", entry});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("ZADD");
    return {};
  }

  core::Result<bool> index_remove(const Bucket& bucket, std::string_view index_key,
                                  std::string_view entry) override {
    auto reply = write({"ZREM", index_key_of(bucket, index_key), entry});
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_INTEGER) return unexpected("ZREM");
    return (*reply)->integer > 0;
  }

  core::Result<Page> range(const Bucket& bucket, std::string_view index_key,
                           const RangeQuery& query) override {
    // One more than asked: tells whether there is a next page.
    const std::string count = std::to_string(query.limit + 1);
    const bool ascending = query.order == Order::ascending;
    const std::string low = query.after ? "(" + *query.after : "-";
    const std::string high = query.before ? "(" + *query.before : "+";
    auto reply =
        ascending
            ? command({"ZRANGEBYLEX", index_key_of(bucket, index_key), low, high, "LIMIT", "0", count})
            : command({"ZREVRANGEBYLEX", index_key_of(bucket, index_key), high, low, "LIMIT", "0", count});
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
    auto reply = command({"PING"});
    return reply && (*reply)->type == REDIS_REPLY_STATUS;
  }

 private:
  Error unexpected(std::string_view what) {
    return Error::of(ErrorCode::unavailable, fmt::format("store: unexpected Redis reply to {}", what));
  }

  Error unreachable(std::string_view detail) {
    return Error::of(ErrorCode::unavailable,
                     fmt::format("store: Redis {}:{} unreachable: {}", options_.host, options_.port, detail));
  }

  // Borrows a connection (connecting when the pool has none idle).
  core::Result<Context> acquire() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < options_.pool_size; });
      if (!idle_.empty()) {
        Context context = std::move(idle_.back());
        idle_.pop_back();
        return context;
      }
      ++open_;
    }
    const timeval timeout = timeval_of(options_.timeout);
    Context context(redisConnectWithTimeout(options_.host.c_str(), options_.port, timeout));
    if (!context || context->err) {
      const std::string detail = context ? context->errstr : "out of memory";
      release(nullptr);
      return unreachable(detail);
    }
    redisSetTimeout(context.get(), timeout);
    return context;
  }

  // Returns a healthy connection to the pool; a broken one (nullptr) frees its slot.
  void release(Context context) {
    std::lock_guard lock(mu_);
    if (context) {
      idle_.push_back(std::move(context));
    } else {
      --open_;
    }
    cv_.notify_one();
  }

  // Sends the commands pipelined on one connection and returns every reply.
  core::Result<std::vector<Reply>> pipeline(const std::vector<std::vector<std::string_view>>& commands) {
    auto context = acquire();
    if (!context) return context.error();
    for (const auto& args : commands) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lengths;
      for (auto arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      redisAppendCommandArgv(context->get(), static_cast<int>(argv.size()), argv.data(), lengths.data());
    }
    std::vector<Reply> replies;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(context->get(), &raw) != REDIS_OK || raw == nullptr) {
        const std::string detail = (*context)->errstr;
        release(nullptr);
        return unreachable(detail);
      }
      Reply reply(static_cast<redisReply*>(raw));
      if (reply->type == REDIS_REPLY_ERROR) {
        const std::string message(reply->str, reply->len);
        release(std::move(*context));
        return Error::of(ErrorCode::unavailable, "store: Redis error: " + message);
      }
      replies.push_back(std::move(reply));
    }
    release(std::move(*context));
    return replies;
  }

  core::Result<Reply> command(std::vector<std::string_view> args) {
    auto replies = pipeline({std::move(args)});
    if (!replies) return replies.error();
    return std::move(replies->front());
  }

  // A write, followed in the same round trip by WAIT when replicas are required.
  core::Result<Reply> write(std::vector<std::string_view> args) {
    if (options_.wait_replicas <= 0) return command(std::move(args));
    const std::string replicas = std::to_string(options_.wait_replicas);
    const std::string timeout = std::to_string(options_.timeout.count());
    auto replies = pipeline({std::move(args), {"WAIT", replicas, timeout}});
    if (!replies) return replies.error();
    if ((*replies)[1]->type != REDIS_REPLY_INTEGER || (*replies)[1]->integer < options_.wait_replicas) {
      return Error::of(ErrorCode::unavailable, "store: write not confirmed by a replica in time");
    }
    return std::move((*replies)[0]);
  }

  RedisOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Context> idle_;
  std::size_t open_ = 0;
};

}  // namespace

core::Result<RedisOptions> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    return Error::of(ErrorCode::invalid_params, fmt::format("'{}': must be redis://HOST:PORT", url));
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto host_port = core::parse_host_port(rest);
  if (!host_port || host_port->port == 0) {
    return Error::of(ErrorCode::invalid_params, fmt::format("'{}': must be redis://HOST:PORT", url));
  }
  RedisOptions options;
  options.host = host_port->host;
  options.port = host_port->port;
  return options;
}

core::Result<std::unique_ptr<Store>> open_redis(const RedisOptions& options) {
  auto store = std::make_unique<RedisStore>(options);
  if (!store->ping()) {
    return Error::of(ErrorCode::unavailable,
                     fmt::format("store: Redis {}:{} does not answer PING", options.host, options.port));
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace intercomm::store
