// Conversations on RocksDB (internal to src/store/): per user and peer, the
// messages between them by seq, a summary, the read marks; per user, the
// peers by their conversation's last seq. Written in the WriteBatch that
// stores the inbox entry; the caller holds the user's stripe lock.
//
//   conv entry   i conversation (user, peer) seq  -> received count so far, message id
//   summary      v conversation_meta (user, peer) -> last_seq, received, read_seq, read_count, last id
//   by activity  i conversation_order user seq    -> peer
//   read marks   i read_mark (user, peer) seq     -> when the marker reached seq
//
// unread = received - read_count, where read_count is the received count of
// the last entry at or before read_seq (looked up once, when the marker moves).
#pragma once

#include "store/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace intercomm::store::rocks {

// The conversation updates of one WriteBatch: summaries read once, kept as
// the batch leaves them, written by finish().
class ConversationBatch {
 public:
  explicit ConversationBatch(rocksdb::DB& db) : db_(db) {}

  // Adds message `message_id`, seq `seq` of `user`'s inbox, to their
  // conversation with `peer`.
  core::Result<void> add(rocksdb::WriteBatch& batch, std::string_view user, std::string_view peer,
                         std::uint64_t seq, std::string_view message_id, bool received);
  void finish(rocksdb::WriteBatch& batch);

 private:
  struct Summary {
    std::uint64_t last_seq = 0, received = 0, read_seq = 0, read_count = 0;
    std::string last_message_id;
  };
  friend class ConversationReader;
  static std::string encode(const Summary& summary);
  static Summary decode(std::string_view bytes);

  rocksdb::DB& db_;
  std::map<std::string, Summary, std::less<>> summaries_;  // pair_key -> summary
};

// Reads (and the read marker, which is written alone).
class ConversationReader {
 public:
  explicit ConversationReader(rocksdb::DB& db) : db_(db) {}

  core::Result<ConversationsPage> list(std::string_view user, std::optional<std::uint64_t> before_seq,
                                       std::size_t limit);
  core::Result<std::optional<Conversation>> get(std::string_view user, std::string_view peer);
  core::Result<InboxPage> range(std::string_view user, std::string_view peer, const InboxQuery& query);
  core::Result<Conversation> mark_read(const rocksdb::WriteOptions& write, const ReadMark& mark);
  core::Result<std::optional<std::string>> read_at(std::string_view user, std::string_view peer,
                                                   std::uint64_t seq);

 private:
  rocksdb::DB& db_;
};

}  // namespace intercomm::store::rocks
