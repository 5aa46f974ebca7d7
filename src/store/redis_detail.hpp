// The Redis backend's parts (internal to src/store/): the store over an
// executor that runs a pipeline on the node owning a key (redis_store.cpp),
// and how open_redis builds that executor (redis_open.cpp).
#pragma once

#include "core/errors.hpp"
#include "store/redis_node.hpp"
#include "store/store.hpp"

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace intercomm::store::redis_detail {

// Runs a pipeline on the node that owns `routing_key`; for a write (`durable`),
// as NodePool::durable_pipeline does.
using Executor = std::function<core::Result<std::vector<redis::Reply>>(
    std::string_view routing_key, const std::vector<redis::Command>& commands, bool durable)>;

// `cluster`: a message and its inboxes are in different slots, so
// store_messages goes step by step.
std::unique_ptr<Store> make_redis_store(Executor executor, bool cluster);

}  // namespace intercomm::store::redis_detail
