// The in-process broker: queues, bindings and one dispatcher thread.
#include "bus/inproc.hpp"

#include "bus/inproc_journal.hpp"
#include "bus/topology.hpp"
#include "core/logging.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

namespace intercomm::bus {
namespace {

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

// FNV-1a: a stable hash, so a key goes to the same lane in every run.
std::uint64_t stable_hash(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (unsigned char byte : text) hash = (hash ^ byte) * 1099511628211ULL;
  return hash;
}

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

}  // namespace

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
  core::Result<void> recover() {
    if (!journal_) return {};
    auto records = journal_->load();
    if (!records) return records.error();
    std::lock_guard lock(mu_);
    for (auto& record : *records) {
      auto& queue = queues_[record.queue];
      queue.durable = true;
      queue.dead_letters_to_dlx = record.queue != kDeadLetterQueue;
      Message message;
      message.envelope = std::move(record.envelope);
      message.delivery_count = record.delivery_count;
      message.redelivered = true;
      message.journal_id = record.id;
      next_journal_id_ = std::max(next_journal_id_, record.id + 1);
      queue.push_back(std::move(message));
    }
    journaled_upto_ = next_journal_id_ - 1;
    return {};
  }

  void run_dispatcher();
  void run_journal_writer();
  void stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    journal_cv_.notify_all();
  }

  core::Result<void> declare_queue(const QueueSpec& spec) {
    if (spec.name.empty()) return core::Error::of(core::ErrorCode::invalid_params, "queue: name required");
    std::lock_guard lock(mu_);
    auto& queue = queues_[spec.name];
    queue.delivery_limit = spec.delivery_limit;
    queue.dead_letters_to_dlx = true;
    queue.durable = true;
    queue.message_ttl = spec.message_ttl;
    // Messages recovered from the journal before this declaration start their wait now.
    if (queue.message_ttl) {
      std::deque<Message> waiting;
      while (!queue.ready.empty()) waiting.push_back(queue.pop_front());
      for (auto& message : waiting) {
        apply_ttl(queue, message);
        queue.push_back(std::move(message));
      }
    }
    if (!spec.dead_letter_exchange.empty()) queue.dead_letter_exchange = spec.dead_letter_exchange;
    queue.dead_letter_routing_key = spec.dead_letter_routing_key;
    queue.single_active_consumer = spec.single_active_consumer;
    auto exchange = exchanges_.find(spec.bind_exchange.empty() ? std::string(kExchange) : spec.bind_exchange);
    if (exchange == exchanges_.end() && !spec.binding_keys.empty()) {
      return core::Error::of(core::ErrorCode::not_found,
                             "exchange: " + spec.bind_exchange + " does not exist");
    }
    for (const auto& key : spec.binding_keys) exchange->second.add(Binding{key, spec.name});
    return {};
  }

  core::Result<void> declare_exchange(const ExchangeSpec& spec) {
    if (spec.name.empty()) return core::Error::of(core::ErrorCode::invalid_params, "exchange: name required");
    std::lock_guard lock(mu_);
    auto source = exchanges_.find(spec.source);
    if (!spec.source.empty() && source == exchanges_.end()) {
      return core::Error::of(core::ErrorCode::not_found, "exchange: " + spec.source + " does not exist");
    }
    auto& exchange = exchanges_[spec.name];
    exchange.type = spec.type;
    exchange.hash_header = spec.hash_header;
    for (const auto& key : spec.source_keys) source->second.add(Binding{key, spec.name, true});
    return {};
  }

  core::Result<void> unbind(std::string_view source, std::string_view destination, std::string_view key,
                            bool to_exchange) {
    std::lock_guard lock(mu_);
    if (auto found = exchanges_.find(std::string(source)); found != exchanges_.end()) {
      std::erase_if(found->second.bindings, [&](const Binding& b) {
        return b.key == key && b.destination == destination && b.to_exchange == to_exchange;
      });
    }
    return {};
  }

  // Routes the message; `done`, when given, gets the outcome on the dispatcher thread.
  void publish(std::string_view exchange, Envelope envelope, PublishCallback done) {
    std::lock_guard lock(mu_);
    const auto status = route_or_defer_locked(exchange, std::move(envelope), done);
    if (status && done) callbacks_.push_back([done = std::move(done), status = *status] { done(status); });
    cv_.notify_all();
  }

  // Routes the message; its outcome when already final (nothing to sync),
  // else none, and `done` gets it on the journal's thread once it is on disk.
  std::optional<PublishStatus> publish_now(std::string_view exchange, Envelope envelope,
                                           PublishCallback& done) {
    std::lock_guard lock(mu_);
    const auto status = route_or_defer_locked(exchange, std::move(envelope), done);
    cv_.notify_all();
    return status;
  }

  std::shared_ptr<Consumer> add_consumer(const std::string& queue_name, std::uint16_t prefetch,
                                         DeliveryHandler handler, std::function<void(Envelope)> auto_ack) {
    std::lock_guard lock(mu_);
    auto found = queues_.find(queue_name);
    if (found == queues_.end()) return nullptr;
    auto consumer = std::make_shared<Consumer>();
    consumer->id = next_id_++;
    consumer->queue = queue_name;
    consumer->prefetch = prefetch;
    consumer->handler = std::move(handler);
    consumer->auto_ack_handler = std::move(auto_ack);
    found->second.consumers.push_back(consumer);
    consumers_[consumer->id] = consumer;
    cv_.notify_all();
    return consumer;
  }

  // Stops a consumer; its unsettled deliveries go back to the queue. Waits
  // until its handler is not running, unless called from that handler.
  void cancel(const std::shared_ptr<Consumer>& consumer) {
    std::unique_lock lock(mu_);
    if (!consumer->active) return;
    consumer->active = false;
    consumers_.erase(consumer->id);
    if (auto found = queues_.find(consumer->queue); found != queues_.end()) {
      auto& list = found->second.consumers;
      std::erase(list, consumer);
      for (auto& [tag, message] : consumer->unacked)
        requeue_locked(found->first, found->second, std::move(message));
    }
    consumer->unacked.clear();
    cv_.notify_all();
    if (std::this_thread::get_id() != dispatcher_thread_) {
      cv_.wait(lock, [&] { return consumer->calls_in_progress == 0; });
    }
  }

  // Stops new deliveries to `consumer`; waits until its handler is not running
  // (unless called from it). Its deliveries in hand can still be settled.
  void pause(const std::shared_ptr<Consumer>& consumer) {
    std::unique_lock lock(mu_);
    consumer->paused = true;
    if (std::this_thread::get_id() != dispatcher_thread_) {
      cv_.wait(lock, [&] { return consumer->calls_in_progress == 0; });
    }
  }

  void resume(const std::shared_ptr<Consumer>& consumer) {
    std::lock_guard lock(mu_);
    consumer->paused = false;
    cv_.notify_all();
  }

  std::string add_exclusive_queue(std::uint64_t owner) {
    std::lock_guard lock(mu_);
    std::string name = "amq.gen-inproc-" + std::to_string(next_id_++);
    queues_[name].exclusive_owner = owner;
    return name;
  }

  // Binds or unbinds `queue` to `exchange` with `key`; `done` runs on the dispatcher.
  void bind(const std::string& exchange, const std::string& key, const std::string& queue, bool bind,
            std::function<void(core::Result<void>)> done) {
    std::lock_guard lock(mu_);
    core::Result<void> result;
    auto found = exchanges_.find(exchange);
    if (found == exchanges_.end()) {
      result = core::Error::of(core::ErrorCode::not_found, "exchange: " + exchange + " does not exist");
    } else if (queue.empty() || !queues_.contains(queue)) {
      result = core::Error::of(core::ErrorCode::unavailable, "reply queue: not open");
    } else if (bind) {
      found->second.add(Binding{key, queue});
    } else {
      std::erase_if(found->second.bindings, [&](const Binding& b) {
        return b.key == key && b.destination == queue && !b.to_exchange;
      });
    }
    if (done) callbacks_.push_back([done = std::move(done), result = std::move(result)] { done(result); });
    cv_.notify_all();
  }

  void drop_exclusive_queues(std::uint64_t owner) {
    std::lock_guard lock(mu_);
    std::set<std::string> dropped;
    for (const auto& [name, queue] : queues_) {
      if (queue.exclusive_owner == owner) dropped.insert(name);
    }
    for (const auto& name : dropped) queues_.erase(name);
    for (auto& [name, exchange] : exchanges_) {
      std::erase_if(exchange.bindings, [&](const Binding& binding) {
        return !binding.to_exchange && dropped.contains(binding.destination);
      });
    }
  }

  std::size_t pending(const std::string& queue_name) {
    std::lock_guard lock(mu_);
    auto found = queues_.find(queue_name);
    if (found == queues_.end()) return 0;
    std::size_t count = found->second.ready.size();
    for (const auto& consumer : found->second.consumers) count += consumer->unacked.size();
    return count;
  }

  std::uint64_t new_connection_id() {
    std::lock_guard lock(mu_);
    return next_id_++;
  }

  void settle(std::uint64_t tag, std::uint64_t consumer_id, bool ack, bool requeue) override {
    std::lock_guard lock(mu_);
    auto consumer = consumers_.find(consumer_id);
    if (consumer == consumers_.end()) return;  // cancelled: already requeued
    auto entry = consumer->second->unacked.find(tag);
    if (entry == consumer->second->unacked.end()) return;
    Message message = std::move(entry->second);
    consumer->second->unacked.erase(entry);
    if (ack) forget_locked(message);
    if (!ack) {
      auto queue = queues_.find(consumer->second->queue);
      if (requeue && queue != queues_.end()) {
        requeue_locked(queue->first, queue->second, std::move(message));
      } else {
        dead_letter_locked(std::move(message), consumer->second->queue, "rejected");
      }
    }
    cv_.notify_all();
  }

 private:
  // The queues `exchange` routes `envelope` to (through exchange-to-exchange
  // bindings too); false when the exchange does not exist.
  bool targets_locked(std::string_view exchange, const Envelope& envelope, std::set<std::string>& targets,
                      int depth = 0) {
    if (exchange.empty()) {  // the default exchange: routing key = queue name
      if (queues_.contains(envelope.routing_key)) targets.insert(envelope.routing_key);
      return true;
    }
    auto found = exchanges_.find(std::string(exchange));
    if (found == exchanges_.end()) return false;
    const Exchange& from = found->second;
    std::vector<const Binding*> chosen;
    if (from.type == ExchangeType::consistent_hash) {
      // One queue per message: every message with the same header value goes
      // to the same queue (the bindings' order is their declaration order).
      if (!from.bindings.empty()) {
        auto header = envelope.headers.find(from.hash_header);
        const std::string_view value =
            header == envelope.headers.end() ? std::string_view() : std::string_view(header->second);
        chosen.push_back(&from.bindings[stable_hash(value) % from.bindings.size()]);
      }
    } else {
      for (const auto& binding : from.bindings) {
        if (from.type == ExchangeType::fanout || binding.key == envelope.routing_key)
          chosen.push_back(&binding);
      }
    }
    for (const Binding* binding : chosen) {
      if (!binding->to_exchange) {
        targets.insert(binding->destination);
      } else if (depth < 4) {
        targets_locked(binding->destination, envelope, targets, depth + 1);
      }
    }
    return true;
  }

  std::optional<PublishStatus> route_or_defer_locked(std::string_view exchange, Envelope envelope,
                                                    PublishCallback& done) {
    Message message;
    if (envelope.expiration) message.expires_at = Clock::now() + *envelope.expiration;
    message.envelope = std::move(envelope);
    const std::size_t staged_before = staged_puts_;
    const PublishStatus status = route_locked(exchange, std::move(message));
    if (staged_puts_ == staged_before) return status;
    // Confirmed only once the journal's batch holding it is on disk.
    if (done) awaiting_sync_.emplace_back(std::move(done), status);
    return std::nullopt;
  }

  PublishStatus route_locked(std::string_view exchange, Message message) {
    std::set<std::string> unique;
    if (!targets_locked(exchange, message.envelope, unique)) return PublishStatus::failed;  // RabbitMQ: 404
    std::size_t delivered = 0;
    for (const auto& name : unique) {
      auto queue = queues_.find(name);
      if (queue == queues_.end()) continue;
      Message copy = message;
      if (journal_ && queue->second.durable && copy.envelope.persistent) {
        copy.journal_id = next_journal_id_++;
        journal_->stage_put(JournalRecord{copy.journal_id, name, copy.envelope, copy.delivery_count});
        ++staged_puts_;
        journal_cv_.notify_one();
      }
      apply_ttl(queue->second, copy);
      queue->second.push_back(std::move(copy));
      ++delivered;
    }
    return delivered > 0 ? PublishStatus::confirmed : PublishStatus::unroutable;
  }

  // A queue's TTL counts from when the message entered it; a shorter
  // per-message expiration still wins (as in RabbitMQ).
  static void apply_ttl(const Queue& queue, Message& message) {
    if (!queue.message_ttl) return;
    const auto deadline = Clock::now() + *queue.message_ttl;
    if (!message.expires_at || deadline < *message.expires_at) message.expires_at = deadline;
  }

  // A delivery came back (rejected, or its consumer went); it was counted
  // when it was handed out.
  void requeue_locked(const std::string& name, Queue& queue, Message message) {
    message.redelivered = true;
    if (queue.delivery_limit > 0 && message.delivery_count >= queue.delivery_limit) {
      dead_letter_locked(std::move(message), name, "delivery_limit");
      return;
    }
    queue.push_front(std::move(message));
  }

  // The message left its durable queue for good (acked, dropped or moved).
  void forget_locked(Message& message) {
    // No hurry to write it (see run_journal_writer): no notify.
    if (journal_ && message.journal_id != 0) journal_->stage_remove(message.journal_id);
    message.journal_id = 0;
  }

  void dead_letter_locked(Message message, const std::string& queue, std::string_view reason) {
    forget_locked(message);
    auto found = queues_.find(queue);
    if (found != queues_.end() && !found->second.dead_letters_to_dlx) return;  // dropped, like RabbitMQ
    message.envelope.headers["x-first-death-reason"] = std::string(reason);
    message.envelope.headers["x-first-death-queue"] = queue;
    message.envelope.headers[kFirstDeathTimeHeader] = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    message.envelope.expiration.reset();
    message.expires_at.reset();
    message.delivery_count = 0;
    message.redelivered = false;
    std::string exchange = std::string(kDeadLetterExchange);
    if (found != queues_.end()) {
      exchange = found->second.dead_letter_exchange;
      if (!found->second.dead_letter_routing_key.empty()) {
        message.envelope.routing_key = found->second.dead_letter_routing_key;
      }
    }
    route_locked(exchange, std::move(message));
  }

  // Drops expired messages at the head of each queue; returns the earliest
  // expiry still waiting (to bound the dispatcher's sleep).
  std::optional<Clock::time_point> expire_locked() {
    std::optional<Clock::time_point> next;
    const auto now = Clock::now();
    for (auto& [name, queue] : queues_) {
      while (!queue.ready.empty() && queue.ready.front().expires_at &&
             *queue.ready.front().expires_at <= now) {
        Message expired = queue.pop_front();
        if (queue.dead_letters_to_dlx) {
          dead_letter_locked(std::move(expired), name, "expired");
        } else {
          forget_locked(expired);
        }
      }
      if (!queue.ready_expiries.empty() && (!next || *queue.ready_expiries.begin() < *next)) {
        next = *queue.ready_expiries.begin();
      }
    }
    return next;
  }

  // Hands one message of some queue to a consumer with room; false when none.
  bool dispatch_one_locked(std::unique_lock<std::mutex>& lock) {
    for (auto& [name, queue] : queues_) {
      if (queue.ready.empty() || queue.consumers.empty()) continue;
      // Not handed out before it is on disk: a consumer never acts on a job
      // whose publisher may still be told it failed.
      if (queue.ready.front().journal_id > journaled_upto_) continue;
      const std::size_t candidates = queue.single_active_consumer ? 1 : queue.consumers.size();
      for (std::size_t tried = 0; tried < candidates; ++tried) {
        auto consumer = queue.single_active_consumer ? queue.consumers.front()
                                                     : queue.consumers[queue.next_consumer++ % candidates];
        if (!consumer->has_room()) continue;
        Message message = queue.pop_front();
        if (queue.delivery_limit > 0 && message.delivery_count >= queue.delivery_limit) {
          // Handed out that often already (and never settled: the process went).
          dead_letter_locked(std::move(message), name, "delivery_limit");
          return true;
        }
        const std::uint64_t tag = next_id_++;
        ++consumer->calls_in_progress;
        if (consumer->auto_ack_handler) {
          lock.unlock();
          consumer->auto_ack_handler(std::move(message.envelope));
        } else {
          auto delivery = std::make_unique<Delivery>(message.envelope, message.redelivered,
                                                     message.delivery_count, tag, consumer->id, self_);
          // Counted when handed out, so that a crash while handling it counts too.
          ++message.delivery_count;
          if (journal_ && message.journal_id != 0) {
            journal_->record_deliveries(message.journal_id, message.delivery_count);
          }
          consumer->unacked.emplace(tag, std::move(message));
          lock.unlock();
          consumer->handler(std::move(delivery));
        }
        lock.lock();
        --consumer->calls_in_progress;
        cv_.notify_all();
        return true;
      }
    }
    return false;
  }

 public:
  std::shared_ptr<BrokerState> self_;  // set by the broker handle; cleared at stop

 private:
  friend class InprocBroker;
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
  std::condition_variable journal_cv_;  // wakes the journal writer
  std::uint64_t journaled_upto_ = 0;    // every journal id up to this one is on disk
  std::uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread::id dispatcher_thread_;
};

