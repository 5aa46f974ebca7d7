// The chat e2e tests' fixture (chat_test.cpp, chat_signals_test.cpp): a
// deployment in `intercomm run` or split mode (alice on one gateway, bob on
// the other, over real RabbitMQ and Redis) and requests as each user.
#pragma once

#include "core/ids.hpp"
#include "gateway/jwt.hpp"
#include "support/deployment.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"
#include "support/webhook_receiver.hpp"
#include "support/ws_client.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <thread>

namespace intercomm::testing::chat {

namespace json = boost::json;
using intercomm::testing::Client;
using intercomm::testing::WsClient;
using namespace std::chrono_literals;

constexpr const char* kSecret = "chat-secret-0123456789abcdef0123456789abcdef";

class Chat : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    suffix_ = intercomm::core::new_message_id();
    alice_ = "alice_" + suffix_;
    bob_ = "bob_" + suffix_;
    carol_ = "carol_" + suffix_;
    intercomm::testing::DeploymentOptions options;
    // Webhooks to this machine (the tests' receiver) are refused unless allowed.
    (GetParam() == "embedded" ? options.extra_args : options.mda_args) = {"--allow-private-webhooks"};
    deployment_ = std::make_unique<intercomm::testing::Deployment>(GetParam(), kSecret, options);
    ASSERT_TRUE(deployment_->started()) << deployment_->error();
    port_[alice_] = deployment_->port(0);
    port_[bob_] = deployment_->port(1);
    port_[carol_] = deployment_->port(0);
  }

  void TearDown() override {
    if (deployment_) {
      EXPECT_TRUE(deployment_->stop()) << "a process did not stop cleanly on SIGTERM";
    }
  }

  std::string token(const std::string& user) { return intercomm::gateway::mint_hs256(kSecret, user, 3600s); }

  // A request as `user`, through their gateway.
  Client::Response call(const std::string& user, const std::string& method, const std::string& target,
                        const std::string& body = "") {
    Client client(port_.at(user));
    std::vector<std::string> headers{"Authorization: Bearer " + token(user)};
    if (!body.empty()) headers.push_back("Content-Type: application/json");
    return client.request(method, target, body, headers);
  }

  json::value call_json(const std::string& user, const std::string& method, const std::string& target,
                        int status = 200, const std::string& body = "") {
    auto response = call(user, method, target, body);
    EXPECT_EQ(response.status, status) << method << " " << target << ": " << response.body;
    return response.body.empty() ? json::value() : json::parse(response.body);
  }

  std::string send(const std::string& from, const std::string& to, const std::string& body) {
    auto accepted = call_json(from, "POST", "/v1/messages", 202,
                              json::serialize(json::object{{"receiver", to}, {"body", body}}));
    return accepted.is_object() ? std::string(accepted.at("message_id").as_string()) : "";
  }

  // Waits (bounded) until `ready` holds for user's conversations; returns the last list.
  json::array conversations_when(const std::string& user, const std::function<bool(const json::array&)>& ready,
                                 const std::string& query = "") {
    json::array list;
    for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
      auto page = call_json(user, "GET", "/v1/users/" + user + "/conversations" + query);
      if (page.is_object()) list = page.at("conversations").as_array();
      if (ready(list)) return list;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "the conversations of " << user << " never got there: " << json::serialize(list);
    return list;
  }

  static const json::object* find_peer(const json::array& list, const std::string& peer) {
    for (const auto& item : list) {
      if (item.at("peer") == peer.c_str()) return &item.as_object();
    }
    return nullptr;
  }

  std::unique_ptr<WsClient> open(const std::string& user) {
    auto ws = std::make_unique<WsClient>();
    EXPECT_TRUE(ws->connect(port_.at(user), "/v1/stream", {"Authorization: Bearer " + token(user)}));
    auto first = ws->read(20s);
    EXPECT_TRUE(first && json::parse(*first).at("type") == "live") << "no live frame";
    return ws;
  }

  // The next frame of `type` on `ws` (others skipped), or an empty object.
  static json::object next_of(WsClient& ws, std::string_view type) { return next_of_within(ws, type, 20s); }

  static json::object next_of_within(WsClient& ws, std::string_view type, std::chrono::milliseconds wait) {
    while (auto text = ws.read(wait)) {
      auto frame = json::parse(*text).as_object();
      if (frame.at("type").is_string() && frame.at("type").get_string() == type) return frame;
    }
    return {};
  }

  std::string suffix_, alice_, bob_, carol_;
  std::map<std::string, std::uint16_t> port_;
  std::unique_ptr<intercomm::testing::Deployment> deployment_;
};

}  // namespace intercomm::testing::chat
