#include "gateway/server.hpp"  // first: the header is self-contained

#include "support/http_client.hpp"
#include "support/servers.hpp"
#include "support/ws_client.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <thread>

namespace intercomm::gateway {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
using intercomm::testing::Client;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.add("GET", "/healthz", "healthz", [](const HttpRequest&, const PathParams&, Responder respond) {
      respond(json_response(200, R"({"status":"ok"})"));
    });
    router_.add("GET", "/v1/messages/{message_id}", "get_message",
                [](const HttpRequest& request, const PathParams& params, Responder respond) {
                  // Answers from another thread, later, as bus callbacks do.
                  std::thread([request, params, respond] {
                    std::this_thread::sleep_for(20ms);
                    respond(json_response(200, R"({"id":")" + params.at("message_id") + R"(","rid":")" +
                                                   request.header("x-request-id") + "\"}"));
                  }).detach();
                });
    router_.add("GET", "/slow", "slow", [](const HttpRequest&, const PathParams&, Responder respond) {
      std::thread([respond] {
        std::this_thread::sleep_for(400ms);
        respond(json_response(200, R"({"slow":true})"));
      }).detach();
    });
    // A socket that is sent far more than it reads: 2,000 frames of 8 KiB at once.
    router_.add_websocket("/flood", "flood", [](const HttpRequest&) {
      struct Flood : WsHandler {
        void on_open(std::shared_ptr<WsConnection> connection) override {
          for (int i = 0; i < 2000; ++i) connection->send(std::string(8192, 'x'));
        }
        void on_text(std::string_view) override {}
        void on_close() override {}
      };
      WsUpgrade upgrade;
      upgrade.handler = std::make_shared<Flood>();
      return upgrade;
    });
    // Answers each text message with its size and its first and last bytes.
    router_.add_websocket("/echo", "echo", [](const HttpRequest&) {
      struct Echo : WsHandler {
        void on_open(std::shared_ptr<WsConnection> connection) override { connection_ = std::move(connection); }
        void on_text(std::string_view text) override {
          connection_->send(std::to_string(text.size()) + ":" +
                            (text.empty() ? std::string() : std::string{text.front(), text.back()}));
        }
        void on_close() override { connection_.reset(); }
        std::shared_ptr<WsConnection> connection_;
      };
      WsUpgrade upgrade;
      upgrade.handler = std::make_shared<Echo>();
      return upgrade;
    });
    router_.add("POST", "/v1/messages", "send_message",
                [](const HttpRequest& request, const PathParams&, Responder respond) {
                  respond(json_response(202, R"({"bytes":)" + std::to_string(request.body.size()) + "}"));
                });
    ServerOptions options;
    options.port = 0;
    options.max_body_bytes = 1024;
    options.read_timeout = 1s;
    options.idle_timeout = 1s;
    options.max_connections = 3;
    options.metrics = &metrics_;
    server_ = std::make_unique<HttpServer>(router_, options);
    auto port = server_->start();
    ASSERT_TRUE(port) << port.error().message;
    port_ = *port;
  }

  Router router_;
  Metrics metrics_;
  std::unique_ptr<HttpServer> server_;
  std::uint16_t port_ = 0;
};

TEST_F(ServerTest, AnswersAndKeepsTheConnectionAlive) {
  Client client(port_);
  ASSERT_TRUE(client.connected());
  client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  auto first = client.read();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(json::parse(first.body).at("status").as_string(), "ok");
  EXPECT_EQ(first.headers["content-type"], "application/json");
  client.send("GET /v1/messages/X9J0UI76GBWQTF HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-1\r\n\r\n");
  auto second = client.read();
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(json::parse(second.body).at("id").as_string(), "X9J0UI76GBWQTF");
  EXPECT_EQ(json::parse(second.body).at("rid").as_string(), "abc-1");
  EXPECT_EQ(second.headers["x-request-id"], "abc-1");
}

TEST_F(ServerTest, GeneratesARequestIdWhenNoneIsSent) {
  Client client(port_);
  client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  auto response = client.read();
  EXPECT_FALSE(response.headers["x-request-id"].empty());
}

TEST_F(ServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Client client(port_);
  client.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  auto missing = client.read();
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body).at("error").at("code").as_int64(), -32004);
  client.send("DELETE /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n");
  auto wrong = client.read();
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.headers["allow"], "POST");
  EXPECT_FALSE(json::parse(wrong.body).at("error").at("message").as_string().empty());
}

