// The store: Riak's model (bucket type -> bucket -> key -> value) plus ordered indexes.
#pragma once

#include "core/errors.hpp"

#include <cstddef>
#include <optional>
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
  // put_if_absent, and when it wrote, also adds `entry` to each index in
  // `indexes` (bucket, index_key). Backends that can do it in one atomic write
  // do (RocksDB: one synced WriteBatch, so one sync instead of 1 + N); the
  // others do the steps in order. Either way a retry after a failure is safe:
  // callers re-add the index entries when this returns false.
  struct IndexEntry {
    Bucket bucket;
    std::string index_key;
  };
  virtual core::Result<bool> put_if_absent_indexed(const Bucket& bucket, std::string_view key,
                                                   std::string_view value,
                                                   const std::vector<IndexEntry>& indexes,
                                                   std::string_view entry);

  // True when something was removed.
  virtual core::Result<bool> remove(const Bucket& bucket, std::string_view key) = 0;

  // Adds `entry` to the ordered index `index_key` of `bucket` (idempotent).
  virtual core::Result<void> index_add(const Bucket& bucket, std::string_view index_key,
                                       std::string_view entry) = 0;
  virtual core::Result<bool> index_remove(const Bucket& bucket, std::string_view index_key,
                                          std::string_view entry) = 0;
  virtual core::Result<Page> range(const Bucket& bucket, std::string_view index_key,
                                   const RangeQuery& query) = 0;

  // True when the backend answers (for readiness checks).
  virtual bool ping() = 0;
};

}  // namespace intercomm::store
