// The in-process broker's declarations, consumers and settlements: what the
// calls of its connections do to the shared state.
#include "bus/inproc_state.hpp"

namespace intercomm::bus::inproc {

core::Result<void> BrokerState::recover() {
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

void BrokerState::stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  journal_cv_.notify_all();
}

core::Result<void> BrokerState::declare_queue(const QueueSpec& spec) {
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
    return core::Error::of(core::ErrorCode::not_found, "exchange: " + spec.bind_exchange + " does not exist");
  }
  for (const auto& key : spec.binding_keys) exchange->second.add(Binding{key, spec.name});
  return {};
}

core::Result<void> BrokerState::declare_exchange(const ExchangeSpec& spec) {
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

core::Result<void> BrokerState::unbind(std::string_view source, std::string_view destination,
                                       std::string_view key, bool to_exchange) {
  std::lock_guard lock(mu_);
  if (auto found = exchanges_.find(std::string(source)); found != exchanges_.end()) {
    std::erase_if(found->second.bindings, [&](const Binding& b) {
      return b.key == key && b.destination == destination && b.to_exchange == to_exchange;
    });
  }
  return {};
}

std::shared_ptr<Consumer> BrokerState::add_consumer(const std::string& queue_name, std::uint16_t prefetch,
                                                    DeliveryHandler handler,
                                                    std::function<void(Envelope)> auto_ack) {
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

void BrokerState::cancel(const std::shared_ptr<Consumer>& consumer) {
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

void BrokerState::pause(const std::shared_ptr<Consumer>& consumer) {
  std::unique_lock lock(mu_);
  consumer->paused = true;
  if (std::this_thread::get_id() != dispatcher_thread_) {
    // Deliveries already decided for it go first (a journal write away).
    cv_.wait(lock, [&] { return consumer->calls_in_progress == 0 && consumer->handouts_waiting == 0; });
  }
}

void BrokerState::resume(const std::shared_ptr<Consumer>& consumer) {
  std::lock_guard lock(mu_);
  consumer->paused = false;
  cv_.notify_all();
}

std::string BrokerState::add_exclusive_queue(std::uint64_t owner) {
  std::lock_guard lock(mu_);
  std::string name = "amq.gen-inproc-" + std::to_string(next_id_++);
  queues_[name].exclusive_owner = owner;
  return name;
}

void BrokerState::bind(const std::string& exchange, const std::string& key, const std::string& queue,
                       bool bind, std::function<void(core::Result<void>)> done) {
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
    std::erase_if(found->second.bindings,
                  [&](const Binding& b) { return b.key == key && b.destination == queue && !b.to_exchange; });
  }
  if (done) callbacks_.push_back([done = std::move(done), result = std::move(result)] { done(result); });
  cv_.notify_all();
}

void BrokerState::drop_exclusive_queues(std::uint64_t owner) {
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

std::size_t BrokerState::pending(const std::string& queue_name) {
  std::lock_guard lock(mu_);
  auto found = queues_.find(queue_name);
  if (found == queues_.end()) return 0;
  std::size_t count = found->second.ready.size();
  for (const auto& consumer : found->second.consumers) count += consumer->unacked.size();
  return count;
}

std::uint64_t BrokerState::new_connection_id() {
  std::lock_guard lock(mu_);
  return next_id_++;
}

void BrokerState::settle(std::uint64_t tag, std::uint64_t consumer_id, bool ack, bool requeue) {
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

}  // namespace intercomm::bus::inproc
