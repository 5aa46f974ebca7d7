// Frames a client sends on GET /v1/stream (internal to the gateway):
//   {"type":"send","ref":R,"receiver":"bob","body":"..."[,"idempotency_key":K]}
//     a message, with the checks, limits and durability of POST /v1/messages
//     (the send rate limit included; K: the Idempotency-Key, independent of R),
//     answered once on the same socket:
//     {"type":"accepted","ref":R,"message_id":"...","replayed":false}, or
//     {"type":"error","ref":R,"status":N,"error":{"code","message"[,"data"]}}
//     with N the status POST would have answered (400, 403, 409, 429, 503, 504).
//   {"type":"typing","to":U[,"ref":R]}
//     relayed to U's sockets on every gateway as {"type":"typing","from":user};
//     never stored; answered only when refused (a bad `to`, the typing rate
//     limit: an error frame with R, or null).
// R: 1-64 printable ASCII characters, the client's own name for the frame.
// A frame that is not JSON, has no known type or no valid ref is answered
// {"type":"error","ref":R or null,"status":400,...}.
#pragma once

#include "gateway/auth.hpp"
#include "gateway/send.hpp"

#include <functional>
#include <string>
#include <string_view>

namespace intercomm::gateway {

struct FrameContext {
  bus::Bus& bus;
  bus::RpcClient& rpc;
  Guard& guard;
  const SendOptions& send;
};

// Calls `done` once the frame is dealt with: a send once it is queued on the
// bus or refused (so that a socket's sends are queued in the order it sent them).
void handle_client_frame(FrameContext& context, const std::string& user, const std::string& request_id,
                         std::string_view text, std::function<void(std::string)> reply,
                         std::function<void()> done);

}  // namespace intercomm::gateway
