// REST handlers: auth, validation, then the bus.
#include "gateway/api.hpp"

#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "core/jsonrpc.hpp"
#include "gateway/jwt.hpp"

#include <fmt/core.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <charconv>
#include <memory>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

struct Context {
  bus::Bus& bus;
  bus::RpcClient& rpc;
  ApiOptions options;
};

HttpResponse unauthorized(const Error& error) {
  auto response = error_response(error, 401);
  response.headers.emplace_back(
      "WWW-Authenticate",
      fmt::format(R"(Bearer error="invalid_token", error_description="{}")", error.message));
  return response;
}

// The authenticated user, or the 401 to answer.
core::Result<std::string> authenticate(const HttpRequest& request, const std::string& secret) {
  const std::string header = request.header("authorization");
  if (header.empty()) return Error::of(ErrorCode::unauthorized, "Authorization: Bearer <token> required");
  if (header.size() < 8 || header.compare(0, 7, "Bearer ") != 0) {
    return Error::of(ErrorCode::unauthorized, "Authorization: must be Bearer <token>");
  }
  auto claims = verify_hs256(std::string_view(header).substr(7), secret);
  if (!claims) return claims.error();
  return claims->subject;
}

Error forbidden(std::string_view why) {
  return Error::of(ErrorCode::forbidden, std::string(why));
}

HttpResponse from_rpc_error(const Error& error) {
  auto response = error_response(error);
  if (error.code == ErrorCode::unavailable) response.headers.emplace_back("Retry-After", "1");
  return response;
}

std::map<std::string, std::string> bus_headers(const HttpRequest& request, const std::string& user) {
  return {{std::string(bus::kRequestIdHeader), request.header("x-request-id")},
          {std::string(bus::kUserHeader), user}};
}

// Wraps a handler that needs an authenticated user.
Handler authed(
    std::shared_ptr<Context> context,
    std::function<void(const HttpRequest&, const PathParams&, const std::string&, Responder)> handler) {
  return [context, handler = std::move(handler)](const HttpRequest& request, const PathParams& params,
                                                 Responder respond) {
    auto user = authenticate(request, context->options.secret);
    if (!user) {
      respond(unauthorized(user.error()));
      return;
    }
    handler(request, params, *user, std::move(respond));
  };
}

bool is_json(const HttpRequest& request) {
  const std::string type = request.header("content-type");
  return type == "application/json" || type.rfind("application/json;", 0) == 0;
}

// A JSON object body, or the error to answer (415, 400).
core::Result<json::object> json_body(const HttpRequest& request, HttpResponse& refusal) {
  if (!is_json(request)) {
    refusal =
        error_response(Error::of(ErrorCode::invalid_request, "Content-Type: must be application/json"), 415);
    return Error::of(ErrorCode::invalid_request);
  }
  boost::system::error_code ec;
  auto value = json::parse(request.body, ec);
  if (ec) {
    refusal =
        error_response(Error::of(ErrorCode::parse_error, "body: not valid JSON (" + ec.message() + ")"));
    return Error::of(ErrorCode::parse_error);
  }
  if (!value.is_object()) {
    refusal = error_response(Error::of(ErrorCode::invalid_params, "body: must be a JSON object"));
    return Error::of(ErrorCode::invalid_params);
  }
  return std::move(value.as_object());
}

// An RPC whose result becomes `status` (or an error response).
void rpc_call(Context& context, const std::string& method, json::object params, const HttpRequest& request,
              const std::string& user, int status, Responder respond,
              std::function<core::Result<json::value>(json::value)> check = nullptr) {
  context.rpc.call(method, std::move(params), context.options.rpc_timeout, bus_headers(request, user),
                   [status, respond = std::move(respond), check = std::move(check)](bus::RpcResult result) {
                     if (result && check) result = check(std::move(*result));
                     if (!result) {
                       respond(from_rpc_error(result.error()));
                     } else if (status == 204) {
                       respond(HttpResponse{204, {}, ""});
                     } else {
                       respond(json_response(status, json::serialize(*result)));
                     }
                   });
}

void post_message(const std::shared_ptr<Context>& context, const HttpRequest& request,
                  const std::string& user, Responder respond) {
  HttpResponse refusal;
  auto body = json_body(request, refusal);
  if (!body) return respond(std::move(refusal));
  for (const auto& member : *body) {
    const std::string_view key = member.key();
    if (key != "sender" && key != "receiver" && key != "body") {
      return respond(
          error_response(Error::of(ErrorCode::invalid_params,
                                   fmt::format("{}: unknown field (allowed: sender, receiver, body)", key))));
    }
  }
  if (!body->contains("sender")) (*body)["sender"] = user;
  auto message = core::message_from_json(*body, context->options.limits, core::MessageShape::new_message);
  if (!message) return respond(error_response(message.error()));
  if (message->sender != user)
    return respond(error_response(forbidden("sender: the token acts for another user")));
  message->message_id = core::new_message_id();
  message->created_at = core::format_rfc3339(std::chrono::system_clock::now());

  core::jsonrpc::Request job{"send_message", json::object{{"message", core::to_json(*message)}}, {}};
  bus::Envelope envelope;
  envelope.routing_key = "send_message";
  envelope.body = core::jsonrpc::serialize(job);
  envelope.headers = bus_headers(request, user);
  const std::string id = message->message_id;
  context->bus.publish(
      bus::kExchange, std::move(envelope), context->options.publish_timeout,
      [id, respond = std::move(respond)](bus::PublishStatus status) {
        if (status != bus::PublishStatus::confirmed) {
          auto response = error_response(
              Error::of(ErrorCode::unavailable,
                        fmt::format("the message could not be queued ({}); nothing was accepted, retry",
                                    bus::to_string(status))));
          response.headers.emplace_back("Retry-After", "1");
          return respond(std::move(response));
        }
        auto response =
            json_response(202, json::serialize(json::object{{"message_id", id}, {"status", "accepted"}}));
        response.headers.emplace_back("Location", "/v1/messages/" + id);
        respond(std::move(response));
      });
}

