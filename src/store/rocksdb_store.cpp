// RocksDB backend: prefixed keys, striped locks for put_if_absent, iterators for ranges.
#include "store/rocksdb_store.hpp"

#include <fmt/core.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <array>
#include <filesystem>
#include <functional>
#include <mutex>

namespace intercomm::store {
namespace {

using core::Error;
using core::ErrorCode;

// Appends a 4-byte big-endian length and the bytes: prefixes of different
// components can never run into each other.
void append_component(std::string& out, std::string_view part) {
  const auto size = static_cast<std::uint32_t>(part.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((size >> shift) & 0xFF));
  out.append(part);
}

std::string value_key(const Bucket& bucket, std::string_view key) {
  std::string out;
  out.reserve(9 + bucket.type.size() + bucket.name.size() + key.size());  // one allocation per call
  out = "v";
  append_component(out, bucket.type);
  append_component(out, bucket.name);
  out.append(key);
  return out;
}

std::string index_prefix(const Bucket& bucket, std::string_view index_key) {
  std::string out;
  out.reserve(13 + bucket.type.size() + bucket.name.size() + index_key.size() + 26);  // room for an entry
  out = "i";
  append_component(out, bucket.type);
  append_component(out, bucket.name);
  append_component(out, index_key);
  return out;
}

// The smallest string greater than every string starting with `prefix`.
std::optional<std::string> prefix_successor(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last != 0xFF) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return std::nullopt;
}

Error failure(const rocksdb::Status& status, std::string_view what) {
  return Error::of(ErrorCode::unavailable,
                   fmt::format("store: rocksdb {} failed: {}", what, status.ToString()));
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
    return put_if_absent_indexed(bucket, key, value, {}, {});
  }

  core::Result<bool> put_if_absent_indexed(const Bucket& bucket, std::string_view key, std::string_view value,
                                           const std::vector<IndexEntry>& indexes,
                                           std::string_view entry) override {
    const std::string full_key = value_key(bucket, key);
    // The folder lock keeps other processes out; a stripe lock orders threads.
    std::lock_guard lock(stripes_[std::hash<std::string>()(full_key) % stripes_.size()]);
    std::string existing;
    const auto read = db_->Get(rocksdb::ReadOptions(), full_key, &existing);
    if (read.ok()) return false;
    if (!read.IsNotFound()) return failure(read, "get");
    rocksdb::WriteBatch batch;
    batch.Put(full_key, rocksdb::Slice(value.data(), value.size()));
    for (const auto& index : indexes) {
      std::string index_entry = index_prefix(index.bucket, index.index_key);
      index_entry.append(entry);
      batch.Put(index_entry, rocksdb::Slice());
    }
    const auto status = db_->Write(write_, &batch);
    if (!status.ok()) return failure(status, "batch write");
    return true;
  }

  core::Result<bool> remove(const Bucket& bucket, std::string_view key) override {
    const std::string full_key = value_key(bucket, key);
    std::lock_guard lock(stripes_[std::hash<std::string>()(full_key) % stripes_.size()]);
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
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    const auto entry_of = [&] {
      const auto key = it->key();
      return std::string(key.data() + prefix.size(), key.size() - prefix.size());
    };
    const auto in_prefix = [&] { return it->Valid() && it->key().starts_with(prefix); };

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
      } else if (auto end = prefix_successor(prefix)) {
        it->SeekForPrev(*end);
        if (it->Valid() && it->key() == *end) it->Prev();
      } else {
        it->SeekToLast();
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

  bool ping() override { return true; }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_;
  std::array<std::mutex, 64> stripes_;
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
