// The in-process bus for `intercomm run`: RabbitMQ's semantics with no broker.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"

#include <memory>
#include <string>

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

// The same broker with a journal in `journal_path` (RocksDB): a persistent
// message without expiration routed to a durable queue (a declared worker
// queue, dead_letters) is confirmed only once it is on disk — many publishes
// share one synced write — and leaves the journal when it is acked, dropped or
// dead-lettered. Opening it puts the journaled messages back in their queues,
// marked redelivered: nothing confirmed is lost when the process crashes, and
// a message may be delivered again (at least once; consumers de-duplicate).
core::Result<std::shared_ptr<InprocBroker>> open_inproc_broker(const std::string& journal_path);

// Messages in `queue` not yet acked (ready + in hand): lets `intercomm run`
// drain its queues before a clean exit.
std::size_t inproc_pending(InprocBroker& broker, const std::string& queue);

// A connection to `broker`; callbacks and deliveries arrive on the broker's
// dispatcher thread.
std::unique_ptr<Bus> connect_inproc(std::shared_ptr<InprocBroker> broker);

}  // namespace intercomm::bus
