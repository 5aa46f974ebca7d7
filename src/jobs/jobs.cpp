// The job contract's codecs: params built by encode(), checked by decode().
#include "jobs/jobs.hpp"

#include "jobs/codec.hpp"

#include "bus/topology.hpp"
#include "core/jsonrpc.hpp"

#include <fmt/core.h>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <initializer_list>
#include <limits>

namespace intercomm::jobs {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

namespace codec {

constexpr core::MessageLimits kStoredMessage{std::numeric_limits<std::size_t>::max()};

// Refuses params other than `allowed`: a misspelt parameter must not be ignored.
Result<void> only(const json::object& params, std::initializer_list<std::string_view> allowed) {
  for (const auto& member : params) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(member.key())) == allowed.end()) {
      return core::invalid_field(member.key(), "unknown parameter");
    }
  }
  return {};
}

Result<std::string> user_of(const json::object& params, std::string_view name) {
  const auto* value = params.if_contains(name);
  if (value == nullptr || !value->is_string() || !core::is_user_id(value->get_string())) {
    return core::invalid_field(name, "must be 1-64 of [A-Za-z0-9_.-]");
  }
  return std::string(value->get_string());
}

Result<std::optional<std::string>> optional_id(const json::object& params, std::string_view name) {
  const auto* value = params.if_contains(name);
  if (value == nullptr || value->is_null()) return std::optional<std::string>();
  if (!value->is_string() || !core::is_message_id(value->get_string())) {
    return core::invalid_field(name, "must be a message id (8-40 of [0-9A-Z])");
  }
  return std::optional<std::string>(std::string(value->get_string()));
}

Result<std::optional<std::uint64_t>> optional_seq(const json::object& params, std::string_view name) {
  const auto* value = params.if_contains(name);
  if (value == nullptr || value->is_null()) return std::optional<std::uint64_t>();
  if (value->is_uint64()) return std::optional<std::uint64_t>(value->get_uint64());
  if (value->is_int64() && value->get_int64() >= 0) {
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(value->get_int64()));
  }
  return core::invalid_field(name, "must be a sequence number (an integer from 0)");
}

// An integer from `low` to `high` (however the JSON number is stored), or none.
std::optional<std::int64_t> integer_in(const json::value* value, std::int64_t low, std::int64_t high) {
  if (value == nullptr || !value->is_number() || value->is_double()) return std::nullopt;
  boost::system::error_code ec;
  const auto number = value->to_number<std::int64_t>(ec);
  if (ec || number < low || number > high) return std::nullopt;
  return number;
}

Result<std::size_t> limit_of(const json::object& params, const PageBounds& bounds) {
  const auto* limit = params.if_contains("limit");
  if (limit == nullptr) return bounds.fallback;
  const auto value = integer_in(limit, 1, static_cast<std::int64_t>(bounds.max));
  if (!value) return core::invalid_field("limit", fmt::format("must be an integer from 1 to {}", bounds.max));
  return static_cast<std::size_t>(*value);
}

Result<core::Message> message_of(const json::object& params, const core::MessageLimits& limits,
                                 core::MessageShape shape, std::string_view missing = "required") {
  const auto* raw = params.if_contains("message");
  if (raw == nullptr) return core::invalid_field("message", missing);
  return core::message_from_json(*raw, limits, shape);
}

// http or https, a host, no credentials, no fragment.
Result<std::string> webhook_url_of(const json::object& params) {
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

void set_if(json::object& params, std::string_view name, const std::optional<std::string>& value) {
  if (value) params[name] = *value;
}
void set_if(json::object& params, std::string_view name, const std::optional<std::uint64_t>& value) {
  if (value) params[name] = *value;
}

Error malformed_result(std::string_view job) {
  return Error::of(ErrorCode::internal_error, fmt::format("{}: a result of the wrong shape", job));
}

}  // namespace codec

using namespace codec;

bool is_idempotency_key(std::string_view key) { return core::is_visible_ascii(key, 255); }

// --- SendMessage ---

json::object SendMessage::encode() const { return json::object{{"message", core::to_json(message)}}; }

Result<SendMessage> SendMessage::decode(const json::object& params, const core::MessageLimits& limits) {
  if (auto ok = only(params, {"message"}); !ok) return ok.error();
  auto message =
      message_of(params, limits, core::MessageShape::new_message, "required: {\"sender\",\"receiver\",\"body\"}");
  if (!message) return message.error();
  return SendMessage{std::move(*message)};
}

// --- GetMessage ---

json::object GetMessage::encode() const { return json::object{{"message_id", message_id}}; }

Result<GetMessage> GetMessage::decode(const json::object& params) {
  const auto* id = params.if_contains("message_id");
  if (params.size() != 1 || id == nullptr || !id->is_string() || !core::is_message_id(id->get_string())) {
    Error error = Error::of(ErrorCode::invalid_params);  // the seed's exact failure response
    error.data = json::object{{"field", "message_id"}, {"expected", "8-40 of [0-9A-Z]"}};
    return error;
  }
  return GetMessage{std::string(id->get_string())};
}

