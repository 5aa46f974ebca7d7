// The worker framework: serve jobs from rpc_queue_<name> as JSON-RPC 2.0.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"
#include "core/jsonrpc.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
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
  // Ordered jobs (on_ordered) are spread over this many lanes; 0 serves them
  // on rpc_queue_<name> with the other jobs, in no particular order.
  unsigned lanes = 16;
  // Jobs each lane holds at once (its consumer's prefetch), all handed to the
  // handler in one turn. A lane is served by one process at a time, so a wide
  // window takes work from no other process; it makes the batches: a turn
  // costs a store write and a publish whatever its size, so under a backlog
  // a wider window stores more per turn (docs/BENCHMARKS.md, fifth pass).
  std::uint16_t lane_prefetch = 1024;
  // Back-off of a job (or a lane's head job) that failed transiently:
  // doubling from the first to the last, with jitter.
  std::chrono::milliseconds retry_first{50};
  std::chrono::milliseconds retry_last{2000};
  // After this many transient failures in a row (and no success), the
  // worker stops taking jobs (the circuit opens) until one of those it holds
  // succeeds.
  std::uint32_t breaker_threshold = 5;
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
// job is then retried in place, after a back-off, for as long as it takes (an
// outage spends no delivery). Throwing is a bug: the caller gets -32603 with
// no detail, and a job is requeued, and dead-lettered after max_deliveries.
using Handler =
    std::function<core::Result<boost::json::value>(const boost::json::object& params, const JobContext&)>;

// One job of a batch handed to an ordered handler.
struct BatchJob {
  const boost::json::object* params;
  JobContext context;
};

// Handles consecutive jobs of one lane, in the order they were queued, and
// returns one outcome per job in the same order. An outcome `unavailable`
// (transient) at job i promises that jobs i+1 ... had no effect yet: the
// worker hands jobs i ... back to the handler, in order, after a back-off,
// for as long as it takes (an outage does not spend the delivery budget).
using BatchHandler = std::function<std::vector<core::Result<boost::json::value>>(std::span<const BatchJob>)>;

// Consumes rpc_queue_<name>, bound to inter_comm with one key per registered
// job. For each message:
//  - with reply_to (an RPC): the outcome is final: the response (result, the
//    handler's error, or -32603 for a throw) goes to reply_to with the
//    request's correlation_id, then the message is acked;
//  - without reply_to (a job or a notification): acked once the handler
//    returned a result or a definitive error; held and retried in place on a
//    transient failure (back-off with jitter; no delivery spent); requeued
//    on a throw and dead-lettered after max_deliveries; dead-lettered at once
//    when it cannot ever succeed (not JSON-RPC, unknown method).
// Transient failures in a row open a circuit breaker: the worker stops
// taking jobs (its consumers pause) while it retries those it holds, and
// takes jobs again once one succeeds.
// Notifications never get a reply; batches get one array reply. Handlers run
// on `threads` threads; at most `prefetch` messages are in hand at once.
// Acks happen only after the handler returned (and any reply was published).
//
// Ordered jobs (on_ordered) keep their publish order among jobs with the same
// x-order-key header: they go through lanes (rpc_queue_<name>.lane.<i>, each
// with a single active consumer across every process of this worker), and a
// lane's jobs are handed to the handler in queue order, batched, one batch of
// a lane at a time. A transient failure holds the lane (retried in place,
// after a back-off) instead of letting later jobs overtake.
class Worker {
 public:
  Worker(bus::Bus& bus, std::string name, WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  Worker& on(std::string job, Handler handler);
  Worker& on_ordered(std::string job, BatchHandler handler);
  // An unordered job handled in batches: a handler thread that takes such a
  // job also takes the jobs of rpc_queue_<name> waiting behind it (up to
  // kMaxBatch) and hands those of `job` over together. Each outcome is its
  // job's alone (a transient failure holds and retries that job only).
  // Batches form under load; an idle worker hands each job over alone.
  Worker& on_batch(std::string job, BatchHandler handler);
  static constexpr std::size_t kMaxBatch = 64;

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
    std::uint64_t retried_in_place = 0;  // jobs handed back after a transient failure
    std::uint64_t held = 0;              // jobs waiting to be retried now
    bool circuit_open = false;           // not taking jobs: everything it tried failed transiently
    std::size_t in_hand = 0;             // deliveries taken from the bus, not yet settled
  };
  Stats stats() const;

