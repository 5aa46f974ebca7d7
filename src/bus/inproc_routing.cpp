// The in-process broker's message flow: routing through exchanges into
// queues, dead-lettering and expiry, the dispatcher handing messages to
// consumers, and the journal's writer.
#include "bus/inproc_state.hpp"

namespace intercomm::bus::inproc {
namespace {

// FNV-1a: a stable hash, so a key goes to the same lane in every run.
std::uint64_t stable_hash(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (unsigned char byte : text) hash = (hash ^ byte) * 1099511628211ULL;
  return hash;
}

}  // namespace

void BrokerState::publish(std::string_view exchange, Envelope envelope, PublishCallback done) {
  std::lock_guard lock(mu_);
  const auto status = route_or_defer_locked(exchange, std::move(envelope), done);
  if (status && done) callbacks_.push_back([done = std::move(done), status = *status] { done(status); });
  cv_.notify_all();
}

std::optional<PublishStatus> BrokerState::publish_now(std::string_view exchange, Envelope envelope,
                                                      PublishCallback& done) {
  std::lock_guard lock(mu_);
  const auto status = route_or_defer_locked(exchange, std::move(envelope), done);
  cv_.notify_all();
  return status;
}

std::optional<PublishStatus> BrokerState::route_or_defer_locked(std::string_view exchange, Envelope envelope,
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

bool BrokerState::targets_locked(std::string_view exchange, const Envelope& envelope,
                                 std::set<std::string>& targets, int depth) {
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

PublishStatus BrokerState::route_locked(std::string_view exchange, Message message) {
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

void BrokerState::apply_ttl(const Queue& queue, Message& message) {
  if (!queue.message_ttl) return;
  const auto deadline = Clock::now() + *queue.message_ttl;
  if (!message.expires_at || deadline < *message.expires_at) message.expires_at = deadline;
}

void BrokerState::requeue_locked(const std::string& name, Queue& queue, Message message) {
  message.redelivered = true;
  if (queue.delivery_limit > 0 && message.delivery_count >= queue.delivery_limit) {
    dead_letter_locked(std::move(message), name, "delivery_limit");
    return;
  }
  queue.push_front(std::move(message));
}

void BrokerState::forget_locked(Message& message) {
  // No hurry to write it (see run_journal_writer): no notify.
  if (journal_ && message.journal_id != 0) journal_->stage_remove(message.journal_id);
  message.journal_id = 0;
}

void BrokerState::dead_letter_locked(Message message, const std::string& queue, std::string_view reason) {
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

std::optional<Clock::time_point> BrokerState::expire_locked() {
  std::optional<Clock::time_point> next;
  const auto now = Clock::now();
  for (auto& [name, queue] : queues_) {
    while (!queue.ready.empty() && queue.ready.front().expires_at && *queue.ready.front().expires_at <= now) {
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

bool BrokerState::dispatch_one_locked(std::unique_lock<std::mutex>& lock) {
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
      hand_over_locked(lock, consumer, std::move(message));
      return true;
    }
  }
  return false;
}

void BrokerState::hand_over_locked(std::unique_lock<std::mutex>& lock,
                                   const std::shared_ptr<Consumer>& consumer, Message message) {
  if (consumer->auto_ack_handler) {
    call_unlocked(lock, *consumer, [&] { consumer->auto_ack_handler(std::move(message.envelope)); });
    return;
  }
  const std::uint64_t tag = next_id_++;
  auto delivery = std::make_unique<Delivery>(message.envelope, message.redelivered, message.delivery_count,
                                             tag, consumer->id, self_);
  ++message.delivery_count;
  // A journaled message delivered before (put back, or found in the journal
  // after a crash) is counted on disk before the consumer gets it, so that a
  // crash while handling it counts too: on the journal's thread, with what
  // else it writes (the dispatcher never waits for the disk). A first
  // delivery is not: a job that crashes the process comes back from the
  // journal as a redelivery, and is counted from then on (dead-lettered at
  // its queue's limit after one more crash than the limit), while the common
  // case costs no write.
  const bool count_first = journal_ && message.journal_id != 0 && message.redelivered;
  if (count_first) {
    journal_->stage_delivery_count(message.journal_id, message.delivery_count);
    journal_cv_.notify_one();
  }
  consumer->unacked.emplace(tag, std::move(message));
  if (count_first || consumer->handouts_waiting > 0) {
    // Any other delivery to a consumer with handouts waiting queues behind
    // them (handouts_ is not empty then): each consumer gets its deliveries
    // in the order they were decided.
    const std::uint64_t batch = count_first ? batches_taken_ + 1 : handouts_.back().batch;
    ++consumer->handouts_waiting;
    handouts_.push_back(Handout{batch, consumer, std::move(delivery)});
    return;
  }
  call_unlocked(lock, *consumer, [&] { consumer->handler(std::move(delivery)); });
}

bool BrokerState::hand_out_one_locked(std::unique_lock<std::mutex>& lock) {
  if (handouts_.empty() || handouts_.front().batch > batches_written_) return false;
  Handout handout = std::move(handouts_.front());
  handouts_.pop_front();
  Consumer& consumer = *handout.consumer;
  --consumer.handouts_waiting;
  if (consumer.active) {
    call_unlocked(lock, consumer, [&] { consumer.handler(std::move(handout.delivery)); });
  } else {
    // Cancelled meanwhile: the message was put back already, and settling
    // this delivery does nothing (it takes the lock: not under it).
    lock.unlock();
    handout.delivery.reset();
    lock.lock();
    cv_.notify_all();
  }
  return true;
}

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
    if (hand_out_one_locked(lock)) continue;
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
    journal_cv_.wait_for(lock, kRemovesDelay, [&] { return stopping_ || journal_->staged_is_awaited(); });
    auto batch = journal_->take_staged();
    ++batches_taken_;
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
    ++batches_written_;  // its handouts go even if it failed (logged): the count is only a guard
    cv_.notify_all();
  }
}

}  // namespace intercomm::bus::inproc
