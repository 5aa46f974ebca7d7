// Message Transfer Agent: the store-side jobs of DESIGN.md's REST table.
#pragma once

#include "bus/bus.hpp"
#include "core/message.hpp"
#include "store/store.hpp"
#include "worker/worker.hpp"

#include <chrono>

namespace intercomm::mta {

inline constexpr std::string_view kWorkerName = "mta";

struct MtaOptions {
  core::MessageLimits limits;
  std::size_t default_page = 50;
  std::size_t max_page = 100;
  std::chrono::milliseconds publish_timeout{5000};  // queuing deliver_message
};

// Registers on `worker` the jobs the MTA owns:
//  send_message      {"message":{sender,receiver,body[,message_id][,created_at]}} -> {"message_id"}
//                    stores once (put_if_absent; a redelivery is a no-op, a
//                    different message under a used id is -32009), adds it to
//                    both inboxes, then queues deliver_message; any step failing
//                    transiently is -32010 and the job is retried (every step
//                    is idempotent).
//  get_message       {"message_id"} -> the message (seed shape plus id and time);
//                    missing/malformed id -32602, unknown id -32004.
//  list_messages     {"user"[,"before"][,"after"][,"limit"]} -> {"messages":[...],"next"}
//                    newest first; `next` is the `before` of the next page.
//  subscribe_user    {"user","webhook":{"url"}} -> the subscription with its secret
//  list_subscriptions {"user"} -> {"subscriptions":[...]} (secrets left out)
//  unsubscribe_user  {"user","subscription_id"} -> {"removed":true}; unknown -32004
//  claim_idempotency_key {"user","key","message":{message_id,created_at,receiver,body}}
//                    -> {"message_id","created_at","replayed"}: the first claim
//                    of (user, key) records the message's id and time (atomic,
//                    put_if_absent) and gets them back with replayed=false;
//                    every later claim gets the recorded ones with
//                    replayed=true, or -32009 when its receiver or body differ.
//  list_deliveries   {"message_id"} -> {"deliveries":[attempt...]}: the webhook
//                    attempts the MDA recorded, per subscription, in order.
// Workers trust the bus: who may ask is the gateway's business.
void register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus, MtaOptions options = {});

}  // namespace intercomm::mta
