// The in-process bus for `intercomm run`: RabbitMQ's semantics with no broker.
#pragma once

#include "bus/bus.hpp"

#include <memory>

namespace intercomm::bus {

class InprocBroker;

// A broker living in this process. Every connection made from it sees the same
// exchanges, queues and bindings: direct routing, competing consumers with
// prefetch, acks and requeue with redelivery counts, mandatory publishes that
// report `unroutable`, per-message expiration, dead-lettering to
// inter_comm.dlx -> dead_letters (rejected, expired, or past the delivery
// limit), and exclusive reply queues that vanish with their connection.
// Publishes are confirmed once the message is in every bound queue.
// Messages live in memory: nothing survives the process.
std::shared_ptr<InprocBroker> make_inproc_broker();

// Messages in `queue` not yet acked (ready + in hand): lets `intercomm run`
// drain its queues before a clean exit.
std::size_t inproc_pending(InprocBroker& broker, const std::string& queue);

// A connection to `broker`; callbacks and deliveries arrive on the broker's
// dispatcher thread.
std::unique_ptr<Bus> connect_inproc(std::shared_ptr<InprocBroker> broker);

}  // namespace intercomm::bus
