// Message Transfer Agent: the store-side jobs of DESIGN.md's REST table.
#pragma once

#include "bus/bus.hpp"
#include "core/message.hpp"
#include "jobs/jobs.hpp"
#include "store/store.hpp"
#include "worker/worker.hpp"

#include <chrono>

namespace intercomm::mta {

inline constexpr std::string_view kWorkerName = jobs::kMta;

struct MtaOptions {
  core::MessageLimits limits;
  std::size_t default_page = 50;
  std::size_t max_page = 100;
  std::chrono::milliseconds publish_timeout{5000};  // queuing deliver_message
  std::size_t max_subscriptions_per_user = 10;      // webhooks per user; subscribe_user beyond is -32009
};

// Registers on `worker` the jobs the MTA owns:
//  send_message      {"message":{sender,receiver,body[,message_id][,created_at]}}
//                    -> {"message_id","seqs":{"<user>":seq,...}}
//                    An ordered job (lanes keyed by the conversation): stores
//                    the message once (a redelivery is a no-op; a different
//                    message under a used id is -32009) and appends it to the
//                    sender's and the receiver's inbox, where it gets the next
//                    seq (jobs of one conversation in the order they were
//                    queued); then queues deliver_message {"message","seqs"}.
//                    A transient failure is -32010: retried in place, in order.
//  get_message       {"message_id"} -> the message (seed shape plus id and time);
//                    missing/malformed id -32602, unknown id -32004.
//  list_messages     {"user"[,"after"|"after_seq"][,"before"|"before_seq"][,"limit"]}
//                    -> {"messages":[message + "seq"...],"next","next_seq"}: oldest
//                    first after a cursor, else newest first; a page stops at
//                    `limit` items or core::kPageBudgetBytes, and next/next_seq
//                    continue it (null at the end). after/before name a message
//                    of this inbox by id.
//  subscribe_user    {"user","webhook":{"url"}} -> the subscription with its secret;
//                    -32009 when the user has max_subscriptions_per_user already
//  list_subscriptions {"user"} -> {"subscriptions":[...]} (secrets left out)
//  unsubscribe_user  {"user","subscription_id"} -> {"removed":true}; unknown -32004
//  claim_idempotency_key {"user","key","message":{message_id,created_at,receiver,body}}
//                    -> {"message_id","created_at","replayed"}: the first claim
//                    of (user, key) records the message's id and time (atomic,
//                    put_if_absent) and gets them back with replayed=false;
//                    every later claim gets the recorded ones with
//                    replayed=true, or -32009 when its receiver or body differ.
//  list_deliveries   {"message_id"[,"after"][,"limit"]} -> {"deliveries":[attempt...],"next"}:
//                    the webhook attempts the MDA recorded, per subscription, in
//                    order, paged like list_messages.
// Workers trust the bus: who may ask is the gateway's business.
void register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus, MtaOptions options = {});

}  // namespace intercomm::mta
