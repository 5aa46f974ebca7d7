// Delivery receipts: see receipts.hpp.
#include "mda/receipts.hpp"

#include "bus/topology.hpp"
#include "store/buckets.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace intercomm::mda {

namespace json = boost::json;

namespace {

// Logs each receipt that could not be kept; true when all were.
bool all_kept(std::span<const Receipt> receipts, const std::vector<core::Result<bool>>& outcomes) {
  bool kept = true;
  for (std::size_t i = 0; i < receipts.size(); ++i) {
    if (outcomes[i]) continue;
    spdlog::warn("mda: the delivery receipt of {} was not kept: {}", receipts[i].message_id,
                 outcomes[i].error().message);
    kept = false;
  }
  return kept;
}

}  // namespace

std::vector<core::Result<bool>> record_delivered(store::Store& store, bus::Bus& bus,
                                                 std::span<const Receipt> receipts,
                                                 std::chrono::milliseconds publish_timeout) {
  std::vector<core::Result<bool>> outcomes(receipts.size(), false);
  if (receipts.empty()) return outcomes;  // most batches when nobody is online
  const std::string at = core::format_rfc3339(std::chrono::system_clock::now());
  std::vector<std::size_t> kept;  // receipts[kept[k]] is entries[k]
  std::vector<store::Store::KeyValue> entries;
  for (std::size_t i = 0; i < receipts.size(); ++i) {
    if (receipts[i].sender == receipts[i].receiver) continue;  // a note to oneself
    kept.push_back(i);
    entries.push_back({receipts[i].message_id, at});
  }
  // One write for the batch (put_if_absent: the first delivery wins).
  auto firsts = store.put_if_absent_many(store::kDelivered, entries);
  for (std::size_t k = 0; k < kept.size(); ++k) {
    const Receipt& receipt = receipts[kept[k]];
    outcomes[kept[k]] = firsts[k];
    if (!firsts[k] || !*firsts[k]) continue;  // not kept, or told already
    auto sender_seq = receipt.sender_seq;
    if (!sender_seq) {
      auto seq = store.inbox_seq(receipt.sender, receipt.message_id);
      if (!seq || !*seq) continue;  // kept (GET /v1/messages/{id} shows it); not signalled
      sender_seq = **seq;
    }
    bus.publish(bus::kLiveExchange,
                jobs::signal(receipt.sender, json::object{{"type", "delivered"},
                                                          {"message_id", receipt.message_id},
                                                          {"seq", *sender_seq},
                                                          {"at", at}}),
                publish_timeout, [](bus::PublishStatus) {});  // a signal: the sender may be offline
  }
  return outcomes;
}

void record_delivered(store::Store& store, bus::Bus& bus, std::span<const DeliveredMessage> messages,
                      std::chrono::milliseconds publish_timeout) {
  std::vector<Receipt> receipts;
  for (const auto& [message, sender_seq] : messages) {
    if (!message->retracted_at.empty()) continue;
    receipts.push_back({message->message_id, message->sender, message->receiver, sender_seq});
  }
  all_kept(receipts, record_delivered(store, bus, receipts, publish_timeout));
}

core::Result<json::value> record_all(store::Store& store, bus::Bus& bus, const jobs::RecordDelivered& job,
                                     std::chrono::milliseconds publish_timeout) {
  std::vector<Receipt> receipts;
  for (const auto& item : job.messages) {
    receipts.push_back({item.message_id, item.sender, item.receiver, item.sender_seq});
  }
  const auto outcomes = record_delivered(store, bus, receipts, publish_timeout);
  if (!all_kept(receipts, outcomes))
    return core::Error::of(core::ErrorCode::unavailable, "store unavailable; retry");
  const auto signalled =
      std::count_if(outcomes.begin(), outcomes.end(), [](const auto& outcome) { return *outcome; });
  return json::value(json::object{{"signalled", static_cast<std::uint64_t>(signalled)}});
}

}  // namespace intercomm::mda
