// JSON-RPC 2.0 codec on Boost.JSON.
#include "core/jsonrpc.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fmt/core.h>

#include <cmath>

#include <cstdint>

namespace intercomm::core::jsonrpc {
namespace json = boost::json;

namespace {

Error invalid_request(std::string message) {
  return Error::of(ErrorCode::invalid_request, std::move(message));
}

// A number too large for a double (1e999) parses as infinity, which JSON
// cannot write back: such an id could never be answered, so it is refused.
bool is_valid_id(const json::value& id) {
  if (id.is_double()) return std::isfinite(id.get_double());
  return id.is_string() || id.is_number() || id.is_null();
}

// The id to answer with when an element is invalid: its own when readable.
json::value answerable_id(const json::object& object) {
  const auto* id = object.if_contains("id");
  return id != nullptr && is_valid_id(*id) ? *id : json::value(nullptr);
}

Result<json::value> parse_json(std::string_view text, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    return invalid_request(fmt::format("request: larger than the limit of {} bytes", max_bytes));
  }
  json::parse_options options;
  options.max_depth = 64;  // bounds recursion on hostile input
  boost::system::error_code ec;
  json::value value = json::parse(text, ec, json::storage_ptr(), options);
  if (ec) {
    return Error::of(ErrorCode::parse_error, fmt::format("Parse error: {}", ec.message()));
  }
  return value;
}

}  // namespace

const json::object& Request::params_or_empty() const noexcept {
  static const json::object kEmpty;
  return params ? *params : kEmpty;
}

Response make_result(json::value id, json::value result) {
  return Response{std::move(id), std::move(result)};
}

Response make_error(json::value id, Error error) {
  return Response{std::move(id), std::move(error)};
}

Parsed parse_request(const json::value& value) {
  const auto* object = value.if_object();
  if (object == nullptr) {
    return make_error(nullptr, invalid_request("request: must be a JSON object"));
  }
  json::value id = answerable_id(*object);

  const auto* version = object->if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != kVersion) {
    return make_error(std::move(id), invalid_request(R"(jsonrpc: must be the string "2.0")"));
  }

  const auto* method = object->if_contains("method");
  const auto* job = object->if_contains("job");  // the seed's name for method
  if (method == nullptr) method = job;
  if (method == nullptr || !method->is_string() || method->get_string().empty()) {
    return make_error(std::move(id),
                      invalid_request("method: must be a non-empty string (job is accepted as its alias)"));
  }
  if (job != nullptr && *job != *method) {
    return make_error(std::move(id),
                      invalid_request("method and job: name different jobs; send one of them"));
  }

  const auto* raw_id = object->if_contains("id");
  if (raw_id != nullptr && !is_valid_id(*raw_id)) {
    return make_error(nullptr, invalid_request("id: must be a string, a number or null"));
  }

  Request request;
  request.method = json::string_view(method->get_string());
  if (raw_id != nullptr) request.id = *raw_id;

  if (const auto* params = object->if_contains("params")) {
    if (params->is_array()) {
      return make_error(std::move(id),
                        Error::of(ErrorCode::invalid_params,
                                  "params: must be an object; this system takes named params only"));
    }
    if (!params->is_object()) {
      return make_error(std::move(id), invalid_request("params: must be an object"));
    }
    request.params = params->get_object();
  }
  return request;
}

Incoming parse_incoming(std::string_view text, std::size_t max_bytes) {
  Incoming incoming;
  auto value = parse_json(text, max_bytes);
  if (!value) {
    incoming.items.emplace_back(make_error(nullptr, value.error()));
    return incoming;
  }
  if (const auto* batch = value->if_array()) {
    if (batch->empty()) {
      incoming.items.emplace_back(make_error(nullptr, invalid_request("batch: must not be empty")));
      return incoming;
    }
    incoming.batch = true;
    incoming.items.reserve(batch->size());
    for (const auto& element : *batch) incoming.items.push_back(parse_request(element));
    return incoming;
  }
  incoming.items.push_back(parse_request(*value));
  return incoming;
}

Result<Response> parse_response(std::string_view text, std::size_t max_bytes) {
  auto value = parse_json(text, max_bytes);
  if (!value) return value.error();

  const auto* object = value->if_object();
  if (object == nullptr) return invalid_request("response: must be a JSON object");
  const auto* version = object->if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != kVersion) {
    return invalid_request(R"(response: jsonrpc must be the string "2.0")");
  }
  const auto* id = object->if_contains("id");
  if (id == nullptr || !is_valid_id(*id)) {
    return invalid_request("response: id must be a string, a number or null");
  }
  const auto* result = object->if_contains("result");
  const auto* error = object->if_contains("error");
  if ((result == nullptr) == (error == nullptr)) {
    return invalid_request("response: must hold exactly one of result and error");
  }
  if (result != nullptr) return make_result(*id, *result);

  const auto* error_object = error->if_object();
  const auto* code = error_object ? error_object->if_contains("code") : nullptr;
  const auto* message = error_object ? error_object->if_contains("message") : nullptr;
  if (code == nullptr || !code->is_int64() || message == nullptr || !message->is_string()) {
    return invalid_request("response: error must hold an integer code and a string message");
  }
  const auto code_value = code->get_int64();
  if (code_value < INT32_MIN || code_value > INT32_MAX) {
    return invalid_request("response: error code out of range");
  }
  Error parsed{static_cast<ErrorCode>(code_value), std::string(message->get_string()), nullptr};
  if (const auto* data = error_object->if_contains("data")) parsed.data = *data;
  return make_error(*id, std::move(parsed));
}

json::object to_json(const Error& error) {
  json::object object;
  object["code"] = to_int(error.code);
  object["message"] = error.message;
  if (!error.data.is_null()) object["data"] = error.data;
  return object;
}

json::object to_json(const Request& request) {
  json::object object;
  object["jsonrpc"] = kVersion;
  object["method"] = request.method;
  if (request.params) object["params"] = *request.params;
  if (request.id) object["id"] = *request.id;
  return object;
}

json::object to_json(const Response& response) {
  json::object object;
  object["jsonrpc"] = kVersion;
  if (response.outcome) {
    object["result"] = *response.outcome;
  } else {
    object["error"] = to_json(response.outcome.error());
  }
  object["id"] = response.id;
  return object;
}

std::string serialize(const Request& request) {
  return json::serialize(to_json(request));
}

std::string serialize(const Response& response) {
  return json::serialize(to_json(response));
}

std::string serialize_batch(const std::vector<Response>& responses) {
  if (responses.empty()) return {};
  json::array array;
  array.reserve(responses.size());
  for (const auto& response : responses) array.emplace_back(to_json(response));
  return json::serialize(array);
}

}  // namespace intercomm::core::jsonrpc
