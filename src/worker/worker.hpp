// The worker framework: serve jobs from rpc_queue_<name> as JSON-RPC 2.0.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace intercomm::worker {

struct WorkerOptions {
  std::uint16_t prefetch = 64;
  unsigned threads = 2;
  // A job that failed this many deliveries is dead-lettered (the queue's
  // x-delivery-limit is set one above, as a backstop for crashing workers).
  std::uint32_t max_deliveries = 5;
  bus::QueueType queue_type = bus::QueueType::quorum;
};

// What a handler sees besides its params.
struct JobContext {
  std::string method;
  std::string request_id;  // x-request-id header
  std::string user;        // x-user header: the authenticated user, when a gateway sent it
  bool redelivered = false;
  std::uint32_t delivery_count = 0;
};

// A handler returns its result, or a typed error from the core table. Return
// ErrorCode::unavailable for a transient failure (e.g. the store is down): a
// job is then delivered again. Throwing is a bug: the caller gets -32603 with
// no detail, and a job is retried like a transient failure.
using Handler =
    std::function<core::Result<boost::json::value>(const boost::json::object& params, const JobContext&)>;

// Consumes rpc_queue_<name>, bound to inter_comm with one key per registered
// job. For each message:
//  - with reply_to (an RPC): the outcome is final: the response (result, the
//    handler's error, or -32603 for a throw) goes to reply_to with the
//    request's correlation_id, then the message is acked;
//  - without reply_to (a job or a notification): acked once the handler
//    returned a result or a definitive error; requeued on a transient failure
//    or a throw; dead-lettered after max_deliveries, and at once when it
//    cannot ever succeed (not JSON-RPC, unknown method).
// Notifications never get a reply; batches get one array reply. Handlers run
// on `threads` threads; at most `prefetch` messages are in hand at once.
// Acks happen only after the handler returned (and any reply was published).
class Worker {
 public:
  Worker(bus::Bus& bus, std::string name, WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  Worker& on(std::string job, Handler handler);

  // Declares the queue with its bindings and starts consuming.
  core::Result<void> start();

  // Stops taking messages, finishes those in hand, then stops. Idempotent.
  void stop();

  const std::string& queue() const noexcept { return queue_; }

  struct Stats {
    std::uint64_t acked = 0;
    std::uint64_t requeued = 0;
    std::uint64_t dead_lettered = 0;
    std::uint64_t replies = 0;
  };
  Stats stats() const;

 private:
  void on_delivery(std::unique_ptr<bus::Delivery> delivery);
  void run_thread();
  void process(std::unique_ptr<bus::Delivery> delivery);

  bus::Bus& bus_;
  std::string name_;
  std::string queue_;
  WorkerOptions options_;
  std::map<std::string, Handler> handlers_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<bus::Delivery>> inbox_;
  std::size_t busy_ = 0;
  bool draining_ = false;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
  std::unique_ptr<bus::Subscription> subscription_;

  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::uint64_t> requeued_{0};
  std::atomic<std::uint64_t> dead_lettered_{0};
  std::atomic<std::uint64_t> replies_{0};
};

}  // namespace intercomm::worker
