// The buckets of bucket type rabbit_hook and how their keys are made: shared
// by the MTA (which writes messages and subscriptions) and the MDA (which
// reads subscriptions and writes delivery attempts).
#pragma once

#include "store/store.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace intercomm::store {

inline const Bucket kMessages = bucket("message");  // message_id -> message
inline const Bucket kInbox = bucket("inbox");       // per user: seq -> message id (Store::inbox_*)
inline const Bucket kSubscriptions =
    bucket("subscription");                            // <user>/<id> -> subscription; index per user: ids
inline const Bucket kDeliveries = bucket("delivery");  // <message_id>/<entry> -> attempt; index per message
inline const Bucket kIdempotency = bucket("idempotency");  // <user>/<key> -> claim
inline const Bucket kBlocks = bucket("block");              // index per user: the users they block
inline const Bucket kDelivered = bucket("delivered");       // message_id -> when it first reached its receiver
inline const Bucket kLastSeen = bucket("last_seen");        // user -> when their last socket closed

inline std::string subscription_key(std::string_view user, std::string_view id) {
  return std::string(user) + "/" + std::string(id);
}

// An attempt's index entry under its message: <subscription_id>/<attempt, 3 digits>
// (then `suffix`, e.g. "/retracted" for the retraction's attempts), so a
// message's attempts list per subscription, in order.
inline std::string delivery_entry(std::string_view subscription_id, std::uint32_t attempt,
                                  std::string_view suffix = {}) {
  std::string number = std::to_string(attempt);
  if (number.size() < 3) number.insert(0, 3 - number.size(), '0');
  return std::string(subscription_id) + "/" + number + std::string(suffix);
}

inline std::string delivery_key(std::string_view message_id, std::string_view entry) {
  return std::string(message_id) + "/" + std::string(entry);
}

}  // namespace intercomm::store
