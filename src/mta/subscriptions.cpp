// Webhook subscriptions: subscribe_user, list_subscriptions, unsubscribe_user.
#include "mta/jobs.hpp"

#include "core/ids.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <openssl/rand.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

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

}  // namespace

JobResult subscribe_user(Context& context, const json::object& params) {
  auto job = jobs::SubscribeUser::decode(params);
  if (!job) return job.error();
  const std::string& user = job->user;
  // Each message fans out to every subscription: the cap bounds what one
  // message costs. Two concurrent subscribes may both pass it (at most one
  // over per concurrent request).
  const std::size_t cap = context.options.max_subscriptions_per_user;
  auto existing = context.store.range(store::kSubscriptions, user,
                                      store::RangeQuery{std::nullopt, std::nullopt, cap, store::Order::ascending});
  if (!existing) return unavailable(existing.error());
  if (existing->entries.size() >= cap) {
    return Error::of(ErrorCode::conflict,
                     fmt::format("{} has {} webhook subscriptions, the most allowed: remove one first", user, cap));
  }
  const std::string id = core::new_message_id();
  json::object subscription{
      {"subscription_id", id},          {"user", user},
      {"webhook", {{"url", job->url}}}, {"secret", random_secret()},
      {"status", "active"},         {"created_at", core::format_rfc3339(std::chrono::system_clock::now())}};
  if (auto stored = context.store.put(store::kSubscriptions, store::subscription_key(user, id),
                                      json::serialize(subscription));
      !stored) {
    return unavailable(stored.error());
  }
  if (auto indexed = context.store.index_add(store::kSubscriptions, user, id); !indexed) {
    return unavailable(indexed.error());
  }
  return subscription;  // the only time the secret is shown
}

JobResult list_subscriptions(Context& context, const json::object& params) {
  auto job = jobs::ListSubscriptions::decode(params);
  if (!job) return job.error();
  const std::string& user = job->user;
  store::RangeQuery query;
  query.order = store::Order::ascending;
  query.limit = context.options.max_page;
  auto page = context.store.range(store::kSubscriptions, user, query);
  if (!page) return unavailable(page.error());
  json::array subscriptions;
  for (const auto& id : page->entries) {
    auto value = context.store.get(store::kSubscriptions, store::subscription_key(user, id));
    if (!value) return unavailable(value.error());
    if (!value->has_value()) continue;
    auto subscription = json::parse(**value).as_object();
    subscription.erase("secret");
    subscriptions.push_back(std::move(subscription));
  }
  return json::object{{"subscriptions", std::move(subscriptions)}};
}

JobResult unsubscribe_user(Context& context, const json::object& params) {
  auto job = jobs::UnsubscribeUser::decode(params);
  if (!job) return job.error();
  auto removed = context.store.remove(store::kSubscriptions, store::subscription_key(job->user, job->subscription_id));
  if (!removed) return unavailable(removed.error());
  if (!*removed) return Error::of(ErrorCode::not_found, "subscription: not found");
  (void)context.store.index_remove(store::kSubscriptions, job->user, job->subscription_id);
  return json::object{{"removed", true}};
}

}  // namespace intercomm::mta::detail
