// The gateway's cache of block lists: see blocks.hpp.
#include "gateway/blocks.hpp"

#include "bus/topology.hpp"
#include "jobs/jobs.hpp"

#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <optional>

namespace intercomm::gateway {

namespace json = boost::json;

BlockList::BlockList(bus::Bus& bus, BlockListOptions options)
    : bus_(bus), options_(options), retry_thread_([this] { run_retries(); }) {}

BlockList::~BlockList() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  retry_cv_.notify_all();
  if (retry_thread_.get_id() == std::this_thread::get_id()) {
    retry_thread_.detach();  // the last owner let go on the retry thread itself
  } else {
    retry_thread_.join();
  }
}

void BlockList::run_retries() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (retries_.empty()) {
      retry_cv_.wait(lock);
      continue;
    }
    const auto due = retries_.begin()->first;
    if (std::chrono::steady_clock::now() < due) {
      retry_cv_.wait_until(lock, due);
      continue;
    }
    const std::string receiver = retries_.begin()->second;
    retries_.erase(retries_.begin());
    lock.unlock();
    lookup(receiver);
    lock.lock();
  }
}

void BlockList::start(std::function<void(core::Result<void>)> done) {
  bus_.bind_reply_queue(std::string(bus::kLiveExchange), std::string(jobs::kBlocksKey), true,
                        [done = std::move(done)](core::Result<void> bound) {
                          if (!bound) spdlog::warn("gateway: cannot hear block changes: {}", bound.error().message);
                          if (done) done(std::move(bound));
                        });
}

void BlockList::check(const std::string& receiver, const std::string& sender,
                      std::function<void(core::Result<bool>)> done) {
  std::optional<bool> known;
  {
    std::lock_guard lock(mu_);
    auto found = entries_.find(receiver);
    if (found != entries_.end() && found->second.expires > std::chrono::steady_clock::now()) {
      known = found->second.blocked.contains(sender);
    } else {
      if (found != entries_.end()) entries_.erase(found);
      auto& pending = pending_[receiver];
      pending.waiters.emplace_back(sender, std::move(done));
      if (pending.waiters.size() > 1) return;  // an RPC for this receiver is on its way
      ++lookups_;
    }
  }
  if (known) return done(*known);
  {
    std::lock_guard lock(mu_);
    pending_[receiver].give_up = std::chrono::steady_clock::now() + options_.patience;
  }
  lookup(receiver);
}

void BlockList::lookup(const std::string& receiver) {
  if (rpc_ == nullptr) return finished(receiver, core::Error::of(core::ErrorCode::unavailable, "no RPC client"));
  rpc_->call(std::string(jobs::ListBlocks::name), jobs::ListBlocks{receiver}.encode(), options_.rpc_timeout, {},
             [self = shared_from_this(), receiver](bus::RpcResult result) {
               if (!result) return self->finished(receiver, result.error());
               self->finished(receiver, jobs::ListBlocks::decode_result(*result));
             });
}

void BlockList::finished(const std::string& receiver, core::Result<std::vector<std::string>> blocks) {
  Pending pending;
  {
    std::lock_guard lock(mu_);
    auto found = pending_.find(receiver);
    if (found == pending_.end()) return;
    const bool transient = !blocks && (blocks.error().code == core::ErrorCode::unavailable ||
                                       blocks.error().code == core::ErrorCode::timeout);
    const auto now = std::chrono::steady_clock::now();
    if (transient && now < found->second.give_up && !stopping_) {
      // The bus or the MTA is down: ask again in a moment, as a send waits for the broker.
      retries_.emplace(std::min(now + std::chrono::milliseconds(250), found->second.give_up), receiver);
      retry_cv_.notify_all();
      return;
    }
    pending = std::move(found->second);
    pending_.erase(found);
    if (blocks && !pending.forgotten) {
      if (entries_.size() >= options_.max_entries) entries_.clear();
      entries_[receiver] = Entry{std::set<std::string>(blocks->begin(), blocks->end()),
                                 std::chrono::steady_clock::now() + options_.ttl};
    }
  }
  for (auto& [sender, done] : pending.waiters) {
    if (!blocks) {
      done(blocks.error());
    } else {
      done(std::find(blocks->begin(), blocks->end(), sender) != blocks->end());
    }
  }
}

bool BlockList::deliver(bus::Envelope& envelope) {
  if (envelope.routing_key != jobs::kBlocksKey) return false;
  boost::system::error_code ec;
  const auto body = json::parse(envelope.body, ec);
  const auto* user = !ec && body.is_object() ? body.as_object().if_contains("user") : nullptr;
  if (user != nullptr && user->is_string()) {
    forget(std::string(user->get_string()));
  } else {
    forget_all();  // a signal we cannot read: be safe
  }
  return true;
}

void BlockList::forget(const std::string& user) {
  std::lock_guard lock(mu_);
  entries_.erase(user);
  if (auto found = pending_.find(user); found != pending_.end()) found->second.forgotten = true;
}

void BlockList::forget_all() {
  std::lock_guard lock(mu_);
  entries_.clear();
  for (auto& [user, pending] : pending_) pending.forgotten = true;
}

std::size_t BlockList::lookups() const {
  std::lock_guard lock(mu_);
  return lookups_;
}

}  // namespace intercomm::gateway
