// The chat jobs' codecs: conversations, the read marker, retraction,
// receipts, blocks, presence.
#include "jobs/codec.hpp"
#include "jobs/jobs.hpp"

#include <fmt/core.h>

namespace intercomm::jobs {

namespace json = boost::json;
using core::Result;
using namespace codec;

namespace {

// The user and the other user of a job ("peer" of a conversation, "other" of a block).
Result<std::pair<std::string, std::string>> pair_of(const json::object& params, std::string_view second = "peer") {
  auto user = user_of(params);
  if (!user) return user.error();
  auto other = user_of(params, second);
  if (!other) return other.error();
  return std::pair{std::move(*user), std::move(*other)};
}

// The user and the other user of a block job; never oneself.
Result<std::pair<std::string, std::string>> block_pair_of(const json::object& params) {
  if (auto ok = only(params, {"user", "other"}); !ok) return ok.error();
  auto pair = pair_of(params, "other");
  if (pair && pair->first == pair->second) return core::invalid_field("other", "cannot be yourself");
  return pair;
}

}  // namespace

json::object ListConversations::encode() const {
  json::object params{{"user", user}};
  set_if(params, "before", before);
  if (limit) params["limit"] = *limit;
  return params;
}

Result<ListConversations> ListConversations::decode(const json::object& params, const PageBounds& bounds) {
  if (auto ok = only(params, {"user", "before", "limit"}); !ok) return ok.error();
  ListConversations job;
  auto user = user_of(params);
  if (!user) return user.error();
  job.user = std::move(*user);
  auto before = optional_seq(params, "before");
  if (!before) return before.error();
  job.before = *before;
  auto limit = limit_of(params, bounds);
  if (!limit) return limit.error();
  job.limit = *limit;
  return job;
}

json::object ListConversation::encode() const {
  json::object params{{"user", user}, {"peer", peer}};
  set_if(params, "after_seq", after_seq);
  set_if(params, "before_seq", before_seq);
  if (limit) params["limit"] = *limit;
  return params;
}

Result<ListConversation> ListConversation::decode(const json::object& params, const PageBounds& bounds) {
  if (auto ok = only(params, {"user", "peer", "after_seq", "before_seq", "limit"}); !ok) return ok.error();
  auto pair = pair_of(params);
  if (!pair) return pair.error();
  ListConversation job;
  job.user = std::move(pair->first);
  job.peer = std::move(pair->second);
  auto after = optional_seq(params, "after_seq");
  if (!after) return after.error();
  auto before = optional_seq(params, "before_seq");
  if (!before) return before.error();
  job.after_seq = *after;
  job.before_seq = *before;
  auto limit = limit_of(params, bounds);
  if (!limit) return limit.error();
  job.limit = *limit;
  return job;
}

json::object MarkRead::encode() const { return json::object{{"user", user}, {"peer", peer}, {"seq", seq}}; }

Result<MarkRead> MarkRead::decode(const json::object& params) {
  if (auto ok = only(params, {"user", "peer", "seq"}); !ok) return ok.error();
  auto pair = pair_of(params);
  if (!pair) return pair.error();
  auto seq = optional_seq(params, "seq");
  if (!seq) return seq.error();
  if (!*seq) return core::invalid_field("seq", "required: a sequence number (an integer from 0)");
  return MarkRead{std::move(pair->first), std::move(pair->second), **seq};
}

json::object BlockUser::encode() const { return json::object{{"user", user}, {"other", other}}; }

Result<BlockUser> BlockUser::decode(const json::object& params) {
  auto pair = block_pair_of(params);
  if (!pair) return pair.error();
  return BlockUser{std::move(pair->first), std::move(pair->second)};
}

json::object UnblockUser::encode() const { return json::object{{"user", user}, {"other", other}}; }

Result<UnblockUser> UnblockUser::decode(const json::object& params) {
  auto pair = block_pair_of(params);
  if (!pair) return pair.error();
  return UnblockUser{std::move(pair->first), std::move(pair->second)};
}

json::object ListBlocks::encode() const { return json::object{{"user", user}}; }

Result<ListBlocks> ListBlocks::decode(const json::object& params) {
  if (auto ok = only(params, {"user"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  return ListBlocks{std::move(*user)};
}

Result<std::vector<std::string>> ListBlocks::decode_result(const json::value& result) {
  const auto* object = result.if_object();
  const auto* blocks = object ? object->if_contains("blocks") : nullptr;
  if (blocks == nullptr || !blocks->is_array()) return malformed_result(name);
  std::vector<std::string> users;
  for (const auto& user : blocks->get_array()) {
    if (!user.is_string()) return malformed_result(name);
    users.emplace_back(user.get_string());
  }
  return users;
}

json::object RetractMessage::encode() const { return json::object{{"user", user}, {"message_id", message_id}}; }

Result<RetractMessage> RetractMessage::decode(const json::object& params) {
  if (auto ok = only(params, {"user", "message_id"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  auto id = optional_id(params, "message_id");
  if (!id) return id.error();
  if (!*id) return core::invalid_field("message_id", "required");
  return RetractMessage{std::move(*user), std::move(**id)};
}

json::object GetReceipt::encode() const { return json::object{{"message_id", message_id}}; }

Result<GetReceipt> GetReceipt::decode(const json::object& params) {
  if (auto ok = only(params, {"message_id"}); !ok) return ok.error();
  auto id = optional_id(params, "message_id");
  if (!id) return id.error();
  if (!*id) return core::invalid_field("message_id", "required");
  return GetReceipt{std::move(**id)};
}

json::object GetPresence::encode() const {
  json::array list;
  for (const auto& other : users) list.emplace_back(other);
  return json::object{{"user", user}, {"users", std::move(list)}};
}

Result<GetPresence> GetPresence::decode(const json::object& params) {
  if (auto ok = only(params, {"user", "users"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  const auto* users = params.if_contains("users");
  const auto* list = users ? users->if_array() : nullptr;
  const std::string rule = fmt::format("must be a list of 1 to {} user ids", kMaxUsers);
  if (list == nullptr || list->empty() || list->size() > kMaxUsers) return core::invalid_field("users", rule);
  GetPresence job{std::move(*user), {}};
  for (const auto& other : *list) {
    if (!other.is_string() || !core::is_user_id(other.get_string())) return core::invalid_field("users", rule);
    job.users.emplace_back(other.get_string());
  }
  return job;
}

json::object RecordLastSeen::encode() const { return json::object{{"user", user}, {"at", at}}; }

Result<RecordLastSeen> RecordLastSeen::decode(const json::object& params) {
  if (auto ok = only(params, {"user", "at"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  const auto* at = params.if_contains("at");
  if (at == nullptr || !at->is_string() || !core::is_rfc3339_utc(at->get_string())) {
    return core::invalid_field("at", "must be an RFC 3339 UTC time");
  }
  return RecordLastSeen{std::move(*user), std::string(at->get_string())};
}

json::object RecordDelivered::encode() const {
  json::array list;
  for (const auto& item : messages) {
    json::object entry{{"message_id", item.message_id}, {"sender", item.sender}, {"receiver", item.receiver}};
    set_if(entry, "sender_seq", item.sender_seq);
    list.emplace_back(std::move(entry));
  }
  return json::object{{"messages", std::move(list)}};
}

Result<RecordDelivered> RecordDelivered::decode(const json::object& params) {
  if (auto ok = only(params, {"messages"}); !ok) return ok.error();
  const auto* messages = params.if_contains("messages");
  const auto* list = messages ? messages->if_array() : nullptr;
  const std::string rule = fmt::format(
      "must be a list of 1 to {} {{\"message_id\",\"sender\",\"receiver\"[,\"sender_seq\"]}}", kMaxMessages);
  if (list == nullptr || list->empty() || list->size() > kMaxMessages) return core::invalid_field("messages", rule);
  RecordDelivered job;
  for (const auto& value : *list) {
    const auto* item = value.if_object();
    if (item == nullptr || !only(*item, {"message_id", "sender", "receiver", "sender_seq"})) {
      return core::invalid_field("messages", rule);
    }
    auto id = optional_id(*item, "message_id");
    auto sender = user_of(*item, "sender");
    auto receiver = user_of(*item, "receiver");
    auto seq = optional_seq(*item, "sender_seq");
    if (!id || !*id || !sender || !receiver || !seq || (*seq && **seq == 0)) {
      return core::invalid_field("messages", rule);
    }
    job.messages.push_back({std::move(**id), std::move(*sender), std::move(*receiver), *seq});
  }
  return job;
}

}  // namespace intercomm::jobs
