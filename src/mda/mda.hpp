// Message Delivery Agent: gets each stored message to its receiver.
#pragma once

#include "bus/bus.hpp"
#include "core/message.hpp"
#include "mda/webhook.hpp"
#include "store/store.hpp"
#include "jobs/jobs.hpp"
#include "worker/worker.hpp"

#include <chrono>
#include <vector>

namespace intercomm::mda {

// Live delivery (deliver_message) and webhook attempts (deliver_webhook) are
// served by two workers with their own queues and threads: receivers that
// never answer hold webhook threads only, never a live frame.
inline constexpr std::string_view kWorkerName = jobs::kMda;                // rpc_queue_mda
inline constexpr std::string_view kWebhookWorkerName = jobs::kMdaWebhook;  // rpc_queue_mda_webhook

struct MdaOptions {
  std::chrono::milliseconds publish_timeout{5000};
  // Waits before the 2nd, 3rd ... attempt of a webhook; after the last one
  // fails the delivery is dead-lettered. Each wait is a delay queue
  // inter_comm.delay.<ms> whose TTL hands the job back to rpc_queue_mda_webhook.
  std::vector<std::chrono::milliseconds> retry_schedule{std::chrono::seconds(5), std::chrono::seconds(30),
                                                        std::chrono::minutes(2), std::chrono::minutes(10),
                                                        std::chrono::hours(1)};
  double retry_jitter = 0.1;  // each wait is shortened by up to this fraction, at random
  // A subscription has one attempt in flight at a time (per MDA process): a
  // job that finds another attempt of its subscription in flight waits this
  // long in a delay queue, its attempt number unchanged.
  std::chrono::milliseconds busy_wait{1000};
  WebhookOptions webhook;
  // The client of every attempt; made from `webhook` when null. Stop it
  // before stopping the webhook worker: attempts in flight end at once and
  // their jobs are retried later, no attempt spent.
  std::shared_ptr<WebhookClient> client;
};

// Parses "5s,30s,2m,10m,1h" (units ms, s, m, h) into a retry schedule.
core::Result<std::vector<std::chrono::milliseconds>> parse_retry_schedule(std::string_view text);

// The delay queue that holds a webhook job for `wait` before its next attempt.
std::string delay_queue(std::chrono::milliseconds wait);

// Registers the MDA's jobs, deliver_message and record_delivered on `live`
// and deliver_webhook on `webhooks` (and declares the delay queues):
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
//  record_delivered {"messages":[{"message_id","sender","receiver"[,"sender_seq"]}]}
//    -> {"signalled"}: the delivery receipts of a socket's catch-up page
//    (receipts.hpp).
//  deliver_webhook {"message":{...},"user","subscription_id","attempt"} -> {"outcome"}
//    POSTs {"type":"message.received","timestamp","data":message} with
//    Standard Webhooks headers (webhook-id = message id, webhook-timestamp,
//    webhook-signature with the subscription's secret) and records the
//    attempt in bucket `delivery`. 2xx: delivered (and the subscription is
//    active again). Otherwise the next attempt waits in a delay queue; after
//    the last, the job goes to dead_letters and the subscription is marked
//    failing. A removed subscription ends its jobs quietly. An attempt cut
//    short by WebhookClient::stop() is not recorded: the job is retried.
core::Result<void> register_jobs(worker::Worker& live, worker::Worker& webhooks, store::Store& store,
                                 bus::Bus& bus, MdaOptions options = {});

}  // namespace intercomm::mda
