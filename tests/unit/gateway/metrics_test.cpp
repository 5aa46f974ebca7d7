#include "gateway/metrics.hpp"  // first: the header is self-contained

#include <gtest/gtest.h>

namespace intercomm::gateway {
namespace {

using namespace std::chrono_literals;

// The value on the line that starts with `series ` in `text`, or -1.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(Metrics, CountsRequestsByRouteAndStatus) {
  Metrics metrics;
  for (int i = 0; i < 3; ++i) {
    metrics.request_started();
    metrics.request_finished("send_message", 202, 2ms);
  }
  metrics.request_started();
  metrics.request_finished("send_message", 401, 100us);
  metrics.request_refused(413);
  const std::string text = metrics.render();
  EXPECT_EQ(sample(text, R"(intercomm_http_requests_total{route="send_message",status="202"})"), 3);
  EXPECT_EQ(sample(text, R"(intercomm_http_requests_total{route="send_message",status="401"})"), 1);
  EXPECT_EQ(sample(text, R"(intercomm_http_requests_total{route="invalid",status="413"})"), 1);
  EXPECT_EQ(sample(text, "intercomm_http_requests_in_flight"), 0);
  EXPECT_NE(text.find("# TYPE intercomm_http_requests_total counter\n"), std::string::npos);
}

TEST(Metrics, LatencyBucketsAreCumulativeAndEndInCount) {
  Metrics metrics;
  for (std::chrono::nanoseconds latency : {300us, 2000us, 2000us, 40000us, 20000000us}) {
    metrics.request_started();
    metrics.request_finished("get_message", 200, latency);
  }
  const std::string text = metrics.render();
  const auto bucket = [&](const char* le) {
    return sample(
        text, std::string(R"(intercomm_http_request_duration_seconds_bucket{route="get_message",le=")") + le +
                  "\"}");
  };
  EXPECT_EQ(bucket("0.0005"), 1);
  EXPECT_EQ(bucket("0.001"), 1);
  EXPECT_EQ(bucket("0.0025"), 3);
  EXPECT_EQ(bucket("0.05"), 4);
  EXPECT_EQ(bucket("10"), 4);  // 20 s is past every finite bucket
  EXPECT_EQ(bucket("+Inf"), 5);
  EXPECT_EQ(sample(text, R"(intercomm_http_request_duration_seconds_count{route="get_message"})"), 5);
  EXPECT_NEAR(sample(text, R"(intercomm_http_request_duration_seconds_sum{route="get_message"})"), 20.0443,
              1e-6);
}

TEST(Metrics, InFlightJobsAndRpcs) {
  Metrics metrics;
  metrics.request_started();
  metrics.request_started();
  metrics.job_published("confirmed");
  metrics.job_published("failed");
  metrics.job_published("confirmed");
  metrics.rpc_finished("get_message", false);
  metrics.rpc_finished("get_message", true);
  metrics.websocket_opened();
  const std::string text = metrics.render();
  EXPECT_EQ(sample(text, "intercomm_http_requests_in_flight"), 2);
  EXPECT_EQ(sample(text, R"(intercomm_jobs_published_total{outcome="confirmed"})"), 2);
  EXPECT_EQ(sample(text, R"(intercomm_jobs_published_total{outcome="failed"})"), 1);
  EXPECT_EQ(sample(text, R"(intercomm_rpc_calls_total{method="get_message"})"), 2);
  EXPECT_EQ(sample(text, R"(intercomm_rpc_timeouts_total{method="get_message"})"), 1);
  EXPECT_EQ(sample(text, "intercomm_websocket_connections"), 1);
}

}  // namespace
}  // namespace intercomm::gateway
