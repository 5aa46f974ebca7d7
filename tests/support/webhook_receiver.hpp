// Test support: a webhook receiver on 127.0.0.1 that records each POST and
// answers with the status a test chooses per request.
#pragma once

#include "support/loopback.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace intercomm::testing {

class WebhookReceiver {
 public:
  struct Request {
    std::string target;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
  };

  // `status_for(n)`: the status to answer the n-th request with (0-based).
  // With keep_alive, one connection may carry many requests (else each
  // response closes it).
  explicit WebhookReceiver(std::function<int(std::size_t)> status_for, bool keep_alive = false)
      : status_for_(std::move(status_for)), keep_alive_(keep_alive) {
    fd_ = listen_on_loopback(16, port_);
    thread_ = std::thread([this] { serve(); });
  }

  ~WebhookReceiver() {
    stopping_ = true;
    thread_.join();
    close(fd_);
  }

  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // Connections accepted so far.
  std::size_t connections() const { return connections_; }

  // Waits until `count` requests came (or `timeout`); returns them all.
  std::vector<Request> wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
    return requests_;
  }

 private:
  void serve() {
    while (!stopping_) {
      pollfd waiting{fd_, POLLIN, 0};
      if (poll(&waiting, 1, 50) <= 0) continue;
      const int client = accept(fd_, nullptr, nullptr);
      if (client < 0) continue;
      ++connections_;
      timeval timeout{keep_alive_ ? 1 : 5, 0};
      setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
      Request request;
      while (!stopping_ && read_request(client, request)) {
        std::size_t index;
        {
          std::lock_guard lock(mu_);
          index = requests_.size();
        }
        const int status = status_for_(index);
        const std::string response = "HTTP/1.1 " + std::to_string(status) +
                                     " X\r\nContent-Length: 2\r\nConnection: " +
                                     (keep_alive_ ? "keep-alive" : "close") + "\r\n\r\nok";
        (void)::send(client, response.data(), response.size(), MSG_NOSIGNAL);
        {
          std::lock_guard lock(mu_);
          requests_.push_back(std::move(request));
        }
        cv_.notify_all();
        if (!keep_alive_) break;
        request = Request{};
      }
      close(client);
    }
  }

  static bool read_request(int client, Request& request) {
    std::string data;
    char chunk[4096];
    while (data.find("\r\n\r\n") == std::string::npos) {
      const auto n = recv(client, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      data.append(chunk, static_cast<std::size_t>(n));
    }
    const auto head_end = data.find("\r\n\r\n");
    const std::string head = data.substr(0, head_end);
    std::string body = data.substr(head_end + 4);
    const auto first_line_end = head.find("\r\n");
    const std::string first_line = head.substr(0, first_line_end);
    const auto space = first_line.find(' ');
    request.target = first_line.substr(space + 1, first_line.rfind(' ') - space - 1);
    std::size_t pos = first_line_end;
    while (pos != std::string::npos && pos < head.size()) {
      const auto next = head.find("\r\n", pos + 2);
      const std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        request.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      pos = next;
    }
    const std::size_t length = std::stoul(request.headers["content-length"]);
    while (body.size() < length) {
      const auto n = recv(client, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      body.append(chunk, static_cast<std::size_t>(n));
    }
    request.body = body.substr(0, length);
    return true;
  }

  std::function<int(std::size_t)> status_for_;
  bool keep_alive_ = false;
  std::atomic<std::size_t> connections_{0};
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
};

}  // namespace intercomm::testing
