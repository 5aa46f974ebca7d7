#include "core/logging.hpp"  // first: the header is self-contained

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <boost/json/parse.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace intercomm::core::logging {
namespace {
namespace json = boost::json;

// A logger writing into `out` with the formatter for `format`.
std::shared_ptr<spdlog::logger> logger_into(std::ostringstream& out, LogFormat format) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_formatter(make_formatter(format));
  return logger;
}

TEST(JsonLogs, EachLineIsAnObjectWithTheRequestId) {
  std::ostringstream out;
  auto logger = logger_into(out, LogFormat::json);
  {
    ScopedRequestId scope("req-42");
    logger->info("accepted \"{}\" from {}", "hi\nthere", "alice");
  }
  logger->warn("no request");

  std::istringstream lines(out.str());
  std::string first;
  std::string second;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  const auto a = json::parse(first).as_object();
  EXPECT_EQ(a.at("msg").as_string(), "accepted \"hi\nthere\" from alice");
  EXPECT_EQ(a.at("level").as_string(), "info");
  EXPECT_EQ(a.at("logger").as_string(), "test");
  EXPECT_EQ(a.at("request_id").as_string(), "req-42");
  EXPECT_EQ(a.at("ts").as_string().back(), 'Z');
  const auto b = json::parse(second).as_object();
  EXPECT_EQ(b.at("level").as_string(), "warning");
  EXPECT_FALSE(b.contains("request_id"));
}

TEST(JsonLogs, InvalidUtf8InAMessageStillYieldsJson) {
  std::ostringstream out;
  auto logger = logger_into(out, LogFormat::json);
  logger->info("bad bytes: {}", std::string("\xC3\x28"));
  // The line must still be JSON: bad bytes become U+FFFD.
  const auto line = json::parse(out.str());
  EXPECT_EQ(line.at("msg").as_string(), "bad bytes: \xEF\xBF\xBD(");
}

TEST(TextLogs, CarryTheRequestIdWhenSet) {
  std::ostringstream out;
  auto logger = logger_into(out, LogFormat::text);
  {
    ScopedRequestId scope("abc");
    logger->info("one");
  }
  logger->info("two");
  const std::string text = out.str();
  EXPECT_NE(text.find("[test] req=abc one"), std::string::npos) << text;
  EXPECT_NE(text.find("[test] two"), std::string::npos) << text;
}

TEST(RequestId, ScopesNestAndRestore) {
  EXPECT_EQ(current_request_id(), "");
  {
    ScopedRequestId outer("outer");
    {
      ScopedRequestId inner("inner");
      EXPECT_EQ(current_request_id(), "inner");
    }
    EXPECT_EQ(current_request_id(), "outer");
  }
  EXPECT_EQ(current_request_id(), "");
}

TEST(ThreadNames, AThreadIsNamedAsItSaysCutTo15Bytes) {
  std::string seen_short, seen_long;
  std::thread([&] {
    name_this_thread("w:mta");
    std::getline(std::ifstream("/proc/thread-self/comm"), seen_short);
    name_this_thread("w:mda_webhook_and_more");
    std::getline(std::ifstream("/proc/thread-self/comm"), seen_long);
  }).join();
  EXPECT_EQ(seen_short, "w:mta");
  EXPECT_EQ(seen_long, "w:mda_webhook_a");
}

}  // namespace
}  // namespace intercomm::core::logging
