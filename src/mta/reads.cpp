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

// A cursor given as a message id of `user`'s inbox, as its seq there.
Result<std::optional<std::uint64_t>> seq_of_cursor(Context& context, const std::string& user,
                                                   const std::optional<std::string>& id,
                                                   std::optional<std::uint64_t> seq, std::string_view name) {
  if (!id) return seq;
  auto found = context.store.inbox_seq(user, *id);
  if (!found) return unavailable(found.error());
  if (!*found) return core::invalid_field(name, "no message with this id in the user's inbox");
  return *found;
}

}  // namespace

Result<json::object> messages_page(Context& context, const store::InboxPage& page) {
  PageBuilder items;
  const store::InboxEntry* last = nullptr;
  bool more = page.more;
  for (const auto& entry : page.entries) {
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
  return result;
}

JobResult get_message(Context& context, const json::object& params) {
  auto job = jobs::GetMessage::decode(params);
  if (!job) return job.error();
  auto message = read_message(context.store, job->message_id);
  if (!message) return message.error();
  return core::to_json(*message);
}

// Oldest first after a cursor (after / after_seq: resuming), newest first
// otherwise (before / before_seq: scrolling back). Each item is the message
// with its `seq` in this inbox; `next`/`next_seq` continue from the last item
// in the same direction (null at the end); `after_seq` echoes the cursor.
JobResult list_messages(Context& context, const json::object& params) {
  auto job = jobs::ListMessages::decode(params, page_bounds(context.options));
  if (!job) return job.error();
  const std::string& user = job->user;
  auto after = seq_of_cursor(context, user, job->after, job->after_seq, "after");
  if (!after) return after.error();
  auto before = seq_of_cursor(context, user, job->before, job->before_seq, "before");
  if (!before) return before.error();

  store::InboxQuery query;
  query.after_seq = *after;
  query.before_seq = *before;
  query.limit = *job->limit;
  query.order = *after ? store::Order::ascending : store::Order::descending;
  auto page = context.store.inbox_range(user, query);
  if (!page) return unavailable(page.error());

  auto result = messages_page(context, *page);
  if (!result) return result.error();
  if (*after) (*result)["after_seq"] = **after;  // the cursor as a seq (after=<id> resolved)
  return std::move(*result);
}

// A message's webhook attempts in order (per subscription, then attempt);
// `after` continues from a page's `next`.
JobResult list_deliveries(Context& context, const json::object& params) {
  auto job = jobs::ListDeliveries::decode(params, {context.options.max_page, context.options.max_page});
  if (!job) return job.error();
  const std::string& message_id = job->message_id;
  store::RangeQuery query;
  query.order = store::Order::ascending;
  query.limit = *job->limit;
  query.after = job->after;
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
