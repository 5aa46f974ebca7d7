// The in-process bus: the broker handle with its dispatcher and journal
// threads, and the Bus connections made from it.
#include "bus/inproc.hpp"

#include "bus/inproc_state.hpp"
#include "core/logging.hpp"

namespace intercomm::bus {

using inproc::BrokerState;
using inproc::Consumer;

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
    std::deque<BrokerState::Handout> undelivered;  // they too hold the state
    {
      std::lock_guard lock(state_->mu_);
      state_->self_.reset();  // break the cycle; deliveries still alive keep the state
      undelivered = std::move(state_->handouts_);
    }
    undelivered.clear();  // unlocked: a delivery settles (puts back) as it goes
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
