// Worker: envelope checks, dispatch to handlers, replies and the ack policy
// (the ordered lanes are in lanes.cpp).
#include "worker/worker.hpp"

#include "bus/topology.hpp"
#include "core/limits.hpp"
#include "core/logging.hpp"
#include "worker/lane.hpp"

#include <spdlog/spdlog.h>

#include <random>

namespace intercomm::worker {

namespace json = boost::json;
namespace jsonrpc = core::jsonrpc;
using core::Error;
using core::ErrorCode;

namespace {

std::string header(const bus::Envelope& envelope, std::string_view name) {
  auto found = envelope.headers.find(std::string(name));
  return found == envelope.headers.end() ? std::string() : found->second;
}

// Consistent-hash bindings weigh a queue by its number of points on the ring:
// more points spread the keys more evenly over the lanes.
constexpr std::string_view kLaneWeight = "20";

}  // namespace

namespace detail {

JobContext context_of(const bus::Delivery& delivery) {
  const bus::Envelope& envelope = delivery.message();
  return JobContext{{},
                    header(envelope, bus::kRequestIdHeader),
                    header(envelope, bus::kUserHeader),
                    delivery.redelivered(),
                    delivery.delivery_count()};
}

}  // namespace detail

using detail::context_of;

Worker::Worker(bus::Bus& bus, std::string name, WorkerOptions options)
    : bus_(bus), name_(std::move(name)), queue_(bus::worker_queue(name_)), options_(options) {}

Worker::~Worker() {
  stop();
}

Worker& Worker::on(std::string job, Handler handler) {
  handlers_[std::move(job)] = std::move(handler);
  return *this;
}

Worker& Worker::on_ordered(std::string job, BatchHandler handler) {
  ordered_handlers_[std::move(job)] = std::move(handler);
  return *this;
}

Worker& Worker::on_batch(std::string job, BatchHandler handler) {
  batch_handlers_[std::move(job)] = std::move(handler);
  return *this;
}

core::Result<void> Worker::start() {
  const bool laned = options_.lanes > 0 && !ordered_handlers_.empty();
  bus::QueueSpec spec{queue_, {},   options_.queue_type, options_.max_deliveries + 1, std::nullopt, {}, {},
                      {},     false};
  for (const auto& [job, handler] : handlers_) spec.binding_keys.push_back(job);
  for (const auto& [job, handler] : batch_handlers_) spec.binding_keys.push_back(job);
  if (!laned) {
    for (const auto& [job, handler] : ordered_handlers_) spec.binding_keys.push_back(job);
  }
  if (auto declared = bus_.declare_queue(spec); !declared) return declared;
  // Ordered jobs go one way only: through the lanes, or (lanes off) through
  // rpc_queue_<name>. A binding of the other way, left by an earlier run with
  // another --lanes, would hand every such job to both.
  for (const auto& [job, handler] : ordered_handlers_) {
    auto unbound = laned ? bus_.unbind(bus::kExchange, queue_, job, false)
                         : bus_.unbind(bus::kExchange, bus::lanes_exchange(name_), job, true);
    if (!unbound) return unbound;
  }
  if (laned) {
    bus::ExchangeSpec exchange{bus::lanes_exchange(name_),
                               bus::ExchangeType::consistent_hash,
                               std::string(bus::kOrderKeyHeader),
                               std::string(bus::kExchange),
                               {}};
    for (const auto& [job, handler] : ordered_handlers_) exchange.source_keys.push_back(job);
    if (auto declared = bus_.declare_exchange(exchange); !declared) return declared;
    for (unsigned i = 0; i < options_.lanes; ++i) {
      auto lane = std::make_unique<Lane>();
      lane->queue = bus::lane_queue(name_, i);
      bus::QueueSpec lane_spec{lane->queue,
                               {std::string(kLaneWeight)},
                               options_.queue_type,
                               options_.max_deliveries + 1,
                               std::nullopt,
                               {},
                               {},
                               exchange.name,
                               true};
      if (auto declared = bus_.declare_queue(lane_spec); !declared) return declared;
      lanes_.push_back(std::move(lane));
    }
  }
  for (unsigned i = 0; i < std::max(1U, options_.threads); ++i)
    threads_.emplace_back([this] {
      core::logging::name_this_thread("w:" + name_);
      run_thread();
    });
  subscription_ = bus_.consume(queue_, options_.prefetch, [this](std::unique_ptr<bus::Delivery> delivery) {
    on_delivery(std::move(delivery));
  });
  bool consuming = subscription_ != nullptr;
  for (auto& lane : lanes_) {
    Lane* target = lane.get();
    lane->subscription = bus_.consume(lane->queue, options_.lane_prefetch,
                                      [this, target](std::unique_ptr<bus::Delivery> delivery) {
                                        on_lane_delivery(*target, std::move(delivery));
                                      });
    consuming = consuming && lane->subscription != nullptr;
  }
  if (!consuming) {
    stop();
    return Error::of(ErrorCode::unavailable, "worker: cannot consume " + queue_);
  }
  spdlog::info(
      "worker {}: consuming {} ({} jobs, {} ordered over {} lanes, prefetch {}, lane prefetch {}, {} "
      "threads)",
      name_, queue_, handlers_.size() + ordered_handlers_.size() + batch_handlers_.size(),
      ordered_handlers_.size(), lanes_.size(), options_.prefetch, options_.lane_prefetch, threads_.size());
  return {};
}

void Worker::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_ || draining_) return;
    draining_ = true;
  }
  // No new deliveries; finish and settle the ones in hand, then close.
  pause_consumers();
  {
    std::unique_lock lock(mu_);
    // What backs off is tried once more now (and given back if it fails again).
    for (auto& [when, task] : delayed_) {
      if (task.delivery) held_.fetch_sub(1);
      tasks_.push_back(std::move(task));
    }
    delayed_.clear();
    cv_.notify_all();
    drained_cv_.wait(lock, [&] { return busy_ == 0 || threads_.empty(); });
  }
  {
    std::lock_guard consumers(consumers_mu_);  // a breaker closing now must not resume them
    subscription_.reset();
    for (auto& lane : lanes_) lane->subscription.reset();
  }
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

