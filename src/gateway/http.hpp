// HTTP requests and responses as plain values: handlers never see Beast or Asio.
#pragma once

#include "core/errors.hpp"

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace intercomm::gateway {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // path and query, as sent
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  std::string remote;  // the client's IP address (the peer's: a proxy in front shows as itself)

  std::string_view path() const;                    // target without the query
  std::string_view query() const;                   // after '?', or empty
  std::string header(std::string_view name) const;  // "" when absent
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The one JSON error shape: {"error":{"code","message"[,"data"]}} with the
// status from the error table (or `status` when given).
HttpResponse error_response(const core::Error& error, int status = 0);

HttpResponse json_response(int status, std::string body);

// Completes a request; may be called from any thread, exactly once.
using Responder = std::function<void(HttpResponse)>;

}  // namespace intercomm::gateway
