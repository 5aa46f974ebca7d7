// The job contract: every JSON-RPC job on inter_comm, named once, with its
// params and (where a caller reads it) its result. The gateway, the workers,
// the stream and the tests all build and read jobs through these; a new job is
// one entry here, one handler in its worker and one route.
//
// Each job is a struct: `name` (the JSON-RPC method and routing key), `worker`
// (whose rpc_queue_<worker> it is bound to), its params as members, encode()
// for whoever sends it and decode() for the worker that serves it. decode
// checks everything that needs no store (the fields allowed, their types and
// bounds: a misspelt parameter is refused, not ignored) and fails with -32602
// naming the field; what needs the store (a cursor given as a message id, a
// user's subscription count) stays with the handler.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"
#include "core/message.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace intercomm::jobs {

inline constexpr std::string_view kMta = "mta";                   // rpc_queue_mta
inline constexpr std::string_view kMda = "mda";                   // rpc_queue_mda: live delivery
inline constexpr std::string_view kMdaWebhook = "mda_webhook";    // rpc_queue_mda_webhook

// How many items a page may ask for: `limit` is 1..max, `fallback` when absent.
struct PageBounds {
  std::size_t fallback = 50;
  std::size_t max = 100;
};

// {"<user>": seq, ...}: a message's seq in each inbox it is in.
using Seqs = std::map<std::string, std::uint64_t>;
boost::json::object to_json(const Seqs& seqs);

// --- the MTA's jobs ---

// {"message":{sender,receiver,body[,message_id][,created_at]}} -> {"message_id","seqs"}.
// Ordered (lanes keyed by the conversation). Published by the gateway, not called.
struct SendMessage {
  static constexpr std::string_view name = "send_message";
  static constexpr std::string_view worker = kMta;
  core::Message message;

  boost::json::object encode() const;
  static core::Result<SendMessage> decode(const boost::json::object& params, const core::MessageLimits& limits);
};

// {"message_id"} -> the message (core::to_json, MessageShape::stored); unknown id -32004.
struct GetMessage {
  static constexpr std::string_view name = "get_message";
  static constexpr std::string_view worker = kMta;
  std::string message_id;

  boost::json::object encode() const;
  // A malformed or missing id is the seed's exact failure: -32602 with data
  // {"field":"message_id","expected":...}.
  static core::Result<GetMessage> decode(const boost::json::object& params);
  static core::Result<core::Message> decode_result(const boost::json::value& result);
};

// {"user"[,"after"|"after_seq"][,"before"|"before_seq"][,"limit"]} ->
// {"messages":[message + "seq"...],"next","next_seq"[,"after_seq"]}: oldest
// first after a cursor, else newest first. after/before name a message of the
// inbox by id; each cursor is given one way or the other, not both.
struct ListMessages {
  static constexpr std::string_view name = "list_messages";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::optional<std::string> after, before;          // message ids
  std::optional<std::uint64_t> after_seq, before_seq;
  std::optional<std::size_t> limit;                  // decode: always set (bounds.fallback when absent)

  boost::json::object encode() const;
  static core::Result<ListMessages> decode(const boost::json::object& params, const PageBounds& bounds);

  // A page as the stream reads it: each message with its seq, oldest first
  // after a cursor; next_seq continues it (none at the end); after_seq is the
  // cursor as a seq (an `after` id resolved).
  struct Page {
    struct Item {
      std::uint64_t seq = 0;
      boost::json::object message;  // core::to_json of the message
    };
    std::vector<Item> messages;
    std::optional<std::uint64_t> next_seq;
    std::optional<std::uint64_t> after_seq;
  };
  static core::Result<Page> decode_result(const boost::json::value& result);
};

// {"message_id"[,"after"][,"limit"]} -> {"deliveries":[attempt...],"next"}.
struct ListDeliveries {
  static constexpr std::string_view name = "list_deliveries";
  static constexpr std::string_view worker = kMta;
  std::string message_id;
  std::optional<std::string> after;  // a previous page's `next`
  std::optional<std::size_t> limit;

  boost::json::object encode() const;
  static core::Result<ListDeliveries> decode(const boost::json::object& params, const PageBounds& bounds);
};

// {"user","webhook":{"url"}} -> the subscription with its secret; -32009 at
// the per-user limit.
struct SubscribeUser {
  static constexpr std::string_view name = "subscribe_user";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string url;  // absolute http(s), a host, no credentials or fragment, at most 2048 characters

  boost::json::object encode() const;
  static core::Result<SubscribeUser> decode(const boost::json::object& params);
};

// {"user"} -> {"subscriptions":[...]} (secrets left out).
struct ListSubscriptions {
  static constexpr std::string_view name = "list_subscriptions";
  static constexpr std::string_view worker = kMta;
  std::string user;

  boost::json::object encode() const;
  static core::Result<ListSubscriptions> decode(const boost::json::object& params);
};

// {"user","subscription_id"} -> {"removed":true}; unknown -32004.
struct UnsubscribeUser {
  static constexpr std::string_view name = "unsubscribe_user";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string subscription_id;

