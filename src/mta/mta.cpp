// The MTA's jobs: store and route messages, manage webhook subscriptions.
#include "mta/mta.hpp"

#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "core/jsonrpc.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <future>
#include <initializer_list>

namespace intercomm::mta {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

using store::kDeliveries;
using store::kIdempotency;
using store::kInbox;
using store::kMessages;
using store::kSubscriptions;

Error invalid(std::string_view field, std::string_view rule) {
  Error error = Error::of(ErrorCode::invalid_params, fmt::format("{}: {}", field, rule));
  error.data = json::object{{"field", field}};
  return error;
}

// Refuses params other than `allowed`: a misspelt parameter must not be ignored.
Result<void> only(const json::object& params, std::initializer_list<std::string_view> allowed) {
  for (const auto& member : params) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(member.key())) == allowed.end()) {
      return invalid(member.key(), "unknown parameter");
    }
  }
  return {};
}

Result<std::string> user_param(const json::object& params, std::string_view name = "user") {
  const auto* value = params.if_contains(name);
  if (value == nullptr || !value->is_string() || !core::is_user_id(value->get_string())) {
    return invalid(name, "must be 1-64 of [A-Za-z0-9_.-]");
  }
  return std::string(value->get_string());
}

Result<std::optional<std::string>> optional_id_param(const json::object& params, std::string_view name) {
  const auto* value = params.if_contains(name);
  if (value == nullptr || value->is_null()) return std::optional<std::string>();
  if (!value->is_string() || !core::is_message_id(value->get_string())) {
    return invalid(name, "must be a message id (8-40 of [0-9A-Z])");
  }
  return std::optional<std::string>(std::string(value->get_string()));
}

Error unavailable(const Error& cause) {
  spdlog::warn("mta: {}", cause.message);
  return Error::of(ErrorCode::unavailable, "store or bus unavailable; retry");
}

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
  if (url == nullptr || !url->is_string()) return invalid("webhook.url", "required, a string");
  if (object->size() != 1) return invalid("webhook", "takes only url");
  const std::string_view text = url->get_string();
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return invalid("webhook.url", "must be an absolute http or https URL");
  if (parsed->scheme() != "http" && parsed->scheme() != "https") {
    return invalid("webhook.url", "must use http or https");
  }
  if (parsed->host().empty()) return invalid("webhook.url", "must name a host");
  if (parsed->has_userinfo()) return invalid("webhook.url", "must not carry credentials (user:password@)");
  if (parsed->has_fragment()) return invalid("webhook.url", "must not have a #fragment");
  if (text.size() > 2048) return invalid("webhook.url", "must be at most 2048 characters");
  return std::string(text);
}

