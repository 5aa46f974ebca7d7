// The in-process broker's journal on RocksDB: big-endian ids as keys, a
// length-prefixed binary record as values.
#include "bus/inproc_journal.hpp"

#include <fmt/core.h>
#include <rocksdb/db.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <filesystem>

namespace intercomm::bus {
namespace {

std::string key_of(std::uint64_t id) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i, id >>= 8) key[static_cast<std::size_t>(i)] = static_cast<char>(id & 0xFF);
  return key;
}

// The key of a message's delivery count: its key and one more byte, so it
// sorts right after the message.
std::string count_key_of(std::uint64_t id) {
  return key_of(id) + 'c';
}

std::uint64_t id_of(const rocksdb::Slice& key) {
  std::uint64_t id = 0;
  for (std::size_t i = 0; i < key.size() && i < 8; ++i) id = (id << 8) | static_cast<unsigned char>(key[i]);
  return id;
}

void put_u32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xFF));
}

void put_string(std::string& out, std::string_view text) {
  put_u32(out, static_cast<std::uint32_t>(text.size()));
  out.append(text);
}

// Reads what put_u32/put_string wrote; false once the input is short.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool u32(std::uint32_t& value) {
    if (data_.size() < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i)
      value = (value << 8) | static_cast<unsigned char>(data_[static_cast<std::size_t>(i)]);
    data_.remove_prefix(4);
    return true;
  }
  bool string(std::string& value) {
    std::uint32_t size = 0;
    if (!u32(size) || data_.size() < size) return false;
    value.assign(data_.substr(0, size));
    data_.remove_prefix(size);
    return true;
  }
  bool done() const { return data_.empty(); }

 private:
  std::string_view data_;
};

}  // namespace

std::string encode_record(const JournalRecord& record) {
  std::string out;
  put_string(out, record.queue);
  put_string(out, record.envelope.routing_key);
  put_string(out, record.envelope.body);
  put_string(out, record.envelope.reply_to);
  put_string(out, record.envelope.correlation_id);
  put_u32(out, record.delivery_count);
  put_u32(out, static_cast<std::uint32_t>(record.envelope.headers.size()));
  for (const auto& [name, value] : record.envelope.headers) {
    put_string(out, name);
    put_string(out, value);
  }
  return out;
}

bool decode_record(std::string_view data, JournalRecord& record) {
  Reader in(data);
  std::uint32_t headers = 0;
  if (!in.string(record.queue) || !in.string(record.envelope.routing_key) ||
      !in.string(record.envelope.body) || !in.string(record.envelope.reply_to) ||
      !in.string(record.envelope.correlation_id) || !in.u32(record.delivery_count) || !in.u32(headers)) {
    return false;
  }
  for (std::uint32_t i = 0; i < headers; ++i) {
    std::string name, value;
    if (!in.string(name) || !in.string(value)) return false;
    record.envelope.headers.emplace(std::move(name), std::move(value));
  }
  record.envelope.persistent = true;
  return in.done();
}

struct Journal::Batch {
  rocksdb::WriteBatch writes;
  bool has_put = false;
  bool has_count = false;
};

struct Journal::Impl {
  std::unique_ptr<rocksdb::DB> db;
  std::unique_ptr<Batch> staged = std::make_unique<Batch>();
};

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Journal::~Journal() = default;

core::Result<std::unique_ptr<Journal>> Journal::open(const std::string& path) {
  std::error_code made;
  std::filesystem::create_directories(path, made);
  if (made) {
    return core::Error::of(core::ErrorCode::unavailable,
                           fmt::format("bus journal: cannot create folder {}: {}", path, made.message()));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.enable_write_thread_adaptive_yield = false;
  // Ids only grow: each put goes in right after the last one, so the memtable
  // starts its search there (one hint for every key) instead of at the top.
options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewCappedPrefixTransform(0));
  options.allow_concurrent_memtable_write = false;
  rocksdb::DB* raw = nullptr;
  const auto status = rocksdb::DB::Open(options, path, &raw);
  if (!status.ok()) {
    return core::Error::of(core::ErrorCode::unavailable,
                           fmt::format("bus journal: cannot open {}: {}{}", path, status.ToString(),
                                       status.ToString().find("lock") != std::string::npos
                                           ? " (is another intercomm run using it?)"
                                           : ""));
  }
  auto impl = std::make_unique<Impl>();
  impl->db.reset(raw);
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

core::Result<std::vector<JournalRecord>> Journal::load() {
  std::vector<JournalRecord> records;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() == 9) {  // a delivery count: of the record just read
      std::uint32_t count = 0;
      Reader in(std::string_view(it->value().data(), it->value().size()));
      if (!records.empty() && records.back().id == id_of(it->key()) && in.u32(count)) {
        records.back().delivery_count = std::max(records.back().delivery_count, count);
      }
      continue;
    }
    JournalRecord record;
    record.id = id_of(it->key());
    if (!decode_record(std::string_view(it->value().data(), it->value().size()), record)) {
      spdlog::error("bus journal: record {} is damaged; skipped", record.id);
      continue;
    }
    records.push_back(std::move(record));
  }
  if (!it->status().ok()) {
    return core::Error::of(core::ErrorCode::unavailable,
                           fmt::format("bus journal: cannot read: {}", it->status().ToString()));
  }
  return records;
}

void Journal::stage_put(const JournalRecord& record) {
  impl_->staged->writes.Put(key_of(record.id), encode_record(record));
  impl_->staged->has_put = true;
}

void Journal::stage_remove(std::uint64_t id) {
  impl_->staged->writes.Delete(key_of(id));
  impl_->staged->writes.Delete(count_key_of(id));
}

void Journal::stage_delivery_count(std::uint64_t id, std::uint32_t count) {
  std::string value;
  put_u32(value, count);
  impl_->staged->writes.Put(count_key_of(id), value);
  impl_->staged->has_count = true;
}

bool Journal::has_staged() const {
  return impl_->staged->writes.Count() > 0;
}

bool Journal::staged_needs_sync() const {
  return impl_->staged->has_put;
}

bool Journal::staged_is_awaited() const {
  return impl_->staged->has_put || impl_->staged->has_count;
}

std::shared_ptr<Journal::Batch> Journal::take_staged() {
  std::shared_ptr<Batch> batch = std::move(impl_->staged);
  impl_->staged = std::make_unique<Batch>();
  return batch;
}

bool Journal::write(Batch& batch) {
  rocksdb::WriteOptions options;
  options.sync = batch.has_put;
  const auto status = impl_->db->Write(options, &batch.writes);
  if (!status.ok()) spdlog::error("bus journal: write failed: {}", status.ToString());
  return status.ok();
}

}  // namespace intercomm::bus
