// Delivery receipts: the first time a message reaches its receiver — a live
// frame routed to a gateway holding one of their sockets, or a webhook of
// theirs answering 2xx — its time is kept (bucket `delivered`, key the
// message id; put_if_absent: the first wins) and its sender's sockets get
// {"type":"delivered","message_id","seq","at"}, seq in the sender's inbox.
// GET /v1/messages/{id} shows it to the sender (the MTA's get_receipt).
#pragma once

#include "bus/bus.hpp"
#include "core/message.hpp"
#include "store/store.hpp"

#include <chrono>
#include <cstdint>
#include <optional>

namespace intercomm::mda {

// Best effort: a receipt that cannot be written or told is logged, never a
// reason to deliver the message again. Nothing for a note to oneself or a
// retracted message.
void record_delivered(store::Store& store, bus::Bus& bus, const core::Message& message,
                      std::optional<std::uint64_t> sender_seq, std::chrono::milliseconds publish_timeout);

}  // namespace intercomm::mda
