// Test support: intercomm as a user deploys it, for end-to-end tests. Either
// "embedded" (one `intercomm run` on RocksDB; every gateway index names it) or
// "split" (`intercomm mta`, `intercomm mda` and `intercomm gateway` processes
// over the RabbitMQ and Redis that scripts/test.sh started). Stopped with
// SIGTERM when destroyed; its data folder removed.
#pragma once

#include "support/child_process.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace intercomm::testing {

struct DeploymentOptions {
  int mtas = 1;
  int mdas = 1;
  int gateways = 2;
  std::vector<std::string> extra_args;   // for every `run` / `gateway` process
  std::vector<std::string> worker_args;  // for every `mta` (split mode)
  std::vector<std::string> mda_args;     // for every `mda` (split mode); `run` takes them from extra_args
};

class Deployment {
 public:
  Deployment(const std::string& mode, std::string secret, DeploymentOptions options = {});
  ~Deployment();
  Deployment(const Deployment&) = delete;
  Deployment& operator=(const Deployment&) = delete;

  // False (with the reason) when something did not start.
  bool started() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // The HTTP port of gateway `index` (embedded: the one process).
  std::uint16_t port(std::size_t index = 0) const;

  // A token for `user` signed with the deployment's secret.
  std::string token(const std::string& user, std::chrono::seconds ttl = std::chrono::hours(1)) const;

  // SIGTERMs every process; true when each exited 0.
  bool stop();

 private:
  bool start(std::vector<std::string> args, const std::string& ready_line);

  std::string secret_;
  std::string data_;
  std::string error_;
  std::vector<std::unique_ptr<ChildProcess>> processes_;
  std::vector<std::uint16_t> ports_;
};

// Waits until `user`'s inbox (through `port`) holds `count` messages or the
// timeout passes; returns the last seq seen.
std::uint64_t wait_for_inbox(std::uint16_t port, const std::string& token, const std::string& user,
                             std::uint64_t count,
                             std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace intercomm::testing
