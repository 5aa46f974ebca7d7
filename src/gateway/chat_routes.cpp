// The chat routes of DESIGN.md § "Conversations, receipts and presence":
// each one a job on the caller's own resources (conversations, the read
// marker, retraction, blocks).
#include "gateway/api_common.hpp"

#include "jobs/jobs.hpp"

namespace intercomm::gateway::api_detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;

namespace {

// PUT / DELETE /v1/users/{user}/blocks/{other}: 204; this gateway forgets
// the user's blocks at once (the others when the MTA's signal reaches them).
// (Block and unblock take the same params.)
Handler block_route(const std::shared_ptr<Context>& context, std::string_view method) {
  return own_route(
      context, method, 204,
      [](const HttpRequest&, const PathParams& path) -> core::Result<json::object> {
        auto job = jobs::BlockUser::decode(json::object{{"user", path.at("user")}, {"other", path.at("other")}});
        if (!job) return job.error();
        return job->encode();
      },
      std::nullopt,
      [context](const std::string& user) {
        if (context->options.blocks) context->options.blocks->forget(user);
      });
}

}  // namespace

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

  router.add("DELETE", "/v1/messages/{message_id}", std::string(jobs::RetractMessage::name),
             authed(context, [context](const HttpRequest& request, const PathParams& path, const std::string& user,
                                       Responder respond) {
               auto job = jobs::RetractMessage::decode(json::object{{"user", user}, {"message_id", path.at("message_id")}});
               if (!job) return respond(error_response(job.error()));
               rpc_call(*context, jobs::RetractMessage::name, job->encode(), request, user, 204, std::move(respond));
             }));

  router.add("GET", "/v1/users/{user}/presence", std::string(jobs::GetPresence::name),
             own_route(context, jobs::GetPresence::name, 200,
                       [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                         auto query = query_params(request, {{"users", QueryKind::users}});
                         if (!query) return query;
                         auto job = jobs::GetPresence::decode(
                             json::object{{"user", path.at("user")},
                                          {"users", query->contains("users") ? query->at("users") : json::value()}});
                         if (!job) return job.error();
                         return job->encode();
                       }));

  router.add("PUT", "/v1/users/{user}/blocks/{other}", std::string(jobs::BlockUser::name),
             block_route(context, jobs::BlockUser::name));
  router.add("DELETE", "/v1/users/{user}/blocks/{other}", std::string(jobs::UnblockUser::name),
             block_route(context, jobs::UnblockUser::name));
  router.add("GET", "/v1/users/{user}/blocks", std::string(jobs::ListBlocks::name),
             own_route(context, jobs::ListBlocks::name, 200,
                       [](const HttpRequest& request, const PathParams& path) -> core::Result<json::object> {
                         auto params = query_params(request, {});
                         if (!params) return params;
                         return jobs::ListBlocks{path.at("user")}.encode();
                       }));
}

}  // namespace intercomm::gateway::api_detail
