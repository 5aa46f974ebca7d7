// Accepting a message: what POST /v1/messages and a socket's "send" frame
// share — the checks, the Idempotency-Key claim, the durable publish of
// send_message. Internal to the gateway.
#pragma once

#include "bus/bus.hpp"
#include "bus/rpc_client.hpp"
#include "core/errors.hpp"
#include "core/message.hpp"
#include "gateway/metrics.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace intercomm::gateway {

class BlockList;

struct SendOptions {
  core::MessageLimits limits;
  std::chrono::milliseconds rpc_timeout{5000};
  std::chrono::milliseconds publish_timeout{5000};
  Metrics* metrics = nullptr;
  BlockList* blocks = nullptr;  // receivers' blocks, checked before anything is queued; null: none checked
};

struct SendRequest {
  std::string user;             // the authenticated user: the sender
  boost::json::object fields;   // receiver, body; sender (defaults to user, must be user)
  // Sends with the same key (per user) are one message: a retry gets the
  // first one's id back (replayed) and it is stored once.
  std::optional<std::string> idempotency_key;
  std::string request_id;
};

struct SendAccepted {
  std::string message_id;
  bool replayed = false;
};

// Calls `done` once: accepted only after the send_message job is confirmed
// on the bus (durable); else the error — -32602 (bad fields), -32003
// (sender is another user, or the receiver blocks the sender), -32009 (the key was used for another message),
// -32010 (nothing was queued: retry), -32011 (the broker did not confirm in
// time: it may be queued; retry with the same key to be sure it is stored once).
void accept_send(bus::Bus& bus, bus::RpcClient& rpc, const SendOptions& options, SendRequest request,
                 std::function<void(core::Result<SendAccepted>)> done);

}  // namespace intercomm::gateway
