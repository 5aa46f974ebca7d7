// What the MTA's jobs share: the error of an unavailable store, reading a message, pages.
#include "mta/jobs.hpp"

#include "core/limits.hpp"
#include "store/buckets.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

Error unavailable(const Error& cause) {
  spdlog::warn("mta: {}", cause.message);
  return Error::of(ErrorCode::unavailable, "store or bus unavailable; retry");
}

bool PageBuilder::add(json::value item) {
  const std::size_t size = json::serialize(item).size() + 1;
  if (!items_.empty() && bytes_ + size > core::kPageBudgetBytes) return false;
  bytes_ += size;
  items_.push_back(std::move(item));
  return true;
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