  boost::json::object encode() const;
  static core::Result<UnsubscribeUser> decode(const boost::json::object& params);
};

// {"user","key","message":{message_id,created_at,receiver,body,...}} ->
// {"message_id","created_at","replayed"}; -32009 when the key was used for a
// different receiver or body.
struct ClaimIdempotencyKey {
  static constexpr std::string_view name = "claim_idempotency_key";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string key;  // 1-255 printable ASCII
  core::Message message;

  boost::json::object encode() const;
  static core::Result<ClaimIdempotencyKey> decode(const boost::json::object& params,
                                                  const core::MessageLimits& limits);

  struct Claimed {
    std::string message_id;
    std::string created_at;
    bool replayed = false;
    boost::json::object encode() const;
  };
  static core::Result<Claimed> decode_result(const boost::json::value& result);
};

// --- the chat jobs (the MTA's; codecs in jobs/chat.cpp) ---

// {"user"[,"before"][,"limit"]} -> {"conversations":[{"peer","last_message"
// (the message with its seq),"last_seq","unread","read_seq"}...],"next"}:
// newest activity first; `before` is a previous page's `next` (a last_seq).
struct ListConversations {
  static constexpr std::string_view name = "list_conversations";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::optional<std::uint64_t> before;
  std::optional<std::size_t> limit;  // decode: always set

  boost::json::object encode() const;
  static core::Result<ListConversations> decode(const boost::json::object& params, const PageBounds& bounds);
};

// {"user","peer"[,"after_seq"][,"before_seq"][,"limit"]} -> as list_messages,
// the two users' messages only ({"messages":[message + "seq"],"next_seq"}):
// oldest first after after_seq, else newest first; -32004 when they have no
// conversation.
struct ListConversation {
  static constexpr std::string_view name = "list_conversation";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string peer;
  std::optional<std::uint64_t> after_seq, before_seq;
  std::optional<std::size_t> limit;  // decode: always set

  boost::json::object encode() const;
  static core::Result<ListConversation> decode(const boost::json::object& params, const PageBounds& bounds);
};

// {"user","peer","seq"} -> {"peer","read_seq","unread"}: moves the user's
// read marker forward to seq (a seq of the user's inbox; never back). -32004
// when they have no conversation, -32602 when seq is past its last message.
// The peer's sockets (and the user's) get {"type":"read",...} live.
struct MarkRead {
  static constexpr std::string_view name = "mark_read";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string peer;
  std::uint64_t seq = 0;

  boost::json::object encode() const;
  static core::Result<MarkRead> decode(const boost::json::object& params);
};

// {"user","other"} -> {"user","blocked"}: `user` takes no more messages from
// `other` (idempotent); -32602 for oneself, -32009 past the per-user limit.
// Every gateway forgets what it knew of `user`'s blocks ({"type":"blocks"}).
struct BlockUser {
  static constexpr std::string_view name = "block_user";
  static constexpr std::string_view worker = kMta;
  static constexpr std::size_t kMaxBlocks = 1000;  // per user
  std::string user;
  std::string other;

  boost::json::object encode() const;
  static core::Result<BlockUser> decode(const boost::json::object& params);
};

// {"user","other"} -> {"user","unblocked","removed":bool} (idempotent).
struct UnblockUser {
  static constexpr std::string_view name = "unblock_user";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string other;

  boost::json::object encode() const;
  static core::Result<UnblockUser> decode(const boost::json::object& params);
};

// {"user"} -> {"blocks":[user ids]}: everyone `user` blocks, sorted.
struct ListBlocks {
  static constexpr std::string_view name = "list_blocks";
  static constexpr std::string_view worker = kMta;
  std::string user;

  boost::json::object encode() const;
  static core::Result<ListBlocks> decode(const boost::json::object& params);
  static core::Result<std::vector<std::string>> decode_result(const boost::json::value& result);
};

// {"user","message_id"} -> {"message_id","retracted_at"}: `user`, the
// message's sender, takes it back: its body becomes a tombstone (empty, with
// retracted_at) in both inboxes and the conversation, same seq; then a
// deliver_message of the tombstone tells sockets ({"type":"retracted"}) and
// webhooks (message.retracted). -32004 unknown id, -32003 not its sender.
// Idempotent: a retry keeps the first retracted_at and tells them again.
struct RetractMessage {
  static constexpr std::string_view name = "retract_message";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string message_id;

  boost::json::object encode() const;
  static core::Result<RetractMessage> decode(const boost::json::object& params);
};

// {"message_id"} -> {"delivered_at","read_at"} (each null until then): when
// the message first reached its receiver (a socket or a webhook 2xx) and
// when the receiver's read marker first passed it. The gateway shows it to
// the message's sender only.
struct GetReceipt {
  static constexpr std::string_view name = "get_receipt";
  static constexpr std::string_view worker = kMta;
  std::string message_id;

  boost::json::object encode() const;
  static core::Result<GetReceipt> decode(const boost::json::object& params);
};

