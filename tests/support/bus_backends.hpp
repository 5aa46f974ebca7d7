// Test support: the bus backends a conformance suite runs against.
#pragma once

#include "bus/amqp.hpp"
#include "bus/inproc.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>

namespace intercomm::testing {

// The AMQP URL of the private RabbitMQ node that scripts/test.sh starts.
inline std::string test_amqp_url() {
  const char* url = std::getenv("INTERCOMM_TEST_AMQP");
  return url == nullptr ? std::string() : std::string(url);
}

// Makes connections to one backend: all connections of a test share its broker.
class BusFactory {
 public:
  // "inproc", "inproc_journal" (the in-process broker with a journal in a
  // fresh folder of its own) or "amqp".
  explicit BusFactory(const std::string& backend);
  ~BusFactory();

  // A connected bus, or a test failure saying why there is none.
  std::unique_ptr<bus::Bus> connect() {
    if (broker_) return bus::connect_inproc(broker_);
    const std::string url = test_amqp_url();
    if (url.empty()) {
      ADD_FAILURE() << "INTERCOMM_TEST_AMQP is not set: run through scripts/test.sh, which starts RabbitMQ";
      return nullptr;
    }
    bus::AmqpOptions options;
    options.urls = {url};
    auto connection = bus::connect_amqp(options);
    if (!bus::wait_connected(*connection, std::chrono::seconds(20))) {
      ADD_FAILURE() << "cannot connect to " << url;
      return nullptr;
    }
    return connection;
  }

 private:
  std::string backend_;
  std::string journal_;
  std::shared_ptr<bus::InprocBroker> broker_;
};

// A queue-like collector with a bounded wait, for values produced on bus threads.
template <class T>
class Collector {
 public:
  void push(T value) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(value));
    cv_.notify_all();
  }

  // Waits until at least `count` items arrived or `timeout` passed; returns the count.
  std::size_t wait_for(std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return items_.size() >= count; });
    return items_.size();
  }

  std::vector<T> items() {
    std::lock_guard lock(mu_);
    return items_;
  }

  std::size_t size() {
    std::lock_guard lock(mu_);
    return items_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<T> items_;
};

// A name unique to this test run, for queues and message markers.
std::string unique_name(std::string_view prefix);

}  // namespace intercomm::testing
