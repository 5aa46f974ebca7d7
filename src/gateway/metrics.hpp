// The gateway's Prometheus metrics: requests by route and status, latency, jobs, RPCs.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace intercomm::gateway {

// Counters and a latency histogram per route, rendered in the Prometheus text
// exposition format (version 0.0.4). Every method is thread-safe and cheap
// enough for each request (one short lock); render() takes a consistent
// snapshot of each family.
class Metrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf is implicit).
  static constexpr std::array<double, 14> kLatencyBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

  void request_started() noexcept { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  // `route` is the route's name ("send_message", "unmatched", "invalid" for
  // requests that never parsed).
  void request_finished(std::string_view route, int status, std::chrono::nanoseconds latency);
  // A request refused before it was parsed (413, 431, 400): counted, not timed.
  void request_refused(int status);

  // `outcome`: "confirmed", "unroutable", "nacked", "failed", "timeout".
  void job_published(std::string_view outcome);
  void rpc_finished(std::string_view method, bool timed_out);

  // accept() failed for want of file descriptors (or memory): one back-off.
  void accept_paused() noexcept { accept_pauses_.fetch_add(1, std::memory_order_relaxed); }
  // A request refused 429 by the rate limit named `limit`.
  void rate_limited(std::string_view limit);

  void websocket_opened() noexcept { websockets_.fetch_add(1, std::memory_order_relaxed); }
  void websocket_closed() noexcept { websockets_.fetch_sub(1, std::memory_order_relaxed); }

  // Extra families rendered after the gateway's own, e.g. the in-process
  // workers' counters in `intercomm run`. Add sources before serving starts.
  void add_source(std::function<std::string()> render_family);

  std::string render() const;

 private:
  struct Latency {
    std::array<std::uint64_t, kLatencyBuckets.size()> buckets{};  // non-cumulative
    std::uint64_t count = 0;
    double sum_seconds = 0;
  };

  std::atomic<std::int64_t> in_flight_{0};
  std::atomic<std::int64_t> websockets_{0};
  std::atomic<std::uint64_t> accept_pauses_{0};
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Latency> latency_;
  std::map<std::string, std::uint64_t> jobs_;
  std::map<std::string, std::uint64_t> rpc_calls_;
  std::map<std::string, std::uint64_t> rpc_timeouts_;
  std::map<std::string, std::uint64_t> rate_limited_;
  std::vector<std::function<std::string()>> sources_;
};

}  // namespace intercomm::gateway