void BrokerState::run_dispatcher() {
  std::unique_lock lock(mu_);
  dispatcher_thread_ = std::this_thread::get_id();
  while (!stopping_) {
    if (!callbacks_.empty()) {
      auto callback = std::move(callbacks_.front());
      callbacks_.pop_front();
      lock.unlock();
      callback();
      lock.lock();
      continue;
    }
    const auto next_expiry = expire_locked();
    if (dispatch_one_locked(lock)) continue;
    if (next_expiry) {
      cv_.wait_until(lock, *next_expiry);
    } else {
      cv_.wait(lock);
    }
  }
}

// The journal's own thread, so that the dispatcher goes on delivering (live
// messages, confirms, jobs already on disk) while a sync is in flight. Each
// write takes everything staged since the one before: the group commit that
// lets many publishes share a sync. Confirms run here, once their batch is
// on disk; then the jobs in it become deliverable: a consumer never gets a
// job before its publisher was told it is queued.
//
// Removes (acks) alone wait up to kRemovesDelay for a put to ride along with:
// written one by one they cost a write each, and a remove lost in a crash
// only means one more delivery of a job that was handled.
void BrokerState::run_journal_writer() {
  constexpr auto kRemovesDelay = std::chrono::milliseconds(20);
  std::unique_lock lock(mu_);
  while (true) {
    journal_cv_.wait(lock, [&] { return stopping_ || journal_->has_staged(); });
    if (!journal_->has_staged()) return;  // stopping, and everything is on disk
    journal_cv_.wait_for(lock, kRemovesDelay, [&] { return stopping_ || journal_->staged_needs_sync(); });
    auto batch = journal_->take_staged();
    auto waiting = std::move(awaiting_sync_);
    awaiting_sync_.clear();
    const std::uint64_t upto = next_journal_id_ - 1;
    lock.unlock();
    const bool written = journal_->write(*batch);
    lock.lock();
    // After stop, what was staged still reaches the disk, unconfirmed.
    if (!stopping_) {
      lock.unlock();
      for (auto& [done, status] : waiting) done(written ? status : PublishStatus::failed);
      lock.lock();
    }
    if (written) journaled_upto_ = upto;
    cv_.notify_all();
  }
}

