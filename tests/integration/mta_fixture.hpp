// The MTA suites' fixture: the MTA's jobs served on a bus backend (in-process
// or RabbitMQ) with a real store (RocksDB, Redis or Redis Cluster), called by
// RPC as the gateway calls them.
#pragma once

#include "mta/mta.hpp"

#include "bus/rpc_client.hpp"
#include "core/ids.hpp"
#include "jobs/jobs.hpp"
#include "store/redis_store.hpp"
#include "store/rocksdb_store.hpp"
#include "support/bus_backends.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <boost/json/object.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace intercomm::mta {

namespace json = boost::json;
using core::ErrorCode;
using intercomm::testing::BusFactory;
using intercomm::testing::Collector;
using namespace std::chrono_literals;

inline constexpr auto kTimeout = 10s;

// Each test has its own users, so the shared servers do not mix tests.
inline std::string user(std::string_view name) {
  return std::string(name) + "_" + core::new_message_id();
}

// "inproc+rocksdb", "amqp+redis" or "amqp+redis_cluster".
class MtaSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const bool amqp = GetParam().starts_with("amqp");
    factory_ = std::make_unique<BusFactory>(amqp ? "amqp" : "inproc");
    worker_bus_ = factory_->connect();
    client_bus_ = factory_->connect();
    ASSERT_TRUE(worker_bus_ && client_bus_);
    if (GetParam().ends_with("rocksdb")) {
      path_ = intercomm::testing::servers_dir() + "/mta-rocksdb-" + core::new_message_id();
      auto opened = store::open_rocksdb(store::RocksOptions{path_, true});
      ASSERT_TRUE(opened);
      store_ = std::move(*opened);
    } else {
      const char* variable = GetParam().ends_with("cluster") ? "INTERCOMM_TEST_REDIS_CLUSTER" : "INTERCOMM_TEST_REDIS";
      const char* url = std::getenv(variable);
      ASSERT_NE(url, nullptr) << variable << " is not set: run through scripts/test.sh";
      auto opened = store::open_redis(*store::parse_redis_url(url));
      ASSERT_TRUE(opened);
      store_ = std::move(*opened);
    }
    // Every test process serves rpc_queue_mta; competing MTAs are what split
    // mode runs, and any of them answers any test.
    worker_ = std::make_unique<worker::Worker>(*worker_bus_, std::string(kWorkerName));
    register_jobs(*worker_, *store_, *worker_bus_);
    ASSERT_TRUE(worker_->start());
    auto rpc = bus::RpcClient::open(*client_bus_);
    ASSERT_TRUE(rpc);
    rpc_ = std::move(*rpc);
  }

  void TearDown() override {
    rpc_.reset();
    if (worker_) worker_->stop();
    worker_.reset();
    store_.reset();
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }

  bus::RpcResult call(std::string_view job, json::object params) {
    const std::string method(job);
    return rpc_->call_and_wait(method, std::move(params), kTimeout);
  }

  std::string send(const std::string& sender, const std::string& receiver, const std::string& body) {
    auto sent =
        call(jobs::SendMessage::name, {{"message", {{"sender", sender}, {"receiver", receiver}, {"body", body}}}});
    EXPECT_TRUE(sent) << (sent ? "" : sent.error().message);
    return sent ? std::string(sent->at("message_id").as_string()) : std::string();
  }

  std::unique_ptr<BusFactory> factory_;
  std::unique_ptr<bus::Bus> worker_bus_;
  std::unique_ptr<bus::Bus> client_bus_;
  std::string path_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<worker::Worker> worker_;
  std::unique_ptr<bus::RpcClient> rpc_;
};

// The backends every MTA suite runs on, and their names in gtest:
//   INSTANTIATE_TEST_SUITE_P(Backends, Suite, mta_backends(), mta_backend_name);
inline auto mta_backends() { return ::testing::Values("inproc+rocksdb", "amqp+redis", "amqp+redis_cluster"); }
inline std::string mta_backend_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '+', '_');
  return name;
}

}  // namespace intercomm::mta