Worker::Stats Worker::stats() const {
  bool open = false;
  std::size_t in_hand = 0;
  {
    std::lock_guard lock(mu_);
    open = circuit_open_;
    in_hand = busy_;
  }
  return Stats{acked_.load(),
               requeued_.load(),
               dead_lettered_.load(),
               replies_.load(),
               retried_in_place_.load(),
               held_.load(),
               open,
               in_hand};
}

std::chrono::milliseconds Worker::backoff(std::uint32_t failures) const {
  auto wait = options_.retry_first;
  for (std::uint32_t i = 1; i < failures && wait < options_.retry_last; ++i) wait *= 2;
  wait = std::min(wait, options_.retry_last);
  thread_local std::mt19937 random{std::random_device{}()};
  const auto jitter = std::uniform_real_distribution<double>(0.8, 1.2)(random);
  return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(wait.count()) * jitter));
}

void Worker::transient_failure() {
  bool open = false;
  {
    std::lock_guard lock(mu_);
    ++transient_in_a_row_;
    if (!circuit_open_ && transient_in_a_row_ >= options_.breaker_threshold && !draining_) {
      circuit_open_ = open = true;
    }
  }
  if (open) {
    spdlog::warn("worker {}: {} transient failures in a row; not taking jobs until one succeeds", name_,
                 options_.breaker_threshold);
    pause_consumers();
  }
}

void Worker::succeeded() {
  bool close = false;
  {
    std::lock_guard lock(mu_);
    transient_in_a_row_ = 0;
    if (circuit_open_) {
      circuit_open_ = false;
      close = !draining_;
    }
  }
  if (close) {
    spdlog::info("worker {}: a job succeeded again; taking jobs", name_);
    resume_consumers();
  }
}

void Worker::pause_consumers() {
  std::lock_guard consumers(consumers_mu_);
  if (subscription_) subscription_->pause();
  for (auto& lane : lanes_) {
    if (lane->subscription) lane->subscription->pause();
  }
}

void Worker::resume_consumers() {
  std::lock_guard consumers(consumers_mu_);
  {
    std::lock_guard lock(mu_);
    if (draining_) return;  // stop() got here first: the consumers stay paused (or are gone)
  }
  if (subscription_) subscription_->resume();
  for (auto& lane : lanes_) {
    if (lane->subscription) lane->subscription->resume();
  }
}

void Worker::on_delivery(std::unique_ptr<bus::Delivery> delivery) {
  // Also while draining: a delivery that crossed the pause is in hand, and is
  // finished like the others rather than bounced back (which would count as a
  // failed delivery).
  std::lock_guard lock(mu_);
  ++busy_;
  tasks_.push_back(Task{std::move(delivery), nullptr});
  cv_.notify_one();
}

