// Conversations on RocksDB: see rocksdb_conversations.hpp for the keys.
#include "store/rocksdb_conversations.hpp"

#include "store/rocksdb_keys.hpp"

#include <memory>

namespace intercomm::store::rocks {
namespace {


std::string entry_prefix(std::string_view user, std::string_view peer) {
  return index_prefix(kConversation, pair_key(user, peer));
}
std::string order_key(std::string_view user, std::uint64_t seq) {
  return index_prefix(kConversationOrder, user) + big_endian(seq);
}
std::string mark_prefix(std::string_view user, std::string_view peer) {
  return index_prefix(kReadMark, pair_key(user, peer));
}

// A conversation entry's value: the received count so far, then the message id.
std::string entry_value(std::uint64_t received, std::string_view message_id) {
  return big_endian(received) + std::string(message_id);
}
std::string message_id_of_entry(std::string_view value) {
  return value.size() < 8 ? std::string() : std::string(value.substr(8));
}

}  // namespace

std::string ConversationBatch::encode(const Summary& summary) {
  return big_endian(summary.last_seq) + big_endian(summary.received) + big_endian(summary.read_seq) +
         big_endian(summary.read_count) + summary.last_message_id;
}

ConversationBatch::Summary ConversationBatch::decode(std::string_view bytes) {
  Summary summary;
  if (bytes.size() < 32) return summary;
  summary.last_seq = from_big_endian(bytes.substr(0, 8));
  summary.received = from_big_endian(bytes.substr(8, 8));
  summary.read_seq = from_big_endian(bytes.substr(16, 8));
  summary.read_count = from_big_endian(bytes.substr(24, 8));
  summary.last_message_id = std::string(bytes.substr(32));
  return summary;
}

core::Result<void> ConversationBatch::add(rocksdb::WriteBatch& batch, std::string_view user,
                                          std::string_view peer, std::uint64_t seq,
                                          std::string_view message_id, bool received) {
  const std::string pair = pair_key(user, peer);
  auto found = summaries_.find(pair);
  if (found == summaries_.end()) {
    std::string bytes;
    const auto read = db_.Get(rocksdb::ReadOptions(), value_key(kConversationMeta, pair), &bytes);
    if (!read.ok() && !read.IsNotFound()) return failure(read, "get");
    found = summaries_.emplace(pair, read.ok() ? decode(bytes) : Summary{}).first;
  }
  Summary& summary = found->second;
  if (received) ++summary.received;
  batch.Put(entry_prefix(user, peer) + big_endian(seq), entry_value(summary.received, message_id));
  if (summary.last_seq != 0) batch.Delete(order_key(user, summary.last_seq));
  batch.Put(order_key(user, seq), rocksdb::Slice(peer.data(), peer.size()));
  summary.last_seq = seq;
  summary.last_message_id = std::string(message_id);
  return {};
}

void ConversationBatch::finish(rocksdb::WriteBatch& batch) {
  for (const auto& [pair, summary] : summaries_) batch.Put(value_key(kConversationMeta, pair), encode(summary));
}

core::Result<std::optional<Conversation>> ConversationReader::get(std::string_view user, std::string_view peer) {
  std::string bytes;
  const auto read = db_.Get(rocksdb::ReadOptions(), value_key(kConversationMeta, pair_key(user, peer)), &bytes);
  if (read.IsNotFound()) return std::optional<Conversation>();
  if (!read.ok()) return failure(read, "get");
  const auto summary = ConversationBatch::decode(bytes);
  return std::optional<Conversation>(Conversation{std::string(peer), summary.last_seq, summary.last_message_id,
                                                  summary.read_seq, summary.received - summary.read_count});
}

core::Result<ConversationsPage> ConversationReader::list(std::string_view user,
                                                         std::optional<std::uint64_t> before_seq,
                                                         std::size_t limit) {
  const std::string prefix = index_prefix(kConversationOrder, user);
  ConversationsPage page;
  if (before_seq && *before_seq <= 1) return page;
  std::vector<std::string> peers;
  {
    PrefixIterator it(db_, prefix);
    if (before_seq) {
      it->SeekForPrev(prefix + big_endian(*before_seq - 1));
    } else {
      it.seek_to_last();
    }
    for (; it.in_prefix(); it->Prev()) {
      if (peers.size() == limit) {
        page.more = true;
        break;
      }
      peers.push_back(it->value().ToString());
    }
    if (!it->status().ok()) return failure(it->status(), "range");
  }
  for (const auto& peer : peers) {
    auto conversation = get(user, peer);
    if (!conversation) return conversation.error();
    if (*conversation) page.conversations.push_back(std::move(**conversation));
  }
  return page;
}

core::Result<InboxPage> ConversationReader::range(std::string_view user, std::string_view peer,
                                                  const InboxQuery& query) {
  return seq_range(db_, entry_prefix(user, peer), query, message_id_of_entry);
}

core::Result<Conversation> ConversationReader::mark_read(const rocksdb::WriteOptions& write, const ReadMark& mark) {
  const std::string pair = pair_key(mark.user, mark.peer);
  std::string bytes;
  const auto read = db_.Get(rocksdb::ReadOptions(), value_key(kConversationMeta, pair), &bytes);
  if (!read.ok() && !read.IsNotFound()) return failure(read, "get");
  auto summary = read.ok() ? ConversationBatch::decode(bytes) : ConversationBatch::Summary{};
  if (mark.seq > summary.read_seq) {
    // The received count at the marker: the last entry at or before it.
    PrefixIterator it(db_, entry_prefix(mark.user, mark.peer));
    it->SeekForPrev(entry_prefix(mark.user, mark.peer) + big_endian(mark.seq));
    std::uint64_t read_count = 0;
    if (it.in_prefix() && it->value().size() >= 8) {
      read_count = from_big_endian(std::string_view(it->value().data(), 8));
    }
    if (!it->status().ok()) return failure(it->status(), "range");
    summary.read_seq = mark.seq;
    summary.read_count = read_count;
    rocksdb::WriteBatch batch;
    batch.Put(value_key(kConversationMeta, pair), ConversationBatch::encode(summary));
    batch.Put(mark_prefix(mark.user, mark.peer) + big_endian(mark.seq), mark.at);
    if (const auto status = db_.Write(write, &batch); !status.ok()) return failure(status, "batch write");
  }
  return Conversation{mark.peer, summary.last_seq, summary.last_message_id, summary.read_seq,
                      summary.received - summary.read_count};
}

core::Result<std::optional<std::string>> ConversationReader::read_at(std::string_view user, std::string_view peer,
                                                                     std::uint64_t seq) {
  const std::string prefix = mark_prefix(user, peer);
  PrefixIterator it(db_, prefix);
  it->Seek(prefix + big_endian(seq));
  std::optional<std::string> at;
  if (it.in_prefix()) at = it->value().ToString();
  if (!it->status().ok()) return failure(it->status(), "range");
  return at;
}

}  // namespace intercomm::store::rocks
