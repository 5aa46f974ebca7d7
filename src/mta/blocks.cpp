// Blocks: block_user, unblock_user, list_blocks. A user's blocks are one
// ordered index (bucket `block`, key the user, entries the users blocked):
// one atomic write per change. Every change is signalled to every gateway,
// which checks blocks before accepting a message (gateway/blocks.hpp).
#include "mta/jobs.hpp"

#include "bus/topology.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

namespace {

using jobs::BlockUser;

Result<std::vector<std::string>> blocks_of(Context& context, const std::string& user) {
  auto page = context.store.range(
      store::kBlocks, user, store::RangeQuery{std::nullopt, std::nullopt, BlockUser::kMaxBlocks, store::Order::ascending});
  if (!page) return unavailable(page.error());
  return std::move(page->entries);
}

// Tells every gateway to forget what it knew of `user`'s blocks, and waits
// for the broker to have it in their queues before the change is answered.
void signal_blocks_changed(Context& context, const std::string& user) {
  bus::Envelope signal = jobs::signal(user, json::object{{"type", "blocks"}, {"user", user}});
  signal.routing_key = std::string(jobs::kBlocksKey);
  const auto status = bus::publish_and_wait(context.bus, bus::kLiveExchange, std::move(signal),
                                            context.options.publish_timeout);
  if (status != bus::PublishStatus::confirmed && status != bus::PublishStatus::unroutable) {
    spdlog::warn("mta: the blocks of {} changed and gateways could not be told ({}); they learn it within "
                 "their cache's lifetime",
                 user, bus::to_string(status));
  }
}

}  // namespace

JobResult block_user(Context& context, const json::object& params) {
  auto job = BlockUser::decode(params);
  if (!job) return job.error();
  auto existing = blocks_of(context, job->user);
  if (!existing) return existing.error();
  if (std::find(existing->begin(), existing->end(), job->other) == existing->end()) {
    if (existing->size() >= BlockUser::kMaxBlocks) {
      return Error::of(ErrorCode::conflict,
                       fmt::format("blocks: at most {} per user; unblock someone first", BlockUser::kMaxBlocks));
    }
    if (auto added = context.store.index_add(store::kBlocks, job->user, job->other); !added) {
      return unavailable(added.error());
    }
  }
  signal_blocks_changed(context, job->user);
  return json::object{{"user", job->user}, {"blocked", job->other}};
}

JobResult unblock_user(Context& context, const json::object& params) {
  auto job = jobs::UnblockUser::decode(params);
  if (!job) return job.error();
  auto removed = context.store.index_remove(store::kBlocks, job->user, job->other);
  if (!removed) return unavailable(removed.error());
  signal_blocks_changed(context, job->user);
  return json::object{{"user", job->user}, {"unblocked", job->other}, {"removed", *removed}};
}

JobResult list_blocks(Context& context, const json::object& params) {
  auto job = jobs::ListBlocks::decode(params);
  if (!job) return job.error();
  auto blocks = blocks_of(context, job->user);
  if (!blocks) return blocks.error();
  json::array users;
  for (auto& user : *blocks) users.emplace_back(std::move(user));
  return json::object{{"blocks", std::move(users)}};
}

}  // namespace intercomm::mta::detail
