// Test support: drives tests/support/rabbitmq.sh.
#include "support/rabbitmq_node.hpp"

#include "support/servers.hpp"

namespace intercomm::testing {

RabbitNode::RabbitNode(std::string dir) : dir_(std::move(dir)) {
  url_ = run_support_script("rabbitmq.sh", "start " + dir_);
}

RabbitNode::~RabbitNode() {
  run_support_script("rabbitmq.sh", "stop " + dir_);
}

bool RabbitNode::pause() {
  return !run_support_script("rabbitmq.sh", "pause " + dir_).empty();
}

bool RabbitNode::resume() {
  return !run_support_script("rabbitmq.sh", "resume " + dir_).empty();
}

bool RabbitNode::kill() {
  return !run_support_script("rabbitmq.sh", "kill " + dir_).empty();
}

bool RabbitNode::stop() {
  return !run_support_script("rabbitmq.sh", "stop " + dir_).empty();
}

bool RabbitNode::restart() {
  return run_support_script("rabbitmq.sh", "start " + dir_) == url_;
}

}  // namespace intercomm::testing
