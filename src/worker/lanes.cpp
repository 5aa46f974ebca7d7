// Ordered lanes: each lane's deliveries handed to its batch handler in queue
// order, one batch of a lane at a time; a transient failure holds the lane.
#include "worker/lane.hpp"

#include "core/logging.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace intercomm::worker {

namespace json = boost::json;
namespace jsonrpc = core::jsonrpc;
using core::Error;
using core::ErrorCode;
using detail::context_of;

void Worker::on_lane_delivery(Lane& lane, std::unique_ptr<bus::Delivery> delivery) {
  std::lock_guard lock(mu_);
  ++busy_;
  lane.pending.push_back(Lane::Held{std::move(delivery), 0});
  if (!lane.scheduled) {
    lane.scheduled = true;
    tasks_.push_back(Task{nullptr, &lane});
    cv_.notify_one();
  }
}

void Worker::run_lane(Lane& lane) {
  std::vector<Lane::Held> held;
  bool draining = false;
  {
    std::lock_guard lock(mu_);
    const std::size_t take = lane.isolate ? 1 : std::max<std::size_t>(1, options_.lane_prefetch);
    while (!lane.pending.empty() && held.size() < take) {
      held.push_back(std::move(lane.pending.front()));
      lane.pending.pop_front();
    }
    draining = draining_;
  }

  std::size_t retry_from = held.size();
  bool threw = false;
  for (std::size_t i = 0; i < held.size() && retry_from == held.size();) {
    // The run of single, ordered requests of one method starting at i.
    std::vector<jsonrpc::Request> requests;
    std::vector<BatchJob> jobs;
    const BatchHandler* handler = nullptr;
    std::size_t end = i;
    for (; end < held.size(); ++end) {
      auto incoming = jsonrpc::parse_incoming(held[end].delivery->message().body, core::kMaxBusMessageBytes);
      if (incoming.batch || incoming.items.size() != 1) break;
      auto* request = std::get_if<jsonrpc::Request>(&incoming.items.front());
      if (request == nullptr) break;
      auto found = ordered_handlers_.find(request->method);
      if (found == ordered_handlers_.end() || (handler != nullptr && handler != &found->second)) break;
      handler = &found->second;
      requests.push_back(std::move(*request));
    }
    if (handler == nullptr) {  // not an ordered job: handled on its own, as on rpc_queue_<name>
      process(std::move(held[i].delivery));
      ++i;
      continue;
    }
    jobs.reserve(requests.size());
    for (std::size_t k = 0; k < requests.size(); ++k) {
      JobContext context = context_of(*held[i + k].delivery);
      context.method = requests[k].method;
      jobs.push_back(BatchJob{&requests[k].params_or_empty(), std::move(context)});
    }
    std::vector<core::Result<json::value>> outcomes;
    try {
      core::logging::ScopedRequestId request_scope(jobs.front().context.request_id);
      outcomes = (*handler)(jobs);
    } catch (const std::exception& e) {
      spdlog::error("worker {}: {} threw: {}", name_, requests.front().method, e.what());
      threw = true;
    }
    if (!threw && outcomes.size() != jobs.size()) {
      spdlog::error("worker {}: {} gave {} outcomes for {} jobs", name_, requests.front().method,
                    outcomes.size(), jobs.size());
      threw = true;
    }
    for (std::size_t k = 0; k < jobs.size(); ++k) {
      auto& delivery = *held[i + k].delivery;
      const bool rpc = !delivery.message().reply_to.empty();
      const bool transient = threw || detail::transient(outcomes[k]);
      if (transient && !rpc) {
        retry_from = i + k;
        break;
      }
      std::vector<jsonrpc::Response> responses;
      if (!requests[k].is_notification()) {
        responses.push_back(jsonrpc::Response{
            *requests[k].id, threw ? core::Result<json::value>(Error::of(ErrorCode::internal_error))
                                   : std::move(outcomes[k])});
      }
      finish(delivery, responses, false, Disposition::ack);
      held[i + k].delivery.reset();
    }
    i = end;
  }

  // What is left goes back to the head of the lane, in order.
  std::vector<Lane::Held> again;
  for (std::size_t k = retry_from; k < held.size(); ++k) {
    if (!held[k].delivery) continue;
    if (threw && k == retry_from) {
      ++held[k].failures;
      if (lane.isolate && held[k].failures + held[k].delivery->delivery_count() >= options_.max_deliveries) {
        // Deterministic: this very job made the handler throw every time.
        spdlog::error("worker {}: a job of {} threw {} times; dead-lettering", name_, lane.queue,
                      held[k].failures);
        finish(*held[k].delivery, {}, false, Disposition::dead_letter);
        continue;
      }
    }
    again.push_back(std::move(held[k]));
  }
  if (!again.empty() && draining) {
    // Stopping: what could not be done goes back to the queue as it is.
    for (auto& item : again) {
      item.delivery.reset();  // rejected with requeue
      settled();
    }
    again.clear();
  }

  if (!threw && !again.empty()) {
    transient_failure();
  } else if (!threw && retry_from > 0) {
    succeeded();
  }
  std::lock_guard lock(mu_);
  if (threw) lane.isolate = true;
  if (!again.empty()) {
    retried_in_place_.fetch_add(again.size());
    for (auto it = again.rbegin(); it != again.rend(); ++it) lane.pending.push_front(std::move(*it));
    const auto wait = backoff(++lane.failures);
    if (!threw) {
      spdlog::warn("worker {}: {} waits {} ms after a transient failure", name_, lane.queue, wait.count());
    }
    delayed_.emplace(std::chrono::steady_clock::now() + wait, Task{nullptr, &lane, 0});
    cv_.notify_all();
    return;
  }
  if (!threw) {
    lane.failures = 0;
    if (retry_from == held.size()) lane.isolate = false;
  }
  if (!lane.pending.empty()) {
    tasks_.push_back(Task{nullptr, &lane});  // behind the others: lanes take turns
    cv_.notify_one();
  } else {
    lane.scheduled = false;
  }
}

}  // namespace intercomm::worker
