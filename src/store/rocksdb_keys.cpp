// The RocksDB backend's keys and its one range walk by seq.
#include "store/rocksdb_keys.hpp"

#include "store/buckets.hpp"

#include <fmt/core.h>

#include <limits>
#include <memory>

namespace intercomm::store::rocks {

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

std::string big_endian(std::uint64_t value) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xFF);
    value >>= 8;
  }
  return out;
}

std::uint64_t from_big_endian(std::string_view bytes) {
  std::uint64_t value = 0;
  for (char byte : bytes.substr(0, 8)) value = (value << 8) | static_cast<unsigned char>(byte);
  return value;
}

std::string pair_key(std::string_view user, std::string_view other) {
  std::string out;
  append_component(out, user);
  out.append(other);
  return out;
}

namespace {

// The component (written by append_component) at `at` in `key`, moving `at`
// past it; none when the key ends first.
std::optional<std::string_view> next_component(std::string_view key, std::size_t& at) {
  if (key.size() - at < 4) return std::nullopt;
  std::size_t size = 0;
  for (int byte = 0; byte < 4; ++byte) size = (size << 8) | static_cast<unsigned char>(key[at + byte]);
  at += 4;
  if (key.size() - at < size) return std::nullopt;
  at += size;
  return key.substr(at - size, size);
}

}  // namespace

std::optional<std::string_view> hint_prefix_of(std::string_view key) {
  if (key.empty() || (key[0] != 'i' && key[0] != 'v')) return std::nullopt;
  std::size_t at = 1;
  const auto type = next_component(key, at);
  const auto name = type ? next_component(key, at) : std::nullopt;
  if (!name) return std::nullopt;
  if (key[0] == 'i') {  // an index: entries appended by seq
    if (!next_component(key, at)) return std::nullopt;
    return key.substr(0, at);
  }
  if (*type != kBucketType) return std::nullopt;
  if (*name == kMessages.name || *name == kDelivered.name) return key.substr(0, at);  // ids only grow
  if (*name == kInboxSeq.name) {  // the user's component, then growing ids
    if (!next_component(key, at)) return std::nullopt;
    return key.substr(0, at);
  }
  if (*name == kInboxLast.name || *name == kConversationMeta.name) return key;  // rewritten in place
  return std::nullopt;
}

namespace {

class HintPrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "intercomm.HintPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const auto prefix = hint_prefix_of(std::string_view(key.data(), key.size()));
    return prefix ? rocksdb::Slice(prefix->data(), prefix->size()) : key;
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return hint_prefix_of(std::string_view(key.data(), key.size())).has_value();
  }
};

}  // namespace

std::shared_ptr<const rocksdb::SliceTransform> insert_hint_prefix() {
  static const auto transform = std::make_shared<const HintPrefix>();
  return transform;
}

core::Error failure(const rocksdb::Status& status, std::string_view what) {
  return core::Error::of(core::ErrorCode::unavailable,
                         fmt::format("store: rocksdb {} failed: {}", what, status.ToString()));
}

PrefixIterator::PrefixIterator(rocksdb::DB& db, std::string prefix) : prefix_(std::move(prefix)) {
  lower_slice_ = rocksdb::Slice(prefix_);
  options_.iterate_lower_bound = &lower_slice_;
  if (auto upper = prefix_successor(prefix_)) {
    upper_ = std::move(*upper);
    upper_slice_ = rocksdb::Slice(upper_);
    options_.iterate_upper_bound = &upper_slice_;
  }
  it_.reset(db.NewIterator(options_));
}

core::Result<InboxPage> seq_range(rocksdb::DB& db, const std::string& prefix, const InboxQuery& query,
                                  const std::function<std::string(std::string_view)>& message_id_of) {
  const std::uint64_t low = query.after_seq.value_or(0);  // exclusive
  const std::uint64_t high = query.before_seq.value_or(std::numeric_limits<std::uint64_t>::max());
  InboxPage page;
  if (high <= low + 1) return page;  // no seq fits between the bounds
  PrefixIterator it(db, prefix);
  const auto take = [&]() -> bool {  // false once outside the range
    if (!it.in_prefix() || it.rest().size() != 8) return false;
    const std::uint64_t seq = from_big_endian(it.rest());
    if (seq <= low || seq >= high) return false;
    if (page.entries.size() == query.limit) {
      page.more = true;
      return false;
    }
    page.entries.push_back(InboxEntry{seq, message_id_of(std::string_view(it->value().data(), it->value().size()))});
    return true;
  };
  if (query.order == Order::ascending) {
    for (it->Seek(prefix + big_endian(low + 1)); it->Valid() && take(); it->Next()) {
    }
  } else {
    for (it->SeekForPrev(prefix + big_endian(high - 1)); it->Valid() && take(); it->Prev()) {
    }
  }
  if (!it->status().ok()) return failure(it->status(), "range");
  return page;
}

}  // namespace intercomm::store::rocks
