// Test support: starting and stopping intercomm deployments for e2e tests.
#include "support/deployment.hpp"

#include "core/ids.hpp"
#include "gateway/jwt.hpp"
#include "support/bus_backends.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"

#include <boost/json/parse.hpp>

#include <cstdlib>
#include <filesystem>
#include <thread>

namespace intercomm::testing {

namespace {

std::uint16_t port_in(const std::string& line) {
  return line.empty() ? 0 : static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

}  // namespace

Deployment::Deployment(const std::string& mode, std::string secret, DeploymentOptions options)
    : secret_(std::move(secret)) {
  const std::vector<std::string> listen{"--listen", "127.0.0.1:0", "--secret", secret_};
  if (mode == "embedded") {
    data_ = servers_dir() + "/deployment-" + core::new_message_id();
    std::vector<std::string> args{INTERCOMM_BINARY, "run", "--store", "rocksdb:" + data_};
    args.insert(args.end(), listen.begin(), listen.end());
    args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
    if (!start(std::move(args), "intercomm ")) return;
    ports_.assign(std::max(1, options.gateways), ports_.front());
    return;
  }
  const std::string amqp = test_amqp_url();
  const char* redis = std::getenv("INTERCOMM_TEST_REDIS");
  if (amqp.empty() || redis == nullptr) {
    error_ = "INTERCOMM_TEST_AMQP / INTERCOMM_TEST_REDIS are not set: run through scripts/test.sh";
    return;
  }
  for (const auto& [worker, count] :
       {std::pair<std::string, int>{"mta", options.mtas}, {"mda", options.mdas}}) {
    for (int i = 0; i < count; ++i) {
      std::vector<std::string> args{INTERCOMM_BINARY, worker, "--amqp", amqp, "--store", redis};
      if (worker == "mta") args.insert(args.end(), options.worker_args.begin(), options.worker_args.end());
      if (worker == "mda") args.insert(args.end(), options.mda_args.begin(), options.mda_args.end());
      if (!start(std::move(args), "intercomm " + worker + ": serving")) return;
    }
  }
  for (int i = 0; i < options.gateways; ++i) {
    std::vector<std::string> args{INTERCOMM_BINARY, "gateway", "--amqp", amqp};
    args.insert(args.end(), listen.begin(), listen.end());
    args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
    if (!start(std::move(args), "intercomm gateway: listening on ")) return;
  }
}

bool Deployment::start(std::vector<std::string> args, const std::string& ready_line) {
  const std::string what = args.size() > 1 ? args[1] : "?";
  processes_.push_back(std::make_unique<ChildProcess>(std::move(args)));
  const std::string line = processes_.back()->wait_for_line(ready_line, std::chrono::seconds(60));
  if (line.empty()) {
    error_ = "intercomm " + what + " did not start";
    return false;
  }
  if (what == "run" || what == "gateway") ports_.push_back(port_in(line));
  return true;
}

Deployment::~Deployment() {
  stop();
  if (!data_.empty()) {
    std::filesystem::remove_all(data_);
    std::filesystem::remove_all(data_ + "-bus");
  }
}

bool Deployment::stop() {
  bool clean = true;
  for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) clean = (*it)->terminate() == 0 && clean;
  processes_.clear();
  return clean;
}

std::uint16_t Deployment::port(std::size_t index) const {
  return index < ports_.size() ? ports_[index] : 0;
}

std::string Deployment::token(const std::string& user, std::chrono::seconds ttl) const {
  return gateway::mint_hs256(secret_, user, ttl);
}

std::uint64_t wait_for_inbox(std::uint16_t port, const std::string& token, const std::string& user,
                             std::uint64_t count, std::chrono::milliseconds timeout) {
  std::uint64_t last = 0;
  wait_until(
      [&] {
        Client client(port);
        auto page = client.request("GET", "/v1/users/" + user + "/messages?limit=1", "",
                                   {"Authorization: Bearer " + token});
        if (page.status != 200) return false;
        const auto messages = boost::json::parse(page.body).at("messages").as_array();
        last = messages.empty() ? 0 : messages.front().at("seq").to_number<std::uint64_t>();
        return last >= count;
      },
      timeout);
  return last;
}

}  // namespace intercomm::testing
