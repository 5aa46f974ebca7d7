// Declarative routing in one place: method + path pattern -> handler.
#pragma once

#include "gateway/http.hpp"
#include "gateway/websocket.hpp"

#include <map>
#include <string>
#include <vector>

namespace intercomm::gateway {

using PathParams = std::map<std::string, std::string>;
using Handler = std::function<void(const HttpRequest&, const PathParams&, Responder)>;

// Patterns are literal segments and {name} segments: "/v1/messages/{message_id}".
// dispatch() calls the handler of the first route whose method and pattern
// match; a path that matches with another method gets 405 and an Allow
// header; anything else gets 404. Both are the JSON error shape. Routes are
// added before serving starts; dispatch is then thread-safe.
class Router {
 public:
  Router& add(std::string method, std::string pattern, std::string name, Handler handler);
  // A WebSocket endpoint at `path` (GET with Upgrade: websocket). A GET there
  // without the upgrade is answered 426 by the route this also adds.
  Router& add_websocket(std::string path, std::string name, UpgradeHandler upgrade);
  // The upgrade handler for `request`'s path, or null.
  const UpgradeHandler* websocket(const HttpRequest& request) const;
  // Returns the route's name for metrics: what route_name() returns, found
  // by the same walk.
  std::string_view dispatch(const HttpRequest& request, Responder respond) const;

  // The route name for metrics: of the first route whose pattern matches the
  // path, whatever its method ("unmatched" when none matches).
  std::string route_name(const HttpRequest& request) const;

  struct RouteInfo {
    std::string method;
    std::string pattern;  // "/v1/messages/{message_id}"
    std::string name;
  };
  // Every route, in the order added (for docs and tests).
  std::vector<RouteInfo> routes() const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    std::string name;
    Handler handler;
  };
  static bool match(const Route& route, const std::vector<std::string_view>& path, PathParams& params);

  std::vector<Route> routes_;
  std::map<std::string, UpgradeHandler> websockets_;  // path -> handler
};

}  // namespace intercomm::gateway
