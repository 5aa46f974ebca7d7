// The in-process broker's state: queues, bindings, consumers and the
// journal, shared by the dispatcher and journal threads (inproc_routing.cpp)
// and the calls of every connection (inproc_state.cpp). Internal to the bus.
#pragma once

#include "bus/bus.hpp"
#include "bus/inproc_journal.hpp"
#include "bus/topology.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace intercomm::bus {
class InprocBroker;
}

namespace intercomm::bus::inproc {

struct Message {
  Envelope envelope;
  std::uint32_t delivery_count = 0;
  bool redelivered = false;
  std::optional<Clock::time_point> expires_at;
  std::uint64_t journal_id = 0;  // 0: only in memory
};

struct Consumer {
  std::uint64_t id = 0;
  std::string queue;
  std::uint16_t prefetch = 0;                      // 0: unlimited
  DeliveryHandler handler;                         // acked consumers
  std::function<void(Envelope)> auto_ack_handler;  // reply queues
  std::map<std::uint64_t, Message> unacked;
  bool active = true;
  bool paused = false;
  int calls_in_progress = 0;
  int handouts_waiting = 0;  // deliveries decided, waiting for their count to be written

  bool has_room() const { return active && !paused && (prefetch == 0 || unacked.size() < prefetch); }
};

// An exchange's bindings: routing key -> destination (a queue, or another
// exchange when `to_exchange`). A consistent-hash exchange sends each message
// to one of its bound queues, chosen by the value of its hash header.
struct Binding {
  std::string key;
  std::string destination;
  bool to_exchange = false;
};

struct Exchange {
  ExchangeType type = ExchangeType::direct;
  std::string hash_header;
  std::vector<Binding> bindings;

  bool has(const Binding& wanted) const {
    return std::any_of(bindings.begin(), bindings.end(), [&](const Binding& b) {
      return b.key == wanted.key && b.destination == wanted.destination &&
             b.to_exchange == wanted.to_exchange;
    });
  }
  void add(Binding binding) {
    if (!has(binding)) bindings.push_back(std::move(binding));
  }
};

struct Queue {
  std::deque<Message> ready;  // change only through the three methods below
  // The expiry times of the messages in `ready` that have one: the earliest
  // without walking the whole queue.
  std::multiset<Clock::time_point> ready_expiries;

  void push_back(Message message) {
    if (message.expires_at) ready_expiries.insert(*message.expires_at);
    ready.push_back(std::move(message));
  }
  void push_front(Message message) {
    if (message.expires_at) ready_expiries.insert(*message.expires_at);
    ready.push_front(std::move(message));
  }
  Message pop_front() {
    Message message = std::move(ready.front());
    ready.pop_front();
    if (message.expires_at) ready_expiries.erase(ready_expiries.find(*message.expires_at));
    return message;
  }

  std::vector<std::shared_ptr<Consumer>> consumers;
  std::size_t next_consumer = 0;
  std::uint32_t delivery_limit = 0;  // 0: none
  bool dead_letters_to_dlx = false;
  bool durable = false;  // declared worker queues and dead_letters: journaled
  std::optional<Clock::duration> message_ttl;
  std::string dead_letter_exchange = std::string(kDeadLetterExchange);
  std::string dead_letter_routing_key;  // empty: the message's own
  std::uint64_t exclusive_owner = 0;    // 0: not exclusive
  bool single_active_consumer = false;  // only consumers.front() gets deliveries
};

// Shared state; outlives the broker handle while deliveries still point to it.
class BrokerState : public AckSink {
 public:
  explicit BrokerState(std::unique_ptr<Journal> journal = nullptr) : journal_(std::move(journal)) {
    exchanges_[std::string(kExchange)] = {};
    exchanges_[std::string(kLiveExchange)] = {};
    exchanges_[std::string(kDeadLetterExchange)].type = ExchangeType::fanout;
    queues_[std::string(kDeadLetterQueue)].durable = true;
    exchanges_[std::string(kDeadLetterExchange)].add(Binding{"", std::string(kDeadLetterQueue)});
  }

  // Puts the journal's messages back in their queues, as redeliveries (their
  // consumers may have handled them before the crash).
  core::Result<void> recover();

  void run_dispatcher();
  void run_journal_writer();
  void stop();

  core::Result<void> declare_queue(const QueueSpec& spec);

  core::Result<void> declare_exchange(const ExchangeSpec& spec);

  core::Result<void> unbind(std::string_view source, std::string_view destination, std::string_view key,
                            bool to_exchange);

  // Routes the message; `done`, when given, gets the outcome on the dispatcher thread.
  void publish(std::string_view exchange, Envelope envelope, PublishCallback done);

  // Routes the message; its outcome when already final (nothing to sync),
  // else none, and `done` gets it on the journal's thread once it is on disk.
  std::optional<PublishStatus> publish_now(std::string_view exchange, Envelope envelope,
                                           PublishCallback& done);

