// RPC over the bus: pending calls by id, a timer thread for deadlines.
#include "bus/rpc_client.hpp"

#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "core/jsonrpc.hpp"
#include "core/logging.hpp"

#include <fmt/core.h>

#include <future>

namespace intercomm::bus {

using core::Error;
using core::ErrorCode;

core::Result<std::unique_ptr<RpcClient>> RpcClient::open(Bus& bus, Intercept intercept) {
  std::unique_ptr<RpcClient> client(new RpcClient(bus));
  client->guard_->client = client.get();
  auto on_reply = [guard = client->guard_, intercept = std::move(intercept)](Envelope reply) {
    if (intercept && intercept(reply)) return;
    std::lock_guard lock(guard->mu);
    if (guard->client != nullptr) guard->client->on_reply(std::move(reply));
  };
  if (auto opened = bus.open_reply_queue(std::move(on_reply)); !opened) {
    return opened.error();
  }
  return client;
}

RpcClient::RpcClient(Bus& bus) : bus_(bus), id_prefix_(core::new_message_id() + "-") {
  timer_ = std::thread([this] {
    core::logging::name_this_thread("rpc-timer");
    run_timer();
  });
}

RpcClient::~RpcClient() {
  {
    std::lock_guard lock(guard_->mu);
    guard_->client = nullptr;
  }
  std::map<std::string, Pending> left;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    left.swap(pending_);
  }
  cv_.notify_all();
  timer_.join();
  for (auto& [id, pending] : left) pending.done(Error::of(ErrorCode::unavailable, "rpc: client closed"));
}

void RpcClient::call(const std::string& method, boost::json::object params, Clock::duration timeout,
                     std::map<std::string, std::string> headers, RpcCallback done) {
  const auto deadline = Clock::now() + timeout;
  std::string id;
  {
    std::lock_guard lock(mu_);
    id = id_prefix_ + std::to_string(next_id_++);
    pending_.emplace(id, Pending{std::move(done), deadline});
    const bool earliest = deadlines_.empty() || deadline < deadlines_.begin()->first;
    deadlines_.emplace(deadline, id);
    if (earliest) cv_.notify_all();
  }
  core::jsonrpc::Request request{method, std::move(params), boost::json::value(id)};
  Envelope envelope;
  envelope.routing_key = method;
  envelope.body = core::jsonrpc::serialize(request);
  envelope.reply_to = bus_.reply_queue();
  envelope.correlation_id = id;
  envelope.expiration = std::chrono::ceil<std::chrono::milliseconds>(timeout);
  envelope.headers = std::move(headers);
  envelope.persistent = false;  // a request outliving its caller has no use
  if (envelope.reply_to.empty()) {
    complete(id, Error::of(ErrorCode::unavailable, "rpc: bus not connected"));
    return;
  }
  // The confirm may come after this client is gone (the bus outlives it): reach it through the guard.
  bus_.publish(kExchange, std::move(envelope), timeout, [guard = guard_, id, method](PublishStatus status) {
    if (status == PublishStatus::confirmed) return;
    std::lock_guard lock(guard->mu);
    if (guard->client != nullptr) guard->client->complete(id, publish_failure(status, method));
  });
}

Error RpcClient::publish_failure(PublishStatus status, const std::string& method) {
  switch (status) {
    case PublishStatus::unroutable:
      return Error::of(ErrorCode::unavailable, fmt::format("rpc: no worker is bound for job {}", method));
    case PublishStatus::timeout:
    case PublishStatus::unknown:
      return Error::of(ErrorCode::timeout, "rpc: no confirm in time");
    case PublishStatus::confirmed:
    case PublishStatus::nacked:
    case PublishStatus::failed:
      break;
  }
  return Error::of(ErrorCode::unavailable, fmt::format("rpc: publish {}", to_string(status)));
}

RpcResult RpcClient::call_and_wait(const std::string& method, boost::json::object params,
                                   Clock::duration timeout) {
  auto promise = std::make_shared<std::promise<RpcResult>>();
  auto future = promise->get_future();
  call(method, std::move(params), timeout, {},
       [promise](RpcResult result) { promise->set_value(std::move(result)); });
  return future.get();
}

void RpcClient::on_reply(Envelope reply) {
  auto response = core::jsonrpc::parse_response(reply.body);
  // Match by correlation id (the request's id); the body's id is the same for our workers.
  std::string id = reply.correlation_id;
  if (id.empty() && response && response->id.is_string()) id = std::string(response->id.get_string());
  const bool matched = response ? complete(id, std::move(response->outcome))
                                : complete(id, Error::of(ErrorCode::internal_error, "rpc: malformed reply"));
  if (!matched) late_replies_.fetch_add(1);
}

bool RpcClient::complete(const std::string& id, RpcResult result) {
  RpcCallback done;
  {
    std::lock_guard lock(mu_);
    auto found = pending_.find(id);
    if (found == pending_.end()) return false;
    done = std::move(found->second.done);
    pending_.erase(found);
  }
  done(std::move(result));
  return true;
}

void RpcClient::run_timer() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (deadlines_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto [deadline, id] = *deadlines_.begin();
    if (Clock::now() < deadline) {
      cv_.wait_until(lock, deadline);
      continue;
    }
    deadlines_.erase(deadlines_.begin());
    auto found = pending_.find(id);
    if (found == pending_.end()) continue;  // already answered
    auto done = std::move(found->second.done);
    pending_.erase(found);
    timeouts_.fetch_add(1);
    lock.unlock();
    done(Error::of(ErrorCode::timeout, "rpc: no reply in time"));
    lock.lock();
  }
}

}  // namespace intercomm::bus
