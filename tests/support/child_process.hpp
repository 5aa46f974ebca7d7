// Test support: a child process started by the test, its stdout readable line by
// line, SIGKILLed if the test ends without stopping it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <sys/types.h>

namespace intercomm::testing {

class ChildProcess {
 public:
  // Starts argv[0] with `args`, extra `env` entries ("NAME=value") added to ours.
  explicit ChildProcess(std::vector<std::string> args, std::vector<std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // The next line the child printed on stdout, or "" at end/after `timeout`.
  std::string read_line(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Reads lines until one starts with `prefix`; returns it ("" if none came).
  std::string wait_for_line(const std::string& prefix,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // SIGTERM, then the exit code (-1 if it did not exit within `timeout`).
  int terminate(std::chrono::seconds timeout = std::chrono::seconds(20));
  // SIGKILL (a crash), then the exit code (128 + 9).
  int kill_now();

 private:
  int signal_and_wait(int signal, std::chrono::seconds timeout);

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
};

}  // namespace intercomm::testing
