// Test support: a server on 127.0.0.1 that accepts every connection, reads
// what comes, and never answers (a webhook receiver that hangs).
#pragma once

#include "support/loopback.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace intercomm::testing {

class Tarpit {
 public:
  Tarpit() {
    fd_ = listen_on_loopback(4096, port_);
    thread_ = std::thread([this] { serve(); });
  }

  ~Tarpit() {
    stopping_ = true;
    thread_.join();
    for (const int client : clients_) close(client);
    close(fd_);
  }

  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // Connections accepted so far (each one is an attempt left hanging).
  std::size_t accepted() const { return accepted_; }

 private:
  void serve() {
    std::vector<pollfd> watched;
    char sink[4096];
    while (!stopping_) {
      watched.assign(1, pollfd{fd_, POLLIN, 0});
      for (const int client : clients_) watched.push_back(pollfd{client, POLLIN, 0});
      if (poll(watched.data(), watched.size(), 50) <= 0) continue;
      if (watched[0].revents & POLLIN) {
        const int client = accept(fd_, nullptr, nullptr);
        if (client >= 0) {
          clients_.push_back(client);
          ++accepted_;
        }
      }
      for (std::size_t i = 1; i < watched.size(); ++i) {
        if (!(watched[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (recv(watched[i].fd, sink, sizeof sink, 0) <= 0) {  // the client gave up: forget it
          close(watched[i].fd);
          std::erase(clients_, watched[i].fd);
        }
      }
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> accepted_{0};
  std::vector<int> clients_;  // the serving thread's only
  std::thread thread_;
};

}  // namespace intercomm::testing
