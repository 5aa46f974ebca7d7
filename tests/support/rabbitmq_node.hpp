// Test support: a private RabbitMQ node of a test's own, started and stopped by
// tests/support/rabbitmq.sh, for tests that kill and restart the broker.
#pragma once

#include <string>

namespace intercomm::testing {

class RabbitNode {
 public:
  // Starts a node with its data under `dir`; started() says whether it is up.
  explicit RabbitNode(std::string dir);
  ~RabbitNode();  // stops the node, also when the test failed
  RabbitNode(const RabbitNode&) = delete;
  RabbitNode& operator=(const RabbitNode&) = delete;

  bool started() const { return !url_.empty(); }
  const std::string& url() const { return url_; }

  bool kill();     // kill -9
  bool pause();    // SIGSTOP: up for TCP, answering nothing
  bool resume();   // SIGCONT
  bool stop();     // a clean stop (rabbitmqctl stop)
  bool restart();  // start again on the same ports and data

 private:
  std::string dir_;
  std::string url_;
};

}  // namespace intercomm::testing
