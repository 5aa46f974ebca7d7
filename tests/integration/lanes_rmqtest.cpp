// Ordered jobs through a worker's lanes, against every bus backend: per-key
// publish order kept with many threads and two worker processes' worth of
// connections; transient failures held in place without spending deliveries.
#include "worker/worker.hpp"  // first: the header is self-contained

#include "bus/topology.hpp"
#include "core/jsonrpc.hpp"
#include "support/bus_backends.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace intercomm::worker {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using intercomm::testing::BusFactory;
using intercomm::testing::Collector;
using intercomm::testing::unique_name;
using namespace std::chrono_literals;

constexpr auto kTimeout = 20s;

// One handled job: its key and its number within the key.
struct Handled {
  std::string key;
  int n = 0;
  std::uint32_t delivery_count = 0;
};

class Lanes : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BusFactory>(GetParam());
    client_bus_ = factory_->connect();
    ASSERT_NE(client_bus_, nullptr);
    name_ = unique_name("lanes");
    job_ = unique_name("ordered_job");
  }

  void TearDown() override {
    for (auto& worker : workers_) worker->stop();
  }

  // A worker on its own connection whose ordered handler records each job,
  // after `step` (which may fail or sleep).
  Worker& start_worker(WorkerOptions options,
                       std::function<core::Result<json::value>(const Handled&)> step = nullptr) {
    buses_.push_back(factory_->connect());
    workers_.push_back(std::make_unique<Worker>(*buses_.back(), name_, options));
    workers_.back()->on_ordered(job_, [this, step](std::span<const BatchJob> jobs) {
      batch_sizes_.push(jobs.size());
      std::vector<core::Result<json::value>> outcomes;
      bool failed = false;
      for (const auto& job : jobs) {
        Handled handled{std::string(job.params->at("key").as_string()),
                        static_cast<int>(job.params->at("n").as_int64()), job.context.delivery_count};
        if (failed) {
          outcomes.push_back(Error::of(ErrorCode::unavailable, "after a failure"));
          continue;
        }
        auto outcome = step ? step(handled) : core::Result<json::value>(json::value(nullptr));
        if (!outcome && outcome.error().code == ErrorCode::unavailable) {
          failed = true;  // the contract: nothing after a transient failure takes effect
        } else if (seen(handled)) {
          duplicates_.fetch_add(1);  // idempotent, like the MTA: done once only
        } else {
          handled_.push(handled);
        }
        outcomes.push_back(std::move(outcome));
      }
      return outcomes;
    });
    EXPECT_TRUE(workers_.back()->start());
    return *workers_.back();
  }

  bool seen(const Handled& handled) {
    std::lock_guard lock(seen_mu_);
    return !seen_.emplace(handled.key, handled.n).second;
  }

  void publish(const std::string& key, int n) {
    bus::Envelope envelope;
    envelope.routing_key = job_;
    envelope.headers[std::string(bus::kOrderKeyHeader)] = key;
    envelope.body = core::jsonrpc::serialize(
        core::jsonrpc::Request{job_, json::object{{"key", key}, {"n", n}}, std::nullopt});
    ASSERT_EQ(bus::publish_and_wait(*client_bus_, bus::kExchange, envelope, kTimeout),
              bus::PublishStatus::confirmed);
  }

  // Checks that every key's jobs were handled exactly once each, 0..count-1, in order.
  void expect_in_order(const std::vector<Handled>& handled, int keys, int per_key) {
    std::map<std::string, int> next;
    for (const auto& h : handled) {
      EXPECT_EQ(h.n, next[h.key]) << "key " << h.key << " out of order or repeated";
      next[h.key] = h.n + 1;
    }
    EXPECT_EQ(next.size(), static_cast<std::size_t>(keys));
    for (const auto& [key, count] : next) EXPECT_EQ(count, per_key) << key;
  }

  std::unique_ptr<BusFactory> factory_;
  std::unique_ptr<bus::Bus> client_bus_;
  std::vector<std::unique_ptr<bus::Bus>> buses_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::string name_, job_;
  Collector<Handled> handled_;
  Collector<std::size_t> batch_sizes_;  // of each call of the handler
  std::mutex seen_mu_;
  std::set<std::pair<std::string, int>> seen_;
  std::atomic<int> duplicates_{0};
};

TEST_P(Lanes, EachKeyIsHandledInPublishOrderByManyThreads) {
  WorkerOptions options;
  options.lanes = 4;
  options.threads = 8;
  start_worker(options, [](const Handled&) -> core::Result<json::value> {
    thread_local std::mt19937 random{std::random_device{}()};
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 500));
    return json::value(nullptr);
  });
  constexpr int kKeys = 12, kPerKey = 25;
  // Publishers per key run at once, each key's jobs one after the other.
  std::vector<std::thread> publishers;
  for (int k = 0; k < kKeys; ++k) {
    publishers.emplace_back([this, k] {
      for (int n = 0; n < kPerKey; ++n) publish("key-" + std::to_string(k), n);
    });
  }
  for (auto& thread : publishers) thread.join();
  ASSERT_EQ(handled_.wait_for(kKeys * kPerKey, kTimeout), static_cast<std::size_t>(kKeys * kPerKey));
  expect_in_order(handled_.items(), kKeys, kPerKey);
  EXPECT_EQ(duplicates_.load(), 0);
}

