// REST handlers: auth, validation, then the bus.
#include "gateway/api.hpp"

#include "gateway/api_common.hpp"

#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "core/jsonrpc.hpp"
#include "jobs/jobs.hpp"
#include "gateway/auth.hpp"
#include "gateway/jwt.hpp"
#include "gateway/frames.hpp"
#include "gateway/send.hpp"

#include <fmt/core.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>
#include <memory>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using namespace api_detail;

// Checks a get_message result: passes it on when `user` sent or received it, else 403.
std::function<core::Result<json::value>(json::value)> participant_only(std::string user, std::string why) {
  return [user = std::move(user), why = std::move(why)](json::value result) -> core::Result<json::value> {
    auto message = jobs::GetMessage::decode_result(result);
    if (!message) return message.error();
    if (message->sender != user && message->receiver != user) return forbidden(why);
    return result;
  };
}

// What a message's sender may see of its delivery attempts: which attempt,
// when, and how it ended — never the receiver's webhook URLs, subscription
// ids, status codes or error text, which only the receiver sees.
core::Result<json::value> sender_view_of_deliveries(json::value page) {
  if (!page.is_object()) return page;
  auto* deliveries = page.as_object().if_contains("deliveries");
  if (deliveries == nullptr || !deliveries->is_array()) return page;
  for (auto& attempt : deliveries->as_array()) {
    if (!attempt.is_object()) continue;
    json::object kept;
    for (const char* field : {"message_id", "event", "attempt", "at", "outcome"}) {
      if (const auto* value = attempt.as_object().if_contains(field)) kept[field] = *value;
    }
    attempt = std::move(kept);
  }
  return page;
}

// POST /v1/messages: 202 with Location once the job is durable on the bus.
void post_message(const std::shared_ptr<Context>& context, const HttpRequest& request,
                  const std::string& user, Responder respond) {
  HttpResponse refusal;
  auto body = json_body(request, refusal);
  if (!body) return respond(std::move(refusal));
  SendRequest send{user, std::move(*body), std::nullopt, request.header("x-request-id")};
  if (request.headers.contains("idempotency-key")) send.idempotency_key = request.header("idempotency-key");
  accept_send(context->bus, context->rpc, context->send, std::move(send),
              [respond = std::move(respond)](core::Result<SendAccepted> accepted) {
                if (!accepted) {
                  auto response = error_response(accepted.error());
                  const auto code = accepted.error().code;
                  if (code == ErrorCode::unavailable || code == ErrorCode::timeout) {
                    response.headers.emplace_back("Retry-After", "1");
                  }
                  return respond(std::move(response));
                }
                auto response = json_response(
                    202, json::serialize(json::object{{"message_id", accepted->message_id}, {"status", "accepted"}}));
                response.headers.emplace_back("Location", "/v1/messages/" + accepted->message_id);
                if (accepted->replayed) response.headers.emplace_back("Idempotent-Replayed", "true");
                respond(std::move(response));
              });
}

// A get_message answer as its sender sees it: with delivered_at and read_at
// (RPC get_receipt); as it is for anyone else.
Responder with_receipt_for_sender(const std::shared_ptr<Context>& context, const HttpRequest& request,
                                  const std::string& user, Responder respond) {
  return [context, request, user, respond = std::move(respond)](HttpResponse answer) {
    if (answer.status != 200) return respond(std::move(answer));
    boost::system::error_code ec;
    auto message = json::parse(answer.body, ec);
    const auto* fields = !ec ? message.if_object() : nullptr;
    const auto* sender = fields ? fields->if_contains("sender") : nullptr;
    const auto* receiver = fields ? fields->if_contains("receiver") : nullptr;
    if (sender == nullptr || receiver == nullptr || *sender != json::value(user) || *receiver == *sender) {
      return respond(std::move(answer));
    }
    const std::string id(fields->at("message_id").as_string());
    rpc_call(*context, jobs::GetReceipt::name, jobs::GetReceipt{id}.encode(), request, user, 200, respond,
             [message = std::move(message)](json::value receipt) mutable -> core::Result<json::value> {
               if (const auto* times = receipt.if_object()) {
                 for (const auto& [name, value] : *times) message.as_object()[name] = value;
               }
               return message;
             });
  };
}

