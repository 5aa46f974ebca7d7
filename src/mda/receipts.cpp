// Delivery receipts: see receipts.hpp.
#include "mda/receipts.hpp"

#include "bus/topology.hpp"
#include "jobs/jobs.hpp"
#include "store/buckets.hpp"

#include <spdlog/spdlog.h>

namespace intercomm::mda {

namespace json = boost::json;

void record_delivered(store::Store& store, bus::Bus& bus, const core::Message& message,
                      std::optional<std::uint64_t> sender_seq, std::chrono::milliseconds publish_timeout) {
  if (message.sender == message.receiver || !message.retracted_at.empty()) return;
  const std::string at = core::format_rfc3339(std::chrono::system_clock::now());
  auto first = store.put_if_absent(store::kDelivered, message.message_id, at);
  if (!first) {
    spdlog::warn("mda: the delivery receipt of {} was not kept: {}", message.message_id, first.error().message);
    return;
  }
  if (!*first) return;  // told already
  if (!sender_seq) {
    auto seq = store.inbox_seq(message.sender, message.message_id);
    if (!seq || !*seq) return;
    sender_seq = **seq;
  }
  bus.publish(bus::kLiveExchange,
              jobs::signal(message.sender, json::object{{"type", "delivered"},
                                                        {"message_id", message.message_id},
                                                        {"seq", *sender_seq},
                                                        {"at", at}}),
              publish_timeout, [](bus::PublishStatus) {});  // a signal: the sender may be offline
}

}  // namespace intercomm::mda
