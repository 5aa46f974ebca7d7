// The MTA's read jobs: one message, a page of an inbox by seq, a page of a
// message's webhook delivery records. Pages are bounded by bytes too.
#include "mta/jobs.hpp"

#include "core/limits.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

namespace {

// Collects the items of one page until the next would pass the byte budget
// (but always at least one): a page always fits in one bus message.
class PageBuilder {
 public:
  // False when `item` did not fit (and was not added): the page ends before it.
  bool add(json::value item) {
    const std::size_t size = json::serialize(item).size() + 1;
    if (!items_.empty() && bytes_ + size > core::kPageBudgetBytes) return false;
    bytes_ += size;
    items_.push_back(std::move(item));
    return true;
  }
  json::array take() { return std::move(items_); }

 private:
  json::array items_;
  std::size_t bytes_ = 0;
};

// The seq cursor from either form: `<name>_seq` (a number) or `<name>` (a
// message id of this inbox). Giving both is refused.
Result<std::optional<std::uint64_t>> cursor_param(Context& context, const json::object& params,
                                                  const std::string& user, const std::string& name) {
  auto seq = optional_seq_param(params, name + "_seq");
  if (!seq) return seq.error();
  auto id = optional_id_param(params, name);
  if (!id) return id.error();
  if (*seq && *id) return core::invalid_field(name, fmt::format("give {} or {}_seq, not both", name, name));
  if (!*id) return *seq;
  auto found = context.store.inbox_seq(user, **id);
  if (!found) return unavailable(found.error());
  if (!*found) return core::invalid_field(name, "no message with this id in the user's inbox");
  return *found;
}

}  // namespace

JobResult get_message(Context& context, const json::object& params) {
  const auto* id = params.if_contains("message_id");
  if (params.size() != 1 || id == nullptr || !id->is_string() || !core::is_message_id(id->get_string())) {
    Error error = Error::of(ErrorCode::invalid_params);  // the seed's exact failure response
    error.data = json::object{{"field", "message_id"}, {"expected", "8-40 of [0-9A-Z]"}};
    return error;
  }
  auto message = read_message(context.store, std::string(id->get_string()));
  if (!message) return message.error();
  return core::to_json(*message);
}

// Oldest first after a cursor (after / after_seq: resuming), newest first
// otherwise (before / before_seq: scrolling back). Each item is the message
// with its `seq` in this inbox; `next`/`next_seq` continue from the last item
// in the same direction (null at the end); `after_seq` echoes the cursor.
JobResult list_messages(Context& context, const json::object& params) {
  if (auto ok = only(params, {"user", "before", "after", "before_seq", "after_seq", "limit"}); !ok)
    return ok.error();
  auto user = user_param(params);
  if (!user) return user.error();
  auto limit = limit_param(params, context.options.default_page, context.options.max_page);
  if (!limit) return limit.error();
  auto after = cursor_param(context, params, *user, "after");
  if (!after) return after.error();
  auto before = cursor_param(context, params, *user, "before");
  if (!before) return before.error();

  store::InboxQuery query;
  query.after_seq = *after;
  query.before_seq = *before;
  query.limit = *limit;
  query.order = *after ? store::Order::ascending : store::Order::descending;
  auto page = context.store.inbox_range(*user, query);
  if (!page) return unavailable(page.error());

  PageBuilder items;
  const store::InboxEntry* last = nullptr;
  bool more = page->more;
  for (const auto& entry : page->entries) {
    auto message = read_message(context.store, entry.message_id);
    if (!message) {
      if (message.error().code == ErrorCode::not_found) continue;  // cannot happen: stored before its entry
      return message.error();
    }
    json::object item = core::to_json(*message);
    item["seq"] = entry.seq;
    if (!items.add(std::move(item))) {
      more = true;
      break;
    }
    last = &entry;
  }
  json::object result{{"messages", items.take()}};
  result["next"] = more && last ? json::value(last->message_id) : json::value(nullptr);
  result["next_seq"] = more && last ? json::value(last->seq) : json::value(nullptr);
  if (*after) result["after_seq"] = **after;  // the cursor as a seq (after=<id> resolved)
  return result;
}

// A message's webhook attempts in order (per subscription, then attempt);
// `after` continues from a page's `next`.
JobResult list_deliveries(Context& context, const json::object& params) {
  if (auto ok = only(params, {"message_id", "after", "limit"}); !ok) return ok.error();
  const auto* id = params.if_contains("message_id");
  if (id == nullptr || !id->is_string() || !core::is_message_id(id->get_string())) {
    return core::invalid_field("message_id", "must be a message id (8-40 of [0-9A-Z])");
  }
  const auto* after = params.if_contains("after");
  if (after != nullptr &&
      (!after->is_string() || after->get_string().empty() || after->get_string().size() > 100)) {
    return core::invalid_field("after", "must be the `next` of a previous page");
  }
  auto limit = limit_param(params, context.options.max_page, context.options.max_page);
  if (!limit) return limit.error();
  const std::string message_id(id->get_string());
  store::RangeQuery query;
  query.order = store::Order::ascending;
  query.limit = *limit;
  if (after != nullptr) query.after = std::string(after->get_string());
  auto page = context.store.range(store::kDeliveries, message_id, query);
  if (!page) return unavailable(page.error());
  PageBuilder items;
  const std::string* last = nullptr;
  bool more = page->next.has_value();
  for (const auto& entry : page->entries) {
    auto value = context.store.get(store::kDeliveries, store::delivery_key(message_id, entry));
    if (!value) return unavailable(value.error());
    if (!value->has_value()) continue;
    boost::system::error_code ec;
    auto attempt = json::parse(**value, ec);
    if (ec) continue;
    if (!items.add(std::move(attempt))) {
      more = true;
      break;
    }
    last = &entry;
  }
  json::object result{{"deliveries", items.take()}};
  result["next"] = more && last ? json::value(*last) : json::value(nullptr);
  return result;
}

}  // namespace intercomm::mta::detail