// What makes two sends "the same request" for an idempotency key: receiver and body.
std::string fingerprint(const core::Message& message) {
  const std::string input = message.receiver + '\0' + message.body;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

class Jobs {
 public:
  Jobs(store::Store& store, bus::Bus& bus, MtaOptions options)
      : store_(store), bus_(bus), options_(options) {}

  Result<json::value> send_message(const json::object& params) {
    if (auto ok = only(params, {"message"}); !ok) return ok.error();
    const auto* raw = params.if_contains("message");
    if (raw == nullptr) return invalid("message", "required: {\"sender\",\"receiver\",\"body\"}");
    auto message = core::message_from_json(*raw, options_.limits, core::MessageShape::new_message);
    if (!message) return message.error();
    if (message->message_id.empty()) message->message_id = core::new_message_id();
    if (message->created_at.empty())
      message->created_at = core::format_rfc3339(std::chrono::system_clock::now());
    const std::string stored_text = json::serialize(core::to_json(*message));

    // New: the message and both inbox entries in one write where the store
    // can (one sync). Already there: a redelivery, whose index entries are
    // re-added below in case the first attempt stopped half-way.
    auto written = store_.put_if_absent_indexed(kMessages, message->message_id, stored_text,
                                                {{kInbox, message->sender}, {kInbox, message->receiver}},
                                                message->message_id);
    if (!written) return unavailable(written.error());
    if (!*written) {
      // A redelivery, or a client reusing an id: the same message is fine.
      auto existing = read_message(message->message_id);
      if (!existing) return existing.error();
      if (existing->sender != message->sender || existing->receiver != message->receiver ||
          existing->body != message->body) {
        return Error::of(ErrorCode::conflict, "message_id: already used for a different message");
      }
      *message = *existing;
      for (const auto& user : {message->sender, message->receiver}) {
        if (auto added = store_.index_add(kInbox, user, message->message_id); !added) {
          return unavailable(added.error());
        }
      }
    }
    if (auto queued = queue_delivery(*message); !queued) return queued.error();
    return json::object{{"message_id", message->message_id}};
  }

  Result<json::value> get_message(const json::object& params) {
    const auto* id = params.if_contains("message_id");
    if (params.size() != 1 || id == nullptr || !id->is_string() || !core::is_message_id(id->get_string())) {
      Error error = Error::of(ErrorCode::invalid_params);  // the seed's exact failure response
      error.data = json::object{{"field", "message_id"}, {"expected", "8-40 of [0-9A-Z]"}};
      return error;
    }
    auto message = read_message(std::string(id->get_string()));
    if (!message) return message.error();
    return core::to_json(*message);
  }

  Result<json::value> list_messages(const json::object& params) {
    if (auto ok = only(params, {"user", "before", "after", "limit"}); !ok) return ok.error();
    auto user = user_param(params);
    if (!user) return user.error();
    store::RangeQuery query;
    query.order = store::Order::descending;
    query.limit = options_.default_page;
    if (const auto* limit = params.if_contains("limit")) {
      if (!limit->is_int64() || limit->get_int64() < 1 ||
          limit->get_int64() > static_cast<long>(options_.max_page)) {
        return invalid("limit", fmt::format("must be an integer from 1 to {}", options_.max_page));
      }
      query.limit = static_cast<std::size_t>(limit->get_int64());
    }
    auto before = optional_id_param(params, "before");
    if (!before) return before.error();
    auto after = optional_id_param(params, "after");
    if (!after) return after.error();
    query.before = *before;
    query.after = *after;

    auto page = store_.range(kInbox, *user, query);
    if (!page) return unavailable(page.error());
    json::array messages;
    for (const auto& id : page->entries) {
      auto message = read_message(id);
      if (!message) {
        if (message.error().code == ErrorCode::not_found) continue;  // index ahead of a failed write
        return message.error();
      }
      messages.push_back(core::to_json(*message));
    }
    json::object result{{"messages", std::move(messages)}};
    result["next"] = page->next ? json::value(*page->next) : json::value(nullptr);
    return result;
  }

  Result<json::value> subscribe_user(const json::object& params) {
    if (auto ok = only(params, {"user", "webhook"}); !ok) return ok.error();
    auto user = user_param(params);
    if (!user) return user.error();
    auto url = webhook_url(params);
    if (!url) return url.error();
    const std::string id = core::new_message_id();
    json::object subscription{
        {"subscription_id", id},      {"user", *user},
        {"webhook", {{"url", *url}}}, {"secret", random_secret()},
        {"status", "active"},         {"created_at", core::format_rfc3339(std::chrono::system_clock::now())}};
    if (auto stored = store_.put(kSubscriptions, subscription_key(*user, id), json::serialize(subscription));
        !stored) {
      return unavailable(stored.error());
    }
    if (auto indexed = store_.index_add(kSubscriptions, *user, id); !indexed)
      return unavailable(indexed.error());
    return subscription;  // the only time the secret is shown
  }

  Result<json::value> list_subscriptions(const json::object& params) {
    if (auto ok = only(params, {"user"}); !ok) return ok.error();
    auto user = user_param(params);
    if (!user) return user.error();
    store::RangeQuery query;
    query.order = store::Order::ascending;
    query.limit = options_.max_page;
    auto page = store_.range(kSubscriptions, *user, query);
    if (!page) return unavailable(page.error());
    json::array subscriptions;
    for (const auto& id : page->entries) {
      auto value = store_.get(kSubscriptions, subscription_key(*user, id));
      if (!value) return unavailable(value.error());
      if (!value->has_value()) continue;
      auto subscription = json::parse(**value).as_object();
      subscription.erase("secret");
      subscriptions.push_back(std::move(subscription));
    }
    return json::object{{"subscriptions", std::move(subscriptions)}};
  }

  Result<json::value> unsubscribe_user(const json::object& params) {
    if (auto ok = only(params, {"user", "subscription_id"}); !ok) return ok.error();
    auto user = user_param(params);
    if (!user) return user.error();
    auto id = optional_id_param(params, "subscription_id");
    if (!id) return id.error();
    if (!*id) return invalid("subscription_id", "required");
    auto removed = store_.remove(kSubscriptions, subscription_key(*user, **id));
    if (!removed) return unavailable(removed.error());
    if (!*removed) return Error::of(ErrorCode::not_found, "subscription: not found");
    (void)store_.index_remove(kSubscriptions, *user, **id);
    return json::object{{"removed", true}};
  }

  Result<json::value> claim_idempotency_key(const json::object& params) {
    if (auto ok = only(params, {"user", "key", "message"}); !ok) return ok.error();
    auto user = user_param(params);
    if (!user) return user.error();
    const auto* key = params.if_contains("key");
    if (key == nullptr || !key->is_string() || !is_idempotency_key(key->get_string())) {
      return invalid("key", "must be 1-255 printable ASCII characters");
    }
    const auto* raw = params.if_contains("message");
    if (raw == nullptr) return invalid("message", "required");
    auto message = core::message_from_json(*raw, options_.limits, core::MessageShape::new_message);
    if (!message) return message.error();
    if (message->message_id.empty() || message->created_at.empty()) {
      return invalid("message", "must carry message_id and created_at");
    }
    const json::object claim{{"message_id", message->message_id},
                             {"created_at", message->created_at},
                             {"fingerprint", fingerprint(*message)}};
    const std::string claim_key = fmt::format("{}/{}", *user, key->get_string());
    auto written = store_.put_if_absent(kIdempotency, claim_key, json::serialize(claim));
    if (!written) return unavailable(written.error());
    if (*written) {
      return json::object{
          {"message_id", message->message_id}, {"created_at", message->created_at}, {"replayed", false}};
    }
    auto existing = store_.get(kIdempotency, claim_key);
    if (!existing) return unavailable(existing.error());
    if (!existing->has_value())
      return unavailable(Error::of(ErrorCode::unavailable, "idempotency claim vanished"));
    boost::system::error_code ec;
    const auto recorded = json::parse(**existing, ec);
    if (ec || !recorded.is_object()) return Error::of(ErrorCode::internal_error);
    if (recorded.at("fingerprint") != claim.at("fingerprint")) {
      return Error::of(ErrorCode::conflict,
                       "Idempotency-Key: already used for a different message (receiver or body differ)");
    }
    return json::object{{"message_id", recorded.at("message_id")},
                        {"created_at", recorded.at("created_at")},
                        {"replayed", true}};
  }

  Result<json::value> list_deliveries(const json::object& params) {
    const auto* id = params.if_contains("message_id");
    if (params.size() != 1 || id == nullptr || !id->is_string() || !core::is_message_id(id->get_string())) {
      return invalid("message_id", "must be a message id (8-40 of [0-9A-Z])");
    }
    const std::string message_id(id->get_string());
    store::RangeQuery query;
    query.order = store::Order::ascending;
    query.limit = 1000;
    auto page = store_.range(kDeliveries, message_id, query);
    if (!page) return unavailable(page.error());
    json::array deliveries;
    for (const auto& entry : page->entries) {
      auto value = store_.get(kDeliveries, store::delivery_key(message_id, entry));
      if (!value) return unavailable(value.error());
      if (!value->has_value()) continue;
      boost::system::error_code ec;
      auto attempt = json::parse(**value, ec);
      if (!ec) deliveries.push_back(std::move(attempt));
    }
    return json::object{{"deliveries", std::move(deliveries)}};
  }

 private:
  static bool is_idempotency_key(std::string_view key) {
    return !key.empty() && key.size() <= 255 &&
           std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
  }

  static std::string subscription_key(std::string_view user, std::string_view id) {
    return store::subscription_key(user, id);
  }

  Result<core::Message> read_message(const std::string& id) {
    auto value = store_.get(kMessages, id);
    if (!value) return unavailable(value.error());
    if (!value->has_value()) return Error::of(ErrorCode::not_found, "message: not found");
    boost::system::error_code ec;
    auto parsed = json::parse(**value, ec);
    if (ec) return Error::of(ErrorCode::internal_error);
    return core::message_from_json(parsed, core::MessageLimits{std::size_t(-1)}, core::MessageShape::stored);
  }

  // Queues deliver_message for the MDA; with no MDA bound the message simply
  // waits in the inboxes (that is not a failure worth retrying).
  Result<void> queue_delivery(const core::Message& message) {
    core::jsonrpc::Request request{"deliver_message", json::object{{"message", core::to_json(message)}}, {}};
    bus::Envelope job;
    job.routing_key = "deliver_message";
    job.body = core::jsonrpc::serialize(request);
    auto promise = std::make_shared<std::promise<bus::PublishStatus>>();
    auto outcome = promise->get_future();
    bus_.publish(bus::kExchange, std::move(job), options_.publish_timeout,
                 [promise](bus::PublishStatus status) { promise->set_value(status); });
    switch (const auto status = outcome.get()) {
      case bus::PublishStatus::confirmed: return {};
      case bus::PublishStatus::unroutable:
        spdlog::debug("mta: no MDA bound for deliver_message; {} waits in the inboxes", message.message_id);
        return {};
      default:
        return unavailable(Error::of(ErrorCode::unavailable,
                                     fmt::format("queuing deliver_message: {}", bus::to_string(status))));
    }
  }

  store::Store& store_;
  bus::Bus& bus_;
  MtaOptions options_;
};

}  // namespace

void register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus, MtaOptions options) {
  auto jobs = std::make_shared<Jobs>(store, bus, options);
  const auto bind = [&](std::string name, Result<json::value> (Jobs::*method)(const json::object&)) {
    worker.on(std::move(name), [jobs, method](const json::object& params, const worker::JobContext&) {
      return ((*jobs).*method)(params);
    });
  };
  bind("send_message", &Jobs::send_message);
  bind("get_message", &Jobs::get_message);
  bind("list_messages", &Jobs::list_messages);
  bind("subscribe_user", &Jobs::subscribe_user);
  bind("list_subscriptions", &Jobs::list_subscriptions);
  bind("unsubscribe_user", &Jobs::unsubscribe_user);
  bind("claim_idempotency_key", &Jobs::claim_idempotency_key);
  bind("list_deliveries", &Jobs::list_deliveries);
}

}  // namespace intercomm::mta
