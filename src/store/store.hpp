// The store: Riak's model (bucket type -> bucket -> key -> value) plus ordered indexes.
#pragma once

#include "core/errors.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace intercomm::store {

inline constexpr std::string_view kBucketType = "rabbit_hook";  // the seed's bucket type

// A bucket, named as in Riak: bucket_type('rabbit_hook').bucket('message').
struct Bucket {
  std::string type = std::string(kBucketType);
  std::string name;
};

inline Bucket bucket(std::string name) {
  return Bucket{std::string(kBucketType), std::move(name)};
}

enum class Order { ascending, descending };

// A page of an ordered index. Entries are sort keys compared as bytes;
// `after`/`before` are exclusive bounds, typically the `next` cursor of the
// previous page.
struct RangeQuery {
  std::optional<std::string> after;
  std::optional<std::string> before;
  std::size_t limit = 50;
  Order order = Order::descending;  // newest first for time-ordered ids
};

struct Page {
  std::vector<std::string> entries;
  std::optional<std::string> next;  // pass as `after` (ascending) or `before` (descending); none at the end
};

// One entry of a user's inbox: the inbox numbers its messages 1, 2, 3 ...
struct InboxEntry {
  std::uint64_t seq = 0;
  std::string message_id;

  friend bool operator==(const InboxEntry&, const InboxEntry&) = default;
};

// A page of an inbox by seq; both bounds exclusive.
struct InboxQuery {
  std::optional<std::uint64_t> after_seq;
  std::optional<std::uint64_t> before_seq;
  std::size_t limit = 50;
  Order order = Order::descending;
};

struct InboxPage {
  std::vector<InboxEntry> entries;  // in the query's order
  bool more = false;                // entries past the last one match the query too
};

// A message to store and the inboxes it lands in: its sender's, then its
// receiver's (one when they are the same user). Each inbox's owner has a
// conversation with the other one (with themselves for a note to self),
// which the same write keeps up to date.
struct NewMessage {
  std::string message_id;
  std::string value;  // what get() returns for it from bucket `message`
  std::vector<std::string> inboxes;
};

// One user's conversation with one peer, as kept by the writes that store
// their messages: no scan of the inbox to answer it.
struct Conversation {
  std::string peer;
  std::uint64_t last_seq = 0;  // the newest message between them: its seq in the user's inbox
  std::string last_message_id;
  std::uint64_t read_seq = 0;  // the user's read marker, a seq of their inbox (0: nothing read)
  std::uint64_t unread = 0;    // messages from the peer with a seq after read_seq

  friend bool operator==(const Conversation&, const Conversation&) = default;
};

// A user's conversations, newest activity (highest last_seq) first.
struct ConversationsPage {
  std::vector<Conversation> conversations;
  bool more = false;  // older ones follow: ask again with before_seq = the last one's last_seq
};

// The read marker's move (Store::mark_read).
struct ReadMark {
  std::string user;
  std::string peer;
  std::uint64_t seq = 0;  // a seq of the user's inbox, at most the conversation's last_seq
  std::string at;         // when (RFC 3339): Store::read_at answers it
};

// What became of the messages of one store_messages() call, in order.
struct StoredMessages {
  // One per message stored by this call, in the order given: its seq in
  // each of its inboxes (same order as NewMessage::inboxes).
  std::vector<std::vector<std::uint64_t>> seqs;
  // Set when the call stopped at a message whose id was already stored:
  // its index and the value stored under that id. Nothing after it was
  // touched.
  std::optional<std::size_t> existing_index;
  std::string existing_value;
  // Set when the call stopped on a failure (transient: retry): the messages
  // in `seqs` are stored; the failing one may be partly written (its value
  // without all of its inbox entries); nothing after it was touched.
  std::optional<core::Error> error;
};

// A key-value store with ordered indexes. Keys, values and sort keys are
// arbitrary bytes. Every call is synchronous, thread-safe and bounded by the
// backend's timeout; failures to reach the backend are ErrorCode::unavailable
// (transient: a worker requeues the job). A call that returned success is
// durable as far as the backend is configured to be (RocksDB: WAL synced;
// Redis: AOF and, when configured, WAIT for a replica).
class Store {
 public:
  virtual ~Store() = default;

  virtual core::Result<std::optional<std::string>> get(const Bucket& bucket, std::string_view key) = 0;
  virtual core::Result<void> put(const Bucket& bucket, std::string_view key, std::string_view value) = 0;
  // Writes only when the key is absent: true when this call wrote it, false
  // when a value was already there (left as it was). Atomic across threads
  // and processes sharing the backend.
  virtual core::Result<bool> put_if_absent(const Bucket& bucket, std::string_view key,
                                           std::string_view value) = 0;
  // put_if_absent() of each key in turn, one outcome per key (a key given
  // twice: the first wins). Backends that can write them all in one step
  // (RocksDB: one synced batch) do; the others call put_if_absent() for each,
  // and a key after a failure gets that failure without being tried.
  struct KeyValue {
    std::string_view key;
    std::string_view value;
  };
  virtual std::vector<core::Result<bool>> put_if_absent_many(const Bucket& bucket,
                                                             std::span<const KeyValue> entries);
  // True when something was removed.
  virtual core::Result<bool> remove(const Bucket& bucket, std::string_view key) = 0;

