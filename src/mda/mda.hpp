// Message Delivery Agent: gets each stored message to its receiver.
#pragma once

#include "bus/bus.hpp"
#include "core/message.hpp"
#include "mda/webhook.hpp"
#include "store/store.hpp"
#include "worker/worker.hpp"

#include <chrono>
#include <vector>

namespace intercomm::mda {

inline constexpr std::string_view kWorkerName = "mda";

struct MdaOptions {
  std::chrono::milliseconds publish_timeout{5000};
  // Waits before the 2nd, 3rd ... attempt of a webhook; after the last one
  // fails the delivery is dead-lettered. Each wait is a delay queue
  // inter_comm.delay.<ms> whose TTL hands the job back to rpc_queue_mda.
  std::vector<std::chrono::milliseconds> retry_schedule{std::chrono::seconds(5), std::chrono::seconds(30),
                                                        std::chrono::minutes(2), std::chrono::minutes(10),
                                                        std::chrono::hours(1)};
  double retry_jitter = 0.1;  // each wait is shortened by up to this fraction, at random
  WebhookOptions webhook;
};

// Parses "5s,30s,2m,10m,1h" (units ms, s, m, h) into a retry schedule.
core::Result<std::vector<std::chrono::milliseconds>> parse_retry_schedule(std::string_view text);

// The delay queue that holds a webhook job for `wait` before its next attempt.
std::string delay_queue(std::chrono::milliseconds wait);

// Registers on `worker` the MDA's jobs (and declares its delay queues):
//  deliver_message {"message":{message_id,sender,receiver,body,created_at},
//                   "seqs":{"<user>":seq,...}} -> {"message_id","live","webhooks"}
//    publishes {"type":"message","seq":N,"message":{...}} to inter_comm.live
//    with routing key user.<receiver>, and user.<sender> when the sender is
//    someone else (their other devices), N being the message's seq in that
//    user's inbox (looked up when the job has no seqs). Unroutable means
//    nobody has a socket open: the message waits in the inbox, which is not
//    a failure. A publish that failed is -32010 and the job is retried; a
//    gateway then sees a seq twice and drops the second (gateway/stream.hpp).
//    `live` lists the users with a socket open somewhere. Then one
//    deliver_webhook job per webhook subscription of the receiver.
//  deliver_webhook {"message":{...},"user","subscription_id","attempt"} -> {"outcome"}
//    POSTs {"type":"message.received","timestamp","data":message} with
//    Standard Webhooks headers (webhook-id = message id, webhook-timestamp,
//    webhook-signature with the subscription's secret) and records the
//    attempt in bucket `delivery`. 2xx: delivered (and the subscription is
//    active again). Otherwise the next attempt waits in a delay queue; after
//    the last, the job goes to dead_letters and the subscription is marked
//    failing. A removed subscription ends its jobs quietly.
core::Result<void> register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus,
                                 MdaOptions options = {});

}  // namespace intercomm::mda
