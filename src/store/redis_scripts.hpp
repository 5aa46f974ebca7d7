// The Redis backend's per-user keys and the Lua scripts that change them
// atomically (internal to src/store/). Every key of a user carries the hash
// tag {<user>}: in a cluster they share one slot, so one script updates a
// user's inbox and conversation together.
//
//   rh:inbox:{u}:last      the last seq given (a counter)
//   rh:inbox:{u}:seq       message id -> seq (sorted set)
//   rh:conv:{u}:list       peer -> the conversation's last seq (sorted set: newest activity)
//   rh:conv:{u}:m:<peer>   message id -> seq, the conversation's messages
//   rh:conv:{u}:r:<peer>   message id -> seq, those the peer sent (unread = ZCOUNT after read_seq)
//   rh:conv:{u}:h:<peer>   hash: last_seq, last_id, read_seq
//   rh:conv:{u}:k:<peer>   "<seq>:<at>" -> seq, the read marker's moves (read_at)
#pragma once

#include <fmt/core.h>

#include <array>
#include <string>
#include <string_view>

namespace intercomm::store::redis_detail {

inline std::string inbox_last_key(std::string_view user) { return fmt::format("rh:inbox:{{{}}}:last", user); }
inline std::string inbox_set_key(std::string_view user) { return fmt::format("rh:inbox:{{{}}}:seq", user); }
inline std::string conversations_key(std::string_view user) { return fmt::format("rh:conv:{{{}}}:list", user); }
inline std::string conversation_key(std::string_view user, char part, std::string_view peer) {
  return fmt::format("rh:conv:{{{}}}:{}:{}", user, part, peer);
}

// The keys one inbox append touches, in the order kAppendFunction takes them.
inline constexpr std::size_t kAppendKeys = 6;
inline std::array<std::string, kAppendKeys> append_keys(std::string_view user, std::string_view peer) {
  return {inbox_last_key(user),         inbox_set_key(user),
          conversations_key(user),      conversation_key(user, 'm', peer),
          conversation_key(user, 'r', peer), conversation_key(user, 'h', peer)};
}

// append(k, id, peer, received): KEYS[k..k+5] as append_keys. The id's seq in
// the inbox, appending it (and adding it to the conversation) when absent.
inline constexpr std::string_view kAppendFunction = R"lua(
local function append(k, id, peer, received)
  local seq = redis.call('ZSCORE', KEYS[k + 1], id)
  if seq then return tonumber(seq) end
  seq = redis.call('INCR', KEYS[k])
  redis.call('ZADD', KEYS[k + 1], seq, id)
  redis.call('ZADD', KEYS[k + 3], seq, id)
  if received == '1' then redis.call('ZADD', KEYS[k + 4], seq, id) end
  redis.call('HSET', KEYS[k + 5], 'last_seq', seq, 'last_id', id)
  redis.call('ZADD', KEYS[k + 2], seq, peer)
  return seq
end
)lua";

// KEYS: append_keys. ARGV: message id, peer, received (1/0).
inline const std::string kInboxAppendScript = std::string(kAppendFunction) + R"lua(
return append(1, ARGV[1], ARGV[2], ARGV[3])
)lua";

// Stores messages in order, each once, and appends each to its inboxes.
// ARGV: count, then per message: id, value, number of inboxes, then per inbox
// its peer and received. KEYS: per message its key, then per inbox its
// append_keys. Returns {seqs} or, stopping at the first id already stored,
// {seqs, its 1-based index, its value}.
inline const std::string kStoreMessagesScript = std::string(kAppendFunction) + R"lua(
local key, arg, stored = 1, 2, {}
for m = 1, tonumber(ARGV[1]) do
  local id, value, inboxes = ARGV[arg], ARGV[arg + 1], tonumber(ARGV[arg + 2])
  arg = arg + 3
  local existing = redis.call('GET', KEYS[key])
  if existing then return {stored, m, existing} end
  redis.call('SET', KEYS[key], value)
  key = key + 1
  local seqs = {}
  for i = 1, inboxes do
    seqs[i] = append(key, id, ARGV[arg], ARGV[arg + 1])
    key = key + 6
    arg = arg + 2
  end
  stored[#stored + 1] = seqs
end
return {stored}
)lua";

// summary(): KEYS[1] the conversation's hash, KEYS[2] its received set.
// {last_seq, last_id, read_seq, unread}, or false when there is none.
inline constexpr std::string_view kSummaryFunction = R"lua(
local function summary()
  local f = redis.call('HMGET', KEYS[1], 'last_seq', 'last_id', 'read_seq')
  if not f[1] then return false end
  local read = tonumber(f[3] or '0')
  return {tonumber(f[1]), f[2], read, redis.call('ZCOUNT', KEYS[2], '(' .. read, '+inf')}
end
)lua";

// KEYS: h, r of the conversation.
inline const std::string kConversationScript = std::string(kSummaryFunction) + R"lua(
return summary()
)lua";

// KEYS: h, r, k of the conversation. ARGV: seq, at. Moves the read marker
// forward to seq (never back) and records when; the summary after.
inline const std::string kMarkReadScript = std::string(kSummaryFunction) + R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local seq = tonumber(ARGV[1])
if seq > tonumber(redis.call('HGET', KEYS[1], 'read_seq') or '0') then
  redis.call('HSET', KEYS[1], 'read_seq', seq)
  redis.call('ZADD', KEYS[3], seq, ARGV[1] .. ':' .. ARGV[2])
end
return summary()
)lua";

}  // namespace intercomm::store::redis_detail
