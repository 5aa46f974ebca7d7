// Test support: a WebSocket client with bounded waits (Beast), for the stream tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace intercomm::testing {

class WsClient {
 public:
  WsClient();
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Opens ws://127.0.0.1:port`target` with extra `headers` ("Name: value").
  // On a refused upgrade, false, with the HTTP status in refused_status().
  bool connect(std::uint16_t port, const std::string& target, const std::vector<std::string>& headers = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(10));
  int refused_status() const { return refused_status_; }

  // The next text frame, or nullopt after `timeout` or once closed.
  std::optional<std::string> read(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends `text` as one text message, in frames of `frame_bytes` (0: one
  // frame); false when it could not be written within `timeout`.
  bool write(const std::string& text, std::size_t frame_bytes = 0,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool closed() const { return closed_; }
  // The close code the server sent (0 when none came yet).
  int close_code() const { return close_code_; }
  std::string close_reason() const { return close_reason_; }

  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int refused_status_ = 0;
  bool closed_ = false;
  int close_code_ = 0;
  std::string close_reason_;
};

}  // namespace intercomm::testing
