// Bus pieces shared by every backend: Delivery settlement, status names, waiting.
#include "bus/bus.hpp"

#include <condition_variable>
#include <mutex>

namespace intercomm::bus {

std::string_view to_string(PublishStatus status) noexcept {
  switch (status) {
    case PublishStatus::confirmed: return "confirmed";
    case PublishStatus::unroutable: return "unroutable";
    case PublishStatus::nacked: return "nacked";
    case PublishStatus::failed: return "failed";
    case PublishStatus::timeout: return "timeout";
    case PublishStatus::unknown: return "unknown";
  }
  return "unknown";
}

Delivery::Delivery(Envelope message, bool redelivered, std::uint32_t delivery_count, std::uint64_t tag,
                   std::uint64_t generation, std::shared_ptr<AckSink> sink)
    : message_(std::move(message)),
      redelivered_(redelivered),
      delivery_count_(delivery_count),
      tag_(tag),
      generation_(generation),
      sink_(std::move(sink)) {}

Delivery::~Delivery() {
  if (!settled_) reject(true);
}

void Delivery::ack() {
  if (settled_) return;
  settled_ = true;
  sink_->settle(tag_, generation_, true, false);
}

void Delivery::reject(bool requeue) {
  if (settled_) return;
  settled_ = true;
  sink_->settle(tag_, generation_, false, requeue);
}

PublishStatus publish_and_wait(Bus& bus, std::string_view exchange, Envelope message,
                               Clock::duration timeout) {
  std::vector<Envelope> one;
  one.push_back(std::move(message));
  return bus.publish_all_and_wait(exchange, std::move(one), timeout).front();
}

std::vector<PublishStatus> Bus::publish_all_and_wait(std::string_view exchange, std::vector<Envelope> messages,
                                                     Clock::duration timeout) {
  return wait_for_outcomes(messages.size(), [&](std::size_t i, PublishCallback done) {
    publish(exchange, std::move(messages[i]), timeout, std::move(done));
  });
}

std::vector<PublishStatus> Bus::wait_for_outcomes(
    std::size_t count, const std::function<void(std::size_t, PublishCallback)>& publish) {
  struct Outcomes {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<PublishStatus> statuses;
    std::size_t left = 0;
  };
  auto outcomes = std::make_shared<Outcomes>();
  outcomes->statuses.assign(count, PublishStatus::failed);
  outcomes->left = count;
  for (std::size_t i = 0; i < count; ++i) {
    publish(i, [outcomes, i](PublishStatus status) {
      std::lock_guard lock(outcomes->mu);
      outcomes->statuses[i] = status;
      if (--outcomes->left == 0) outcomes->cv.notify_all();
    });
  }
  std::unique_lock lock(outcomes->mu);
  outcomes->cv.wait(lock, [&] { return outcomes->left == 0; });
  return outcomes->statuses;
}

}  // namespace intercomm::bus
