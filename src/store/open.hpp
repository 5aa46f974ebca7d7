// Opens the store a --store URL names.
#pragma once

#include "store/store.hpp"

#include <memory>
#include <string_view>

namespace intercomm::store {

// rocksdb:PATH | redis://HOST:PORT | redis-cluster://HOST:PORT,HOST:PORT,...
// A cluster acknowledges writes once one replica has them (WAIT 1).
core::Result<std::unique_ptr<Store>> open_store(std::string_view url);

}  // namespace intercomm::store
