// The MDA's job: live delivery through inter_comm.live.
#include "mda/mda.hpp"

#include "bus/topology.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include <future>

namespace intercomm::mda {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

class Jobs {
 public:
  Jobs(store::Store& store, bus::Bus& bus, MdaOptions options)
      : store_(store), bus_(bus), options_(options) {}

  Result<json::value> deliver_message(const json::object& params) {
    const auto* raw = params.if_contains("message");
    if (raw == nullptr || params.size() != 1) {
      Error error = Error::of(ErrorCode::invalid_params, "message: required, and nothing else");
      error.data = json::object{{"field", "message"}};
      return error;
    }
    auto message =
        core::message_from_json(*raw, core::MessageLimits{std::size_t(-1)}, core::MessageShape::stored);
    if (!message) return message.error();
    const std::string event =
        json::serialize(json::object{{"type", "message"}, {"message", core::to_json(*message)}});
    json::array live;
    std::vector<std::string> users{message->receiver};
    if (message->sender != message->receiver) users.push_back(message->sender);
    for (const auto& user : users) {
      auto online = publish_live(user, event);
      if (!online) return online.error();
      if (*online) live.emplace_back(user);
    }
    return json::object{{"message_id", message->message_id}, {"live", std::move(live)}};
  }

 private:
  // True when some gateway has a socket of `user` (the publish was routed).
  Result<bool> publish_live(const std::string& user, const std::string& event) {
    bus::Envelope envelope;
    envelope.routing_key = "user." + user;
    envelope.body = event;
    envelope.persistent = false;  // a live copy; the inbox holds the message
    auto promise = std::make_shared<std::promise<bus::PublishStatus>>();
    auto outcome = promise->get_future();
    bus_.publish(bus::kLiveExchange, std::move(envelope), options_.publish_timeout,
                 [promise](bus::PublishStatus status) { promise->set_value(status); });
    switch (const auto status = outcome.get()) {
      case bus::PublishStatus::confirmed: return true;
      case bus::PublishStatus::unroutable: return false;
      default:
        spdlog::warn("mda: live publish for {}: {}", user, bus::to_string(status));
        return Error::of(ErrorCode::unavailable, "bus unavailable; retry");
    }
  }

  [[maybe_unused]] store::Store& store_;
  bus::Bus& bus_;
  MdaOptions options_;
};

}  // namespace

void register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus, MdaOptions options) {
  auto jobs = std::make_shared<Jobs>(store, bus, options);
  worker.on("deliver_message", [jobs](const json::object& params, const worker::JobContext&) {
    return jobs->deliver_message(params);
  });
}

}  // namespace intercomm::mda