// {"user","users":[ids]} -> {"users":{"<id>":{"online":true}|{"online":false,
// "last_seen":time|null}}}: online while the user has a socket on any
// gateway (the broker routes to user.<id> on inter_comm.live: a probe
// publish is routed, not unroutable). Only oneself and users one has a
// conversation with (-32003 naming the others); 1 to kMaxUsers users.
struct GetPresence {
  static constexpr std::string_view name = "get_presence";
  static constexpr std::string_view worker = kMta;
  static constexpr std::size_t kMaxUsers = 50;
  std::string user;
  std::vector<std::string> users;

  boost::json::object encode() const;
  static core::Result<GetPresence> decode(const boost::json::object& params);
};

// {"user","at"} -> {}: `user`'s last socket on a gateway closed at `at`
// (published by that gateway; get_presence's last_seen).
struct RecordLastSeen {
  static constexpr std::string_view name = "record_last_seen";
  static constexpr std::string_view worker = kMta;
  std::string user;
  std::string at;  // RFC 3339

  boost::json::object encode() const;
  static core::Result<RecordLastSeen> decode(const boost::json::object& params);
};

// --- the MDA's jobs ---

// {"message":{...stored},"seqs":{"<user>":seq}} -> {"message_id","live":[users],"webhooks":N}.
// Queued by the MTA once the message is stored; a batch job. A retracted
// message (retracted_at set) goes out as {"type":"retracted"} signals and
// message.retracted webhooks instead.
struct DeliverMessage {
  static constexpr std::string_view name = "deliver_message";
  static constexpr std::string_view worker = kMda;
  core::Message message;
  Seqs seqs;  // may lack a user: the MDA then reads the seq from the inbox

  boost::json::object encode() const;
  static core::Result<DeliverMessage> decode(const boost::json::object& params);
};

// {"messages":[{"message_id","sender","receiver"[,"sender_seq"]},...]} ->
// {"signalled":N}: these messages reached their receivers — a socket's
// catch-up handed them over from the inbox (the gateway queues one job per
// page). Each one is delivered now unless it was before (mda/receipts.hpp).
// 1 to kMaxMessages.
struct RecordDelivered {
  static constexpr std::string_view name = "record_delivered";
  static constexpr std::string_view worker = kMda;
  static constexpr std::size_t kMaxMessages = 1000;
  struct Item {
    std::string message_id;
    std::string sender;
    std::string receiver;
    std::optional<std::uint64_t> sender_seq;  // read from the sender's inbox when absent
  };
  std::vector<Item> messages;

  boost::json::object encode() const;
  static core::Result<RecordDelivered> decode(const boost::json::object& params);
};

// {"message":{...stored},"user","subscription_id","attempt"} -> {"outcome"}.
struct DeliverWebhook {
  static constexpr std::string_view name = "deliver_webhook";
  static constexpr std::string_view worker = kMdaWebhook;
  core::Message message;
  std::string user;
  std::string subscription_id;
  std::uint32_t attempt = 1;  // 1..100

  boost::json::object encode() const;
  static core::Result<DeliverWebhook> decode(const boost::json::object& params);
};

// An Idempotency-Key (POST header, a socket send's idempotency_key, the claim
// job's key): 1-255 printable ASCII.
bool is_idempotency_key(std::string_view key);

// --- live signals: frames for a user's sockets that are not messages ---
//
// Published on inter_comm.live (routing key user.<id>), not persistent: a
// signal of now, lost with a broker and never replayed; the state it tells
// of is in the store. The gateway passes a frame of these types to the
// user's sockets as it is, unnumbered:
//   {"type":"typing","from"}                 the sender is typing to this user
//   {"type":"read","user","peer","seq"}      `user` read their conversation with `peer` up
//                                            to `seq` (a seq of this socket's user's inbox)
//   {"type":"retracted","message_id","seq","retracted_at"}
//                                            the message at `seq` (of this user's inbox) was
//                                            taken back by its sender: show the tombstone
//   {"type":"delivered","message_id","seq","at"}
//                                            this user's message (at `seq`) first reached
//                                            its receiver (a socket, or a webhook 2xx)
inline constexpr std::string_view kSignalTypes[] = {"typing", "read", "retracted", "delivered"};
// {"type":"probe"}: get_presence's probe of user.<id>; gateways drop it.
inline constexpr std::string_view kProbeType = "probe";
// {"type":"blocks","user"}: `user`'s blocks changed. Published with routing
// key kBlocksKey, which every gateway binds: they forget what they cached.
inline constexpr std::string_view kBlocksKey = "blocks";
bool is_signal(std::string_view type);
bus::Envelope signal(std::string_view user, const boost::json::object& frame);

// A job as it goes on the bus: routing key `name`, body a JSON-RPC
// notification (no id: nobody waits for its reply).
bus::Envelope envelope(std::string_view name, boost::json::object params);
template <class Job>
bus::Envelope envelope(const Job& job) {
  return envelope(Job::name, job.encode());
}

}  // namespace intercomm::jobs
