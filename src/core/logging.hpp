// Structured logging on spdlog: text or JSON lines, with a request id field.
#pragma once

#include "core/config.hpp"

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace intercomm::core::logging {

// Sets the process-wide default logger: stderr, UTC timestamps, `format` chosen
// by --log-format. Unknown levels are refused by Config's check.
void init(LogFormat format, std::string_view level = "info");

// A formatter for `format`; used by init() and by tests that log into a buffer.
std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format);

// The request id that log lines of this thread carry (empty: none). Set it for
// the synchronous stretch of work done for one request; a coroutine that is
// resumed on another thread sets it again after resuming.
class ScopedRequestId {
 public:
  explicit ScopedRequestId(std::string request_id);
  ~ScopedRequestId();
  ScopedRequestId(const ScopedRequestId&) = delete;
  ScopedRequestId& operator=(const ScopedRequestId&) = delete;

 private:
  std::string previous_;
};

const std::string& current_request_id() noexcept;

// Names the calling thread (what `top -H`, `perf` and /proc/<pid>/task/*/comm
// show); Linux keeps the first 15 bytes.
void name_this_thread(std::string_view name);

}  // namespace intercomm::core::logging
