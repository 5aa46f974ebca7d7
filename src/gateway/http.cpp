// Plain HTTP values and the JSON error shape.
#include "gateway/http.hpp"

#include "core/jsonrpc.hpp"

#include <boost/json/serialize.hpp>

namespace intercomm::gateway {

std::string_view HttpRequest::path() const {
  const std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view HttpRequest::query() const {
  const std::string_view t = target;
  const auto mark = t.find('?');
  return mark == std::string_view::npos ? std::string_view() : t.substr(mark + 1);
}

std::string HttpRequest::header(std::string_view name) const {
  auto found = headers.find(std::string(name));
  return found == headers.end() ? std::string() : found->second;
}

HttpResponse json_response(int status, std::string body) {
  return HttpResponse{status, {{"Content-Type", "application/json"}}, std::move(body)};
}

HttpResponse error_response(const core::Error& error, int status) {
  boost::json::object body{{"error", core::jsonrpc::to_json(error)}};
  return json_response(status != 0 ? status : core::http_status(error.code), boost::json::serialize(body));
}

}  // namespace intercomm::gateway
