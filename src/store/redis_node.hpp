// Connections to one Redis node: a small pool of hiredis contexts.
#pragma once

#include "core/errors.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

struct redisReply;
struct redisContext;
struct redisReader;

namespace intercomm::store::redis {

struct ReplyDeleter {
  void operator()(redisReply* reply) const;
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* context) const;
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

using Command = std::vector<std::string_view>;

// Up to `size` connections to host:port, made on demand. pipeline() sends the
// commands in one round trip on one connection and returns every reply,
// error replies included (the caller reads MOVED/ASK from them). A transport
// failure (connect, timeout, reset) is ErrorCode::unavailable, and the
// connection that saw it is dropped. Thread-safe.
class NodePool {
 public:
  NodePool(std::string host, int port, std::chrono::milliseconds timeout, std::size_t size);
  ~NodePool();
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  core::Result<std::vector<Reply>> pipeline(const std::vector<Command>& commands);

  // pipeline() for writes that a replica must have too: followed, in the same
  // round trip, by WAIT 1 `timeout` when this node has a replica connected;
  // unavailable when none confirmed in time. A node with no replica (a
  // promoted replica whose master has not come back yet) cannot have its
  // writes confirmed by one: they are acknowledged after its own AOF, and
  // `degraded` says so. WAIT's reply is not among those returned.
  core::Result<std::vector<Reply>> durable_pipeline(const std::vector<Command>& commands,
                                                    std::chrono::milliseconds timeout, bool& degraded);

  // The replicas connected to this node (INFO replication), at most a second old.
  int replicas();

  const std::string& host() const noexcept { return host_; }
  int port() const noexcept { return port_; }
  std::string address() const { return host_ + ":" + std::to_string(port_); }

 private:
  core::Result<Context> acquire();
  void release(Context context);  // nullptr: the connection broke

  std::string host_;
  int port_;
  std::chrono::milliseconds timeout_;
  std::size_t size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Context> idle_;
  std::size_t open_ = 0;
  int replicas_ = -1;  // unknown
  std::chrono::steady_clock::time_point replicas_checked_{};
};

// The most elements one reply array may announce. hiredis 0.14 allocates an
// array as large as its header says before reading it ("*904095690" is 7 GB);
// a larger header fails the reply (out of memory) and drops the connection.
inline constexpr int kMaxReplyElements = 1 << 20;

// Makes `reader` refuse arrays over kMaxReplyElements. Every connection's reader gets it.
void cap_reply_arrays(redisReader* reader);

// Text of an error reply ("MOVED 3999 127.0.0.1:6381"), or empty when `reply` is not one.
std::string_view error_text(const Reply& reply);

}  // namespace intercomm::store::redis
