// Parameter checks and reads shared by the MTA's jobs.
#include "mta/jobs.hpp"

#include "store/buckets.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>

#include <algorithm>

namespace intercomm::mta::detail {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::Result;

Error unavailable(const Error& cause) {
  spdlog::warn("mta: {}", cause.message);
  return Error::of(ErrorCode::unavailable, "store or bus unavailable; retry");
}

Result<void> only(const json::object& params, std::initializer_list<std::string_view> allowed) {
  for (const auto& member : params) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(member.key())) == allowed.end()) {
      return core::invalid_field(member.key(), "unknown parameter");
    }
  }
  return {};
}

Result<std::string> user_param(const json::object& params, std::string_view name) {
  const auto* value = params.if_contains(name);
  if (value == nullptr || !value->is_string() || !core::is_user_id(value->get_string())) {
    return core::invalid_field(name, "must be 1-64 of [A-Za-z0-9_.-]");
  }
  return std::string(value->get_string());
}

Result<std::optional<std::string>> optional_id_param(const json::object& params, std::string_view name) {
  const auto* value = params.if_contains(name);
  if (value == nullptr || value->is_null()) return std::optional<std::string>();
  if (!value->is_string() || !core::is_message_id(value->get_string())) {
    return core::invalid_field(name, "must be a message id (8-40 of [0-9A-Z])");
  }
  return std::optional<std::string>(std::string(value->get_string()));
}

Result<std::optional<std::uint64_t>> optional_seq_param(const json::object& params, std::string_view name) {
  const auto* value = params.if_contains(name);
  if (value == nullptr || value->is_null()) return std::optional<std::uint64_t>();
  if (value->is_uint64()) return std::optional<std::uint64_t>(value->get_uint64());
  if (value->is_int64() && value->get_int64() >= 0) {
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(value->get_int64()));
  }
  return core::invalid_field(name, "must be a sequence number (an integer from 0)");
}

Result<std::size_t> limit_param(const json::object& params, std::size_t fallback, std::size_t max) {
  const auto* limit = params.if_contains("limit");
  if (limit == nullptr) return fallback;
  if (!limit->is_int64() || limit->get_int64() < 1 || limit->get_int64() > static_cast<std::int64_t>(max)) {
    return core::invalid_field("limit", fmt::format("must be an integer from 1 to {}", max));
  }
  return static_cast<std::size_t>(limit->get_int64());
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
