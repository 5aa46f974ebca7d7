// The RocksDB backend's key layout, shared by its files (internal to
// src/store/): one column family, every key a kind letter and
// length-prefixed components, so any bytes are safe in any component and
// one prefix never runs into another.
#pragma once

#include "core/errors.hpp"
#include "store/store.hpp"

#include <rocksdb/db.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace intercomm::store::rocks {

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

// A page of the entries `prefix` + big_endian(seq) -> value, by seq, as
// Store::inbox_range pages; `message_id_of` reads the message id from a value.
core::Result<InboxPage> seq_range(rocksdb::DB& db, const std::string& prefix, const InboxQuery& query,
                                  const std::function<std::string(std::string_view)>& message_id_of);

}  // namespace intercomm::store::rocks
