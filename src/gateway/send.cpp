// The send path shared by POST /v1/messages and the socket's send frame.
#include "gateway/send.hpp"

#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "gateway/blocks.hpp"
#include "jobs/jobs.hpp"

#include <fmt/core.h>

#include <memory>

namespace intercomm::gateway {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

namespace {

std::map<std::string, std::string> bus_headers(const SendRequest& request) {
  return {{std::string(bus::kRequestIdHeader), request.request_id}, {std::string(bus::kUserHeader), request.user}};
}

// Publishes send_message for `message`; accepted once the bus confirmed it.
void publish_send(bus::Bus& bus, const SendOptions& options, const SendRequest& request, core::Message message,
                  bool replayed, const std::function<void(core::Result<SendAccepted>)>& done) {
  bus::Envelope envelope = jobs::envelope(jobs::SendMessage{message});
  envelope.headers = bus_headers(request);
  // One conversation's sends go through one lane of the MTA, in accept order.
  envelope.headers[std::string(bus::kOrderKeyHeader)] = core::conversation_key(message.sender, message.receiver);
  bus.publish(bus::kExchange, std::move(envelope), options.publish_timeout,
              [metrics = options.metrics, id = std::move(message.message_id), replayed,
               done](bus::PublishStatus status) {
                if (metrics) metrics->job_published(bus::to_string(status));
                if (bus::outcome_unknown(status)) {
                  // The bus sent it and never heard back, even after sending it
                  // again: it may be queued. The same key makes the retry safe.
                  return done(Error::of(
                      ErrorCode::timeout,
                      fmt::format("the message {} may have been accepted (the broker did not confirm it in "
                                  "time); retry with the same Idempotency-Key to be sure it is stored once",
                                  id)));
                }
                if (status != bus::PublishStatus::confirmed) {
                  return done(Error::of(ErrorCode::unavailable,
                                        fmt::format("the message could not be queued ({}); nothing was "
                                                    "accepted, retry",
                                                    bus::to_string(status))));
                }
                done(SendAccepted{id, replayed});
              });
}

// Claims the Idempotency-Key when there is one, then publishes send_message.
void queue_send(bus::Bus& bus, bus::RpcClient& rpc, const SendOptions& options, SendRequest request,
                core::Message message, const std::function<void(core::Result<SendAccepted>)>& done) {
  if (!request.idempotency_key) {
    return publish_send(bus, options, request, std::move(message), false, done);
  }
  // The MTA records (user, key) -> this id and time the first time; a retry
  // gets the first ones back and publishes the very same message, which the
  // MTA stores once.
  using Claim = jobs::ClaimIdempotencyKey;
  json::object claim = Claim{request.user, *request.idempotency_key, message}.encode();
  const auto headers = bus_headers(request);
  rpc.call(std::string(Claim::name), std::move(claim), options.rpc_timeout, headers,
           [&bus, options, request = std::move(request), message = std::move(message),
            done](bus::RpcResult result) mutable {
             if (options.metrics) {
               options.metrics->rpc_finished(Claim::name, !result && result.error().code == ErrorCode::timeout);
             }
             if (!result) return done(result.error());
             auto claimed = Claim::decode_result(*result);
             if (!claimed) return done(Error::of(ErrorCode::internal_error));
             message.message_id = std::move(claimed->message_id);
             message.created_at = std::move(claimed->created_at);
             publish_send(bus, options, request, std::move(message), claimed->replayed, done);
           });
}

}  // namespace

void accept_send(bus::Bus& bus, bus::RpcClient& rpc, const SendOptions& options, SendRequest request,
                 std::function<void(core::Result<SendAccepted>)> done) {
  auto& fields = request.fields;
  for (const auto& member : fields) {
    const std::string_view key = member.key();
    if (key != "sender" && key != "receiver" && key != "body") {
      return done(Error::of(ErrorCode::invalid_params,
                            fmt::format("{}: unknown field (allowed: sender, receiver, body)", key)));
    }
  }
  if (!fields.contains("sender")) fields["sender"] = request.user;
  auto message = core::message_from_json(fields, options.limits, core::MessageShape::new_message);
  if (!message) return done(message.error());
  if (message->sender != request.user)
    return done(Error::of(ErrorCode::forbidden, "sender: the token acts for another user"));
  if (request.idempotency_key && !jobs::is_idempotency_key(*request.idempotency_key)) {
    return done(Error::of(ErrorCode::invalid_params, "Idempotency-Key: must be 1-255 printable ASCII characters"));
  }
  message->message_id = core::new_message_id();
  message->created_at = core::format_rfc3339(std::chrono::system_clock::now());
  if (options.blocks == nullptr) return queue_send(bus, rpc, options, std::move(request), std::move(*message), done);
  // Copied first: the callback below takes the request and the message.
  const std::string receiver = message->receiver;
  const std::string sender = request.user;
  options.blocks->check(
      receiver, sender,
      [&bus, &rpc, options, request = std::move(request), message = std::move(*message),
       done = std::move(done)](core::Result<bool> blocked) mutable {
        if (!blocked) return done(blocked.error());
        if (*blocked) {
          return done(Error::of(ErrorCode::forbidden,
                                fmt::format("receiver: {} does not take messages from you", message.receiver)));
        }
        queue_send(bus, rpc, options, std::move(request), std::move(message), done);
      });
}

}  // namespace intercomm::gateway