class InprocBroker {
 public:
  explicit InprocBroker(std::unique_ptr<Journal> journal = nullptr)
      : state_(std::make_shared<BrokerState>(std::move(journal))) {
    state_->self_ = state_;
    dispatcher_ = std::thread([state = state_] {
      core::logging::name_this_thread("bus-dispatch");
      state->run_dispatcher();
    });
    if (state_->journal_) {
      journal_writer_ = std::thread([state = state_] {
        core::logging::name_this_thread("bus-journal");
        state->run_journal_writer();
      });
    }
  }
  ~InprocBroker() {
    state_->stop();
    for (auto* thread : {&dispatcher_, &journal_writer_}) {
      if (!thread->joinable()) continue;
      if (thread->get_id() == std::this_thread::get_id()) {
        thread->detach();
      } else {
        thread->join();
      }
    }
    std::lock_guard lock(state_->mu_);
    state_->self_.reset();  // break the cycle; deliveries still alive keep the state
  }
  InprocBroker(const InprocBroker&) = delete;
  InprocBroker& operator=(const InprocBroker&) = delete;

  BrokerState& state() { return *state_; }

 private:
  std::shared_ptr<BrokerState> state_;
  std::thread dispatcher_;
  std::thread journal_writer_;
};

namespace {

class InprocSubscription : public Subscription {
 public:
  InprocSubscription(std::shared_ptr<InprocBroker> broker, std::shared_ptr<Consumer> consumer)
      : broker_(std::move(broker)), consumer_(std::move(consumer)) {}
  ~InprocSubscription() override { broker_->state().cancel(consumer_); }
  void pause() override { broker_->state().pause(consumer_); }
  void resume() override { broker_->state().resume(consumer_); }

