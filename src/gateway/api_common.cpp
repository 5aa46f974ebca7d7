// What the REST routes share: see api_common.hpp.
#include "gateway/api_common.hpp"

#include "bus/topology.hpp"
#include "core/ids.hpp"

#include <fmt/core.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>

namespace intercomm::gateway::api_detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

namespace {

std::map<std::string, std::string> bus_headers(const HttpRequest& request, const std::string& user) {
  return {{std::string(bus::kRequestIdHeader), request.header("x-request-id")},
          {std::string(bus::kUserHeader), user}};
}

bool is_json(const HttpRequest& request) {
  const std::string type = request.header("content-type");
  return type == "application/json" || type.rfind("application/json;", 0) == 0;
}

}  // namespace

Error forbidden(std::string_view why) {
  return Error::of(ErrorCode::forbidden, std::string(why));
}

HttpResponse from_rpc_error(const Error& error) {
  auto response = error_response(error);
  if (error.code == ErrorCode::unavailable) response.headers.emplace_back("Retry-After", "1");
  return response;
}

// Wraps a handler that needs an authenticated user.
Handler authed(
    std::shared_ptr<Context> context,
    std::function<void(const HttpRequest&, const PathParams&, const std::string&, Responder)> handler) {
  return [context, handler = std::move(handler)](const HttpRequest& request, const PathParams& params,
                                                 Responder respond) {
    auto claims = context->guard.authenticate(request);
    if (!claims) {
      respond(refusal(claims.error()));
      return;
    }
    handler(request, params, claims->subject, std::move(respond));
  };
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
void rpc_call(Context& context, std::string_view job, json::object params, const HttpRequest& request,
              const std::string& user, int status, Responder respond,
              ResultCheck check) {
  std::string method(job);
  context.rpc.call(method, std::move(params), context.options.rpc_timeout, bus_headers(request, user),
                   [&context, method, status, respond = std::move(respond),
                    check = std::move(check)](bus::RpcResult result) {
                     if (context.options.metrics) {
                       context.options.metrics->rpc_finished(
                           method, !result && result.error().code == ErrorCode::timeout);
                     }
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

// The query parameters of `request` as JSON-RPC params, each checked against
// its kind; any other parameter is refused, naming the ones allowed.
core::Result<json::object> query_params(const HttpRequest& request, const QueryParams& allowed) {
  json::object params;
  auto target = boost::urls::parse_origin_form(request.target);
  if (!target) return Error::of(ErrorCode::invalid_params, "query: malformed");
  for (const auto param : target->params()) {
    auto kind =
        std::find_if(allowed.begin(), allowed.end(), [&](const auto& a) { return a.first == param.key; });
    if (kind == allowed.end()) {
      std::string names;
      for (const auto& [name, k] : allowed) names += (names.empty() ? "" : ", ") + std::string(name);
      return Error::of(ErrorCode::invalid_params,
                       fmt::format("{}: unknown query parameter (allowed: {})", param.key, names));
    }
    if (params.contains(param.key)) {
      return Error::of(ErrorCode::invalid_params, fmt::format("{}: given twice", param.key));
    }
    switch (kind->second) {
      case QueryKind::message_id:
        if (!core::is_message_id(param.value)) {
          return Error::of(ErrorCode::invalid_params,
                           fmt::format("{}: must be a message id (8-40 of [0-9A-Z])", param.key));
        }
        params[param.key] = param.value;
        break;
      case QueryKind::seq:
      case QueryKind::limit: {
        std::uint64_t number = 0;
        const auto [end, ec] =
            std::from_chars(param.value.data(), param.value.data() + param.value.size(), number);
        const bool limit = kind->second == QueryKind::limit;
        if (ec != std::errc() || end != param.value.data() + param.value.size() || (limit && number == 0)) {
          return Error::of(ErrorCode::invalid_params,
                           fmt::format("{}: must be an integer from {}", param.key, limit ? 1 : 0));
        }
        if (limit) {
          params[param.key] = static_cast<std::int64_t>(std::min<std::uint64_t>(number, 1'000'000));
        } else {
          params[param.key] = number;
        }
        break;
      }
      case QueryKind::token: params[param.key] = param.value; break;
      case QueryKind::users: {
        json::array users;
        std::string_view rest = param.value;
        while (!rest.empty()) {
          const auto comma = rest.find(',');
          users.emplace_back(rest.substr(0, comma));
          rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
        params[param.key] = std::move(users);
        break;
      }
      case QueryKind::cursor:
        if (param.value.empty() || param.value.size() > 100) {
          return Error::of(ErrorCode::invalid_params,
                           fmt::format("{}: must be the `next` of a previous page", param.key));
        }
        params[param.key] = param.value;
        break;
    }
  }
  return params;
}

Handler own_route(const std::shared_ptr<Context>& context, std::string_view method, int status, ParamsOf params_of,
                  std::optional<Guard::Limit> limit, std::function<void(const std::string& user)> succeeded) {
  return authed(context, [context, method = std::string(method), status, params_of = std::move(params_of), limit,
                          succeeded = std::move(succeeded)](const HttpRequest& request, const PathParams& path,
                                                            const std::string& user, Responder respond) {
    if (path.at("user") != user) return respond(error_response(forbidden("user: the token acts for another user")));
    if (limit) {
      if (auto spent = context->guard.spend(*limit, user); !spent) return respond(refusal(spent.error()));
    }
    auto params = params_of(request, path);
    if (!params) return respond(error_response(params.error()));
    ResultCheck check = nullptr;
    if (succeeded) {
      check = [succeeded, user](boost::json::value result) -> core::Result<boost::json::value> {
        succeeded(user);
        return result;
      };
    }
    rpc_call(*context, method, std::move(*params), request, user, status, std::move(respond), std::move(check));
  });
}

}  // namespace intercomm::gateway::api_detail
