// Sizes that must agree end to end: what the gateway accepts, what the bus
// carries, what a worker parses and what one page of a reply may hold.
#pragma once

#include <cstddef>

namespace intercomm::core {

// The largest JSON-RPC message on the bus (a job, an RPC request or reply, a
// live frame). Workers and the RPC client refuse larger ones; RabbitMQ's own
// limit (128 MiB by default) is far above it.
inline constexpr std::size_t kMaxBusMessageBytes = 4 * 1024 * 1024;

// Room for everything around a message body in the largest job that carries
// one (deliver_webhook: JSON-RPC envelope, ids, users, created_at, sequence
// numbers, headers are outside the body).
inline constexpr std::size_t kJobOverheadBytes = 16 * 1024;

// JSON escapes a control character as \u00XX: one byte of body can take six
// bytes on the bus.
inline constexpr std::size_t kWorstJsonEscapeFactor = 6;

// The largest --max-body-bytes a service accepts: a body of that size, however
// it escapes, still fits in one bus message with its job around it. Nothing
// the gateway answers 202 for can then be refused by a worker.
inline constexpr std::size_t kMaxBodyBytesLimit =
    (kMaxBusMessageBytes - kJobOverheadBytes) / kWorstJsonEscapeFactor;

// A page of a list (messages, deliveries) stops adding items once its JSON
// would pass this many bytes; it always holds at least one item, and its
// `next` cursor continues where it stopped.
inline constexpr std::size_t kPageBudgetBytes = 1024 * 1024;

// The largest HTTP request body that can carry a message body of `max_body`
// bytes: the same escaping bound, plus room for the fields around it.
inline constexpr std::size_t max_request_bytes(std::size_t max_body) {
  return max_body * kWorstJsonEscapeFactor + 4096;
}

// The shortest HS256 token secret taken anywhere (--secret, `intercomm
// token`, the gateway's verifier): RFC 7518 §3.2 asks for a key at least as
// long as the hash; a shorter one is guessable offline from a single token.
inline constexpr std::size_t kMinSecretBytes = 32;

}  // namespace intercomm::core