  std::shared_ptr<Consumer> add_consumer(const std::string& queue_name, std::uint16_t prefetch,
                                         DeliveryHandler handler, std::function<void(Envelope)> auto_ack);

  // Stops a consumer; its unsettled deliveries go back to the queue. Waits
  // until its handler is not running, unless called from that handler.
  void cancel(const std::shared_ptr<Consumer>& consumer);

  // Stops new deliveries to `consumer`; waits until its handler is not running
  // (unless called from it). Its deliveries in hand can still be settled.
  void pause(const std::shared_ptr<Consumer>& consumer);

  void resume(const std::shared_ptr<Consumer>& consumer);

  std::string add_exclusive_queue(std::uint64_t owner);

  // Binds or unbinds `queue` to `exchange` with `key`; `done` runs on the dispatcher.
  void bind(const std::string& exchange, const std::string& key, const std::string& queue, bool bind,
            std::function<void(core::Result<void>)> done);

  void drop_exclusive_queues(std::uint64_t owner);

  std::size_t pending(const std::string& queue_name);

  std::uint64_t new_connection_id();

  void settle(std::uint64_t tag, std::uint64_t consumer_id, bool ack, bool requeue) override;

 private:
  // The queues `exchange` routes `envelope` to (through exchange-to-exchange
  // bindings too); false when the exchange does not exist.
  bool targets_locked(std::string_view exchange, const Envelope& envelope, std::set<std::string>& targets,
                      int depth = 0);

  std::optional<PublishStatus> route_or_defer_locked(std::string_view exchange, Envelope envelope,
                                                     PublishCallback& done);

  PublishStatus route_locked(std::string_view exchange, Message message);

  // A queue's TTL counts from when the message entered it; a shorter
  // per-message expiration still wins (as in RabbitMQ).
  static void apply_ttl(const Queue& queue, Message& message);

  // A delivery came back (rejected, or its consumer went); it was counted
  // when it was handed out.
  void requeue_locked(const std::string& name, Queue& queue, Message message);

  // The message left its durable queue for good (acked, dropped or moved).
  void forget_locked(Message& message);

  void dead_letter_locked(Message message, const std::string& queue, std::string_view reason);

  // Drops expired messages at the head of each queue; returns the earliest
  // expiry still waiting (to bound the dispatcher's sleep).
  std::optional<Clock::time_point> expire_locked();

  // Hands one message of some queue to a consumer with room (or, for a
  // journaled message, queues it as a handout); false when none.
  bool dispatch_one_locked(std::unique_lock<std::mutex>& lock);
  // Runs `call` (a handler of `consumer`) with the lock released, counted in
  // calls_in_progress (what cancel() and pause() wait for).
  template <class Call>
  void call_unlocked(std::unique_lock<std::mutex>& lock, Consumer& consumer, Call&& call) {
    ++consumer.calls_in_progress;
    lock.unlock();
    call();
    lock.lock();
    --consumer.calls_in_progress;
    cv_.notify_all();
  }
  // Gives `message` to `consumer` (its handler, or a handout when its count
  // must be written first or handouts of it are waiting).
  void hand_over_locked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Consumer>& consumer,
                        Message message);
  // Hands the first handout to its consumer once its batch is written;
  // false when there is none ready.
  bool hand_out_one_locked(std::unique_lock<std::mutex>& lock);

 public:
  std::shared_ptr<BrokerState> self_;  // set by the broker handle; cleared at stop

 private:
  friend class bus::InprocBroker;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Exchange> exchanges_;
  std::map<std::string, Queue> queues_;
  std::map<std::uint64_t, std::shared_ptr<Consumer>> consumers_;
  std::deque<std::function<void()>> callbacks_;
  std::unique_ptr<Journal> journal_;
  std::uint64_t next_journal_id_ = 1;
  std::size_t staged_puts_ = 0;  // journal puts staged since start (to tell which publishes wait)
  std::vector<std::pair<PublishCallback, PublishStatus>> awaiting_sync_;  // confirmed by the next flush
  // A delivery of a journaled message: handed to its consumer once the
  // journal's batch `batch` (which counts it) is written.
  struct Handout {
    std::uint64_t batch = 0;
    std::shared_ptr<Consumer> consumer;
    std::unique_ptr<Delivery> delivery;
  };
  std::deque<Handout> handouts_;     // in the order decided
  std::uint64_t batches_taken_ = 0;  // by the journal writer, so far
  std::uint64_t batches_written_ = 0;
  std::condition_variable journal_cv_;  // wakes the journal writer
  std::uint64_t journaled_upto_ = 0;    // every journal id up to this one is on disk
  std::uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread::id dispatcher_thread_;
};

}  // namespace intercomm::bus::inproc
