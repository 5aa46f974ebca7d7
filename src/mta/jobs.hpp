// The MTA's jobs, one file per concern: sending (send.cpp), reading messages
// and delivery records (reads.cpp), webhook subscriptions (subscriptions.cpp),
// and the parameter checks they share (params.cpp). Internal to src/mta/.
#pragma once

#include "bus/bus.hpp"
#include "core/errors.hpp"
#include "core/message.hpp"
#include "mta/mta.hpp"
#include "store/store.hpp"
#include "worker/worker.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <initializer_list>
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

// -32010 for the caller (retry), with the cause logged.
core::Error unavailable(const core::Error& cause);
// Refuses params other than `allowed`: a misspelt parameter must not be ignored.
core::Result<void> only(const boost::json::object& params, std::initializer_list<std::string_view> allowed);
core::Result<std::string> user_param(const boost::json::object& params, std::string_view name = "user");
core::Result<std::optional<std::string>> optional_id_param(const boost::json::object& params,
                                                           std::string_view name);
// A seq cursor: an integer from 0 up.
core::Result<std::optional<std::uint64_t>> optional_seq_param(const boost::json::object& params,
                                                              std::string_view name);
// `limit`: 1..max, `fallback` when absent.
core::Result<std::size_t> limit_param(const boost::json::object& params, std::size_t fallback,
                                      std::size_t max);
// The stored message `id`: -32004 when there is none.
core::Result<core::Message> read_message(store::Store& store, const std::string& id);

// --- send.cpp ---

// send_message for consecutive jobs of one lane (see register_jobs).
std::vector<JobResult> send_messages(Context& context, std::span<const worker::BatchJob> jobs);
JobResult claim_idempotency_key(Context& context, const boost::json::object& params);

// --- reads.cpp ---

JobResult get_message(Context& context, const boost::json::object& params);
JobResult list_messages(Context& context, const boost::json::object& params);
JobResult list_deliveries(Context& context, const boost::json::object& params);

// --- subscriptions.cpp ---

JobResult subscribe_user(Context& context, const boost::json::object& params);
JobResult list_subscriptions(Context& context, const boost::json::object& params);
JobResult unsubscribe_user(Context& context, const boost::json::object& params);

}  // namespace intercomm::mta::detail
