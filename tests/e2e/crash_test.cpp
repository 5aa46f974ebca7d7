// `intercomm run` killed with SIGKILL while its MTA is behind: every message
// answered 202 is stored after the restart (the in-process bus's journal).
#include "core/ids.hpp"
#include "gateway/jwt.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::ChildProcess;
using intercomm::testing::Client;
using namespace std::chrono_literals;

constexpr const char* kSecret = "crash-secret-0123456789abcdef0123456789abcdef";

// Starts `intercomm run` on `store`; returns its port (0 when it did not start).
std::uint16_t start(std::unique_ptr<ChildProcess>& process, const std::string& store) {
  // One handler thread, one job in hand (a lane's too): the MTA falls behind the gateway.
  process = std::make_unique<ChildProcess>(std::vector<std::string>{
      INTERCOMM_BINARY, "run", "--listen", "127.0.0.1:0", "--store", "rocksdb:" + store, "--secret", kSecret,
      "--threads", "1", "--prefetch", "1", "--lane-prefetch", "1", "--rate-limits", "send=off"});
  const std::string line = process->wait_for_line("intercomm ");
  if (line.empty()) return 0;
  return static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

// A sample's value in the /metrics text, or -1.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size() + 2));
}

TEST(Crash, EveryAcceptedMessageIsStoredAfterAKillAndARestart) {
  const std::string suffix = intercomm::core::new_message_id();
  const std::string store = intercomm::testing::servers_dir() + "/crash-" + suffix;
  const std::string alice = "alice_" + suffix;
  const std::string bob = "bob_" + suffix;
  const std::string as_alice =
      "Authorization: Bearer " + intercomm::gateway::mint_hs256(kSecret, alice, 3600s);

  std::unique_ptr<ChildProcess> run;
  std::uint16_t port = start(run, store);
  ASSERT_NE(port, 0);

  std::mutex mu;
  std::set<std::string> accepted;
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      Client client(port);
      for (int i = 0; i < 750; ++i) {
        auto response =
            client.request("POST", "/v1/messages",
                           R"({"receiver":")" + bob + R"(","body":"m)" + std::to_string(t * 1000 + i) + "\"}",
                           {as_alice, "Content-Type: application/json"});
        if (response.status != 202) continue;
        std::lock_guard lock(mu);
        accepted.emplace(json::parse(response.body).at("message_id").as_string());
      }
    });
  }
  for (auto& sender : senders) sender.join();
  ASSERT_EQ(accepted.size(), 3000U) << "every send should have been accepted";

  Client metrics_client(port);
  const std::string metrics = metrics_client.request("GET", "/metrics").body;
  const double stored =
      sample(metrics, R"(intercomm_worker_jobs_total{queue="rpc_queue_mta",outcome="acked"})");
  ASSERT_GE(stored, 0) << metrics;
  EXPECT_EQ(run->kill_now(), 128 + 9);
  std::cout << "[ info ] killed with " << 3000 - static_cast<int>(stored)
            << " of 3000 accepted jobs not yet stored\n";
  EXPECT_LT(stored, 3000) << "the MTA kept up, so the kill tested nothing; send faster or more";

  port = start(run, store);
  ASSERT_NE(port, 0);
  const std::string as_bob = "Authorization: Bearer " + intercomm::gateway::mint_hs256(kSecret, bob, 3600s);
  std::set<std::string> inbox;
  const bool complete = intercomm::testing::wait_until(
      [&] {
        inbox.clear();
        std::string target = "/v1/users/" + bob + "/messages?limit=100";
        for (int pages = 0; pages < 100; ++pages) {
          Client client(port);
          auto page = client.request("GET", target, "", {as_bob});
          if (page.status != 200) return false;
          const auto body = json::parse(page.body);
          for (const auto& m : body.at("messages").as_array()) inbox.emplace(m.at("message_id").as_string());
          if (body.at("next").is_null()) break;
          target =
              "/v1/users/" + bob + "/messages?limit=100&before=" + std::string(body.at("next").as_string());
        }
        return inbox.size() >= accepted.size();
      },
      60s);
  EXPECT_TRUE(complete) << inbox.size() << " of " << accepted.size() << " accepted messages stored";
  EXPECT_EQ(inbox, accepted);
  EXPECT_EQ(run->terminate(), 0);
  std::filesystem::remove_all(store);
  std::filesystem::remove_all(store + "-bus");
}

}  // namespace
