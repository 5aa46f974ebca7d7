// Test support: where tests keep server data, the server scripts, bounded waits.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace intercomm::testing {

// INTERCOMM_TEST_SERVERS_DIR (set by scripts/test.sh), else /tmp.
std::string servers_dir();

// Runs tests/support/NAME with ARGS; returns its first output line ("ok" when
// it printed none), or "" when it failed.
std::string run_support_script(const std::string& name, const std::string& args);

// Polls `done` every 10 ms until it holds or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace intercomm::testing
