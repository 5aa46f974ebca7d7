// A WebSocket session on Beast: internal to the server (it includes Beast), not
// for handlers, which see gateway/websocket.hpp.
#pragma once

#include "gateway/metrics.hpp"
#include "gateway/websocket.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <memory>

namespace intercomm::gateway {

struct WsOptions {
  std::size_t queue_limit = 256;          // frames waiting to be written; one more closes with 1013
  std::chrono::seconds idle_timeout{60};  // a ping after half of it; closed when nothing comes back
  std::size_t max_message_bytes = 64 * 1024;
  Metrics* metrics = nullptr;
  // Told of the connection once open, and again (with null) once gone, so the
  // server can close every socket when it stops.
  std::function<void(const std::shared_ptr<WsConnection>&, bool open)> track;
};

// Starts the handshake on `socket` for `request` and returns; the socket then
// runs until it closes: reads text frames into upgrade.handler, writes what the
// handler sends (one write in flight, a bounded queue), closes at
// upgrade.close_at. `ended` runs once the socket and all it held are gone
// (after a failed handshake too). Runs on the socket's executor, which must be
// a strand.
void run_websocket(boost::asio::ip::tcp::socket socket,
                   boost::beast::http::request<boost::beast::http::string_body> request, WsUpgrade upgrade,
                   WsOptions options, std::function<void()> ended);

}  // namespace intercomm::gateway
