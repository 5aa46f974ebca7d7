// RocksDB backend: prefixed keys, striped locks for put_if_absent, iterators for ranges.
#include "store/rocksdb_store.hpp"

#include "store/buckets.hpp"
#include "store/rocksdb_conversations.hpp"
#include "store/rocksdb_keys.hpp"

#include <fmt/core.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>

namespace intercomm::store {
namespace {

using core::Error;
using core::ErrorCode;
using namespace rocks;  // the key layout

// Inbox keys (buckets in rocksdb_keys.hpp): the last seq given (per user),
// an entry per seq (value: the message id), and the seq of each message id
// (per user).

std::string inbox_entry_key(std::string_view user, std::uint64_t seq) {
  return index_prefix(kInbox, user) + big_endian(seq);
}

std::string inbox_seq_key(std::string_view user, std::string_view message_id) {
  std::string key;
  append_component(key, user);
  key.append(message_id);
  return value_key(kInboxSeq, key);
}

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, bool sync) : db_(std::move(db)) { write_.sync = sync; }

  core::Result<std::optional<std::string>> get(const Bucket& bucket, std::string_view key) override {
    std::string value;
    const auto status = db_->Get(rocksdb::ReadOptions(), value_key(bucket, key), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    if (!status.ok()) return failure(status, "get");
    return std::optional<std::string>(std::move(value));
  }

  core::Result<void> put(const Bucket& bucket, std::string_view key, std::string_view value) override {
    const auto status = db_->Put(write_, value_key(bucket, key), rocksdb::Slice(value.data(), value.size()));
    if (!status.ok()) return failure(status, "put");
    return {};
  }

  core::Result<bool> put_if_absent(const Bucket& bucket, std::string_view key,
                                   std::string_view value) override {
    const std::string full_key = value_key(bucket, key);
    // The folder lock keeps other processes out; a stripe lock orders threads.
    std::lock_guard lock(stripes_[stripe_of(full_key)]);
    std::string existing;
    const auto read = db_->Get(rocksdb::ReadOptions(), full_key, &existing);
    if (read.ok()) return false;
    if (!read.IsNotFound()) return failure(read, "get");
    const auto status = db_->Put(write_, full_key, rocksdb::Slice(value.data(), value.size()));
    if (!status.ok()) return failure(status, "put");
    return true;
  }

  // One synced batch for every absent key, under the stripe locks of them all.
  std::vector<core::Result<bool>> put_if_absent_many(const Bucket& bucket,
                                                     std::span<const KeyValue> entries) override {
    std::vector<std::string> keys;
    std::set<std::size_t> stripes;
    for (const auto& entry : entries) {
      keys.push_back(value_key(bucket, entry.key));
      stripes.insert(stripe_of(keys.back()));
    }
    const auto locks = lock_stripes(stripes);
    std::vector<core::Result<bool>> outcomes;
    outcomes.reserve(entries.size());
    rocksdb::WriteBatch batch;
    std::set<std::string_view> in_batch;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      std::string existing;
      const auto read = in_batch.contains(keys[i]) ? rocksdb::Status::OK()
                                                   : db_->Get(rocksdb::ReadOptions(), keys[i], &existing);
      if (read.ok()) {
        outcomes.emplace_back(false);
      } else if (read.IsNotFound()) {
        batch.Put(keys[i], rocksdb::Slice(entries[i].value.data(), entries[i].value.size()));
        in_batch.insert(keys[i]);
        outcomes.emplace_back(true);
      } else {
        outcomes.emplace_back(failure(read, "get"));
      }
    }
    if (batch.Count() > 0) {
      if (const auto status = db_->Write(write_, &batch); !status.ok()) {
        const core::Error error = failure(status, "batch write");
        for (auto& outcome : outcomes) {
          if (outcome && *outcome) outcome = error;
        }
      }
    }
    return outcomes;
  }

