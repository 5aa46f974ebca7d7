// The RabbitMQ bus over rabbitmq-c.
#pragma once

#include "bus/bus.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace intercomm::bus {

struct AmqpOptions {
  // The nodes of one RabbitMQ cluster, tried in order (from the one after the
  // last that failed) until one takes the connection; back-off only once
  // every one failed.
  std::vector<std::string> urls{"amqp://guest:guest@127.0.0.1:5672/"};
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds rpc_timeout{10000};  // broker round trips: declare, consume, qos
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  std::uint16_t heartbeat_seconds = 10;
};

// One AMQP connection (to any node of `urls`) with one I/O thread that owns
// it (rabbitmq-c is not thread-safe); every Bus call posts to that thread. Channel 1 publishes with
// publisher confirms (many in flight) and carries the reply queue; each
// consumer has its own channel with its own prefetch. On connection loss the
// thread reconnects with exponential back-off, re-declares what was declared,
// re-subscribes consumers and opens a new reply queue; publishes in flight are
// reported `failed`, and settling a delivery of the old connection is a no-op.
// Connecting happens in the background: the call returns at once.
std::unique_ptr<Bus> connect_amqp(AmqpOptions options);

// Waits until `bus` is connected or the timeout passes; true when connected.
bool wait_connected(const Bus& bus, std::chrono::milliseconds timeout);

}  // namespace intercomm::bus
