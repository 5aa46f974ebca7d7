// The bus: exchanges, queues, publishes with confirms, and consumers with acks.
#pragma once

#include "core/errors.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace intercomm::bus {

using Clock = std::chrono::steady_clock;

// One message on the bus, as AMQP 0-9-1 carries it. `headers` holds the
// application headers (x-request-id, x-user ...).
struct Envelope {
  std::string routing_key;
  std::string body;
  std::string reply_to;
  std::string correlation_id;
  std::optional<std::chrono::milliseconds> expiration;  // dies in the queue after this
  std::map<std::string, std::string> headers;
  bool persistent = true;
};

// How a publish ended. Only `confirmed` means the broker took responsibility
// for the message (for a durable queue: it is on disk / replicated).
enum class PublishStatus {
  confirmed,
  unroutable,  // mandatory and no queue was bound for the key (basic.return)
  nacked,      // the broker refused it (basic.nack)
  failed,      // never reached a broker (no connection until the deadline): NOT taken
  timeout,     // sent, no confirm before the deadline: the broker may have it
  unknown,     // sent, the connection lost before the confirm: the broker may have it
};

// A publish the broker may have taken although it never said so (timeout,
// unknown): the caller cannot tell the publisher "not queued".
constexpr bool outcome_unknown(PublishStatus status) noexcept {
  return status == PublishStatus::timeout || status == PublishStatus::unknown;
}

std::string_view to_string(PublishStatus status) noexcept;

using PublishCallback = std::function<void(PublishStatus)>;

// Receives the outcome of ack()/reject() for one delivery; backend specific.
class AckSink {
 public:
  virtual ~AckSink() = default;
  virtual void settle(std::uint64_t tag, std::uint64_t generation, bool ack, bool requeue) = 0;
};

// A message taken from a queue. Settle it exactly once: ack() when its effect is
// stored, reject(true) to have it delivered again, reject(false) to dead-letter
// it. One that is destroyed unsettled is rejected with requeue. Settling after
// the connection that delivered it is gone does nothing: the broker has already
// put the message back. Thread-safe to settle from any thread.
class Delivery {
 public:
  Delivery(Envelope message, bool redelivered, std::uint32_t delivery_count, std::uint64_t tag,
           std::uint64_t generation, std::shared_ptr<AckSink> sink);
  ~Delivery();
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  const Envelope& message() const noexcept { return message_; }
  bool redelivered() const noexcept { return redelivered_; }
  // How many times the message was delivered before this one (0 the first time).
  std::uint32_t delivery_count() const noexcept { return delivery_count_; }

  void ack();
  void reject(bool requeue);

 private:
  Envelope message_;
  bool redelivered_;
  std::uint32_t delivery_count_;
  std::uint64_t tag_;
  std::uint64_t generation_;
  std::shared_ptr<AckSink> sink_;
  bool settled_ = false;
};

// Called on a bus thread for each delivery; it must not block (hand the work
// to a pool and settle from there).
using DeliveryHandler = std::function<void(std::unique_ptr<Delivery>)>;

enum class QueueType { quorum, classic };

enum class ExchangeType {
  direct,
  fanout,
  // RabbitMQ's consistent-hash exchange (plugin rabbitmq_consistent_hash_exchange):
  // each message goes to one bound queue chosen by a hash of a header, so all
  // messages with the same header value go to the same queue, in order.
  consistent_hash,
};

// An exchange of our own (inter_comm and the others of the base topology are
// declared by every connection), optionally bound to another exchange:
// messages published there with one of `source_keys` pass on to this one.
struct ExchangeSpec {
  std::string name;
  ExchangeType type = ExchangeType::direct;
  std::string hash_header;  // consistent_hash: the header whose value is hashed
  std::string source;       // empty: not bound to another exchange
  std::vector<std::string> source_keys;
};

// A worker's queue: rpc_queue_<worker>, bound to inter_comm with one key per job.
struct QueueSpec {
  std::string name;
  std::vector<std::string> binding_keys;
  QueueType type = QueueType::quorum;
  // Deliveries after which the broker dead-letters a message to inter_comm.dlx.
  std::uint32_t delivery_limit = 5;
  // A delay queue (no consumer): messages wait this long, then are
  // dead-lettered to `dead_letter_exchange` with `dead_letter_routing_key`
  // (e.g. back into inter_comm as a retry). Unset: no time limit, and
  // dead-letters go to inter_comm.dlx with their own routing key.
  std::optional<std::chrono::milliseconds> message_ttl;
  std::string dead_letter_exchange;     // empty: inter_comm.dlx
  std::string dead_letter_routing_key;  // empty: the message's own
  std::string bind_exchange;            // where binding_keys bind; empty: inter_comm
  // Only one consumer at a time gets deliveries (the first registered; the
  // next takes over when it goes): with one handler per delivery in order,
  // the queue's messages are handled in the order they were queued.
  bool single_active_consumer = false;
};

