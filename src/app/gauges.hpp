// Metric lines for the gateway's /metrics (see gauges.cpp).
#pragma once

#include "bus/bus.hpp"
#include "worker/worker.hpp"

#include <string>

namespace intercomm::app {

// intercomm_worker_jobs_total lines of `worker` (counters, no HELP/TYPE).
std::string worker_metrics(const worker::Worker& worker);
// intercomm_worker_circuit_open and intercomm_worker_jobs_held lines of `worker`.
std::string worker_gauges(const worker::Worker& worker);
// intercomm_dead_letters with its HELP and TYPE; empty when the bus cannot say.
std::string dead_letter_metrics(bus::Bus& connection);

}  // namespace intercomm::app
