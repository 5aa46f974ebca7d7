// Webhook subscriptions: subscribe_user, list_subscriptions, unsubscribe_user.
#include "mta/jobs.hpp"

#include "core/ids.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <openssl/rand.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

namespace {

std::string random_secret() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no randomness for a webhook secret");
  std::string out = "whsec_";
  for (unsigned char byte : bytes) out += fmt::format("{:02x}", byte);
  return out;
}

// http or https, a host, no credentials, no fragment.
Result<std::string> webhook_url(const json::object& params) {
  const auto* webhook = params.if_contains("webhook");
  const auto* object = webhook ? webhook->if_object() : nullptr;
  const auto* url = object ? object->if_contains("url") : nullptr;
  if (url == nullptr || !url->is_string()) return core::invalid_field("webhook.url", "required, a string");
  if (object->size() != 1) return core::invalid_field("webhook", "takes only url");
  const std::string_view text = url->get_string();
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return core::invalid_field("webhook.url", "must be an absolute http or https URL");
  if (parsed->scheme() != "http" && parsed->scheme() != "https") {
    return core::invalid_field("webhook.url", "must use http or https");
  }
  if (parsed->host().empty()) return core::invalid_field("webhook.url", "must name a host");
  if (parsed->has_userinfo())
    return core::invalid_field("webhook.url", "must not carry credentials (user:password@)");
  if (parsed->has_fragment()) return core::invalid_field("webhook.url", "must not have a #fragment");
  if (text.size() > 2048) return core::invalid_field("webhook.url", "must be at most 2048 characters");
  return std::string(text);
}

}  // namespace

JobResult subscribe_user(Context& context, const json::object& params) {
  if (auto ok = only(params, {"user", "webhook"}); !ok) return ok.error();
  auto user = user_param(params);
  if (!user) return user.error();
  auto url = webhook_url(params);
  if (!url) return url.error();
  // Each message fans out to every subscription: the cap bounds what one
  // message costs. Two concurrent subscribes may both pass it (at most one
  // over per concurrent request).
  const std::size_t cap = context.options.max_subscriptions_per_user;
  auto existing = context.store.range(store::kSubscriptions, *user,
                                      store::RangeQuery{std::nullopt, std::nullopt, cap, store::Order::ascending});
  if (!existing) return unavailable(existing.error());
  if (existing->entries.size() >= cap) {
    return Error::of(ErrorCode::conflict,
                     fmt::format("{} has {} webhook subscriptions, the most allowed: remove one first", *user, cap));
  }
  const std::string id = core::new_message_id();
  json::object subscription{
      {"subscription_id", id},      {"user", *user},
      {"webhook", {{"url", *url}}}, {"secret", random_secret()},
      {"status", "active"},         {"created_at", core::format_rfc3339(std::chrono::system_clock::now())}};
  if (auto stored = context.store.put(store::kSubscriptions, store::subscription_key(*user, id),
                                      json::serialize(subscription));
      !stored) {
    return unavailable(stored.error());
  }
  if (auto indexed = context.store.index_add(store::kSubscriptions, *user, id); !indexed) {
    return unavailable(indexed.error());
  }
  return subscription;  // the only time the secret is shown
}

JobResult list_subscriptions(Context& context, const json::object& params) {
  if (auto ok = only(params, {"user"}); !ok) return ok.error();
  auto user = user_param(params);
  if (!user) return user.error();
  store::RangeQuery query;
  query.order = store::Order::ascending;
  query.limit = context.options.max_page;
  auto page = context.store.range(store::kSubscriptions, *user, query);
  if (!page) return unavailable(page.error());
  json::array subscriptions;
  for (const auto& id : page->entries) {
    auto value = context.store.get(store::kSubscriptions, store::subscription_key(*user, id));
    if (!value) return unavailable(value.error());
    if (!value->has_value()) continue;
    auto subscription = json::parse(**value).as_object();
    subscription.erase("secret");
    subscriptions.push_back(std::move(subscription));
  }
  return json::object{{"subscriptions", std::move(subscriptions)}};
}

JobResult unsubscribe_user(Context& context, const json::object& params) {
  if (auto ok = only(params, {"user", "subscription_id"}); !ok) return ok.error();
  auto user = user_param(params);
  if (!user) return user.error();
  auto id = optional_id_param(params, "subscription_id");
  if (!id) return id.error();
  if (!*id) return core::invalid_field("subscription_id", "required");
  auto removed = context.store.remove(store::kSubscriptions, store::subscription_key(*user, **id));
  if (!removed) return unavailable(removed.error());
  if (!*removed) return Error::of(ErrorCode::not_found, "subscription: not found");
  (void)context.store.index_remove(store::kSubscriptions, *user, **id);
  return json::object{{"removed", true}};
}

}  // namespace intercomm::mta::detail
