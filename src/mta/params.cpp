// What the MTA's jobs share: the error of an unavailable store, reading a message.
#include "mta/jobs.hpp"

#include "store/buckets.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>


namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

Error unavailable(const Error& cause) {
  spdlog::warn("mta: {}", cause.message);
  return Error::of(ErrorCode::unavailable, "store or bus unavailable; retry");
}

Result<core::Message> read_message(store::Store& store, const std::string& id) {
  auto value = store.get(store::kMessages, id);
  if (!value) return unavailable(value.error());
  if (!value->has_value()) return Error::of(ErrorCode::not_found, "message: not found");
  boost::system::error_code ec;
  auto parsed = json::parse(**value, ec);
  if (ec) return Error::of(ErrorCode::internal_error);
  return core::message_from_json(parsed, core::MessageLimits{std::size_t(-1)}, core::MessageShape::stored);
}

}  // namespace intercomm::mta::detail
