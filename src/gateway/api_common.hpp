// What the REST routes share (internal to the gateway): the routes'
// context, authentication, JSON bodies, query parameters, and the RPC whose
// result is the answer. api.cpp has the message routes, chat_routes.cpp the
// conversation ones.
#pragma once

#include "bus/bus.hpp"
#include "bus/rpc_client.hpp"
#include "core/errors.hpp"
#include "gateway/api.hpp"
#include "gateway/auth.hpp"
#include "gateway/http.hpp"
#include "gateway/router.hpp"
#include "gateway/send.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace intercomm::gateway::api_detail {

struct Context {
  Context(bus::Bus& b, bus::RpcClient& r, ApiOptions o)
      : bus(b),
        rpc(r),
        options(std::move(o)),
        guard(options.verifier, options.rate_limits, options.metrics),
        send{options.limits, options.rpc_timeout, options.publish_timeout, options.metrics, options.blocks.get()} {}
  bus::Bus& bus;
  bus::RpcClient& rpc;
  ApiOptions options;
  Guard guard;
  SendOptions send;  // POST /v1/messages' and the socket's send frames'
};

core::Error forbidden(std::string_view why);
// An RPC's error as an answer (503 with Retry-After when nothing could take it).
HttpResponse from_rpc_error(const core::Error& error);

// Wraps a handler that needs an authenticated user (the token's subject).
Handler authed(std::shared_ptr<Context> context,
               std::function<void(const HttpRequest&, const PathParams&, const std::string&, Responder)> handler);

// A JSON object body, or the error to answer in `refusal` (415, 400).
core::Result<boost::json::object> json_body(const HttpRequest& request, HttpResponse& refusal);

// A result check run before answering (e.g. only a message's participants).
using ResultCheck = std::function<core::Result<boost::json::value>(boost::json::value)>;

// An RPC whose result becomes `status` (204: no body), or an error response.
void rpc_call(Context& context, std::string_view job, boost::json::object params, const HttpRequest& request,
              const std::string& user, int status, Responder respond, ResultCheck check = nullptr);

// The kinds of query parameter the routes take.
enum class QueryKind {
  message_id,  // 8-40 of [0-9A-Z]
  seq,         // an integer from 0
  limit,       // an integer from 1 (the worker checks the top)
  cursor,      // an opaque `next` of a previous page
  token,       // a bearer token (checked by the verifier)
  users,       // user ids separated by commas: a JSON array (the job checks each)
};
using QueryParams = std::vector<std::pair<std::string_view, QueryKind>>;

// The query parameters of `request` as JSON-RPC params, each checked against
// its kind; any other parameter is refused, naming the ones allowed.
core::Result<boost::json::object> query_params(const HttpRequest& request, const QueryParams& allowed);

// A route on the caller's own resources (/v1/users/{user}/...: 403 unless
// {user} is the token's subject): `params_of` builds the job's params (or
// the error to answer), `limit` is spent first when given, `succeeded` runs
// (with the user) before a success is answered.
using ParamsOf = std::function<core::Result<boost::json::object>(const HttpRequest&, const PathParams&)>;
Handler own_route(const std::shared_ptr<Context>& context, std::string_view method, int status, ParamsOf params_of,
                  std::optional<Guard::Limit> limit = std::nullopt,
                  std::function<void(const std::string& user)> succeeded = nullptr);

// chat_routes.cpp: conversations, the read marker.
void add_chat_routes(Router& router, const std::shared_ptr<Context>& context);

}  // namespace intercomm::gateway::api_detail
