// The RocksDB backend's key layout, shared by its files (internal to
// src/store/): one column family, every key a kind letter and
// length-prefixed components, so any bytes are safe in any component and
// one prefix never runs into another.
#pragma once

#include "core/errors.hpp"
#include "store/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/slice_transform.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace intercomm::store::rocks {

// The buckets only this backend has (the others are in buckets.hpp).
inline const Bucket kInboxLast = bucket("inbox_last");  // user -> the last seq given
inline const Bucket kInboxSeq = bucket("inbox_seq");    // [user] message id -> its seq in that inbox
inline const Bucket kConversation = bucket("conversation");              // index [user] peer: seq -> entry
inline const Bucket kConversationMeta = bucket("conversation_meta");     // [user] peer -> summary
inline const Bucket kConversationOrder = bucket("conversation_order");   // index user: last seq -> peer
inline const Bucket kReadMark = bucket("read_mark");                     // index [user] peer: seq -> time

// Appends a 4-byte big-endian length and the bytes.
void append_component(std::string& out, std::string_view part);

// "v" type name key: a value of a bucket.
std::string value_key(const Bucket& bucket, std::string_view key);
// "i" type name index_key: the prefix of an ordered index's entries.
std::string index_prefix(const Bucket& bucket, std::string_view index_key);
// The smallest string greater than every string starting with `prefix`.
std::optional<std::string> prefix_successor(std::string prefix);

// Seqs as 8 big-endian bytes: byte order is number order.
std::string big_endian(std::uint64_t value);
std::uint64_t from_big_endian(std::string_view bytes);

// A pair of names as one index key: `user`'s something with `other`.
std::string pair_key(std::string_view user, std::string_view other);

core::Error failure(const rocksdb::Status& status, std::string_view what);

// Where a key's next write is likely to go in, for RocksDB's memtable insert
// hints: each hint prefix remembers where its last key went in, and the next
// key with that prefix starts its search there instead of at the top of the
// memtable. What a message writes: index entries ("i" type name index_key +
// seq) appended to their index, and values under growing ids (messages,
// receipts; a user's inbox_seq) appended to their bucket (or the user's part
// of it) — those hint by that prefix; the values it rewrites (an inbox's last
// seq, a conversation's summary) are their own prefix. Other keys get no hint
// (a hint kept for a key never written again costs memtable space).
std::shared_ptr<const rocksdb::SliceTransform> insert_hint_prefix();
// What insert_hint_prefix() takes of `key`, or none when it is not a key of ours.
std::optional<std::string_view> hint_prefix_of(std::string_view key);

// An iterator bounded to the keys starting with `prefix`: RocksDB stops at the
// bounds instead of stepping over deleted keys beyond them (without bounds, a
// Seek into an empty prefix walks every tombstone that follows it — e.g. the
// conversation order keys each message replaces — until the next live key).
class PrefixIterator {
 public:
  PrefixIterator(rocksdb::DB& db, std::string prefix);
  PrefixIterator(const PrefixIterator&) = delete;
  PrefixIterator& operator=(const PrefixIterator&) = delete;
  rocksdb::Iterator* operator->() const { return it_.get(); }
  // Valid and within the prefix.
  bool in_prefix() const { return it_->Valid() && it_->key().starts_with(prefix_); }
  // The key after the prefix.
  std::string_view rest() const {
    return std::string_view(it_->key().data() + prefix_.size(), it_->key().size() - prefix_.size());
  }
  // Positions at the last key of the prefix.
  void seek_to_last() { it_->SeekToLast(); }

 private:
  std::string prefix_;
  std::string upper_;
  rocksdb::Slice lower_slice_, upper_slice_;
  rocksdb::ReadOptions options_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

// A page of the entries `prefix` + big_endian(seq) -> value, by seq, as
// Store::inbox_range pages; `message_id_of` reads the message id from a value.
core::Result<InboxPage> seq_range(rocksdb::DB& db, const std::string& prefix, const InboxQuery& query,
                                  const std::function<std::string(std::string_view)>& message_id_of);

}  // namespace intercomm::store::rocks
