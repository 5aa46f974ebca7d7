// Test support: server dirs, scripts and bounded waits.
#include "support/servers.hpp"

#include <cstdio>
#include <cstdlib>
#include <thread>

namespace intercomm::testing {

std::string servers_dir() {
  const char* dir = std::getenv("INTERCOMM_TEST_SERVERS_DIR");
  return dir ? dir : "/tmp";
}

std::string run_support_script(const std::string& name, const std::string& args) {
  const std::string command = std::string(INTERCOMM_SOURCE_DIR) + "/tests/support/" + name + " " + args;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  char line[1024] = {};
  const bool got = std::fgets(line, sizeof line, pipe) != nullptr;
  if (pclose(pipe) != 0) return {};
  std::string text = got ? line : "ok";
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace intercomm::testing