TEST_F(ServerTest, OversizedBodyIs413AndGarbageIs400) {
  {
    Client client(port_);
    client.send("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" +
                std::string(5000, 'x'));
    auto response = client.read();
    EXPECT_EQ(response.status, 413);
    EXPECT_EQ(json::parse(response.body).at("error").at("code").as_int64(), -32600);
  }
  {
    Client client(port_);
    client.send("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    EXPECT_EQ(client.read().status, 202);
  }
  {
    Client client(port_);
    client.send("THIS IS NOT HTTP\r\n\r\n");
    auto response = client.read();
    EXPECT_EQ(response.status, 400);
  }
}

TEST_F(ServerTest, ASilentClientIsDisconnectedAfterTheReadTimeout) {
  Client client(port_);
  ASSERT_TRUE(client.connected());
  EXPECT_TRUE(client.closed_by_server()) << "a client that sends nothing must not hold its connection";
}

TEST_F(ServerTest, StopIsIdempotent) {
  server_->stop();
  server_->stop();
  Client client(port_);
  EXPECT_FALSE(client.connected());
}

TEST_F(ServerTest, StopAnswersTheRequestsInFlightFirst) {
  Client client(port_);
  client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(intercomm::testing::wait_until(
      [&] { return metrics_.render().find("in_flight 1") != std::string::npos; }, 5s));
  std::thread stopper([&] { server_->stop(); });
  auto response = client.read();
  stopper.join();
  EXPECT_EQ(response.status, 200) << "a request in flight when stop() began must be answered";
  EXPECT_EQ(response.headers["connection"], "close");
  Client late(port_);
  EXPECT_FALSE(late.connected()) << "stop() must stop accepting";
}

TEST_F(ServerTest, ConnectionsBeyondTheLimitAreClosed) {
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>(port_));
    clients.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(clients.back()->read().status, 200);
  }
  EXPECT_EQ(server_->connections(), 3U);
  {
    Client extra(port_);
    EXPECT_TRUE(extra.closed_by_server()) << "the 4th connection must be closed at once";
  }
  clients.pop_back();  // one closes: room for another
  ASSERT_TRUE(intercomm::testing::wait_until([&] { return server_->connections() == 2; }, 5s));
  Client next(port_);
  next.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(next.read().status, 200);
}

TEST_F(ServerTest, ASlowWebSocketReaderIsClosedWith1013InsteadOfBuffered) {
  intercomm::testing::WsClient ws;
  ASSERT_TRUE(ws.connect(port_, "/flood"));
  std::this_thread::sleep_for(200ms);  // the server queues faster than we read
  int frames = 0;
  while (ws.read(5s)) ++frames;
  ASSERT_TRUE(ws.closed());
  EXPECT_EQ(ws.close_code(), 1013) << ws.close_reason();
  EXPECT_LT(frames, 2000) << "the queue limit must stop the flood";
}

// A socket reads a message in pieces (a few bytes while it waits, more once a
// message is under way): whatever the sizes and framing, the handler gets each
// message whole; one past the limit (64 KiB) closes the socket with 1009.
TEST_F(ServerTest, WebSocketMessagesReachTheHandlerWholeWhateverTheirFraming) {
  intercomm::testing::WsClient ws;
  ASSERT_TRUE(ws.connect(port_, "/echo"));
  const auto message = [](std::size_t size) {
    std::string text(size, 'm');
    if (size > 0) {
      text.front() = 'a';
      text.back() = 'z';
    }
    return text;
  };
  struct Case {
    std::size_t size;
    std::size_t frame_bytes;
  };
  for (const Case c : {Case{0, 0}, Case{1, 0}, Case{63, 0}, Case{64, 0}, Case{65, 0}, Case{10000, 0},
                       Case{10000, 100}, Case{10000, 7}, Case{65536, 0}, Case{65536, 5000}}) {
    const std::string sent = message(c.size);
    ASSERT_TRUE(ws.write(sent, c.frame_bytes)) << c.size;
    const auto answer = ws.read();
    ASSERT_TRUE(answer) << c.size << " in frames of " << c.frame_bytes;
    EXPECT_EQ(*answer, std::to_string(c.size) + ":" + (sent.empty() ? "" : std::string{sent.front(), sent.back()}))
        << "in frames of " << c.frame_bytes;
  }
  ws.write(message(65537), 4096);
  EXPECT_FALSE(ws.read());
  ASSERT_TRUE(ws.closed());
  EXPECT_EQ(ws.close_code(), 1009) << ws.close_reason();
}

TEST_F(ServerTest, CountsAndTimesEveryRequest) {
  Client client(port_);
  client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(client.read().status, 200);
  client.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(client.read().status, 404);
  const std::string text = metrics_.render();
  EXPECT_NE(text.find(R"(intercomm_http_requests_total{route="healthz",status="200"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(intercomm_http_requests_total{route="unmatched",status="404"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(intercomm_http_request_duration_seconds_count{route="healthz"} 1)"),
            std::string::npos);
}

}  // namespace
}  // namespace intercomm::gateway