  core::Result<bool> remove(const Bucket& bucket, std::string_view key) override {
    const std::string full_key = value_key(bucket, key);
    std::lock_guard lock(stripes_[stripe_of(full_key)]);
    std::string existing;
    const auto read = db_->Get(rocksdb::ReadOptions(), full_key, &existing);
    if (read.IsNotFound()) return false;
    if (!read.ok()) return failure(read, "get");
    const auto status = db_->Delete(write_, full_key);
    if (!status.ok()) return failure(status, "delete");
    return true;
  }

  core::Result<void> index_add(const Bucket& bucket, std::string_view index_key,
                               std::string_view entry) override {
    std::string key = index_prefix(bucket, index_key);
    key.append(entry);
    const auto status = db_->Put(write_, key, rocksdb::Slice());
    if (!status.ok()) return failure(status, "index put");
    return {};
  }

  core::Result<bool> index_remove(const Bucket& bucket, std::string_view index_key,
                                  std::string_view entry) override {
    std::string key = index_prefix(bucket, index_key);
    key.append(entry);
    std::string existing;
    const auto read = db_->Get(rocksdb::ReadOptions(), key, &existing);
    if (read.IsNotFound()) return false;
    if (!read.ok()) return failure(read, "get");
    const auto status = db_->Delete(write_, key);
    if (!status.ok()) return failure(status, "index delete");
    return true;
  }

  core::Result<Page> range(const Bucket& bucket, std::string_view index_key,
                           const RangeQuery& query) override {
    const std::string prefix = index_prefix(bucket, index_key);
    PrefixIterator it(*db_, prefix);
    const auto entry_of = [&] { return std::string(it.rest()); };
    const auto in_prefix = [&] { return it.in_prefix(); };

    Page page;
    if (query.order == Order::ascending) {
      if (query.after) {
        it->Seek(prefix + *query.after);
        if (in_prefix() && entry_of() == *query.after) it->Next();
      } else {
        it->Seek(prefix);
      }
      for (; in_prefix(); it->Next()) {
        std::string entry = entry_of();
        if (query.before && entry >= *query.before) break;
        if (page.entries.size() == query.limit) {
          page.next = page.entries.back();
          break;
        }
        page.entries.push_back(std::move(entry));
      }
    } else {
      if (query.before) {
        it->SeekForPrev(prefix + *query.before);
        if (in_prefix() && entry_of() == *query.before) it->Prev();
      } else {
        it.seek_to_last();  // the last key within the prefix (the iterator's upper bound)
      }
      for (; in_prefix(); it->Prev()) {
        std::string entry = entry_of();
        if (query.after && entry <= *query.after) break;
        if (page.entries.size() == query.limit) {
          page.next = page.entries.back();
          break;
        }
        page.entries.push_back(std::move(entry));
      }
    }
    if (!it->status().ok()) return failure(it->status(), "range");
    return page;
  }

