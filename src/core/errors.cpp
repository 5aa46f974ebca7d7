// The error table of DESIGN.md, in one place.
#include "core/errors.hpp"

#include <fmt/core.h>
#include <boost/json/object.hpp>

namespace intercomm::core {

Error invalid_field(std::string_view field, std::string_view rule) {
  Error error = Error::of(ErrorCode::invalid_params, fmt::format("{}: {}", field, rule));
  error.data = boost::json::object{{"field", field}};
  return error;
}

std::string_view standard_message(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::parse_error: return "Parse error";
    case ErrorCode::invalid_request: return "Invalid Request";
    case ErrorCode::method_not_found: return "Method not found";
    case ErrorCode::invalid_params: return "Invalid params";
    case ErrorCode::internal_error: return "Internal error";
    case ErrorCode::not_found: return "Not found";
    case ErrorCode::forbidden: return "Forbidden";
    case ErrorCode::conflict: return "Conflict";
    case ErrorCode::unauthorized: return "Unauthorized";
    case ErrorCode::unavailable: return "Unavailable";
    case ErrorCode::timeout: return "Timeout";
    case ErrorCode::rate_limited: return "Too many requests";
  }
  return "Server error";
}

int http_status(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::parse_error:
    case ErrorCode::invalid_request:
    case ErrorCode::invalid_params: return 400;
    case ErrorCode::method_not_found: return 501;
    case ErrorCode::internal_error: return 500;
    case ErrorCode::not_found: return 404;
    case ErrorCode::forbidden: return 403;
    case ErrorCode::conflict: return 409;
    case ErrorCode::unauthorized: return 401;
    case ErrorCode::unavailable: return 503;
    case ErrorCode::timeout: return 504;
    case ErrorCode::rate_limited: return 429;
  }
  return 500;
}

Error Error::of(ErrorCode code) {
  return Error{code, std::string(standard_message(code)), nullptr};
}

Error Error::of(ErrorCode code, std::string message) {
  return Error{code, std::move(message), nullptr};
}

ErrorException::ErrorException(Error error) : std::runtime_error(error.message), error_(std::move(error)) {}

void throw_exception_from_error(const Error& error, const boost::source_location&) {
  throw ErrorException(error);
}

}  // namespace intercomm::core
