// Redis Cluster routing: CRC16 slots, CLUSTER SLOTS, redirects and retries.
#include "store/redis_cluster.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>

#include <charconv>
#include <mutex>
#include <optional>
#include <thread>

namespace intercomm::store::redis {

using core::Error;
using core::ErrorCode;

namespace {

constexpr std::array<std::uint16_t, 256> kCrcTable = [] {
  std::array<std::uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    auto crc = static_cast<std::uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[i] = crc;
  }
  return table;
}();

bool is_transient_cluster_error(std::string_view error) {
  return error.starts_with("TRYAGAIN") || error.starts_with("CLUSTERDOWN") || error.starts_with("LOADING") ||
         error.starts_with("MASTERDOWN");
}

}  // namespace

std::uint16_t crc16(std::string_view bytes) noexcept {
  std::uint16_t crc = 0;
  for (unsigned char byte : bytes) {
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrcTable[((crc >> 8) ^ byte) & 0xFF]);
  }
  return crc;
}

int key_slot(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) & (kSlots - 1);
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381"
std::optional<Redirect> parse_redirect(std::string_view error) {
  Redirect redirect;
  if (error.starts_with("MOVED ")) {
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    redirect.ask = true;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = error.find(' ');
  const auto colon = error.rfind(':');
  if (space == std::string_view::npos || colon == std::string_view::npos || colon < space)
    return std::nullopt;
  const auto slot = std::from_chars(error.data(), error.data() + space, redirect.slot);
  redirect.host = std::string(error.substr(space + 1, colon - space - 1));
  const auto port = std::from_chars(error.data() + colon + 1, error.data() + error.size(), redirect.port);
  if (slot.ec != std::errc() || port.ec != std::errc() || redirect.slot < 0 || redirect.slot >= kSlots ||
      redirect.port <= 0 || redirect.port > 65535 || redirect.host.empty()) {
    return std::nullopt;
  }
  return redirect;
}

std::vector<SlotRange> parse_cluster_slots(const redisReply* reply, const std::string& asked_host) {
  std::vector<SlotRange> ranges;
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY) return ranges;
  const auto integer = [](const redisReply* r) -> std::optional<long long> {
    if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return std::nullopt;
    return r->integer;
  };
  for (std::size_t i = 0; i < reply->elements; ++i) {
    // [first, last, [host, port, id...], [replica...]...]
    const redisReply* range = reply->element[i];
    if (range == nullptr || range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
    const auto first = integer(range->element[0]);
    const auto last = integer(range->element[1]);
    const redisReply* master = range->element[2];
    if (!first || !last || *first < 0 || *last >= kSlots || *first > *last) continue;
    if (master == nullptr || master->type != REDIS_REPLY_ARRAY || master->elements < 2) continue;
    const redisReply* host = master->element[0];
    const auto port = integer(master->element[1]);
    if (host == nullptr || host->type != REDIS_REPLY_STRING || !port || *port <= 0 || *port > 65535) continue;
    std::string name(host->str, host->len);
    if (name.empty()) name = asked_host;  // "": the node that answered
    ranges.push_back(SlotRange{static_cast<int>(*first), static_cast<int>(*last), std::move(name),
                               static_cast<int>(*port)});
  }
  return ranges;
}

ClusterRouter::ClusterRouter(ClusterOptions options) : options_(std::move(options)) {}

std::shared_ptr<NodePool> ClusterRouter::pool_for(const std::string& host, int port) {
  const std::string address = host + ":" + std::to_string(port);
  std::unique_lock lock(mu_);
  auto& pool = nodes_[address];
  if (!pool) pool = std::make_shared<NodePool>(host, port, options_.timeout, options_.pool_size);
  return pool;
}

std::shared_ptr<NodePool> ClusterRouter::node_of(int slot) {
  std::shared_lock lock(mu_);
  return slots_[static_cast<std::size_t>(slot)];
}

std::string ClusterRouter::master_of(int slot) {
  auto node = node_of(slot);
  return node ? node->address() : std::string();
}

core::Result<void> ClusterRouter::refresh() {
  std::vector<std::pair<std::string, int>> candidates;
  {
    std::shared_lock lock(mu_);
    for (const auto& [address, pool] : nodes_) candidates.emplace_back(pool->host(), pool->port());
  }
  candidates.insert(candidates.end(), options_.seeds.begin(), options_.seeds.end());

  std::string last_error = "no seed nodes";
  for (const auto& [host, port] : candidates) {
    auto pool = pool_for(host, port);
    auto replies = pool->pipeline({{"CLUSTER", "SLOTS"}});
    if (!replies) {
      last_error = replies.error().message;
      continue;
    }
    const auto ranges = parse_cluster_slots((*replies)[0].get(), host);
    if (ranges.empty()) {
      last_error = fmt::format("{} has no slot map: {}", pool->address(), error_text((*replies)[0]));
      continue;
    }
    std::array<std::shared_ptr<NodePool>, kSlots> slots{};
    for (const auto& range : ranges) {
      auto master_pool = pool_for(range.host, range.port);
      for (int slot = range.first; slot <= range.last; ++slot) slots[static_cast<std::size_t>(slot)] = master_pool;
    }
    std::unique_lock lock(mu_);
    slots_ = std::move(slots);
    return {};
  }
  return Error::of(ErrorCode::unavailable, "store: Redis Cluster slot map unavailable: " + last_error);
}

core::Result<std::vector<Reply>> ClusterRouter::pipeline(std::string_view routing_key,
                                                         const std::vector<Command>& commands) {
  bool degraded = false;
  return route(routing_key, commands, std::nullopt, degraded);
}

core::Result<std::vector<Reply>> ClusterRouter::durable_pipeline(std::string_view routing_key,
                                                                 const std::vector<Command>& commands,
                                                                 std::chrono::milliseconds wait_timeout,
                                                                 bool& degraded) {
  return route(routing_key, commands, wait_timeout, degraded);
}

core::Result<std::vector<Reply>> ClusterRouter::route(std::string_view routing_key,
                                                      const std::vector<Command>& commands,
                                                      std::optional<std::chrono::milliseconds> wait_timeout,
                                                      bool& degraded) {
  const int slot = key_slot(routing_key);
  const auto deadline = std::chrono::steady_clock::now() + options_.retry_budget;
  auto backoff = std::chrono::milliseconds(50);
  const auto wait_and_refresh = [&] {
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    (void)refresh();
  };

  std::shared_ptr<NodePool> node = node_of(slot);
  bool asking = false;
  std::string last_error = "no node serves the slot";
  while (true) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Error::of(ErrorCode::unavailable,
                       fmt::format("store: Redis Cluster slot {} unavailable: {}", slot, last_error));
    }
    if (!node) {
      wait_and_refresh();
      node = node_of(slot);
      continue;
    }
    std::vector<Command> sent;
    if (asking) sent.push_back({"ASKING"});
    sent.insert(sent.end(), commands.begin(), commands.end());
    auto replies =
        wait_timeout ? node->durable_pipeline(sent, *wait_timeout, degraded) : node->pipeline(sent);
    if (!replies) {
      last_error = replies.error().message;
      wait_and_refresh();
      node = node_of(slot);
      asking = false;
      continue;
    }
    if (asking) replies->erase(replies->begin());
    asking = false;

    std::string_view error;
    for (const auto& reply : *replies) {
      if (!(error = error_text(reply)).empty()) break;
    }
    if (auto redirect = parse_redirect(error)) {
      auto target = pool_for(redirect->host, redirect->port);
      if (redirect->ask) {
        asking = true;
      } else {
        std::unique_lock lock(mu_);
        slots_[static_cast<std::size_t>(redirect->slot)] = target;
      }
      node = std::move(target);
      continue;
    }
    if (is_transient_cluster_error(error)) {
      last_error = std::string(error);
      wait_and_refresh();
      node = node_of(slot);
      continue;
    }
    return replies;
  }
}

}  // namespace intercomm::store::redis
