// Serves the chat page from the compiled-in web/ files; mints development tokens.
#include "gateway/web.hpp"

#include "core/message.hpp"
#include "gateway/auth.hpp"
#include "gateway/jwt.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;

Handler asset(std::string path) {
  return [path](const HttpRequest&, const PathParams&, Responder respond) {
    auto file = web_asset(path);
    if (!file) {
      return respond(error_response(core::Error::of(core::ErrorCode::not_found, "no such file"), 404));
    }
    respond(HttpResponse{200,
                         {{"Content-Type", std::string(file->content_type)},
                          {"Cache-Control", "no-cache"},
                          {"X-Content-Type-Options", "nosniff"}},
                         std::string(file->content)});
  };
}

}  // namespace

void add_web_routes(Router& router, WebOptions options) {
  router.add("GET", "/", "web", asset("/index.html"));
  router.add("GET", "/app.js", "web", asset("/app.js"));
  router.add("GET", "/client.js", "web", asset("/client.js"));
  router.add("GET", "/style.css", "web", asset("/style.css"));
  if (options.dev_secret.empty()) return;
  router.add("OPTIONS", "/v1/dev/token", "dev_token",
             [](const HttpRequest&, const PathParams&, Responder respond) {
               respond(HttpResponse{204, {}, ""});
             });
  router.add("POST", "/v1/dev/token", "dev_token",
             [secret = options.dev_secret, limiter = std::make_shared<RateLimiter>(options.dev_token_limit),
              metrics = options.metrics](const HttpRequest& request, const PathParams&, Responder respond) {
               if (const auto wait = limiter->take(request.remote)) {
                 if (metrics) metrics->rate_limited("dev_token");
                 return respond(refusal(rate_limited("dev_token", *wait)));
               }
               boost::system::error_code ec;
               const auto body = json::parse(request.body, ec);
               const auto* user = !ec && body.is_object() ? body.as_object().if_contains("user") : nullptr;
               if (user == nullptr || !user->is_string() || !core::is_user_id(user->get_string())) {
                 return respond(error_response(core::Error::of(core::ErrorCode::invalid_params,
                                                               "user: must be 1-64 of [A-Za-z0-9_.-]")));
               }
               const std::string token = mint_hs256(secret, user->get_string(), std::chrono::hours(24));
               respond(json_response(200, json::serialize(json::object{{"token", token}})));
             });
}

}  // namespace intercomm::gateway
