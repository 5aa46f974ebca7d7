// --store URL -> backend.
#include "store/open.hpp"

#include "store/redis_store.hpp"
#include "store/rocksdb_store.hpp"

#include <fmt/core.h>

namespace intercomm::store {

core::Result<std::unique_ptr<Store>> open_store(std::string_view url) {
  if (url.starts_with("rocksdb:") && url.size() > 8)
    return open_rocksdb(RocksOptions{std::string(url.substr(8)), true});
  if (url.starts_with("redis://") || url.starts_with("redis-cluster://")) {
    auto options = parse_redis_url(url);
    if (!options) return options.error();
    return open_redis(*options);
  }
  return core::Error::of(
      core::ErrorCode::invalid_params,
      fmt::format("'{}': must be rocksdb:PATH, redis://HOST:PORT or redis-cluster://H:P,H:P,...", url));
}

}  // namespace intercomm::store
