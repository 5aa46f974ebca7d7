// docs/openapi.json describes exactly the routes the gateway serves.
#include "gateway/api.hpp"  // first: the header is self-contained

#include "bus/inproc.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include <fstream>
#include <set>
#include <sstream>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

TEST(OpenApi, DocumentsEveryRouteAndNothingElse) {
  std::ifstream file(INTERCOMM_OPENAPI);
  ASSERT_TRUE(file) << "cannot open " << INTERCOMM_OPENAPI;
  std::stringstream text;
  text << file.rdbuf();
  boost::system::error_code ec;
  const auto doc = json::parse(text.str(), ec);
  ASSERT_FALSE(ec) << "docs/openapi.json is not JSON: " << ec.message();
  EXPECT_TRUE(doc.at("openapi").as_string().starts_with("3."));

  std::set<std::string> documented;
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    for (const auto& [method, operation] : item.as_object()) {
      if (method == "parameters") continue;
      documented.insert(lower(std::string(method)) + " " + std::string(path));
      EXPECT_TRUE(operation.as_object().contains("responses")) << method << " " << path;
    }
  }

  auto broker = bus::make_inproc_broker();
  auto connection = bus::connect_inproc(broker);
  auto rpc = bus::RpcClient::open(*connection);
  ASSERT_TRUE(rpc);
  Router router;
  ApiOptions options;
  options.stream = std::make_shared<StreamHub>(*connection, StreamOptions{});
  add_api_routes(router, *connection, **rpc, std::move(options));
  std::set<std::string> served;
  for (const auto& route : router.routes()) served.insert(lower(route.method) + " " + route.pattern);
  EXPECT_EQ(documented, served);
}

}  // namespace
}  // namespace intercomm::gateway
