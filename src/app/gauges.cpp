// What this process adds to the gateway's /metrics beyond the HTTP counters:
// its in-process workers (intercomm run) and the depth of dead_letters.
#include "app/gauges.hpp"

#include "bus/topology.hpp"

#include <fmt/core.h>

namespace intercomm::app {

// The depth of dead_letters, read from the broker at each scrape.
std::string dead_letter_metrics(bus::Bus& connection) {
  auto depth = connection.queue_depth(std::string(bus::kDeadLetterQueue));
  if (!depth) return {};
  return fmt::format(
      "# HELP intercomm_dead_letters Jobs waiting in dead_letters (see intercomm dlq).\n"
      "# TYPE intercomm_dead_letters gauge\nintercomm_dead_letters {}\n",
      *depth);
}

// The in-process workers' counters, for the gateway's /metrics in `intercomm run`.
std::string worker_metrics(const worker::Worker& worker) {
  const auto stats = worker.stats();
  std::string out;
  for (const auto& [outcome, count] : {std::pair<const char*, std::uint64_t>{"acked", stats.acked},
                                       {"requeued", stats.requeued},
                                       {"dead_lettered", stats.dead_lettered},
                                       {"retried_in_place", stats.retried_in_place}}) {
    out += fmt::format("intercomm_worker_jobs_total{{queue=\"{}\",outcome=\"{}\"}} {}\n", worker.queue(),
                       outcome, count);
  }
  return out;
}

// The in-process workers' breakers and held jobs, as gauges.
std::string worker_gauges(const worker::Worker& worker) {
  const auto stats = worker.stats();
  return fmt::format("intercomm_worker_circuit_open{{queue=\"{0}\"}} {1}\nintercomm_worker_jobs_held{{queue=\"{0}\"}} {2}\n",
                     worker.queue(), stats.circuit_open ? 1 : 0, stats.held);
}

}  // namespace intercomm::app
