// Prometheus text rendering of the gateway's metrics.
#include "gateway/metrics.hpp"

#include <fmt/core.h>

#include <algorithm>

namespace intercomm::gateway {

void Metrics::request_finished(std::string_view route, int status, std::chrono::nanoseconds latency) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  const double seconds = std::chrono::duration<double>(latency).count();
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) - kLatencyBuckets.begin());
  std::lock_guard lock(mu_);
  ++requests_[{std::string(route), status}];
  auto& histogram = latency_[std::string(route)];
  if (bucket < histogram.buckets.size()) ++histogram.buckets[bucket];
  ++histogram.count;
  histogram.sum_seconds += seconds;
}

void Metrics::request_refused(int status) {
  std::lock_guard lock(mu_);
  ++requests_[{"invalid", status}];
}

void Metrics::job_published(std::string_view outcome) {
  std::lock_guard lock(mu_);
  ++jobs_[std::string(outcome)];
}

void Metrics::rpc_finished(std::string_view method, bool timed_out) {
  std::lock_guard lock(mu_);
  ++rpc_calls_[std::string(method)];
  if (timed_out) ++rpc_timeouts_[std::string(method)];
}

void Metrics::rate_limited(std::string_view limit) {
  std::lock_guard lock(mu_);
  ++rate_limited_[std::string(limit)];
}

void Metrics::add_source(std::function<std::string()> render_family) {
  sources_.push_back(std::move(render_family));
}

std::string Metrics::render() const {
  std::string out;
  const auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  std::lock_guard lock(mu_);

  family("intercomm_http_requests_total", "counter", "HTTP requests answered, by route and status.");
  for (const auto& [key, count] : requests_) {
    out += fmt::format("intercomm_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, count);
  }

  family("intercomm_http_request_duration_seconds", "histogram",
         "Time from a request read to its response ready, by route.");
  for (const auto& [route, histogram] : latency_) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      cumulative += histogram.buckets[i];
      out += fmt::format("intercomm_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                         route, kLatencyBuckets[i], cumulative);
    }
    out += fmt::format("intercomm_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
                       route, histogram.count);
    out += fmt::format("intercomm_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route,
                       histogram.sum_seconds);
    out += fmt::format("intercomm_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route,
                       histogram.count);
  }

  family("intercomm_http_requests_in_flight", "gauge", "Requests read and not yet answered.");
  out += fmt::format("intercomm_http_requests_in_flight {}\n", in_flight_.load(std::memory_order_relaxed));

  family("intercomm_websocket_connections", "gauge", "Open WebSocket connections.");
  out += fmt::format("intercomm_websocket_connections {}\n", websockets_.load(std::memory_order_relaxed));

  family("intercomm_jobs_published_total", "counter", "Jobs published to inter_comm, by outcome.");
  for (const auto& [outcome, count] : jobs_) {
    out += fmt::format("intercomm_jobs_published_total{{outcome=\"{}\"}} {}\n", outcome, count);
  }

  family("intercomm_rpc_calls_total", "counter", "RPCs made over the bus, by method.");
  for (const auto& [method, count] : rpc_calls_) {
    out += fmt::format("intercomm_rpc_calls_total{{method=\"{}\"}} {}\n", method, count);
  }
  family("intercomm_rpc_timeouts_total", "counter",
         "RPCs that got no reply in time (answered 504), by method.");
  for (const auto& [method, count] : rpc_timeouts_) {
    out += fmt::format("intercomm_rpc_timeouts_total{{method=\"{}\"}} {}\n", method, count);
  }
  family("intercomm_rate_limited_total", "counter", "Requests refused 429 by a rate limit, by limit.");
  for (const auto& [limit, count] : rate_limited_) {
    out += fmt::format("intercomm_rate_limited_total{{limit=\"{}\"}} {}\n", limit, count);
  }
  family("intercomm_accept_pauses_total", "counter",
         "Times the gateway paused accepting: out of file descriptors (or memory).");
  out += fmt::format("intercomm_accept_pauses_total {}\n", accept_pauses_.load(std::memory_order_relaxed));
  for (const auto& source : sources_) out += source();
  return out;
}

}  // namespace intercomm::gateway
