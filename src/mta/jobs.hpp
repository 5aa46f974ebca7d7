// The MTA's jobs, one file per concern: sending (send.cpp), reading messages
// and delivery records (reads.cpp), webhook subscriptions (subscriptions.cpp),
// and what they share (params.cpp). Their params are checked by the job
// contract's decode (jobs/jobs.hpp). Internal to src/mta/.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"
#include "core/message.hpp"
#include "jobs/jobs.hpp"
#include "mta/mta.hpp"
#include "store/store.hpp"
#include "worker/worker.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace intercomm::mta::detail {

using JobResult = core::Result<boost::json::value>;

struct Context {
  store::Store& store;
  bus::Bus& bus;
  MtaOptions options;
};

// --- params.cpp: checks shared by the jobs, errors that say what to fix ---

// Collects the items of one page until the next would pass the byte budget
// (but always at least one): a page always fits in one bus message.
class PageBuilder {
 public:
  // False when `item` did not fit (and was not added): the page ends before it.
  bool add(boost::json::value item);
  boost::json::array take() { return std::move(items_); }

 private:
  boost::json::array items_;
  std::size_t bytes_ = 0;
};

// -32010 for the caller (retry), with the cause logged.
core::Error unavailable(const core::Error& cause);
// list_messages' page bounds from the options.
inline jobs::PageBounds page_bounds(const MtaOptions& options) { return {options.default_page, options.max_page}; }
// The stored message `id`: -32004 when there is none.
core::Result<core::Message> read_message(store::Store& store, const std::string& id);

// --- send.cpp ---

// send_message for consecutive jobs of one lane (see register_jobs).
std::vector<JobResult> send_messages(Context& context, std::span<const worker::BatchJob> batch);
JobResult claim_idempotency_key(Context& context, const boost::json::object& params);

// --- reads.cpp ---

// A page of inbox (or conversation) entries as list_messages answers it:
// {"messages":[message + "seq"],"next","next_seq"}.
core::Result<boost::json::object> messages_page(Context& context, const store::InboxPage& page);
JobResult get_message(Context& context, const boost::json::object& params);
JobResult list_messages(Context& context, const boost::json::object& params);
JobResult list_deliveries(Context& context, const boost::json::object& params);

// --- conversations.cpp ---

JobResult list_conversations(Context& context, const boost::json::object& params);
JobResult list_conversation(Context& context, const boost::json::object& params);
JobResult mark_read(Context& context, const boost::json::object& params);
JobResult get_receipt(Context& context, const boost::json::object& params);

// --- retract.cpp ---

JobResult retract_message(Context& context, const boost::json::object& params);

// --- presence.cpp ---

JobResult get_presence(Context& context, const boost::json::object& params);
JobResult record_last_seen(Context& context, const boost::json::object& params);

// --- blocks.cpp ---

JobResult block_user(Context& context, const boost::json::object& params);
JobResult unblock_user(Context& context, const boost::json::object& params);
JobResult list_blocks(Context& context, const boost::json::object& params);

// --- subscriptions.cpp ---

JobResult subscribe_user(Context& context, const boost::json::object& params);
JobResult list_subscriptions(Context& context, const boost::json::object& params);
JobResult unsubscribe_user(Context& context, const boost::json::object& params);

}  // namespace intercomm::mta::detail
