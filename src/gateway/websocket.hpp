// WebSocket endpoints as plain interfaces: handlers never see Beast or Asio.
#pragma once

#include "gateway/http.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace intercomm::gateway {

// Close codes this gateway uses (RFC 6455 § 7.4).
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;        // the server is stopping
inline constexpr std::uint16_t kClosePolicyViolation = 1008;  // e.g. the token expired
inline constexpr std::uint16_t kCloseTryAgainLater = 1013;    // the client reads too slowly

// One open WebSocket, as a handler holds it. send() queues a text frame: at
// most `queue_limit` frames wait; one more closes the socket with 1013 (a slow
// reader never makes the server buffer without bound, nor slows other
// sockets); `written`, when given, runs once the frame is written (handlers
// pace themselves with it). after() runs `fn` once `delay` has passed, unless
// the socket closed first. Callbacks run on the socket's strand, one at a
// time. Thread-safe; after the socket closed, calls do nothing and send()
// returns false.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  virtual bool send(std::string text, std::function<void()> written) = 0;
  bool send(std::string text) { return send(std::move(text), nullptr); }
  virtual void close(std::uint16_t code, std::string reason) = 0;
  // As close(), with the reason made on the socket's strand when the close is
  // decided: every completed write's callback has run, and at most the frame
  // being written then still reaches the client (the rest are dropped).
  virtual void close_with(std::uint16_t code, std::function<std::string()> reason) = 0;
  virtual void after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
};

// What happens on one socket. The server calls these on the socket's strand,
// one at a time: on_open once after the handshake, on_text per text frame,
// on_close once when the socket is gone (whoever closed it).
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void on_open(std::shared_ptr<WsConnection> connection) = 0;
  virtual void on_text(std::string_view text) = 0;
  virtual void on_close() = 0;
};

// An upgrade request decided: a handler to accept it with, or the HTTP
// response that refuses it (401, 403, 400 ...).
struct WsUpgrade {
  std::shared_ptr<WsHandler> handler;
  HttpResponse refusal;
  // The server closes the socket (1008, "token expired") at this time.
  std::optional<std::chrono::system_clock::time_point> close_at;
};

using UpgradeHandler = std::function<WsUpgrade(const HttpRequest&)>;

}  // namespace intercomm::gateway
