// The params readers the job codecs share (internal to src/jobs/): each
// fails with -32602 naming the field and saying what it must be.
#pragma once

#include "core/errors.hpp"
#include "jobs/jobs.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace intercomm::jobs::codec {

// Refuses params other than `allowed`: a misspelt parameter must not be ignored.
core::Result<void> only(const boost::json::object& params, std::initializer_list<std::string_view> allowed);
// A user id (1-64 of [A-Za-z0-9_.-]) under `name`.
core::Result<std::string> user_of(const boost::json::object& params, std::string_view name = "user");
core::Result<std::optional<std::string>> optional_id(const boost::json::object& params, std::string_view name);
core::Result<std::optional<std::uint64_t>> optional_seq(const boost::json::object& params, std::string_view name);
// An integer from `low` to `high` (however the JSON number is stored), or none.
std::optional<std::int64_t> integer_in(const boost::json::value* value, std::int64_t low, std::int64_t high);
core::Result<std::size_t> limit_of(const boost::json::object& params, const PageBounds& bounds);
void set_if(boost::json::object& params, std::string_view name, const std::optional<std::string>& value);
void set_if(boost::json::object& params, std::string_view name, const std::optional<std::uint64_t>& value);
core::Error malformed_result(std::string_view job);

}  // namespace intercomm::jobs::codec