// A consumer. pause() stops new deliveries while those in hand can still be
// settled (for draining, or while what handles them is down); resume() takes
// deliveries again. Destroying it stops the consumer, and deliveries still
// unsettled go back to the queue. The handler is not running once the
// destructor returned.
class Subscription {
 public:
  virtual ~Subscription() = default;
  virtual void pause() = 0;
  virtual void resume() = 0;
};

// A connection to the bus. Every method is thread-safe. Publishes and
// consumers survive reconnects: a consumer is re-subscribed, a publish that was
// in flight when the connection dropped is reported `failed` (never retried
// behind the caller's back, never reported confirmed).
class Bus {
 public:
  virtual ~Bus() = default;

  // Declares inter_comm, inter_comm.dlx -> dead_letters, inter_comm.live and
  // the queue with its bindings. Idempotent; re-done after a reconnect.
  virtual core::Result<void> declare_queue(const QueueSpec& spec) = 0;

  // Declares `spec` (durable) and its binding from spec.source. Idempotent;
  // re-done after a reconnect, before the queues.
  virtual core::Result<void> declare_exchange(const ExchangeSpec& spec) = 0;

  // Removes the binding of `destination` (a queue, or an exchange when
  // `to_exchange`) to `source` with `key`, if there is one: for a worker that
  // serves a job another way than before. Fails only when the bus is down.
  virtual core::Result<void> unbind(std::string_view source, std::string_view destination,
                                    std::string_view key, bool to_exchange) = 0;

  // Publishes mandatory to `exchange`; `done` is called exactly once, on a
  // bus thread, with the outcome. Many publishes may be in flight. A
  // persistent message is a job, whose consumers are idempotent: until the
  // deadline, the bus waits for a connection to send it, and sends it again
  // after a nack or after a connection lost before its confirm (then an
  // outcome it cannot confirm is `unknown`, not `failed`).
  virtual void publish(std::string_view exchange, Envelope message, Clock::duration timeout,
                       PublishCallback done) = 0;

  // Publishes to the default exchange (routing key = queue name) with no
  // confirm and not mandatory: for RPC replies, whose caller may be gone and
  // which nobody retries. Best effort; never blocks.
  virtual void publish_reply(Envelope message) = 0;

  // Consumes `queue` with at most `prefetch` unsettled deliveries.
  virtual std::unique_ptr<Subscription> consume(const std::string& queue, std::uint16_t prefetch,
                                                DeliveryHandler handler) = 0;

  // An exclusive queue for this process's RPC replies, consumed with
  // auto-ack. Returns the queue name to put in reply_to; the name may change
  // after a reconnect, so ask again before each call (reply_queue()).
  virtual core::Result<void> open_reply_queue(std::function<void(Envelope)> on_reply) = 0;
  virtual std::string reply_queue() const = 0;

  // Binds (bind = true) or unbinds the reply queue to `exchange` with `key`
  // (e.g. inter_comm.live, user.alice): messages published there arrive
  // through the reply handler too, auto-acked — live messages that nobody
  // retries. Bindings are remembered and re-applied to the new reply queue
  // after a reconnect (what was published meanwhile is not seen). `done` runs
  // once, on a bus thread, when the broker applied it; never blocks.
  virtual void bind_reply_queue(std::string exchange, std::string key, bool bind,
                                std::function<void(core::Result<void>)> done) = 0;

  // True while connected (for readiness checks).
  virtual bool connected() const = 0;

  // The messages waiting in `queue` (for gauges): RabbitMQ counts those
  // ready for delivery, the in-process broker those in consumers' hands too.
  virtual core::Result<std::uint64_t> queue_depth(const std::string& queue) = 0;

  // `callback` runs on a bus thread after every reconnect, once the reply
  // queue and its bindings are in place again: whatever was published to
  // them while the connection was down is lost, and this is the moment to
  // read it from where it is stored. It must not block. The in-process bus
  // never loses its connection and never calls it.
  virtual void on_reconnected(std::function<void()> callback) = 0;

  // Publishes every message at once (their confirms overlap) and waits for
  // all the outcomes, one per message in the same order; for workers that
  // emit the jobs of a batch together. The in-process bus answers at once
  // what needs no sync, with no trip through its dispatcher thread.
  virtual std::vector<PublishStatus> publish_all_and_wait(std::string_view exchange,
                                                          std::vector<Envelope> messages,
                                                          Clock::duration timeout);

 protected:
  // Calls publish(i, done) for i in 0 .. count-1 and waits until every
  // `done` was called (on any thread, or at once), then returns the outcomes
  // in order.
  static std::vector<PublishStatus> wait_for_outcomes(
      std::size_t count, const std::function<void(std::size_t, PublishCallback)>& publish);
};

// Waits for a publish outcome; for tests and tools (the services stay async).
PublishStatus publish_and_wait(Bus& bus, std::string_view exchange, Envelope message,
                               Clock::duration timeout);

}  // namespace intercomm::bus
