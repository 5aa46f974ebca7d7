// Text and JSON-lines formatters for spdlog, carrying the thread's request id.
#include "core/logging.hpp"

#include "core/utf8.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <pthread.h>

#include <chrono>
#include <ctime>

namespace intercomm::core::logging {
namespace {

thread_local std::string t_request_id;

// %* in text patterns: " req=<id>" when the thread has a request id.
class RequestIdFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    if (t_request_id.empty()) return;
    dest.append(std::string_view(" req="));
    dest.append(t_request_id);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<RequestIdFlag>(); }
};

void append_json_string(spdlog::memory_buf_t& dest, std::string_view text) {
  const std::string quoted = boost::json::serialize(
      boost::json::string(is_valid_utf8(text) ? std::string(text) : replace_invalid_utf8(text)));
  dest.append(quoted.data(), quoted.data() + quoted.size());
}

// One JSON object per line: ts, level, logger, msg and request_id when set.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    const auto millis = duration_cast<milliseconds>(msg.time.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    fmt::format_to(std::back_inserter(dest),
                   R"({{"ts":"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z","level":")", utc.tm_year + 1900,
                   utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis % 1000);
    const auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    dest.append(std::string_view(R"(","logger":)"));
    append_json_string(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    dest.append(std::string_view(R"(,"msg":)"));
    append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    if (!t_request_id.empty()) {
      dest.append(std::string_view(R"(,"request_id":)"));
      append_json_string(dest, t_request_id);
    }
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
  if (format == LogFormat::json) return std::make_unique<JsonFormatter>();
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<RequestIdFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l [%n]%* %v");
  return formatter;
}

void init(LogFormat format, std::string_view level) {
  auto logger =
      std::make_shared<spdlog::logger>("intercomm", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(make_formatter(format));
  logger->set_level(spdlog::level::from_str(std::string(level)));
  spdlog::set_default_logger(std::move(logger));
}

ScopedRequestId::ScopedRequestId(std::string request_id) : previous_(std::move(t_request_id)) {
  t_request_id = std::move(request_id);
}

ScopedRequestId::~ScopedRequestId() {
  t_request_id = std::move(previous_);
}

const std::string& current_request_id() noexcept {
  return t_request_id;
}

void name_this_thread(std::string_view name) {
  char buffer[16] = {};
  name.copy(buffer, sizeof buffer - 1);
  pthread_setname_np(pthread_self(), buffer);
}

}  // namespace intercomm::core::logging
