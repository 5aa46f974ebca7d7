// The one error table: JSON-RPC codes, their standard messages and HTTP statuses.
#pragma once

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace intercomm::core {

// Codes from DESIGN.md's error table. Codes received from other JSON-RPC peers
// that are not listed here are carried through unchanged (the enum is open).
enum class ErrorCode : std::int32_t {
  parse_error = -32700,
  invalid_request = -32600,
  method_not_found = -32601,
  invalid_params = -32602,
  internal_error = -32603,
  not_found = -32004,
  forbidden = -32003,
  conflict = -32009,
  // Implementation-defined server errors (-32000..-32099):
  unauthorized = -32001,  // no valid credentials (HTTP 401)
  unavailable = -32010,   // nothing could take the request now: bus down, no worker bound
  timeout = -32011,       // no answer before the deadline
  rate_limited = -32029,  // a rate limit: retry after data.retry_after seconds (HTTP 429)
};

// Every code of the table, in table order (for documentation and tests).
inline constexpr ErrorCode kAllErrorCodes[] = {
    ErrorCode::parse_error,    ErrorCode::invalid_request, ErrorCode::method_not_found,
    ErrorCode::invalid_params, ErrorCode::internal_error,  ErrorCode::not_found,
    ErrorCode::forbidden,      ErrorCode::conflict,        ErrorCode::unauthorized,
    ErrorCode::unavailable,    ErrorCode::timeout,         ErrorCode::rate_limited,
};

// "Parse error", "Invalid params", ...; "Server error" for a code not in the table.
std::string_view standard_message(ErrorCode code) noexcept;

// Where a JSON-RPC error becomes an HTTP answer. method_not_found maps to 501 (a
// worker that does not serve the method); the gateway answers 503 itself when no
// worker is bound at all. Codes not in the table map to 500.
int http_status(ErrorCode code) noexcept;

constexpr std::int32_t to_int(ErrorCode code) noexcept {
  return static_cast<std::int32_t>(code);
}

// An expected failure, as a value. `message` tells the user what to fix and never
// carries internal detail; `data` is optional structured detail (null when absent).
struct Error {
  ErrorCode code = ErrorCode::internal_error;
  std::string message;
  boost::json::value data;

  // An error with the code's standard message.
  static Error of(ErrorCode code);
  // An error with a specific message, e.g. "receiver: must be 1-64 of [A-Za-z0-9_.-]".
  static Error of(ErrorCode code, std::string message);

  friend bool operator==(const Error&, const Error&) = default;
};

// -32602 for one field: message "field: rule" (what to fix), data {"field"}.
Error invalid_field(std::string_view field, std::string_view rule);

// Thrown only when a caller takes .value() of a failed Result: a bug, not a path.
class ErrorException : public std::runtime_error {
 public:
  explicit ErrorException(Error error);
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

// Found by ADL from boost::system::result<T, Error>::value().
[[noreturn]] void throw_exception_from_error(const Error& error, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

}  // namespace intercomm::core