void Worker::run_thread() {
  std::unique_lock lock(mu_);
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
      auto due = delayed_.extract(delayed_.begin());
      if (due.mapped().delivery) held_.fetch_sub(1);
      tasks_.push_back(std::move(due.mapped()));
    }
    if (!tasks_.empty()) {
      Task task = std::move(tasks_.front());
      tasks_.pop_front();
      if (task.lane != nullptr) {
        lock.unlock();
        run_lane(*task.lane);
        lock.lock();
        continue;
      }
      std::vector<Task> taken;
      taken.push_back(std::move(task));
      // With batch jobs, the deliveries waiting behind it come along.
      while (!batch_handlers_.empty() && taken.size() < kMaxBatch && !tasks_.empty() &&
             tasks_.front().lane == nullptr) {
        taken.push_back(std::move(tasks_.front()));
        tasks_.pop_front();
      }
      lock.unlock();
      if (taken.size() == 1) {
        process(std::move(taken.front().delivery), taken.front().transient_failures);
      } else {
        process_many(std::move(taken));
      }
      lock.lock();
      continue;
    }
    if (stopped_) return;
    if (delayed_.empty()) {
      cv_.wait(lock);
    } else {
      const auto next_retry = delayed_.begin()->first;  // a copy: the entry may go while we wait
      cv_.wait_until(lock, next_retry);
    }
  }
}

void Worker::settled() {
  std::lock_guard lock(mu_);
  // Only stop() waits for this, and only for the last one: waking every
  // handler thread on each settle cost ~90 context switches per message.
  if (--busy_ == 0) drained_cv_.notify_all();
}

void Worker::finish(bus::Delivery& delivery, const std::vector<jsonrpc::Response>& responses, bool batch,
                    Disposition disposition) {
  const bus::Envelope& envelope = delivery.message();
  if (!envelope.reply_to.empty()) {
    // The answer is final whatever becomes of the reply (its caller may be gone).
    std::string body = batch               ? jsonrpc::serialize_batch(responses)
                       : responses.empty() ? std::string()
                                           : jsonrpc::serialize(responses.front());
    if (!body.empty()) {
      bus::Envelope reply;
      reply.routing_key = envelope.reply_to;
      reply.correlation_id = envelope.correlation_id;
      reply.body = std::move(body);
      reply.persistent = false;
      const std::string request_id = header(envelope, bus::kRequestIdHeader);
      if (!request_id.empty()) reply.headers[std::string(bus::kRequestIdHeader)] = request_id;
      replies_.fetch_add(1);
      bus_.publish_reply(std::move(reply));
    }
    disposition = Disposition::ack;
  } else if (disposition == Disposition::retry && delivery.delivery_count() + 1 >= options_.max_deliveries) {
    // Deterministic: the handler threw on it every time.
    spdlog::error("worker {}: giving up after {} deliveries; dead-lettering", name_,
                  delivery.delivery_count() + 1);
    disposition = Disposition::dead_letter;
  }
  switch (disposition) {
    case Disposition::ack:
      delivery.ack();
      acked_.fetch_add(1);
      break;
    case Disposition::retry:
      delivery.reject(true);
      requeued_.fetch_add(1);
      break;
    case Disposition::hold:  // process() keeps it; never here
      break;
    case Disposition::dead_letter:
      delivery.reject(false);
      dead_lettered_.fetch_add(1);
      break;
  }
  settled();
}

void Worker::process(std::unique_ptr<bus::Delivery> delivery, std::uint32_t transient_failures) {
  JobContext context = context_of(*delivery);
  core::logging::ScopedRequestId request_scope(context.request_id);

  const auto incoming = jsonrpc::parse_incoming(delivery->message().body, core::kMaxBusMessageBytes);
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
    try {
      if (auto handler = handlers_.find(request.method); handler != handlers_.end()) {
        outcome = handler->second(request.params_or_empty(), context);
      } else if (auto batched = batch_handler(request.method)) {
        // A batch job alone, or an ordered job outside a lane (lanes off, or
        // sent here directly): a batch of one.
        const BatchJob job{&request.params_or_empty(), context};
        auto outcomes = (*batched)(std::span<const BatchJob>(&job, 1));
        if (!outcomes.empty()) outcome = std::move(outcomes.front());
      } else {
        outcome = Error::of(ErrorCode::method_not_found,
                            "method: worker " + name_ + " does not serve " + request.method);
        worst(Disposition::dead_letter);
      }
      if (detail::transient(outcome)) worst(Disposition::hold);
    } catch (const std::exception& e) {
      spdlog::error("worker {}: {} threw: {}", name_, request.method, e.what());
      outcome = Error::of(ErrorCode::internal_error);  // no internals leaked
      worst(Disposition::retry);
    }
    if (!request.is_notification()) responses.push_back(jsonrpc::Response{*request.id, std::move(outcome)});
  }
  conclude(std::move(delivery), responses, incoming.batch, disposition, transient_failures);
}

