// Delivery receipts: the first time a message reaches its receiver — a live
// frame routed to a gateway holding one of their sockets, a socket's
// catch-up handing it over from the inbox (the gateway's record_delivered
// job), or a webhook of theirs answering 2xx — its time is kept (bucket
// `delivered`, key the message id; put_if_absent: the first wins) and its
// sender's sockets get {"type":"delivered","message_id","seq","at"}, seq in
// the sender's inbox. GET /v1/messages/{id} shows it to the sender (the MTA's
// get_receipt).
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"
#include "core/message.hpp"
#include "jobs/jobs.hpp"
#include "store/store.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace intercomm::mda {

struct Receipt {
  std::string message_id;
  std::string sender;
  std::string receiver;
  std::optional<std::uint64_t> sender_seq;  // read from the sender's inbox when absent
};

// Keeps each receipt (one store write for them all) and tells each sender:
// per receipt, true when this was the first delivery, false when it was told
// before (or the message is a note to oneself); an error when the receipt
// could not be kept.
std::vector<core::Result<bool>> record_delivered(store::Store& store, bus::Bus& bus,
                                                 std::span<const Receipt> receipts,
                                                 std::chrono::milliseconds publish_timeout);

// A message that reached its receiver, with its seq in the sender's inbox
// when known.
struct DeliveredMessage {
  const core::Message* message;
  std::optional<std::uint64_t> sender_seq;
};

// The live and webhook paths: best effort — a receipt that cannot be kept is
// logged, never a reason to deliver the message again. Nothing for a
// retracted message.
void record_delivered(store::Store& store, bus::Bus& bus, std::span<const DeliveredMessage> messages,
                      std::chrono::milliseconds publish_timeout);

// record_delivered {"messages":[{"message_id","sender","receiver"[,"sender_seq"]}]}:
// the receipts of a socket's catch-up page (queued by the gateway). A receipt
// that cannot be kept fails the job with -32010 (retried, no attempt spent;
// the ones kept before it are told once: put_if_absent).
core::Result<boost::json::value> record_all(store::Store& store, bus::Bus& bus,
                                            const jobs::RecordDelivered& job,
                                            std::chrono::milliseconds publish_timeout);

}  // namespace intercomm::mda