  // One synced WriteBatch for every message up to the first one already
  // stored (or all of them), under the stripe locks of their ids and inboxes:
  // seqs are given, and become visible, in one step.
  StoredMessages store_messages(std::span<const NewMessage> messages) override {
    StoredMessages out;
    std::vector<std::string> message_keys;
    std::set<std::size_t> stripes;
    for (const auto& message : messages) {
      message_keys.push_back(value_key(kMessages, message.message_id));
      stripes.insert(stripe_of(message_keys.back()));
      for (const auto& user : message.inboxes) stripes.insert(stripe_of(user));
    }
    const auto locks = lock_stripes(stripes);

    rocksdb::WriteBatch batch;
    ConversationBatch conversations(*db_);
    std::map<std::string, std::uint64_t, std::less<>> last;    // inbox -> last seq, as this batch leaves it
    std::map<std::string, std::string, std::less<>> in_batch;  // message key -> value, written by this batch
    for (std::size_t i = 0; i < messages.size() && !out.existing_index; ++i) {
      const auto& message = messages[i];
      const std::string& key = message_keys[i];
      std::string existing;
      if (auto found = in_batch.find(key); found != in_batch.end()) {
        existing = found->second;
      } else if (const auto read = db_->Get(rocksdb::ReadOptions(), key, &existing); !read.ok()) {
        if (!read.IsNotFound()) {
          out.error = failure(read, "get");
          return out;
        }
        existing.clear();
        batch.Put(key, message.value);
        in_batch.emplace(key, message.value);
        std::vector<std::uint64_t> seqs;
        for (std::size_t inbox = 0; inbox < message.inboxes.size(); ++inbox) {
          const std::string& user = message.inboxes[inbox];
          auto seq = next_seq(last, user);
          const auto side = side_of(message, inbox);
          auto added =
              seq ? conversations.add(batch, user, side.peer, *seq, message.message_id, side.received)
                  : core::Result<void>(seq.error());
          if (!added) {
            out.error = added.error();
            return out;
          }
          batch.Put(inbox_entry_key(user, *seq), message.message_id);
          batch.Put(inbox_seq_key(user, message.message_id), big_endian(*seq));
          seqs.push_back(*seq);
        }
        out.seqs.push_back(std::move(seqs));
        continue;
      }
      out.existing_index = i;
      out.existing_value = std::move(existing);
    }
    for (const auto& [user, seq] : last) batch.Put(value_key(kInboxLast, user), big_endian(seq));
    conversations.finish(batch);
    if (batch.Count() > 0) {
      if (const auto status = db_->Write(write_, &batch); !status.ok()) {
        StoredMessages failed;
        failed.error = failure(status, "batch write");
        return failed;
      }
    }
    return out;
  }

  core::Result<std::uint64_t> inbox_append(std::string_view user, std::string_view message_id,
                                           std::string_view peer, bool received) override {
    std::lock_guard lock(stripes_[stripe_of(user)]);
    auto known = inbox_seq(user, message_id);
    if (!known) return known.error();
    if (*known) return **known;
    std::map<std::string, std::uint64_t, std::less<>> last;
    auto seq = next_seq(last, user);
    if (!seq) return seq.error();
    rocksdb::WriteBatch batch;
    ConversationBatch conversations(*db_);
    if (auto added = conversations.add(batch, user, peer, *seq, message_id, received); !added)
      return added.error();
    conversations.finish(batch);
    batch.Put(inbox_entry_key(user, *seq), rocksdb::Slice(message_id.data(), message_id.size()));
    batch.Put(inbox_seq_key(user, message_id), big_endian(*seq));
    batch.Put(value_key(kInboxLast, user), big_endian(*seq));
    if (const auto status = db_->Write(write_, &batch); !status.ok()) return failure(status, "batch write");
    return *seq;
  }

  core::Result<std::optional<std::uint64_t>> inbox_seq(std::string_view user,
                                                       std::string_view message_id) override {
    std::string value;
    const auto status = db_->Get(rocksdb::ReadOptions(), inbox_seq_key(user, message_id), &value);
    if (status.IsNotFound()) return std::optional<std::uint64_t>();
    if (!status.ok()) return failure(status, "get");
    return std::optional<std::uint64_t>(from_big_endian(value));
  }

  core::Result<std::uint64_t> inbox_last_seq(std::string_view user) override {
    std::string value;
    const auto status = db_->Get(rocksdb::ReadOptions(), value_key(kInboxLast, user), &value);
    if (status.IsNotFound()) return std::uint64_t{0};
    if (!status.ok()) return failure(status, "get");
    return from_big_endian(value);
  }

  core::Result<InboxPage> inbox_range(std::string_view user, const InboxQuery& query) override {
    return seq_range(*db_, index_prefix(kInbox, user), query,
                     [](std::string_view value) { return std::string(value); });
  }

  core::Result<ConversationsPage> conversations(std::string_view user,
                                                std::optional<std::uint64_t> before_seq,
                                                std::size_t limit) override {
    return ConversationReader(*db_).list(user, before_seq, limit);
  }

