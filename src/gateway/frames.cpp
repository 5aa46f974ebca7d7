// The frames a client sends on its socket: "send" and "presence", answered
// per ref; "typing", relayed.
#include "gateway/frames.hpp"

#include "bus/topology.hpp"
#include "core/jsonrpc.hpp"
#include "jobs/jobs.hpp"

#include <fmt/core.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <optional>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

bool is_ref(std::string_view ref) { return core::is_visible_ascii(ref, 64); }

std::string error_frame(const json::value& ref, const Error& error) {
  return json::serialize(json::object{{"type", "error"},
                                      {"ref", ref},
                                      {"status", core::http_status(error.code)},
                                      {"error", core::jsonrpc::to_json(error)}});
}

// {"type":"typing","to":U}: relayed to U's sockets, on every gateway, as
// {"type":"typing","from":user}; never stored, nothing answered unless it is
// refused (a bad `to`, or over the typing rate limit).
void typing(FrameContext& context, const std::string& user, const json::value& ref, const json::object& frame,
            const std::function<void(std::string)>& reply) {
  const json::value answer_ref = ref.is_string() && is_ref(ref.get_string()) ? ref : json::value(nullptr);
  for (const auto& member : frame) {
    if (member.key() != "type" && member.key() != "to" && member.key() != "ref") {
      return reply(error_frame(answer_ref, core::invalid_field(member.key(), "unknown field (allowed: to, ref)")));
    }
  }
  const auto* to = frame.if_contains("to");
  if (to == nullptr || !to->is_string() || !core::is_user_id(to->get_string())) {
    return reply(error_frame(answer_ref, core::invalid_field("to", "must be 1-64 of [A-Za-z0-9_.-]")));
  }
  if (auto spent = context.guard.spend(Guard::Limit::typing, user); !spent) {
    return reply(error_frame(answer_ref, spent.error()));
  }
  context.bus.publish(bus::kLiveExchange,
                      jobs::signal(to->get_string(), json::object{{"type", "typing"}, {"from", user}}),
                      context.send.publish_timeout,
                      [](bus::PublishStatus) {});  // unroutable: nobody of theirs is online
}

// {"type":"presence","ref","users":[...]}: answered {"type":"presence","ref",
// "users":{...}} as GET /v1/users/{user}/presence (RPC get_presence).
void presence(FrameContext& context, const std::string& user, const json::value& ref, const json::object& frame,
              std::function<void(std::string)> reply, std::function<void()> done) {
  for (const auto& member : frame) {
    if (member.key() != "type" && member.key() != "ref" && member.key() != "users") {
      reply(error_frame(ref, core::invalid_field(member.key(), "unknown field (allowed: ref, users)")));
      return done();
    }
  }
  json::object params{{"user", user}, {"users", frame.contains("users") ? frame.at("users") : json::value()}};
  auto job = jobs::GetPresence::decode(params);
  if (!job) {
    reply(error_frame(ref, job.error()));
    return done();
  }
  context.rpc.call(std::string(jobs::GetPresence::name), job->encode(), context.send.rpc_timeout, {},
                   [ref, reply = std::move(reply)](bus::RpcResult result) {
                     if (!result) return reply(error_frame(ref, result.error()));
                     const auto* users = result->is_object() ? result->as_object().if_contains("users") : nullptr;
                     reply(json::serialize(json::object{
                         {"type", "presence"}, {"ref", ref}, {"users", users ? *users : json::value(json::object())}}));
                   });
  done();  // the answer comes when it comes; the socket's next frame need not wait
}

}  // namespace

void handle_client_frame(FrameContext& context, const std::string& user, const std::string& request_id,
                         std::string_view text, std::function<void(std::string)> reply,
                         std::function<void()> done) {
  // Every way out but the send's own answer: reply (maybe), then done.
  const auto finish = [&](std::optional<std::string> answer) {
    if (answer) reply(std::move(*answer));
    done();
  };
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec || !parsed.is_object()) {
    return finish(error_frame(nullptr, Error::of(ErrorCode::parse_error, "frame: not a JSON object")));
  }
  json::object frame = std::move(parsed.as_object());
  const json::value ref = frame.contains("ref") ? frame.at("ref") : json::value(nullptr);
  const auto* type = frame.if_contains("type");
  if (type != nullptr && type->is_string() && type->get_string() == "typing") {
    typing(context, user, ref, frame, reply);
    return done();
  }
  if (!ref.is_string() || !is_ref(ref.get_string())) {
    return finish(error_frame(nullptr, core::invalid_field("ref", "required: 1-64 printable ASCII characters")));
  }
  if (type != nullptr && type->is_string() && type->get_string() == "presence") {
    return presence(context, user, ref, frame, std::move(reply), std::move(done));
  }
  if (type == nullptr || !type->is_string() || type->get_string() != "send") {
    return finish(error_frame(
        ref, core::invalid_field("type", "unknown frame type (the client may send: send, typing, presence)")));
  }
  if (auto spent = context.guard.spend(Guard::Limit::send, user); !spent) {
    return finish(error_frame(ref, spent.error()));
  }
  // Each send logs under the socket's request id and its ref.
  SendRequest send{user, {}, std::nullopt, request_id + "/" + std::string(ref.get_string())};
  for (auto& member : frame) {
    const std::string_view key = member.key();
    if (key == "type" || key == "ref") continue;
    if (key == "idempotency_key") {
      if (!member.value().is_string()) {
        return finish(error_frame(ref, core::invalid_field("idempotency_key", "must be a string")));
      }
      send.idempotency_key = std::string(member.value().get_string());
      continue;
    }
    send.fields[key] = std::move(member.value());  // accept_send refuses unknown fields, naming them
  }
  accept_send(context.bus, context.rpc, context.send, std::move(send),
              [ref, reply = std::move(reply), done = std::move(done)](core::Result<SendAccepted> accepted) {
                if (!accepted) {
                  reply(error_frame(ref, accepted.error()));
                } else {
                  reply(json::serialize(json::object{{"type", "accepted"},
                                                     {"ref", ref},
                                                     {"message_id", accepted->message_id},
                                                     {"replayed", accepted->replayed}}));
                }
                done();
              });
}

}  // namespace intercomm::gateway
