// The frames a client sends on its socket: "send", answered per ref.
#include "gateway/frames.hpp"

#include "core/jsonrpc.hpp"

#include <fmt/core.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

bool is_ref(std::string_view ref) {
  return !ref.empty() && ref.size() <= 64 &&
         std::all_of(ref.begin(), ref.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

std::string error_frame(const json::value& ref, const Error& error) {
  return json::serialize(json::object{{"type", "error"},
                                      {"ref", ref},
                                      {"status", core::http_status(error.code)},
                                      {"error", core::jsonrpc::to_json(error)}});
}

}  // namespace

void handle_client_frame(FrameContext& context, const std::string& user, const std::string& request_id,
                         std::string_view text, std::function<void(std::string)> reply) {
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec || !parsed.is_object()) {
    return reply(error_frame(nullptr, Error::of(ErrorCode::parse_error, "frame: not a JSON object")));
  }
  json::object frame = std::move(parsed.as_object());
  const json::value ref = frame.contains("ref") ? frame.at("ref") : json::value(nullptr);
  if (!ref.is_string() || !is_ref(ref.get_string())) {
    return reply(error_frame(nullptr, core::invalid_field("ref", "required: 1-64 printable ASCII characters")));
  }
  const auto* type = frame.if_contains("type");
  if (type == nullptr || !type->is_string() || type->get_string() != "send") {
    return reply(error_frame(ref, core::invalid_field("type", "unknown frame type (the client may send: send)")));
  }
  if (auto spent = context.guard.spend(Guard::Limit::send, user); !spent) {
    return reply(error_frame(ref, spent.error()));
  }
  SendRequest send{user, {}, std::nullopt, request_id};
  for (auto& member : frame) {
    const std::string_view key = member.key();
    if (key == "type" || key == "ref") continue;
    if (key == "idempotency_key") {
      if (!member.value().is_string()) {
        return reply(error_frame(ref, core::invalid_field("idempotency_key", "must be a string")));
      }
      send.idempotency_key = std::string(member.value().get_string());
      continue;
    }
    send.fields[key] = std::move(member.value());  // accept_send refuses unknown fields, naming them
  }
  accept_send(context.bus, context.rpc, context.send, std::move(send),
              [ref, reply = std::move(reply)](core::Result<SendAccepted> accepted) {
                if (!accepted) return reply(error_frame(ref, accepted.error()));
                reply(json::serialize(json::object{{"type", "accepted"},
                                                   {"ref", ref},
                                                   {"message_id", accepted->message_id},
                                                   {"replayed", accepted->replayed}}));
              });
}

}  // namespace intercomm::gateway