 private:
  std::shared_ptr<InprocBroker> broker_;
  std::shared_ptr<Consumer> consumer_;
};

class InprocBus : public Bus {
 public:
  explicit InprocBus(std::shared_ptr<InprocBroker> broker)
      : broker_(std::move(broker)), id_(broker_->state().new_connection_id()) {}

  ~InprocBus() override {
    if (reply_consumer_) broker_->state().cancel(reply_consumer_);
    broker_->state().drop_exclusive_queues(id_);
  }

  core::Result<void> declare_queue(const QueueSpec& spec) override {
    return broker_->state().declare_queue(spec);
  }

  core::Result<void> declare_exchange(const ExchangeSpec& spec) override {
    return broker_->state().declare_exchange(spec);
  }

  core::Result<void> unbind(std::string_view source, std::string_view destination, std::string_view key,
                            bool to_exchange) override {
    return broker_->state().unbind(source, destination, key, to_exchange);
  }

  void publish(std::string_view exchange, Envelope message, Clock::duration, PublishCallback done) override {
    broker_->state().publish(exchange, std::move(message), std::move(done));
  }

  void publish_reply(Envelope message) override { broker_->state().publish("", std::move(message), nullptr); }

  // Outcomes known at once are not sent through the dispatcher: only the
  // publishes waiting for the journal's sync are waited for.
  std::vector<PublishStatus> publish_all_and_wait(std::string_view exchange, std::vector<Envelope> messages,
                                                  Clock::duration) override {
    return wait_for_outcomes(messages.size(), [&](std::size_t i, PublishCallback done) {
      if (auto status = broker_->state().publish_now(exchange, std::move(messages[i]), done)) done(*status);
    });
  }

