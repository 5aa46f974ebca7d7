// Opens the store a --store URL names.
#pragma once

#include "store/store.hpp"

#include <memory>
#include <string_view>

namespace intercomm::store {

// rocksdb:PATH | redis://HOST:PORT | redis-cluster://HOST:PORT,HOST:PORT,...
// (Redis: ?durability=local|replica, see RedisOptions.)
core::Result<std::unique_ptr<Store>> open_store(std::string_view url);

}  // namespace intercomm::store
