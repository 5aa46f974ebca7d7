// The conversation jobs: a user's conversations newest first, one
// conversation's messages by seq, and the read marker (with its live
// signals), receipts. The store keeps conversations as it stores messages; these only
// read them, and move the marker.
#include "mta/jobs.hpp"

#include "bus/topology.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

namespace {

Error no_conversation(std::string_view peer) {
  return Error::of(ErrorCode::not_found, fmt::format("conversation: no message between you and {}", peer));
}

// The conversation, or -32004 when the two have no message.
Result<store::Conversation> conversation_of(Context& context, const std::string& user, const std::string& peer) {
  auto found = context.store.conversation(user, peer);
  if (!found) return unavailable(found.error());
  if (!*found) return no_conversation(peer);
  return std::move(**found);
}

// {"type":"read","user","peer","seq"} for `to`'s sockets, `seq` being the
// marker as a seq of `to`'s inbox.
void signal_read(Context& context, const std::string& to, const std::string& user, const std::string& peer,
                 std::uint64_t seq) {
  const json::object frame{{"type", "read"}, {"user", user}, {"peer", peer}, {"seq", seq}};
  context.bus.publish(bus::kLiveExchange, jobs::signal(to, frame), context.options.publish_timeout,
                      [](bus::PublishStatus) {});  // a signal: nobody online is not a failure
}

// The peer's seq of the last message of the conversation at or before the
// user's `seq`: where the marker is in the peer's inbox (none: not found).
std::optional<std::uint64_t> seq_for_peer(Context& context, const std::string& user, const std::string& peer,
                                          std::uint64_t seq) {
  store::InboxQuery query;
  query.before_seq = seq + 1;
  query.limit = 1;
  query.order = store::Order::descending;
  auto page = context.store.conversation_range(user, peer, query);
  if (!page || page->entries.empty()) return std::nullopt;
  auto theirs = context.store.inbox_seq(peer, page->entries.front().message_id);
  return theirs && *theirs ? **theirs : std::optional<std::uint64_t>();
}

}  // namespace

JobResult list_conversations(Context& context, const json::object& params) {
  auto job = jobs::ListConversations::decode(params, page_bounds(context.options));
  if (!job) return job.error();
  auto page = context.store.conversations(job->user, job->before, *job->limit);
  if (!page) return unavailable(page.error());
  PageBuilder items;
  const store::Conversation* last = nullptr;
  bool more = page->more;
  for (const auto& conversation : page->conversations) {
    json::value last_message = nullptr;
    if (auto message = read_message(context.store, conversation.last_message_id); message) {
      json::object shown = core::to_json(*message);
      shown["seq"] = conversation.last_seq;
      last_message = std::move(shown);
    } else if (message.error().code != ErrorCode::not_found) {
      return message.error();
    }
    json::object item{{"peer", conversation.peer},
                      {"last_message", std::move(last_message)},
                      {"last_seq", conversation.last_seq},
                      {"unread", conversation.unread},
                      {"read_seq", conversation.read_seq}};
    if (!items.add(std::move(item))) {
      more = true;
      break;
    }
    last = &conversation;
  }
  json::object result{{"conversations", items.take()}};
  result["next"] = more && last ? json::value(last->last_seq) : json::value(nullptr);
  return result;
}

// As list_messages, on the conversation's entries: oldest first after
// after_seq, newest first otherwise.
JobResult list_conversation(Context& context, const json::object& params) {
  auto job = jobs::ListConversation::decode(params, page_bounds(context.options));
  if (!job) return job.error();
  auto conversation = conversation_of(context, job->user, job->peer);
  if (!conversation) return conversation.error();
  store::InboxQuery query;
  query.after_seq = job->after_seq;
  query.before_seq = job->before_seq;
  query.limit = *job->limit;
  query.order = job->after_seq ? store::Order::ascending : store::Order::descending;
  auto page = context.store.conversation_range(job->user, job->peer, query);
  if (!page) return unavailable(page.error());
  auto result = messages_page(context, *page);
  if (!result) return result.error();
  return std::move(*result);
}

// The marker moves forward only; when it moved, the user's other sockets and
// the peer's get {"type":"read"} (each with the seq of their own inbox).
JobResult mark_read(Context& context, const json::object& params) {
  auto job = jobs::MarkRead::decode(params);
  if (!job) return job.error();
  auto conversation = conversation_of(context, job->user, job->peer);
  if (!conversation) return conversation.error();
  if (job->seq > conversation->last_seq) {
    return core::invalid_field(
        "seq", fmt::format("past the conversation's last message (last_seq {})", conversation->last_seq));
  }
  const std::string at = core::format_rfc3339(std::chrono::system_clock::now());
  auto marked = context.store.mark_read(store::ReadMark{job->user, job->peer, job->seq, at});
  if (!marked) return unavailable(marked.error());
  if (marked->read_seq > conversation->read_seq) {
    signal_read(context, job->user, job->user, job->peer, marked->read_seq);
    if (job->peer != job->user) {
      if (auto theirs = seq_for_peer(context, job->user, job->peer, marked->read_seq)) {
        signal_read(context, job->peer, job->user, job->peer, *theirs);
      }
    }
  }
  return json::object{{"peer", job->peer}, {"read_seq", marked->read_seq}, {"unread", marked->unread}};
}

// The message's receipts: delivered (kept by the MDA) and read (the
// receiver's read marker in the conversation, as it first passed the
// message's seq in their inbox).
JobResult get_receipt(Context& context, const json::object& params) {
  auto job = jobs::GetReceipt::decode(params);
  if (!job) return job.error();
  auto message = read_message(context.store, job->message_id);
  if (!message) return message.error();
  json::object receipt{{"delivered_at", nullptr}, {"read_at", nullptr}};
  auto delivered = context.store.get(store::kDelivered, message->message_id);
  if (!delivered) return unavailable(delivered.error());
  if (*delivered) receipt["delivered_at"] = **delivered;
  auto seq = context.store.inbox_seq(message->receiver, message->message_id);
  if (!seq) return unavailable(seq.error());
  if (*seq && message->receiver != message->sender) {
    auto read = context.store.read_at(message->receiver, message->sender, **seq);
    if (!read) return unavailable(read.error());
    if (*read) {
      receipt["read_at"] = **read;
      // Read implies delivered, whatever reached them first.
      if (receipt["delivered_at"].is_null()) receipt["delivered_at"] = **read;
    }
  }
  return receipt;
}

}  // namespace intercomm::mta::detail
