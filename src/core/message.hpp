// The message model of DESIGN.md and its validation, with messages that say what to fix.
#pragma once

#include "core/errors.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace intercomm::core {

inline constexpr std::size_t kMaxUserIdLength = 64;
inline constexpr std::size_t kDefaultMaxBodyBytes = 64 * 1024;
inline constexpr std::size_t kMinMessageIdLength = 8;
inline constexpr std::size_t kMaxMessageIdLength = 40;

struct Message {
  std::string message_id;
  std::string sender;
  std::string receiver;
  std::string body;        // UTF-8 text
  std::string created_at;  // RFC 3339, UTC, e.g. 2026-11-25T15:49:18.123Z
  // Set when its sender took it back: the body is then empty (a tombstone in
  // both inboxes, same seq). Stored messages only; a new message never has it.
  std::string retracted_at;

  friend bool operator==(const Message&, const Message&) = default;
};

struct MessageLimits {
  std::size_t max_body_bytes = kDefaultMaxBodyBytes;
};

// Which fields a message must carry. A new message (from a client or another
// service) needs sender, receiver and body; message_id and created_at are
// optional there and checked when present. A stored message has them all.
enum class MessageShape { new_message, stored };

// 1-64 of [A-Za-z0-9_.-].
bool is_user_id(std::string_view value) noexcept;

// The conversation of two users, the same whichever of them sends: the key
// that orders send_message jobs (jobs with one key are stored in the order
// they were accepted).
std::string conversation_key(std::string_view a, std::string_view b);

// 8-40 of [0-9A-Z]: ids this system generates, and ids like the seed's X9J0UI76GBWQTF.
bool is_message_id(std::string_view value) noexcept;

// 1 to `max` characters of printable ASCII, no space (0x21-0x7E): opaque
// names a client chooses, e.g. an Idempotency-Key or a socket frame's ref.
bool is_visible_ascii(std::string_view value, std::size_t max) noexcept;

// YYYY-MM-DDTHH:MM:SS[.fraction]Z with a real calendar date.
bool is_rfc3339_utc(std::string_view value) noexcept;

// Millisecond precision, UTC, "Z" suffix.
std::string format_rfc3339(std::chrono::system_clock::time_point time);

// Checks every field against DESIGN.md; the error is -32602 with a message naming
// the field and the rule, and data {"field": name}.
Result<void> validate(const Message& message, const MessageLimits& limits, MessageShape shape);

// Reads a message object. Unknown fields are refused (a typo in "reciever" must
// not silently drop the receiver); types are checked; then validate().
Result<Message> message_from_json(const boost::json::value& value, const MessageLimits& limits,
                                  MessageShape shape);

// Writes the fields that are set (empty optional fields are left out).
boost::json::object to_json(const Message& message);

}  // namespace intercomm::core
