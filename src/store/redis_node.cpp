// A pool of hiredis connections to one node.
#include "store/redis_node.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>

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

}  // namespace

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

}  // namespace intercomm::store::redis
