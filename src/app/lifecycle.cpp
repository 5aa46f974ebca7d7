// Stop signals and bus connections of the subcommands.
#include "app/lifecycle.hpp"

#include "bus/amqp.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace intercomm::app {

sigset_t stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

bool wait_connected_or_stop(const bus::Bus& bus, std::chrono::seconds timeout) {
  const sigset_t signals = stop_signals();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!bus.connected()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    const timespec tick{0, 100'000'000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) return false;
  }
  return true;
}

void wait_for_stop() {
  const sigset_t signals = stop_signals();
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("stopping on signal {}", signal);
}

std::unique_ptr<bus::Bus> connect_rabbitmq(const core::Config& config, std::string_view who) {
  bus::AmqpOptions amqp;
  amqp.urls = config.amqp;
  auto connection = bus::connect_amqp(amqp);
  if (!wait_connected_or_stop(*connection, std::chrono::seconds(30))) {
    fmt::print(stderr, "intercomm {}: cannot reach RabbitMQ at {} within 30 s\n", who,
               core::mask_url_passwords(config.amqp));
    return nullptr;
  }
  return connection;
}

}  // namespace intercomm::app
