// Path matching, 404 and 405.
#include "gateway/router.hpp"

#include <fmt/core.h>

namespace intercomm::gateway {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  return segments;
}

constexpr std::string_view kUnmatched = "unmatched";

}  // namespace

Router& Router::add(std::string method, std::string pattern, std::string name, Handler handler) {
  Route route{std::move(method), {}, std::move(name), std::move(handler)};
  for (auto segment : split_path(pattern)) route.segments.emplace_back(segment);
  routes_.push_back(std::move(route));
  return *this;
}

Router& Router::add_websocket(std::string path, std::string name, UpgradeHandler upgrade) {
  add("GET", path, name, [](const HttpRequest&, const PathParams&, Responder respond) {
    auto response = error_response(core::Error::of(core::ErrorCode::invalid_request,
                                                   "this is a WebSocket endpoint: send Upgrade: websocket"),
                                   426);
    response.headers.emplace_back("Upgrade", "websocket");
    respond(std::move(response));
  });
  websockets_[std::move(path)] = std::move(upgrade);
  return *this;
}

const UpgradeHandler* Router::websocket(const HttpRequest& request) const {
  auto found = websockets_.find(std::string(request.path()));
  return found == websockets_.end() ? nullptr : &found->second;
}

bool Router::match(const Route& route, const std::vector<std::string_view>& path, PathParams& params) {
  if (route.segments.size() != path.size()) return false;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const std::string& segment = route.segments[i];
    if (segment.size() > 2 && segment.front() == '{' && segment.back() == '}') {
      params[segment.substr(1, segment.size() - 2)] = std::string(path[i]);
    } else if (segment != path[i]) {
      return false;
    }
  }
  return true;
}

std::string Router::route_name(const HttpRequest& request) const {
  const auto path = split_path(request.path());
  for (const auto& route : routes_) {
    PathParams params;
    if (match(route, path, params)) return route.name;
  }
  return std::string(kUnmatched);
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& route : routes_) {
    std::string pattern;
    for (const auto& segment : route.segments) pattern += "/" + segment;
    out.push_back({route.method, pattern.empty() ? "/" : pattern, route.name});
  }
  return out;
}

std::string_view Router::dispatch(const HttpRequest& request, Responder respond) const {
  const auto path = split_path(request.path());
  std::string allowed;
  std::string_view name = kUnmatched;
  for (const auto& route : routes_) {
    PathParams params;
    if (!match(route, path, params)) continue;
    if (name == kUnmatched) name = route.name;
    if (route.method == request.method) {
      route.handler(request, params, std::move(respond));
      return name;
    }
    if (allowed.find(route.method) == std::string::npos)
      allowed += (allowed.empty() ? "" : ", ") + route.method;
  }
  if (!allowed.empty()) {
    auto response = error_response(
        core::Error::of(core::ErrorCode::invalid_request,
                        fmt::format("method {} not allowed here; use {}", request.method, allowed)),
        405);
    response.headers.emplace_back("Allow", allowed);
    respond(std::move(response));
    return name;
  }
  respond(error_response(
      core::Error::of(core::ErrorCode::not_found, fmt::format("no route for {}", request.path())), 404));
  return name;
}

}  // namespace intercomm::gateway
