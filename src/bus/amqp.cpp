// RabbitMQ backend: the Bus interface over one AmqpCore (amqp_core.hpp).
#include "bus/amqp.hpp"

#include "bus/amqp_core.hpp"

#include <spdlog/spdlog.h>

#include <thread>

namespace intercomm::bus {

using detail::AmqpCore;

namespace {

class AmqpSubscription : public Subscription {
 public:
  AmqpSubscription(std::shared_ptr<AmqpCore> core, std::uint64_t id) : core_(std::move(core)), id_(id) {}
  ~AmqpSubscription() override { core_->cancel_consumer(id_); }
  void pause() override { core_->pause_consumer(id_); }
  void resume() override { core_->resume_consumer(id_); }

 private:
  std::shared_ptr<AmqpCore> core_;
  std::uint64_t id_;
};

class AmqpBus : public Bus {
 public:
  explicit AmqpBus(AmqpOptions options) : core_(std::make_shared<AmqpCore>(std::move(options))) {
    core_->start();
  }
  ~AmqpBus() override { core_->stop(); }

  core::Result<void> declare_queue(const QueueSpec& spec) override { return core_->declare_queue(spec); }

  core::Result<void> declare_exchange(const ExchangeSpec& spec) override {
    return core_->declare_exchange(spec);
  }

  core::Result<void> unbind(std::string_view source, std::string_view destination, std::string_view key,
                            bool to_exchange) override {
    return core_->unbind(std::string(source), std::string(destination), std::string(key), to_exchange);
  }

  void publish(std::string_view exchange, Envelope message, Clock::duration timeout,
               PublishCallback done) override {
    core_->publish(std::string(exchange), std::move(message), timeout, std::move(done));
  }

  void publish_reply(Envelope message) override { core_->publish_reply(std::move(message)); }

  std::unique_ptr<Subscription> consume(const std::string& queue, std::uint16_t prefetch,
                                        DeliveryHandler handler) override {
    auto id = core_->add_consumer(queue, prefetch, std::move(handler));
    if (!id) {
      spdlog::warn("bus: cannot consume {}: {}", queue, id.error().message);
      return nullptr;
    }
    return std::make_unique<AmqpSubscription>(core_, *id);
  }

  core::Result<void> open_reply_queue(std::function<void(Envelope)> on_reply) override {
    return core_->open_reply_queue(std::move(on_reply));
  }

  std::string reply_queue() const override { return core_->reply_queue(); }

  void bind_reply_queue(std::string exchange, std::string key, bool bind,
                        std::function<void(core::Result<void>)> done) override {
    core_->bind_reply_queue(std::move(exchange), std::move(key), bind, std::move(done));
  }

  bool connected() const override { return core_->connected(); }
  void on_reconnected(std::function<void()> callback) override { core_->on_reconnected(std::move(callback)); }
  core::Result<std::uint64_t> queue_depth(const std::string& queue) override { return core_->queue_depth(queue); }

 private:
  std::shared_ptr<AmqpCore> core_;
};

}  // namespace

std::unique_ptr<Bus> connect_amqp(AmqpOptions options) {
  return std::make_unique<AmqpBus>(std::move(options));
}

bool wait_connected(const Bus& bus, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!bus.connected()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace intercomm::bus
