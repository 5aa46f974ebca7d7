// Delivery receipts: see receipts.hpp.
#include "mda/receipts.hpp"

#include "bus/topology.hpp"
#include "store/buckets.hpp"

#include <spdlog/spdlog.h>

namespace intercomm::mda {

namespace json = boost::json;

core::Result<bool> record_delivered(store::Store& store, bus::Bus& bus, const Receipt& receipt,
                                    std::chrono::milliseconds publish_timeout) {
  if (receipt.sender == receipt.receiver) return false;
  const std::string at = core::format_rfc3339(std::chrono::system_clock::now());
  auto first = store.put_if_absent(store::kDelivered, receipt.message_id, at);
  if (!first) return first.error();
  if (!*first) return false;  // told already
  auto sender_seq = receipt.sender_seq;
  if (!sender_seq) {
    auto seq = store.inbox_seq(receipt.sender, receipt.message_id);
    if (!seq || !*seq) return true;  // kept (GET /v1/messages/{id} shows it); not signalled
    sender_seq = **seq;
  }
  bus.publish(bus::kLiveExchange,
              jobs::signal(receipt.sender, json::object{{"type", "delivered"},
                                                        {"message_id", receipt.message_id},
                                                        {"seq", *sender_seq},
                                                        {"at", at}}),
              publish_timeout, [](bus::PublishStatus) {});  // a signal: the sender may be offline
  return true;
}

void record_delivered(store::Store& store, bus::Bus& bus, const core::Message& message,
                      std::optional<std::uint64_t> sender_seq, std::chrono::milliseconds publish_timeout) {
  if (!message.retracted_at.empty()) return;
  auto recorded = record_delivered(store, bus, {message.message_id, message.sender, message.receiver, sender_seq},
                                   publish_timeout);
  if (!recorded) {
    spdlog::warn("mda: the delivery receipt of {} was not kept: {}", message.message_id,
                 recorded.error().message);
  }
}

core::Result<json::value> record_all(store::Store& store, bus::Bus& bus, const jobs::RecordDelivered& job,
                                     std::chrono::milliseconds publish_timeout) {
  std::uint64_t signalled = 0;
  for (const auto& item : job.messages) {
    auto recorded = record_delivered(store, bus, {item.message_id, item.sender, item.receiver, item.sender_seq},
                                     publish_timeout);
    if (!recorded) {
      spdlog::warn("mda: the delivery receipt of {} was not kept: {}", item.message_id, recorded.error().message);
      return core::Error::of(core::ErrorCode::unavailable, "store unavailable; retry");
    }
    if (*recorded) ++signalled;
  }
  return json::value(json::object{{"signalled", signalled}});
}

}  // namespace intercomm::mda
