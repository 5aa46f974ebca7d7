// A pool of hiredis connections to one node.
#include "store/redis_node.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <charconv>

namespace intercomm::store::redis {

using core::Error;
using core::ErrorCode;

void ReplyDeleter::operator()(redisReply* reply) const {
  freeReplyObject(reply);
}
void ContextDeleter::operator()(redisContext* context) const {
  redisFree(context);
}

namespace {

timeval timeval_of(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// hiredis's own reply builders, with createArray checked first.
redisReplyObjectFunctions capped_functions(const redisReplyObjectFunctions& plain) {
  static const auto create_array = plain.createArray;
  redisReplyObjectFunctions capped = plain;
  capped.createArray = [](const redisReadTask* task, int elements) -> void* {
    if (elements < 0 || elements > kMaxReplyElements) return nullptr;  // the reader reports out of memory
    return create_array(task, elements);
  };
  return capped;
}

}  // namespace

void cap_reply_arrays(redisReader* reader) {
  static redisReplyObjectFunctions capped = capped_functions(*reader->fn);  // every reader starts with the same
  reader->fn = &capped;
}

std::string_view error_text(const Reply& reply) {
  if (!reply || reply->type != REDIS_REPLY_ERROR) return {};
  return std::string_view(reply->str, reply->len);
}

NodePool::NodePool(std::string host, int port, std::chrono::milliseconds timeout, std::size_t size)
    : host_(std::move(host)), port_(port), timeout_(timeout), size_(std::max<std::size_t>(1, size)) {}

NodePool::~NodePool() = default;

core::Result<Context> NodePool::acquire() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < size_; });
    if (!idle_.empty()) {
      Context context = std::move(idle_.back());
      idle_.pop_back();
      return context;
    }
    ++open_;
  }
  const timeval timeout = timeval_of(timeout_);
  Context context(redisConnectWithTimeout(host_.c_str(), port_, timeout));
  if (!context || context->err) {
    const std::string detail = context ? context->errstr : "out of memory";
    release(nullptr);
    return Error::of(ErrorCode::unavailable,
                     fmt::format("store: Redis {} unreachable: {}", address(), detail));
  }
  redisSetTimeout(context.get(), timeout);
  cap_reply_arrays(context->reader);
  return context;
}

void NodePool::release(Context context) {
  std::lock_guard lock(mu_);
  if (context) {
    idle_.push_back(std::move(context));
  } else {
    --open_;
  }
  cv_.notify_one();
}

core::Result<std::vector<Reply>> NodePool::pipeline(const std::vector<Command>& commands) {
  auto context = acquire();
  if (!context) return context.error();
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& args : commands) {
    argv.clear();
    lengths.clear();
    for (auto arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    redisAppendCommandArgv(context->get(), static_cast<int>(argv.size()), argv.data(), lengths.data());
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context->get(), &raw) != REDIS_OK || raw == nullptr) {
      const std::string detail = (*context)->errstr;
      release(nullptr);
      return Error::of(ErrorCode::unavailable, fmt::format("store: Redis {} failed: {}", address(), detail));
    }
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  release(std::move(*context));
  return replies;
}

int NodePool::replicas() {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (replicas_ >= 0 && now - replicas_checked_ < std::chrono::seconds(1)) return replicas_;
  }
  auto replies = pipeline({{"INFO", "replication"}});
  int count = -1;
  if (replies && (*replies)[0]->type == REDIS_REPLY_STRING) {
    const std::string_view info((*replies)[0]->str, (*replies)[0]->len);
    constexpr std::string_view kField = "connected_slaves:";
    if (const auto at = info.find(kField); at != std::string_view::npos) {
      std::from_chars(info.data() + at + kField.size(), info.data() + info.size(), count);
    }
  }
  std::lock_guard lock(mu_);
  if (count >= 0 && count != replicas_ && replicas_ >= 0) {
    if (count == 0) {
      spdlog::warn(
          "store: Redis {} has no replica connected: its writes are acknowledged after its own AOF "
          "until one is back",
          address());
    } else {
      spdlog::info("store: Redis {} has {} replica(s) again: writes wait for one", address(), count);
    }
  }
  if (count >= 0) replicas_ = count;
  replicas_checked_ = now;
  return replicas_ < 0 ? 1 : replicas_;  // unknown: assume one, and let WAIT tell
}

core::Result<std::vector<Reply>> NodePool::durable_pipeline(const std::vector<Command>& commands,
                                                            std::chrono::milliseconds timeout,
                                                            bool& degraded) {
  degraded = replicas() == 0;
  if (degraded) return pipeline(commands);
  const std::string wait_ms = std::to_string(timeout.count());
  std::vector<Command> sent = commands;
  sent.push_back({"WAIT", "1", wait_ms});
  auto replies = pipeline(sent);
  if (!replies) return replies;
  const Reply wait = std::move(replies->back());
  replies->pop_back();
  const bool confirmed = wait && wait->type == REDIS_REPLY_INTEGER && wait->integer >= 1;
  if (!confirmed) {
    // Ask again how many replicas there are: none left means degraded, not failing.
    {
      std::lock_guard lock(mu_);
      replicas_checked_ = {};
    }
    return Error::of(ErrorCode::unavailable, "store: write not confirmed by a replica in time");
  }
  return replies;
}

}  // namespace intercomm::store::redis
