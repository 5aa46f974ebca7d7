// The HTTP/1.1 server (Boost.Beast, C++20 coroutines) in front of a Router.
#pragma once

#include "core/errors.hpp"
#include "gateway/metrics.hpp"
#include "gateway/router.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace intercomm::gateway {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;                      // 0: any free port (start() returns it)
  unsigned threads = 2;                           // io_context threads
  std::size_t max_body_bytes = 64 * 1024 + 4096;  // larger bodies: 413
  std::size_t max_header_bytes = 16 * 1024;       // larger headers: 431
  std::chrono::seconds header_timeout{5};         // a request's head, from its first byte (slowloris)
  std::chrono::seconds read_timeout{10};          // the whole request, once its head came
  std::chrono::seconds idle_timeout{60};          // keep-alive between requests
  std::size_t max_connections = 10000;            // beyond: closed at once
  std::chrono::seconds drain_timeout{10};         // stop() waits this long for requests in flight
  Metrics* metrics = nullptr;                     // when set, every request is counted and timed
  // WebSocket frames waiting per socket; beyond: closed 1013. A backstop:
  // the stream paces itself well below it (StreamOptions::max_unwritten).
  std::size_t ws_queue_limit = 1024;
};

// Serves HTTP/1.1 with keep-alive. Each connection is one coroutine: read,
// dispatch, write, loop; a slow or silent client hits a timeout and is closed,
// it never holds a thread. An upgrade to a path the router has a WebSocket
// endpoint for becomes a WebSocket on the same connection (ping/pong
// keep-alive, one write in flight, a bounded send queue). Every response carries X-Request-Id (the client's,
// or a generated one, which handlers also see in the request headers).
class HttpServer {
 public:
  HttpServer(const Router& router, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the threads; returns the bound port.
  core::Result<std::uint16_t> start();
  // Drains, then stops; idempotent. Stops accepting at once, closes WebSockets
  // with 1001 (going away), lets the requests
  // in flight finish and be answered (up to drain_timeout; their connections
  // then close instead of waiting for another request), then stops the threads
  // and closes every connection.
  void stop();

  // Connections open now (for tests and metrics).
  std::size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace intercomm::gateway
