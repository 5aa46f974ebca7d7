// Worker: envelope checks, dispatch to handlers, replies, and the ack policy.
#include "worker/worker.hpp"

#include "bus/topology.hpp"
#include "core/jsonrpc.hpp"
#include "core/logging.hpp"

#include <spdlog/spdlog.h>

namespace intercomm::worker {

namespace json = boost::json;
namespace jsonrpc = core::jsonrpc;
using core::Error;
using core::ErrorCode;

namespace {

// What becomes of a message once handled, for messages without reply_to.
// Ordered: a later value wins when a batch mixes outcomes.
enum class Disposition { ack, dead_letter, retry };

std::string header(const bus::Envelope& envelope, std::string_view name) {
  auto found = envelope.headers.find(std::string(name));
  return found == envelope.headers.end() ? std::string() : found->second;
}

}  // namespace

Worker::Worker(bus::Bus& bus, std::string name, WorkerOptions options)
    : bus_(bus), name_(std::move(name)), queue_(bus::worker_queue(name_)), options_(options) {}

Worker::~Worker() {
  stop();
}

Worker& Worker::on(std::string job, Handler handler) {
  handlers_[std::move(job)] = std::move(handler);
  return *this;
}

core::Result<void> Worker::start() {
  bus::QueueSpec spec{queue_, {}, options_.queue_type, options_.max_deliveries + 1, std::nullopt, {}, {}};
  for (const auto& [job, handler] : handlers_) spec.binding_keys.push_back(job);
  if (auto declared = bus_.declare_queue(spec); !declared) return declared;
  for (unsigned i = 0; i < std::max(1U, options_.threads); ++i)
    threads_.emplace_back([this] { run_thread(); });
  subscription_ = bus_.consume(queue_, options_.prefetch, [this](std::unique_ptr<bus::Delivery> delivery) {
    on_delivery(std::move(delivery));
  });
  if (!subscription_) {
    stop();
    return Error::of(ErrorCode::unavailable, "worker: cannot consume " + queue_);
  }
  spdlog::info("worker {}: consuming {} ({} jobs, prefetch {}, {} threads)", name_, queue_, handlers_.size(),
               options_.prefetch, threads_.size());
  return {};
}

void Worker::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_ || draining_) return;
    draining_ = true;
  }
  // No new deliveries; finish and settle the ones in hand, then close.
  if (subscription_) subscription_->pause();
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return (inbox_.empty() && busy_ == 0) || threads_.empty(); });
  }
  subscription_.reset();
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

Worker::Stats Worker::stats() const {
  return Stats{acked_.load(), requeued_.load(), dead_lettered_.load(), replies_.load()};
}

void Worker::on_delivery(std::unique_ptr<bus::Delivery> delivery) {
  // Also while draining: a delivery that crossed the pause is in hand, and is
  // finished like the others rather than bounced back (which would count as a
  // failed delivery).
  std::lock_guard lock(mu_);
  ++busy_;
  inbox_.push_back(std::move(delivery));
  cv_.notify_one();
}

void Worker::run_thread() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopped_ || !inbox_.empty(); });
    if (inbox_.empty()) return;  // stopped
    auto delivery = std::move(inbox_.front());
    inbox_.pop_front();
    lock.unlock();
    process(std::move(delivery));
    lock.lock();
  }
}

void Worker::process(std::unique_ptr<bus::Delivery> owned) {
  std::shared_ptr<bus::Delivery> delivery = std::move(owned);
  const bus::Envelope& envelope = delivery->message();
  JobContext context{{},
                     header(envelope, bus::kRequestIdHeader),
                     header(envelope, bus::kUserHeader),
                     delivery->redelivered(),
                     delivery->delivery_count()};
  core::logging::ScopedRequestId request_scope(context.request_id);

  const auto incoming = jsonrpc::parse_incoming(envelope.body);
  std::vector<jsonrpc::Response> responses;
  Disposition disposition = Disposition::ack;
  const auto worst = [&](Disposition d) { disposition = std::max(disposition, d); };

  for (const auto& item : incoming.items) {
    if (const auto* invalid = std::get_if<jsonrpc::Response>(&item)) {
      spdlog::warn("worker {}: refused a message: {}", name_, invalid->outcome.error().message);
      responses.push_back(*invalid);
      worst(Disposition::dead_letter);
      continue;
    }
    const auto& request = std::get<jsonrpc::Request>(item);
    context.method = request.method;
    core::Result<json::value> outcome = Error::of(ErrorCode::internal_error);
    auto handler = handlers_.find(request.method);
    if (handler == handlers_.end()) {
      outcome = Error::of(ErrorCode::method_not_found,
                          "method: worker " + name_ + " does not serve " + request.method);
      worst(Disposition::dead_letter);
    } else {
      try {
        outcome = handler->second(request.params_or_empty(), context);
        if (!outcome && outcome.error().code == ErrorCode::unavailable) worst(Disposition::retry);
      } catch (const std::exception& e) {
        spdlog::error("worker {}: {} threw: {}", name_, request.method, e.what());
        outcome = Error::of(ErrorCode::internal_error);  // no internals leaked
        worst(Disposition::retry);
      }
    }
    if (!request.is_notification()) responses.push_back(jsonrpc::Response{*request.id, std::move(outcome)});
  }

  const auto settle = [this, delivery](Disposition d) {
    switch (d) {
      case Disposition::ack:
        delivery->ack();
        acked_.fetch_add(1);
        break;
      case Disposition::retry:
        delivery->reject(true);
        requeued_.fetch_add(1);
        break;
      case Disposition::dead_letter:
        delivery->reject(false);
        dead_lettered_.fetch_add(1);
        break;
    }
    std::lock_guard lock(mu_);
    --busy_;
    cv_.notify_all();
  };

  if (!envelope.reply_to.empty()) {
    std::string body = incoming.batch      ? jsonrpc::serialize_batch(responses)
                       : responses.empty() ? std::string()
                                           : jsonrpc::serialize(responses.front());
    if (body.empty()) {
      settle(Disposition::ack);
      return;
    }
    bus::Envelope reply;
    reply.routing_key = envelope.reply_to;
    reply.correlation_id = envelope.correlation_id;
    reply.body = std::move(body);
    reply.persistent = false;
    if (!context.request_id.empty()) reply.headers[std::string(bus::kRequestIdHeader)] = context.request_id;
    replies_.fetch_add(1);
    // The answer is final whatever becomes of the reply (its caller may be gone).
    bus_.publish_reply(std::move(reply));
    settle(Disposition::ack);
    return;
  }

  if (disposition == Disposition::retry && delivery->delivery_count() + 1 >= options_.max_deliveries) {
    spdlog::error("worker {}: giving up after {} deliveries; dead-lettering", name_,
                  delivery->delivery_count() + 1);
    disposition = Disposition::dead_letter;
  }
  settle(disposition);
}

}  // namespace intercomm::worker
