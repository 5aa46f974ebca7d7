// Test support: drives tests/support/rabbitmq.sh.
#include "support/rabbitmq_node.hpp"

#include <cstdio>
#include <cstdlib>

namespace intercomm::testing {
namespace {

const std::string kScript = std::string(INTERCOMM_SOURCE_DIR) + "/tests/support/rabbitmq.sh";

// Runs the script; returns the first line it printed, or "" on failure.
std::string run(const std::string& args) {
  FILE* pipe = popen((kScript + " " + args).c_str(), "r");
  if (pipe == nullptr) return {};
  char line[512] = {};
  const bool got = std::fgets(line, sizeof line, pipe) != nullptr;
  const int status = pclose(pipe);
  if (status != 0) return {};
  std::string text = got ? line : "ok";
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

RabbitNode::RabbitNode(std::string dir) : dir_(std::move(dir)) {
  url_ = run("start " + dir_);
}

RabbitNode::~RabbitNode() {
  run("stop " + dir_);
}

bool RabbitNode::kill() {
  return !run("kill " + dir_).empty();
}

bool RabbitNode::restart() {
  return run("start " + dir_) == url_;
}

}  // namespace intercomm::testing