Result<core::Message> GetMessage::decode_result(const json::value& result) {
  return core::message_from_json(result, kStoredMessage, core::MessageShape::stored);
}

// --- ListMessages ---

json::object ListMessages::encode() const {
  json::object params{{"user", user}};
  set_if(params, "after", after);
  set_if(params, "before", before);
  set_if(params, "after_seq", after_seq);
  set_if(params, "before_seq", before_seq);
  if (limit) params["limit"] = *limit;
  return params;
}

Result<ListMessages> ListMessages::decode(const json::object& params, const PageBounds& bounds) {
  if (auto ok = only(params, {"user", "before", "after", "before_seq", "after_seq", "limit"}); !ok)
    return ok.error();
  ListMessages job;
  auto user = user_of(params);
  if (!user) return user.error();
  job.user = std::move(*user);
  auto limit = limit_of(params, bounds);
  if (!limit) return limit.error();
  job.limit = *limit;
  for (const std::string_view name : {"after", "before"}) {
    auto id = optional_id(params, name);
    if (!id) return id.error();
    auto seq = optional_seq(params, std::string(name) + "_seq");
    if (!seq) return seq.error();
    if (*id && *seq) return core::invalid_field(name, fmt::format("give {} or {}_seq, not both", name, name));
    (name == "after" ? job.after : job.before) = std::move(*id);
    (name == "after" ? job.after_seq : job.before_seq) = *seq;
  }
  return job;
}

Result<ListMessages::Page> ListMessages::decode_result(const json::value& result) {
  const auto* object = result.if_object();
  const auto* messages = object ? object->if_contains("messages") : nullptr;
  if (messages == nullptr || !messages->is_array()) return malformed_result(name);
  Page page;
  for (const auto& item : messages->get_array()) {
    const auto* fields = item.if_object();
    const auto* seq = fields ? fields->if_contains("seq") : nullptr;
    if (seq == nullptr || !seq->is_number()) return malformed_result(name);
    Page::Item entry;
    boost::system::error_code ec;
    entry.seq = seq->to_number<std::uint64_t>(ec);
    if (ec) return malformed_result(name);
    entry.message = *fields;
    entry.message.erase("seq");
    page.messages.push_back(std::move(entry));
  }
  for (auto [field, into] : {std::pair{"next_seq", &page.next_seq}, std::pair{"after_seq", &page.after_seq}}) {
    const auto* seq = object->if_contains(field);
    if (seq == nullptr || seq->is_null()) continue;
    boost::system::error_code ec;
    *into = seq->to_number<std::uint64_t>(ec);
    if (ec) return malformed_result(name);
  }
  return page;
}

// --- ListDeliveries ---

json::object ListDeliveries::encode() const {
  json::object params{{"message_id", message_id}};
  set_if(params, "after", after);
  if (limit) params["limit"] = *limit;
  return params;
}

Result<ListDeliveries> ListDeliveries::decode(const json::object& params, const PageBounds& bounds) {
  if (auto ok = only(params, {"message_id", "after", "limit"}); !ok) return ok.error();
  const auto* id = params.if_contains("message_id");
  if (id == nullptr || !id->is_string() || !core::is_message_id(id->get_string())) {
    return core::invalid_field("message_id", "must be a message id (8-40 of [0-9A-Z])");
  }
  ListDeliveries job;
  job.message_id = std::string(id->get_string());
  if (const auto* after = params.if_contains("after"); after != nullptr) {
    if (!after->is_string() || after->get_string().empty() || after->get_string().size() > 100) {
      return core::invalid_field("after", "must be the `next` of a previous page");
    }
    job.after = std::string(after->get_string());
  }
  auto limit = limit_of(params, bounds);
  if (!limit) return limit.error();
  job.limit = *limit;
  return job;
}

// --- subscriptions ---

json::object SubscribeUser::encode() const {
  return json::object{{"user", user}, {"webhook", json::object{{"url", url}}}};
}