TEST_P(Lanes, TwoWorkersOnTheSameLanesStillKeepEachKeysOrder) {
  WorkerOptions options;
  options.lanes = 4;
  options.threads = 4;
  start_worker(options);
  start_worker(options);
  constexpr int kKeys = 8, kPerKey = 20;
  for (int n = 0; n < kPerKey; ++n) {
    for (int k = 0; k < kKeys; ++k) publish("key-" + std::to_string(k), n);
  }
  ASSERT_EQ(handled_.wait_for(kKeys * kPerKey, kTimeout), static_cast<std::size_t>(kKeys * kPerKey));
  expect_in_order(handled_.items(), kKeys, kPerKey);
  // The first stops; the second takes the lanes over and keeps the order.
  workers_.front()->stop();
  for (int n = kPerKey; n < 2 * kPerKey; ++n) {
    for (int k = 0; k < kKeys; ++k) publish("key-" + std::to_string(k), n);
  }
  ASSERT_EQ(handled_.wait_for(2 * kKeys * kPerKey, kTimeout), static_cast<std::size_t>(2 * kKeys * kPerKey));
  expect_in_order(handled_.items(), kKeys, 2 * kPerKey);
  EXPECT_EQ(duplicates_.load(), 0) << "a clean stop hands nothing over twice";
}

TEST_P(Lanes, ATransientFailureHoldsItsLaneWithoutSpendingTheDeliveryBudget) {
  WorkerOptions options;
  options.lanes = 2;
  options.max_deliveries = 2;  // the failure below outlasts it: it must not count
  options.retry_first = 5ms;
  options.retry_last = 20ms;
  std::atomic<int> failures_left{6};
  auto& worker = start_worker(options, [&](const Handled& job) -> core::Result<json::value> {
    if (job.key == "k" && job.n == 1 && failures_left.fetch_sub(1) > 0) {
      return Error::of(ErrorCode::unavailable, "store down");
    }
    return json::value(nullptr);
  });
  for (int n = 0; n < 5; ++n) publish("k", n);
  ASSERT_EQ(handled_.wait_for(5, kTimeout), 5U);
  expect_in_order(handled_.items(), 1, 5);
  for (const auto& h : handled_.items())
    EXPECT_EQ(h.delivery_count, 0U) << "retried by requeue, not in place";
  EXPECT_EQ(worker.stats().dead_lettered, 0U);
  EXPECT_EQ(worker.stats().requeued, 0U);
  EXPECT_GE(worker.stats().retried_in_place, 6U);
  intercomm::testing::wait_until([&] { return worker.stats().acked >= 5; });  // acked after handling
  EXPECT_EQ(worker.stats().acked, 5U);
  EXPECT_EQ(duplicates_.load(), 0);
}

TEST_P(Lanes, AJobThatAlwaysThrowsIsDeadLetteredAndItsLaneMovesOn) {
  WorkerOptions options;
  options.lanes = 1;
  options.max_deliveries = 3;
  options.retry_first = 5ms;
  options.retry_last = 20ms;
  auto& worker = start_worker(options, [](const Handled& job) -> core::Result<json::value> {
    if (job.n == 2) throw std::runtime_error("a bug in the handler");
    return json::value(nullptr);
  });
  for (int n = 0; n < 5; ++n) publish("k", n);
  ASSERT_EQ(handled_.wait_for(4, kTimeout), 4U);
  std::vector<int> order;
  for (const auto& h : handled_.items()) order.push_back(h.n);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 3, 4}));
  intercomm::testing::wait_until([&] { return worker.stats().dead_lettered >= 1; });
  EXPECT_EQ(worker.stats().dead_lettered, 1U);
}

TEST_P(Lanes, ALaneHoldsItsOwnWindowAndHandsItOverInOneTurn) {
  WorkerOptions options;
  options.lanes = 1;
  options.prefetch = 8;         // rpc_queue_<name>'s window: not the lanes'
  options.lane_prefetch = 100;  // the lane's: its turns under a backlog
  std::promise<void> release;
  auto released = release.get_future().share();
  auto& worker = start_worker(options, [released](const Handled& job) -> core::Result<json::value> {
    if (job.n == 0) released.wait();  // the backlog piles up behind the first job
    return json::value(nullptr);
  });
  constexpr int kJobs = 300;
  for (int n = 0; n < kJobs; ++n) publish("k", n);
  EXPECT_TRUE(intercomm::testing::wait_until([&] { return worker.stats().in_hand == 100; }))
      << "in hand: " << worker.stats().in_hand;
  release.set_value();
  ASSERT_EQ(handled_.wait_for(kJobs, kTimeout), static_cast<std::size_t>(kJobs));
  expect_in_order(handled_.items(), 1, kJobs);
  const auto sizes = batch_sizes_.items();
  // The first turn (the job that waited, and whatever had arrived with it)
  // and the next one (what piled up meanwhile) held the whole window.
  ASSERT_GE(sizes.size(), 2U);
  EXPECT_GE(sizes[0] + sizes[1], 100U) << sizes[0] << " then " << sizes[1];
  EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()), 100U);
}

TEST_P(Lanes, TurningLanesOnOrOffLeavesOneWayForEachJob) {
  for (unsigned lanes : {0U, 4U, 0U}) {
    WorkerOptions options;
    options.lanes = lanes;
    start_worker(options);
    workers_.back()->stop();
  }
  WorkerOptions options;
  options.lanes = 4;
  start_worker(options);
  for (int n = 0; n < 20; ++n) publish("k", n);
  ASSERT_EQ(handled_.wait_for(20, kTimeout), 20U);
  expect_in_order(handled_.items(), 1, 20);
  // A marker after the jobs: once it is handled, a second copy of any job would have been too.
  publish("k", 20);
  ASSERT_EQ(handled_.wait_for(21, kTimeout), 21U);
  EXPECT_EQ(duplicates_.load(), 0) << "a job reached the worker both through rpc_queue and a lane";
}

INSTANTIATE_TEST_SUITE_P(Backends, Lanes, ::testing::Values("inproc", "inproc_journal", "amqp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace intercomm::worker
