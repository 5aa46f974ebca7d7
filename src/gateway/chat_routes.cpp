// The chat routes of DESIGN.md § "Conversations, receipts and presence":
// each one a job on the caller's own resources.
#include "gateway/api_common.hpp"

#include "jobs/jobs.hpp"

namespace intercomm::gateway::api_detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

void add_chat_routes(Router& router, const std::shared_ptr<Context>& context) {
  router.add("GET", "/v1/users/{user}/conversations", std::string(jobs::ListConversations::name),
             own_route(context, jobs::ListConversations::name, 200,
                       [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                         auto params = query_params(request, {{"before", QueryKind::seq}, {"limit", QueryKind::limit}});
                         if (params) (*params)["user"] = path.at("user");
                         return params;
                       }));
  router.add("GET", "/v1/users/{user}/conversations/{peer}/messages", std::string(jobs::ListConversation::name),
             own_route(context, jobs::ListConversation::name, 200,
                       [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                         auto params = query_params(request, {{"after_seq", QueryKind::seq},
                                                              {"before_seq", QueryKind::seq},
                                                              {"limit", QueryKind::limit}});
                         if (!params) return params;
                         (*params)["user"] = path.at("user");
                         (*params)["peer"] = path.at("peer");
                         return params;
                       }));
  router.add("POST", "/v1/users/{user}/conversations/{peer}/read", std::string(jobs::MarkRead::name),
             own_route(context, jobs::MarkRead::name, 200,
                       [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                         HttpResponse refusal;
                         auto body = json_body(request, refusal);
                         if (!body) return Error::of(ErrorCode::invalid_params, "body: must be a JSON object {\"seq\":N}");
                         if (body->size() != 1 || !body->contains("seq")) {
                           return core::invalid_field("body", "must be {\"seq\":N}, nothing else");
                         }
                         auto job = jobs::MarkRead::decode(
                             json::object{{"user", path.at("user")}, {"peer", path.at("peer")}, {"seq", body->at("seq")}});
                         if (!job) return job.error();
                         return job->encode();
                       }));
}

}  // namespace intercomm::gateway::api_detail