 private:
  struct Lane;
  // What a handler thread does next: one delivery of rpc_queue_<name>, or a
  // turn of one lane.
  struct Task {
    std::unique_ptr<bus::Delivery> delivery;
    Lane* lane = nullptr;
    std::uint32_t transient_failures = 0;  // of this delivery, retried in place
  };

  void on_delivery(std::unique_ptr<bus::Delivery> delivery);
  // Handles deliveries of rpc_queue_<name> taken together: those of a job
  // registered with on_batch in one call per job, the others one by one.
  void process_many(std::vector<Task> tasks);
  void on_lane_delivery(Lane& lane, std::unique_ptr<bus::Delivery> delivery);
  void run_thread();
  void process(std::unique_ptr<bus::Delivery> delivery, std::uint32_t transient_failures = 0);
  // The batch handler of `method` (on_batch or on_ordered), or null.
  const BatchHandler* batch_handler(const std::string& method) const;
  void run_lane(Lane& lane);
  // The wait before retry number `failures` (1, 2 ...): doubling, capped, jittered.
  std::chrono::milliseconds backoff(std::uint32_t failures) const;
  // Circuit breaker bookkeeping: every transient failure, and every success.
  void transient_failure();
  void succeeded();
  void pause_consumers();
  void resume_consumers();
  // What becomes of a message once handled, for messages without reply_to.
  // Ordered: a later value wins when a batch mixes outcomes.
  enum class Disposition { ack, dead_letter, hold, retry };
  // Settles a delivery whose outcome is known: an RPC gets its reply and is
  // acked; a job is acked, requeued or dead-lettered.
  void finish(bus::Delivery& delivery, const std::vector<core::jsonrpc::Response>& responses, bool batch,
              Disposition disposition);
  void settled();
  // What process() does once the outcome is known: a transient failure of a
  // job is held and retried in place; anything else is finished.
  void conclude(std::unique_ptr<bus::Delivery> delivery,
                const std::vector<core::jsonrpc::Response>& responses, bool batch, Disposition disposition,
                std::uint32_t transient_failures);

  bus::Bus& bus_;
  std::string name_;
  std::string queue_;
  WorkerOptions options_;
  std::map<std::string, Handler> handlers_;
  std::map<std::string, BatchHandler> ordered_handlers_;
  std::map<std::string, BatchHandler> batch_handlers_;  // unordered, see on_batch

  mutable std::mutex mu_;
  // Serializes pausing, resuming and dropping the subscriptions (taken before mu_).
  std::mutex consumers_mu_;
  std::condition_variable cv_;          // handler threads: a task, a retry due, or stop
  std::condition_variable drained_cv_;  // stop(): nothing left in hand (busy_ == 0)
  std::deque<Task> tasks_;
  std::multimap<std::chrono::steady_clock::time_point, Task> delayed_;  // jobs and lanes backing off
  std::uint32_t transient_in_a_row_ = 0;
  bool circuit_open_ = false;
  std::size_t busy_ = 0;  // deliveries in hand, not yet settled
  bool draining_ = false;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
  std::unique_ptr<bus::Subscription> subscription_;
  std::vector<std::unique_ptr<Lane>> lanes_;

  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::uint64_t> requeued_{0};
  std::atomic<std::uint64_t> dead_lettered_{0};
  std::atomic<std::uint64_t> replies_{0};
  std::atomic<std::uint64_t> retried_in_place_{0};
  std::atomic<std::uint64_t> held_{0};
};

}  // namespace intercomm::worker
