// JSON-RPC calls over the bus: request to inter_comm, reply on this process's reply queue.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace intercomm::bus {

// The result of a call: the worker's result, the worker's JSON-RPC error, or
// a transport error: -32010 unavailable (bus down, or no worker bound for the
// job), -32011 timeout (no reply in time).
using RpcResult = core::Result<boost::json::value>;
using RpcCallback = std::function<void(RpcResult)>;

// Each call is published to inter_comm with routing key = method, reply_to =
// the bus's reply queue, correlation_id = the JSON-RPC id, and expiration =
// the timeout, so a request nobody took in time dies in the queue. Replies are
// matched by id; a reply after the timeout is dropped and counted. `done` is
// called exactly once, on a bus thread or the client's timer thread (calls
// still pending when the client is destroyed get -32010). Many thousands of
// calls may be in flight. Thread-safe. The bus must outlive the client.
class RpcClient {
 public:
  // Called first for every message on the reply queue; returns true when it
  // took the message (e.g. live deliveries bound onto the same queue with
  // Bus::bind_reply_queue). Runs on a bus thread and must not block.
  using Intercept = std::function<bool(Envelope&)>;

  // Opens the bus's reply queue; fails when the bus cannot.
  static core::Result<std::unique_ptr<RpcClient>> open(Bus& bus, Intercept intercept = nullptr);
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  void call(const std::string& method, boost::json::object params, Clock::duration timeout,
            std::map<std::string, std::string> headers, RpcCallback done);

  // Blocking form, for tools and tests.
  RpcResult call_and_wait(const std::string& method, boost::json::object params, Clock::duration timeout);

  std::uint64_t late_replies() const noexcept { return late_replies_.load(); }
  std::uint64_t timeouts() const noexcept { return timeouts_.load(); }

 private:
  explicit RpcClient(Bus& bus);
  void on_reply(Envelope reply);
  // Finishes call `id`; false when it is no longer pending (answered or timed out).
  bool complete(const std::string& id, RpcResult result);
  void run_timer();
  static core::Error publish_failure(PublishStatus status, const std::string& method);

  struct Pending {
    RpcCallback done;
    Clock::time_point deadline;
  };

  // Lets the bus's reply and confirm handlers reach this client only while it
  // exists. Recursive: a callback run under it may make another call, whose
  // publish can fail at once on the same thread.
  struct ReplyGuard {
    std::recursive_mutex mu;
    RpcClient* client = nullptr;
  };

  Bus& bus_;
  std::shared_ptr<ReplyGuard> guard_ = std::make_shared<ReplyGuard>();
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Pending> pending_;
  std::multimap<Clock::time_point, std::string> deadlines_;
  std::uint64_t next_id_ = 1;
  std::string id_prefix_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> late_replies_{0};
  std::atomic<std::uint64_t> timeouts_{0};
  std::thread timer_;
};

}  // namespace intercomm::bus
