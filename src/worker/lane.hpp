// What worker.cpp and lanes.cpp share inside the worker: a lane's state.
#pragma once

#include "worker/worker.hpp"

#include <deque>
#include <memory>
#include <string>

namespace intercomm::worker {

// One lane: its deliveries in queue order, handled by one thread at a time.
struct Worker::Lane {
  std::string queue;
  struct Held {
    std::unique_ptr<bus::Delivery> delivery;
    std::uint32_t failures = 0;  // handler throws seen here (not transient failures)
  };
  std::deque<Held> pending;
  bool scheduled = false;      // queued in tasks_ or delayed_, or running
  std::uint32_t failures = 0;  // transient failures of its head job in a row (for the back-off)
  bool isolate = false;        // after a throw: one job per turn, to find the one that throws
  std::unique_ptr<bus::Subscription> subscription;
};

namespace detail {
// The context a handler sees for `delivery` (its request id, user and delivery count).
JobContext context_of(const bus::Delivery& delivery);

// True for an outcome the worker retries in place (ErrorCode::unavailable).
inline bool transient(const core::Result<boost::json::value>& outcome) {
  return !outcome && outcome.error().code == core::ErrorCode::unavailable;
}
}  // namespace detail

}  // namespace intercomm::worker