// GET /v1/messages/{message_id}[/...]: the id checked, then get_message by RPC,
// which only the message's sender or receiver passes (`why` for the others);
// then `then_method` answers with its result (its params: the id and the
// query's `then_query` parameters), or get_message's when empty.
Handler message_route(const std::shared_ptr<Context>& context, std::string why, std::string then_method,
                      QueryParams then_query = {}) {
  return authed(
      context, [context, why, then_method, then_query](const HttpRequest& request, const PathParams& params,
                                                       const std::string& user, Responder respond) {
        const std::string& id = params.at("message_id");
        if (!core::is_message_id(id)) {
          return respond(
              error_response(Error::of(ErrorCode::invalid_params, "message_id: must be 8-40 of [0-9A-Z]")));
        }
        auto query = query_params(request, then_query);
        if (!query) return respond(error_response(query.error()));
        if (then_method.empty()) {
          return rpc_call(*context, jobs::GetMessage::name, jobs::GetMessage{id}.encode(), request, user, 200,
                          with_receipt_for_sender(context, request, user, std::move(respond)),
                          participant_only(user, why));
        }
        (*query)["message_id"] = id;
        rpc_call(
            *context, jobs::GetMessage::name, jobs::GetMessage{id}.encode(), request, user, 200,
            [context, request, user, then_method, then_params = std::move(*query),
             respond](HttpResponse checked) mutable {
              if (checked.status != 200) return respond(std::move(checked));
              // Deliveries are private to the receiver: the sender gets their outcomes only.
              std::function<core::Result<json::value>(json::value)> view = nullptr;
              if (then_method == jobs::ListDeliveries::name) {
                boost::system::error_code ec;
                const auto message = json::parse(checked.body, ec);
                const auto* receiver = !ec && message.is_object() ? message.as_object().if_contains("receiver") : nullptr;
                if (receiver == nullptr || !receiver->is_string() || receiver->get_string() != user) {
                  view = sender_view_of_deliveries;
                }
              }
              rpc_call(*context, then_method, std::move(then_params), request, user, 200, std::move(respond),
                       std::move(view));
            },
            participant_only(user, why));
      });
}

// GET /v1/stream: the token from Authorization or ?access_token= (browsers
// cannot set headers on a WebSocket); ?after_seq=N or ?after=<message_id> to
// resume.
WsUpgrade stream_upgrade(const std::shared_ptr<Context>& context, const HttpRequest& request) {
  WsUpgrade upgrade;
  auto query = query_params(
      request,
      {{"after_seq", QueryKind::seq}, {"after", QueryKind::message_id}, {"access_token", QueryKind::token}});
  if (!query) {
    upgrade.refusal = error_response(query.error());
    return upgrade;
  }
  if (query->contains("after") && query->contains("after_seq")) {
    upgrade.refusal =
        error_response(Error::of(ErrorCode::invalid_params, "after: give after or after_seq, not both"));
    return upgrade;
  }
  StreamCursor cursor;
  if (const auto* seq = query->if_contains("after_seq")) cursor.after_seq = seq->to_number<std::uint64_t>();
  if (const auto* after = query->if_contains("after")) cursor.after_id = std::string(after->get_string());
  const auto* token = query->if_contains("access_token");
  auto claims = context->guard.authenticate(
      request, token == nullptr ? std::nullopt : std::optional<std::string_view>(token->get_string()));
  if (!claims) {
    upgrade.refusal = refusal(claims.error());
    return upgrade;
  }
  upgrade.handler =
      context->options.stream->open(claims->subject, std::move(cursor), request.header("x-request-id"));
  upgrade.close_at = SystemClock::time_point(std::chrono::seconds(claims->expires_at));
  return upgrade;
}

}  // namespace