  std::unique_ptr<Subscription> consume(const std::string& queue, std::uint16_t prefetch,
                                        DeliveryHandler handler) override {
    auto consumer = broker_->state().add_consumer(queue, prefetch, std::move(handler), nullptr);
    if (!consumer) return nullptr;
    return std::make_unique<InprocSubscription>(broker_, std::move(consumer));
  }

  core::Result<void> open_reply_queue(std::function<void(Envelope)> on_reply) override {
    std::lock_guard lock(mu_);
    if (!reply_queue_.empty()) return core::Error::of(core::ErrorCode::conflict, "reply queue: already open");
    reply_queue_ = broker_->state().add_exclusive_queue(id_);
    reply_consumer_ = broker_->state().add_consumer(reply_queue_, 0, nullptr, std::move(on_reply));
    return {};
  }

  std::string reply_queue() const override {
    std::lock_guard lock(mu_);
    return reply_queue_;
  }

  void bind_reply_queue(std::string exchange, std::string key, bool bind,
                        std::function<void(core::Result<void>)> done) override {
    broker_->state().bind(exchange, key, reply_queue(), bind, std::move(done));
  }

  bool connected() const override { return true; }
  void on_reconnected(std::function<void()>) override {}  // never disconnected
  core::Result<std::uint64_t> queue_depth(const std::string& queue) override {
    return broker_->state().pending(queue);
  }

 private:
  std::shared_ptr<InprocBroker> broker_;
  std::uint64_t id_;
  mutable std::mutex mu_;
  std::string reply_queue_;
  std::shared_ptr<Consumer> reply_consumer_;
};

}  // namespace

std::size_t inproc_pending(InprocBroker& broker, const std::string& queue) {
  return broker.state().pending(queue);
}

std::shared_ptr<InprocBroker> make_inproc_broker() {
  return std::make_shared<InprocBroker>();
}

core::Result<std::shared_ptr<InprocBroker>> open_inproc_broker(const std::string& journal_path) {
  auto journal = Journal::open(journal_path);
  if (!journal) return journal.error();
  auto broker = std::make_shared<InprocBroker>(std::move(*journal));
  if (auto recovered = broker->state().recover(); !recovered) return recovered.error();
  return broker;
}

std::unique_ptr<Bus> connect_inproc(std::shared_ptr<InprocBroker> broker) {
  return std::make_unique<InprocBus>(std::move(broker));
}

}  // namespace intercomm::bus