core::Result<json::object> list_params(const HttpRequest& request, const std::string& user) {
  json::object params{{"user", user}};
  auto target = boost::urls::parse_origin_form(request.target);
  if (!target) return Error::of(ErrorCode::invalid_params, "query: malformed");
  for (const auto param : target->params()) {
    if (param.key == "before" || param.key == "after") {
      params[param.key] = param.value;
    } else if (param.key == "limit") {
      long limit = 0;
      const auto [end, ec] =
          std::from_chars(param.value.data(), param.value.data() + param.value.size(), limit);
      if (ec != std::errc() || end != param.value.data() + param.value.size()) {
        return Error::of(ErrorCode::invalid_params, "limit: must be an integer from 1 to 100");
      }
      params["limit"] = limit;
    } else {
      return Error::of(ErrorCode::invalid_params,
                       fmt::format("{}: unknown query parameter (allowed: before, after, limit)", param.key));
    }
  }
  return params;
}

}  // namespace

void add_api_routes(Router& router, bus::Bus& bus, bus::RpcClient& rpc, ApiOptions options) {
  auto context = std::make_shared<Context>(Context{bus, rpc, std::move(options)});

  router.add("POST", "/v1/messages", "send_message",
             authed(context, [context](const HttpRequest& request, const PathParams&, const std::string& user,
                                       Responder respond) {
               post_message(context, request, user, std::move(respond));
             }));

  router.add(
      "GET", "/v1/messages/{message_id}", "get_message",
      authed(context, [context](const HttpRequest& request, const PathParams& params, const std::string& user,
                                Responder respond) {
        const std::string& id = params.at("message_id");
        if (!core::is_message_id(id)) {
          return respond(
              error_response(Error::of(ErrorCode::invalid_params, "message_id: must be 8-40 of [0-9A-Z]")));
        }
        rpc_call(*context, "get_message", {{"message_id", id}}, request, user, 200, std::move(respond),
                 [user](json::value message) -> core::Result<json::value> {
                   const auto& object = message.as_object();
                   if (object.at("sender").as_string() != user && object.at("receiver").as_string() != user) {
                     return forbidden("message: only its sender and receiver may read it");
                   }
                   return message;
                 });
      }));

  const auto own =
      [context](std::string method, int status,
                std::function<core::Result<json::object>(const HttpRequest&, const PathParams&)> params_of) {
        return authed(
            context, [context, method, status, params_of](const HttpRequest& request, const PathParams& path,
                                                          const std::string& user, Responder respond) {
              if (path.at("user") != user)
                return respond(error_response(forbidden("user: the token acts for another user")));
              auto params = params_of(request, path);
              if (!params) return respond(error_response(params.error()));
              rpc_call(*context, method, std::move(*params), request, user, status, std::move(respond));
            });
      };

  router.add("GET", "/v1/users/{user}/messages", "list_messages",
             own("list_messages", 200, [](const HttpRequest& request, const PathParams& path) {
               return list_params(request, path.at("user"));
             }));
  router.add("POST", "/v1/users/{user}/subscriptions", "subscribe_user",
             own("subscribe_user", 201,
                 [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                   HttpResponse refusal;
                   auto body = json_body(request, refusal);
                   if (!body)
                     return Error::of(ErrorCode::invalid_params,
                                      "body: must be a JSON object {\"webhook\":{\"url\"}}");
                   (*body)["user"] = path.at("user");
                   return body;
                 }));
  router.add("GET", "/v1/users/{user}/subscriptions", "list_subscriptions",
             own("list_subscriptions", 200,
                 [](const HttpRequest&, const PathParams& path) -> core::Result<json::object> {
                   return json::object{{"user", path.at("user")}};
                 }));
  router.add(
      "DELETE", "/v1/users/{user}/subscriptions/{subscription_id}", "unsubscribe_user",
      own("unsubscribe_user", 204,
          [](const HttpRequest&, const PathParams& path) -> core::Result<json::object> {
            return json::object{{"user", path.at("user")}, {"subscription_id", path.at("subscription_id")}};
          }));

  router.add("GET", "/healthz", "healthz", [](const HttpRequest&, const PathParams&, Responder respond) {
    respond(json_response(200, R"({"status":"ok"})"));
  });
  router.add("GET", "/readyz", "readyz", [context](const HttpRequest&, const PathParams&, Responder respond) {
    const bool bus_ok = context->bus.connected();
    const bool store_ok = !context->options.ready || context->options.ready();
    const int status = bus_ok && store_ok ? 200 : 503;
    respond(json_response(status, json::serialize(json::object{{"bus", bus_ok}, {"store", store_ok}})));
  });
}

}  // namespace intercomm::gateway