Result<SubscribeUser> SubscribeUser::decode(const json::object& params) {
  if (auto ok = only(params, {"user", "webhook"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  auto url = webhook_url_of(params);
  if (!url) return url.error();
  return SubscribeUser{std::move(*user), std::move(*url)};
}

json::object ListSubscriptions::encode() const { return json::object{{"user", user}}; }

Result<ListSubscriptions> ListSubscriptions::decode(const json::object& params) {
  if (auto ok = only(params, {"user"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  return ListSubscriptions{std::move(*user)};
}

json::object UnsubscribeUser::encode() const {
  return json::object{{"user", user}, {"subscription_id", subscription_id}};
}

Result<UnsubscribeUser> UnsubscribeUser::decode(const json::object& params) {
  if (auto ok = only(params, {"user", "subscription_id"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  auto id = optional_id(params, "subscription_id");
  if (!id) return id.error();
  if (!*id) return core::invalid_field("subscription_id", "required");
  return UnsubscribeUser{std::move(*user), std::move(**id)};
}

// --- ClaimIdempotencyKey ---

json::object ClaimIdempotencyKey::encode() const {
  return json::object{{"user", user}, {"key", key}, {"message", core::to_json(message)}};
}

Result<ClaimIdempotencyKey> ClaimIdempotencyKey::decode(const json::object& params,
                                                        const core::MessageLimits& limits) {
  if (auto ok = only(params, {"user", "key", "message"}); !ok) return ok.error();
  auto user = user_of(params);
  if (!user) return user.error();
  const auto* key = params.if_contains("key");
  if (key == nullptr || !key->is_string() || !is_idempotency_key(key->get_string())) {
    return core::invalid_field("key", "must be 1-255 printable ASCII characters");
  }
  auto message = message_of(params, limits, core::MessageShape::new_message);
  if (!message) return message.error();
  if (message->message_id.empty() || message->created_at.empty()) {
    return core::invalid_field("message", "must carry message_id and created_at");
  }
  return ClaimIdempotencyKey{std::move(*user), std::string(key->get_string()), std::move(*message)};
}

json::object ClaimIdempotencyKey::Claimed::encode() const {
  return json::object{{"message_id", message_id}, {"created_at", created_at}, {"replayed", replayed}};
}

Result<ClaimIdempotencyKey::Claimed> ClaimIdempotencyKey::decode_result(const json::value& result) {
  const auto* object = result.if_object();
  const auto* id = object ? object->if_contains("message_id") : nullptr;
  const auto* at = object ? object->if_contains("created_at") : nullptr;
  const auto* replayed = object ? object->if_contains("replayed") : nullptr;
  if (id == nullptr || !id->is_string() || at == nullptr || !at->is_string() || replayed == nullptr ||
      !replayed->is_bool()) {
    return malformed_result(name);
  }
  return Claimed{std::string(id->get_string()), std::string(at->get_string()), replayed->get_bool()};
}

json::object to_json(const Seqs& seqs) {
  json::object out;
  for (const auto& [user, seq] : seqs) out[user] = seq;
  return out;
}

// --- DeliverMessage ---

json::object DeliverMessage::encode() const {
  return json::object{{"message", core::to_json(message)}, {"seqs", to_json(seqs)}};
}

Result<DeliverMessage> DeliverMessage::decode(const json::object& params) {
  if (auto ok = only(params, {"message", "seqs"}); !ok) return ok.error();
  auto message = message_of(params, kStoredMessage, core::MessageShape::stored);
  if (!message) return message.error();
  DeliverMessage job{std::move(*message), {}};
  if (const auto* seqs = params.if_contains("seqs"); seqs != nullptr) {
    if (!seqs->is_object()) return core::invalid_field("seqs", "must be an object {\"<user>\": seq}");
    for (const auto& [user, seq] : seqs->get_object()) {
      if (seq.is_uint64() && seq.get_uint64() > 0) {
        job.seqs[std::string(user)] = seq.get_uint64();
      } else if (seq.is_int64() && seq.get_int64() > 0) {
        job.seqs[std::string(user)] = static_cast<std::uint64_t>(seq.get_int64());
      } else {
        return core::invalid_field("seqs", "must map users to positive integers");
      }
    }
  }
  return job;
}

// --- DeliverWebhook ---

json::object DeliverWebhook::encode() const {
  return json::object{{"message", core::to_json(message)},
                      {"user", user},
                      {"subscription_id", subscription_id},
                      {"attempt", attempt}};
}

Result<DeliverWebhook> DeliverWebhook::decode(const json::object& params) {
  if (auto ok = only(params, {"message", "user", "subscription_id", "attempt"}); !ok) return ok.error();
  auto message = message_of(params, kStoredMessage, core::MessageShape::stored);
  if (!message) return message.error();
  auto user = user_of(params);
  if (!user) return user.error();
  const auto* id = params.if_contains("subscription_id");
  if (id == nullptr || !id->is_string() || id->get_string().empty())
    return core::invalid_field("subscription_id", "required");
  const auto* attempt = params.if_contains("attempt");
  const auto number = integer_in(attempt, 1, 100);
  if (!number) return core::invalid_field("attempt", "must be an integer from 1 to 100");
  return DeliverWebhook{std::move(*message), std::move(*user), std::string(id->get_string()),
                        static_cast<std::uint32_t>(*number)};
}

bool is_signal(std::string_view type) {
  return std::find(std::begin(kSignalTypes), std::end(kSignalTypes), type) != std::end(kSignalTypes);
}

bus::Envelope signal(std::string_view user, const json::object& frame) {
  bus::Envelope out;
  out.routing_key = bus::live_key(user);
  out.body = json::serialize(frame);
  out.persistent = false;
  return out;
}

bus::Envelope envelope(std::string_view name, json::object params) {
  bus::Envelope job;
  job.routing_key = std::string(name);
  job.body = core::jsonrpc::serialize(core::jsonrpc::Request{std::string(name), std::move(params), {}});
  return job;
}

}  // namespace intercomm::jobs