  core::Result<std::optional<Conversation>> conversation(std::string_view user,
                                                         std::string_view peer) override {
    return ConversationReader(*db_).get(user, peer);
  }

  core::Result<InboxPage> conversation_range(std::string_view user, std::string_view peer,
                                             const InboxQuery& query) override {
    return ConversationReader(*db_).range(user, peer, query);
  }

  // Under the user's stripe: a message landing meanwhile is counted once.
  core::Result<Conversation> mark_read(const ReadMark& mark) override {
    std::lock_guard lock(stripes_[stripe_of(mark.user)]);
    return ConversationReader(*db_).mark_read(write_, mark);
  }

  core::Result<std::optional<std::string>> read_at(std::string_view user, std::string_view peer,
                                                   std::uint64_t seq) override {
    return ConversationReader(*db_).read_at(user, peer, seq);
  }

  bool ping() override { return true; }

 private:
  static constexpr std::size_t kStripes = 1024;

  static std::size_t stripe_of(std::string_view key) { return std::hash<std::string_view>()(key) % kStripes; }

  // Locks the stripes in ascending order (every caller does): no deadlock.
  std::vector<std::unique_lock<std::mutex>> lock_stripes(const std::set<std::size_t>& stripes) {
    std::vector<std::unique_lock<std::mutex>> locks;
    locks.reserve(stripes.size());
    for (const auto stripe : stripes) locks.emplace_back(stripes_[stripe]);
    return locks;
  }

  // The next seq of `user`'s inbox, counting what `last` already gave in this
  // batch; the caller holds the user's stripe.
  core::Result<std::uint64_t> next_seq(std::map<std::string, std::uint64_t, std::less<>>& last,
                                       std::string_view user) {
    auto found = last.find(user);
    if (found == last.end()) {
      auto stored = inbox_last_seq(user);
      if (!stored) return stored.error();
      found = last.emplace(std::string(user), *stored).first;
    }
    return ++found->second;
  }

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_;
  std::array<std::mutex, kStripes> stripes_;
};

}  // namespace

core::Result<std::unique_ptr<Store>> open_rocksdb(const RocksOptions& options) {
  std::error_code made;
  std::filesystem::create_directories(options.path, made);
  if (made) {
    return Error::of(ErrorCode::unavailable,
                     fmt::format("store: cannot create folder {}: {}", options.path, made.message()));
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.IncreaseParallelism(2);
  // Writers waiting for a group commit sleep instead of spinning: the MTA runs
  // many handler threads on few cores, and a spinning waiter takes CPU from
  // the ones doing work.
  db_options.enable_write_thread_adaptive_yield = false;
  // Each message replaces its conversations' order keys (a delete each): a
  // file where deletes cluster is compacted soon, so their tombstones do not
  // pile up under the conversation lists.
  db_options.table_properties_collector_factories.emplace_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(1024, 512));
  // A message writes some 15 keys, most of them next to the last key of their
  // index (an inbox's next seq, a conversation's next entry): the memtable
  // finds their place from where that last one went (profiled: the skip
  // list's search was two thirds of the MTA's CPU). Hints are used only when
  // a write group's keys go in one at a time.
  db_options.memtable_insert_with_hint_prefix_extractor = insert_hint_prefix();
  db_options.allow_concurrent_memtable_write = false;
  rocksdb::DB* raw = nullptr;
  const auto status = rocksdb::DB::Open(db_options, options.path, &raw);
  if (!status.ok()) {
    if (status.ToString().find("lock") != std::string::npos) {
      return Error::of(
          ErrorCode::unavailable,
          fmt::format("store: {} is in use by another process (its LOCK is held); stop that process "
                      "or choose another --store folder",
                      options.path));
    }
    return Error::of(ErrorCode::unavailable,
                     fmt::format("store: cannot open {}: {}", options.path, status.ToString()));
  }
  return std::unique_ptr<Store>(new RocksStore(std::unique_ptr<rocksdb::DB>(raw), options.sync));
}

}  // namespace intercomm::store
