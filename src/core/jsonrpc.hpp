// JSON-RPC 2.0 envelope: requests, notifications, responses and batches.
#pragma once

#include "core/errors.hpp"
#include "core/limits.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace intercomm::core::jsonrpc {

inline constexpr std::string_view kVersion = "2.0";

// Bodies larger than this are refused before parsing (-32600): the bus's
// message limit, which every job and reply fits in (core/limits.hpp).
inline constexpr std::size_t kDefaultMaxBytes = kMaxBusMessageBytes;

// A request, or a notification when it has no id. `method` names the job; the
// seed's `job` key is read as its alias, `method` is always written. `params`
// is an object (named params only) kept exactly as given, nested or not.
struct Request {
  std::string method;
  std::optional<boost::json::object> params;
  std::optional<boost::json::value> id;  // string, number or null; absent: notification

  bool is_notification() const noexcept { return !id.has_value(); }
  // The params, or an empty object when the request had none.
  const boost::json::object& params_or_empty() const noexcept;
};

// A response: `outcome` holds the result, or the error. `id` is null when the
// request's id could not be read (parse error, invalid request).
struct Response {
  boost::json::value id;
  Result<boost::json::value> outcome;
};

Response make_result(boost::json::value id, boost::json::value result);
Response make_error(boost::json::value id, Error error);

// One element of what a peer sent: a request to serve, or the error response it
// is owed instead (invalid elements always get one, as the spec requires).
using Parsed = std::variant<Request, Response>;

// What a peer sent: one element, or a batch. For a batch, items keep the order
// of the array. A parse error, an oversized text and an empty batch give a single
// error response (batch = false), as the spec requires.
struct Incoming {
  bool batch = false;
  std::vector<Parsed> items;
};

Incoming parse_incoming(std::string_view text, std::size_t max_bytes = kDefaultMaxBytes);

// Reads one already-parsed JSON value as a request (used for batch elements).
Parsed parse_request(const boost::json::value& value);

// Reads a single response, as an RPC client receives it. A malformed response is
// an error (-32700 when not JSON, -32600 when not a valid response object).
Result<Response> parse_response(std::string_view text, std::size_t max_bytes = kDefaultMaxBytes);

boost::json::object to_json(const Request& request);
boost::json::object to_json(const Response& response);
boost::json::object to_json(const Error& error);

std::string serialize(const Request& request);
std::string serialize(const Response& response);

// What to send back for a batch: a JSON array of the responses, or an empty string
// when every element was a notification (the spec says: send nothing).
std::string serialize_batch(const std::vector<Response>& responses);

}  // namespace intercomm::core::jsonrpc