  // Adds `entry` to the ordered index `index_key` of `bucket` (idempotent).
  virtual core::Result<void> index_add(const Bucket& bucket, std::string_view index_key,
                                       std::string_view entry) = 0;
  virtual core::Result<bool> index_remove(const Bucket& bucket, std::string_view index_key,
                                          std::string_view entry) = 0;
  virtual core::Result<Page> range(const Bucket& bucket, std::string_view index_key,
                                   const RangeQuery& query) = 0;

  // Inboxes: every user's messages (sent and received) numbered by `seq` =
  // 1, 2, 3 ... with no hole. A seq is assigned together with its entry in
  // one atomic step, so a reader never sees seq N+1 while N is missing.

  // Stores each message (once per id, in bucket `message`) and appends it to
  // its inboxes, in the order given, so a later message gets a higher seq in
  // every inbox the two share. Stops at the first message whose id is
  // already stored (see StoredMessages) so that the caller can compare it and
  // repair its inbox entries with inbox_append() before anything after it
  // gets a seq. Backends do as much as they can in one atomic write (RocksDB:
  // one synced WriteBatch for the whole call; Redis: one script) and the rest
  // in order.
  virtual StoredMessages store_messages(std::span<const NewMessage> messages) = 0;

  // Appends `message_id` to `user`'s inbox, and to their conversation with
  // `peer` (`received`: the peer sent it, so it counts as unread), unless it
  // is there already; returns its seq either way (idempotent: a retry after
  // a failure is safe).
  virtual core::Result<std::uint64_t> inbox_append(std::string_view user, std::string_view message_id,
                                                   std::string_view peer, bool received) = 0;

  // The seq of `message_id` in `user`'s inbox, or none.
  virtual core::Result<std::optional<std::uint64_t>> inbox_seq(std::string_view user,
                                                               std::string_view message_id) = 0;

  // The last seq given in `user`'s inbox (0 when it is empty).
  virtual core::Result<std::uint64_t> inbox_last_seq(std::string_view user) = 0;

  virtual core::Result<InboxPage> inbox_range(std::string_view user, const InboxQuery& query) = 0;

  // Conversations: kept by store_messages() and inbox_append() in the same
  // atomic step as the inbox entry (RocksDB: the same WriteBatch; Redis: the
  // same script, every key of a user in the user's cluster slot).

  // A page of `user`'s conversations, newest activity first, those with a
  // last_seq below `before_seq` when it is given.
  virtual core::Result<ConversationsPage> conversations(std::string_view user,
                                                        std::optional<std::uint64_t> before_seq,
                                                        std::size_t limit) = 0;

  // `user`'s conversation with `peer`, or none when they have no message.
  virtual core::Result<std::optional<Conversation>> conversation(std::string_view user,
                                                                 std::string_view peer) = 0;

  // A page of the messages between `user` and `peer`, by their seqs in
  // `user`'s inbox (as inbox_range).
  virtual core::Result<InboxPage> conversation_range(std::string_view user, std::string_view peer,
                                                     const InboxQuery& query) = 0;

  // Moves the user's read marker in the conversation forward to mark.seq (a
  // lower seq leaves it where it is) and records when; returns the
  // conversation as it is after. The caller checks that the conversation
  // exists and that mark.seq is not past its last_seq.
  virtual core::Result<Conversation> mark_read(const ReadMark& mark) = 0;

  // When `user`'s read marker in their conversation with `peer` first
  // reached `seq` (or passed it), or none when it has not yet.
  virtual core::Result<std::optional<std::string>> read_at(std::string_view user, std::string_view peer,
                                                           std::uint64_t seq) = 0;

  // True when the backend answers (for readiness checks).
  virtual bool ping() = 0;

 protected:
  // store_messages() as separate steps, in order, each one idempotent: the
  // message (put_if_absent), then one inbox_append() per inbox. For backends
  // that cannot write keys of different shards together (Redis Cluster).
  StoredMessages store_messages_in_steps(std::span<const NewMessage> messages);
};

// The conversation that inbox `index` of `message` belongs to: the other
// inbox's owner, and whether they sent it (the receiver's inbox is the
// second).
struct InboxSide {
  std::string_view peer;
  bool received = false;
};
inline InboxSide side_of(const NewMessage& message, std::size_t index) {
  if (message.inboxes.size() < 2) return {message.inboxes.at(index), false};
  return {message.inboxes.at(1 - index), index == 1};
}

}  // namespace intercomm::store
