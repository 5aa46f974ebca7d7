// The embedded store: RocksDB in a local folder.
#pragma once

#include "store/store.hpp"

#include <memory>
#include <string>

namespace intercomm::store {

struct RocksOptions {
  std::string path;
  // Sync the WAL on every write (durable against power loss). Off: durable
  // against a process crash only.
  bool sync = true;
};

// Opens (creating if needed) the database at options.path. One process at a
// time: a folder locked by another process is refused with a clear error.
// Values and index entries share one column family under distinct key
// prefixes, with length-prefixed components so any bytes are safe.
core::Result<std::unique_ptr<Store>> open_rocksdb(const RocksOptions& options);

}  // namespace intercomm::store