const BatchHandler* Worker::batch_handler(const std::string& method) const {
  if (auto found = batch_handlers_.find(method); found != batch_handlers_.end()) return &found->second;
  if (auto found = ordered_handlers_.find(method); found != ordered_handlers_.end()) return &found->second;
  return nullptr;
}

void Worker::process_many(std::vector<Task> tasks) {
  struct Job {
    std::unique_ptr<bus::Delivery> delivery;
    std::uint32_t transient_failures;
    jsonrpc::Incoming incoming;
    JobContext context;
    const jsonrpc::Request& request() const { return std::get<jsonrpc::Request>(incoming.items.front()); }
  };
  std::map<std::string, std::vector<Job>> by_method;
  for (auto& task : tasks) {
    auto incoming = jsonrpc::parse_incoming(task.delivery->message().body, core::kMaxBusMessageBytes);
    const auto* request = incoming.batch || incoming.items.size() != 1
                              ? nullptr
                              : std::get_if<jsonrpc::Request>(&incoming.items.front());
    if (request == nullptr || !batch_handlers_.contains(request->method)) {
      process(std::move(task.delivery), task.transient_failures);  // anything else: on its own
      continue;
    }
    JobContext context = context_of(*task.delivery);
    context.method = request->method;
    auto& group = by_method[request->method];
    group.push_back(
        Job{std::move(task.delivery), task.transient_failures, std::move(incoming), std::move(context)});
  }
  for (auto& [method, jobs] : by_method) {
    std::vector<BatchJob> batch;
    for (const auto& job : jobs) batch.push_back(BatchJob{&job.request().params_or_empty(), job.context});
    std::vector<core::Result<json::value>> outcomes;
    bool threw = false;
    try {
      outcomes = batch_handlers_.at(method)(batch);
    } catch (const std::exception& e) {
      spdlog::error("worker {}: {} threw: {}", name_, method, e.what());
      threw = true;
    }
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      core::Result<json::value> outcome = Error::of(ErrorCode::internal_error);  // no internals leaked
      Disposition disposition = threw ? Disposition::retry : Disposition::ack;
      if (!threw && i < outcomes.size()) outcome = std::move(outcomes[i]);
      if (!threw && detail::transient(outcome)) disposition = Disposition::hold;
      std::vector<jsonrpc::Response> responses;
      const auto& request = jobs[i].request();
      if (!request.is_notification()) responses.push_back(jsonrpc::Response{*request.id, std::move(outcome)});
      core::logging::ScopedRequestId request_scope(jobs[i].context.request_id);
      conclude(std::move(jobs[i].delivery), responses, false, disposition, jobs[i].transient_failures);
    }
  }
}

void Worker::conclude(std::unique_ptr<bus::Delivery> delivery,
                      const std::vector<jsonrpc::Response>& responses, bool batch, Disposition disposition,
                      std::uint32_t transient_failures) {
  if (disposition == Disposition::hold) {
    transient_failure();
    if (delivery->message().reply_to.empty()) {
      // A transient failure of a job: tried again in place after a back-off,
      // as long as it takes; the broker counts no delivery.
      bool draining = false;
      {
        std::lock_guard lock(mu_);
        draining = draining_;
        if (!draining) {
          retried_in_place_.fetch_add(1);
          held_.fetch_add(1);
          delayed_.emplace(std::chrono::steady_clock::now() + backoff(transient_failures + 1),
                           Task{std::move(delivery), nullptr, transient_failures + 1});
          cv_.notify_all();
          return;
        }
      }
      // Stopping: it goes back to the queue as it is.
      delivery.reset();
      settled();
      return;
    }
    disposition = Disposition::ack;  // an RPC: its caller has the answer (-32010) and decides
  } else if (disposition == Disposition::ack) {
    succeeded();
  }
  finish(*delivery, responses, batch, disposition);
}

// One turn of a lane: its deliveries in order, consecutive ordered jobs of one
// method handed to their handler together. A transient failure puts the job
// and everything after it back at the lane's head and backs off.
}  // namespace intercomm::worker
