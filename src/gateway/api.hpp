// The REST API of DESIGN.md's table: checks each request, then queues a job or makes an RPC.
#pragma once

#include "bus/bus.hpp"
#include "bus/rpc_client.hpp"
#include "core/message.hpp"
#include "gateway/blocks.hpp"
#include "gateway/jwt.hpp"
#include "gateway/rate_limit.hpp"
#include "gateway/metrics.hpp"
#include "gateway/router.hpp"
#include "gateway/stream.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace intercomm::gateway {

struct ApiOptions {
  TokenVerifier verifier;  // HS256 secret, RS256 public key
  RateLimits rate_limits;  // per user (sends, subscription changes) and per address (failed auth)
  std::chrono::milliseconds rpc_timeout{5000};
  std::chrono::milliseconds publish_timeout{5000};
  core::MessageLimits limits;
  // Extra readiness check (the store, in one process); null: the bus only.
  std::function<bool()> ready;
  // False while a worker of this process pauses (its circuit breaker is open); unset: no workers here.
  std::function<bool()> workers_ready;
  Metrics* metrics = nullptr;  // GET /metrics renders it; jobs and RPCs are counted in it
  // GET /v1/stream is served when set (its RpcClient must route live messages to it).
  std::shared_ptr<StreamHub> stream;
  // Receivers' blocks, checked before a message is accepted (its RpcClient
  // must route block signals to it); null: nobody is refused for a block.
  std::shared_ptr<BlockList> blocks;
};

// Adds the routes to `router`. Every /v1 route needs `Authorization: Bearer
// <token>` whose subject is the claimer: `sender` (defaulting to the subject)
// for POST /v1/messages, `{user}` in a path, a participant for a message.
//  POST /v1/messages                          202 after the send_message job is confirmed on the bus;
//                                             with Idempotency-Key, a retry gets the first send's id
//                                             (claimed by RPC claim_idempotency_key) and is stored once
//  GET  /v1/messages/{message_id}             200 (sender or receiver only)
//  GET  /v1/messages/{message_id}/deliveries  200 webhook attempts (sender or receiver only)
//  GET  /v1/users/{user}/messages             200 ?before=&after=&limit=
//  POST /v1/users/{user}/subscriptions        201
//  GET  /v1/users/{user}/subscriptions        200
//  DELETE /v1/users/{user}/subscriptions/{id} 204
//  GET  /v1/stream (WebSocket)               live messages; ?after=<id> replays; token in
//                                             Authorization or ?access_token= (browsers);
//                                             the client may send messages on it (frames.hpp)
//  GET  /healthz, /readyz, /metrics
// Errors use the one JSON shape; bus trouble is 503 with Retry-After, an RPC
// without reply in time 504, a spent rate limit 429 with Retry-After.
void add_api_routes(Router& router, bus::Bus& bus, bus::RpcClient& rpc, ApiOptions options);

}  // namespace intercomm::gateway