void add_api_routes(Router& router, bus::Bus& bus, bus::RpcClient& rpc, ApiOptions options) {
  auto context = std::make_shared<Context>(bus, rpc, std::move(options));

  router.add("POST", "/v1/messages", std::string(jobs::SendMessage::name),
             authed(context, [context](const HttpRequest& request, const PathParams&, const std::string& user,
                                       Responder respond) {
               if (auto spent = context->guard.spend(Guard::Limit::send, user); !spent) {
                 return respond(refusal(spent.error()));
               }
               post_message(context, request, user, std::move(respond));
             }));

  router.add("GET", "/v1/messages/{message_id}", std::string(jobs::GetMessage::name),
             message_route(context, "message: only its sender and receiver may read it", ""));
  router.add("GET", "/v1/messages/{message_id}/deliveries", std::string(jobs::ListDeliveries::name),
             message_route(context, "message: only its sender and receiver may see its deliveries",
                           std::string(jobs::ListDeliveries::name),
                           {{"after", QueryKind::cursor}, {"limit", QueryKind::limit}}));

  const auto own = [&context](std::string_view method, int status, ParamsOf params_of,
                              std::optional<Guard::Limit> limit = std::nullopt) {
    return own_route(context, method, status, std::move(params_of), limit);
  };

  router.add("GET", "/v1/users/{user}/messages", std::string(jobs::ListMessages::name),
             own(jobs::ListMessages::name, 200,
                 [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                   auto params = query_params(request, {{"before", QueryKind::message_id},
                                                        {"after", QueryKind::message_id},
                                                        {"before_seq", QueryKind::seq},
                                                        {"after_seq", QueryKind::seq},
                                                        {"limit", QueryKind::limit}});
                   if (params) (*params)["user"] = path.at("user");
                   return params;
                 }));
  router.add("POST", "/v1/users/{user}/subscriptions", std::string(jobs::SubscribeUser::name),
             own(jobs::SubscribeUser::name, 201,
                 [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                   HttpResponse refusal;
                   auto body = json_body(request, refusal);
                   if (!body)
                     return Error::of(ErrorCode::invalid_params,
                                      "body: must be a JSON object {\"webhook\":{\"url\"}}");
                   (*body)["user"] = path.at("user");
                   auto job = jobs::SubscribeUser::decode(*body);
                   if (!job) return job.error();
                   return job->encode();
                 },
                 Guard::Limit::subscription));
  router.add("GET", "/v1/users/{user}/subscriptions", std::string(jobs::ListSubscriptions::name),
             own(jobs::ListSubscriptions::name, 200,
                 [](const HttpRequest&, const PathParams& path) -> core::Result<json::object> {
                   return jobs::ListSubscriptions{path.at("user")}.encode();
                 }));
  router.add(
      "DELETE", "/v1/users/{user}/subscriptions/{subscription_id}", std::string(jobs::UnsubscribeUser::name),
      own(jobs::UnsubscribeUser::name, 204,
          [](const HttpRequest&, const PathParams& path) -> core::Result<json::object> {
            return jobs::UnsubscribeUser{path.at("user"), path.at("subscription_id")}.encode();
          },
          Guard::Limit::subscription));

  add_chat_routes(router, context);

  if (context->options.stream) {
    router.add_websocket("/v1/stream", "stream",
                         [context](const HttpRequest& request) { return stream_upgrade(context, request); });
    // Weak: the hub is the context's (options.stream), and must not own it back.
    context->options.stream->set_frame_handler(
        [weak = std::weak_ptr<Context>(context)](const std::string& user, const std::string& request_id,
                                                 std::string_view text, std::function<void(std::string)> reply,
                                                 std::function<void()> done) {
          auto context = weak.lock();
          if (!context) return done();  // the routes are gone: the server is stopping
          FrameContext frames{context->bus, context->rpc, context->guard, context->send};
          handle_client_frame(frames, user, request_id, text, std::move(reply), std::move(done));
        });
  }

  router.add("GET", "/healthz", "healthz", [](const HttpRequest&, const PathParams&, Responder respond) {
    respond(json_response(200, R"({"status":"ok"})"));
  });
  router.add("GET", "/metrics", "metrics",
             [context](const HttpRequest&, const PathParams&, Responder respond) {
               if (!context->options.metrics) {
                 return respond(
                     error_response(Error::of(ErrorCode::not_found, "metrics are not collected here"), 404));
               }
               respond(HttpResponse{200,
                                    {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                                    context->options.metrics->render()});
             });
  router.add("GET", "/readyz", "readyz", [context](const HttpRequest&, const PathParams&, Responder respond) {
    const bool bus_ok = context->bus.connected();
    const bool store_ok = !context->options.ready || context->options.ready();
    json::object report{{"bus", bus_ok}, {"store", store_ok}};
    bool workers_ok = true;
    if (context->options.workers_ready) {
      workers_ok = context->options.workers_ready();
      report["workers"] = workers_ok;
    }
    const int status = bus_ok && store_ok && workers_ok ? 200 : 503;
    respond(json_response(status, json::serialize(report)));
  });
}

}  // namespace intercomm::gateway
