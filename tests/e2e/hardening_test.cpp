// Safe defaults end to end: what the gateway does when a client, the operating
// system or the broker misbehaves. Out of descriptors, a slow client, a hung
// broker, and logs that must never carry a secret.
#include "core/ids.hpp"
#include "gateway/jwt.hpp"
#include "support/bus_backends.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/rabbitmq_node.hpp"
#include "support/servers.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace {

namespace json = boost::json;
using intercomm::testing::ChildProcess;
using intercomm::testing::Client;
using namespace std::chrono_literals;

constexpr const char* kSecret = "hardening-secret-0123456789abcdef0123456789";

std::uint16_t port_of(const std::string& line) {
  return line.empty() ? 0 : static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

std::string bearer(const std::string& user) {
  return "Authorization: Bearer " + intercomm::gateway::mint_hs256(kSecret, user, 3600s);
}

// CPU time (user + system) the process has used, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::size_t open_descriptors(pid_t pid) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++count;
  }
  return count;
}

class Hardening : public ::testing::Test {
 protected:
  void start_run(std::vector<std::string> extra = {}) {
    data_ = intercomm::testing::servers_dir() + "/hardening-" + intercomm::core::new_message_id();
    std::vector<std::string> args{INTERCOMM_BINARY, "run", "--listen", "127.0.0.1:0", "--store", "rocksdb:" + data_,
                                  "--secret", kSecret};
    args.insert(args.end(), extra.begin(), extra.end());
    run_ = std::make_unique<ChildProcess>(args);
    port_ = port_of(run_->wait_for_line("intercomm "));
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (run_) {
      EXPECT_EQ(run_->terminate(), 0);
    }
    if (!data_.empty()) {
      std::filesystem::remove_all(data_);
      std::filesystem::remove_all(data_ + "-bus");
    }
  }
  std::unique_ptr<ChildProcess> run_;
  std::string data_;
  std::uint16_t port_ = 0;
};

// The server runs out of file descriptors (its limit lowered while it runs)
// and many clients keep connecting: it backs off instead of spinning, keeps
// serving the connections it has, and takes new ones once descriptors free up.
TEST_F(Hardening, OutOfFileDescriptorsTheServerBacksOffAndStaysResponsive) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' runtime needs descriptors of its own: out of them, UBSan's
  // vptr check cannot probe memory (it opens a pipe) and reports every Boost
  // error_code as an invalid object. The normal build runs this test.
  GTEST_SKIP() << "a process out of file descriptors defeats the sanitizer runtime";
#endif
  ASSERT_NO_FATAL_FAILURE(start_run());
  Client kept(port_);
  ASSERT_EQ(kept.request("GET", "/healthz", "", {}).status, 200);
  const pid_t pid = run_->pid();
  rlimit lowered{};
  lowered.rlim_cur = lowered.rlim_max = open_descriptors(pid) + 16;
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &lowered, nullptr), 0) << "cannot lower the server's RLIMIT_NOFILE";

  std::vector<std::unique_ptr<Client>> flood;
  for (int i = 0; i < 200; ++i) flood.push_back(std::make_unique<Client>(port_, 1));  // queue in the backlog
  const double cpu_before = cpu_seconds(pid);
  std::this_thread::sleep_for(2s);
  const double cpu_used = cpu_seconds(pid) - cpu_before;
  // A loop retrying accept() at once would burn a whole core (2 s of CPU in 2 s).
  EXPECT_LT(cpu_used, 1.0) << "the accept loop spins while out of descriptors";
  const auto health = kept.request("GET", "/healthz", "", {});
  EXPECT_EQ(health.status, 200) << "a connection the server has is still served";
  const auto metrics = kept.request("GET", "/metrics", "", {});
  EXPECT_EQ(metrics.body.find("intercomm_accept_pauses_total 0\n"), std::string::npos)
      << "the test never ran the server out of descriptors";
  flood.clear();
  EXPECT_TRUE(intercomm::testing::wait_until(
      [&] {
        Client fresh(port_, 2);
        return fresh.connected() && fresh.request("GET", "/healthz", "", {}).status == 200;
      },
      30s))
      << "new connections are served again once descriptors are free";
}

// Slowloris: a request head dribbled a byte at a time, or nothing at all, is
// cut off at the header timeout (5 s), not held for the keep-alive minute.
TEST_F(Hardening, ASlowRequestHeadIsCutOff) {
  ASSERT_NO_FATAL_FAILURE(start_run());
  Client silent(port_, 30);
  Client dribbling(port_, 30);
  dribbling.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");
  const auto started = std::chrono::steady_clock::now();
  bool cut = false;
  for (int i = 0; i < 25 && !cut; ++i) {  // one header byte a second, for up to 25 s
    std::this_thread::sleep_for(1s);
    cut = ::send(dribbling.fd(), "X", 1, MSG_NOSIGNAL) < 0;
  }
  EXPECT_TRUE(cut) << "the dribbling client was still connected after 25 s";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 20s);
  EXPECT_EQ(silent.request("GET", "/healthz", "", {}).status, 0) << "a silent connection is closed too";
}

// Development mode's sign-in mints tokens for anyone on this machine: at a
// bounded rate per address.
TEST(HardeningDevMode, DevTokensAreRateLimitedPerAddress) {
  const std::string data = intercomm::testing::servers_dir() + "/devmode-" + intercomm::core::new_message_id();
  ChildProcess run({INTERCOMM_BINARY, "run", "--listen", "127.0.0.1:0", "--store", "rocksdb:" + data,
                    "--rate-limits", "dev_token=30/m:2"});
  const auto port = port_of(run.wait_for_line("intercomm "));
  ASSERT_NE(port, 0);
  const auto mint = [&] {
    Client client(port);
    return client.request("POST", "/v1/dev/token", R"({"user":"alice"})", {"Content-Type: application/json"});
  };
  EXPECT_EQ(mint().status, 200);
  EXPECT_EQ(mint().status, 200);
  const auto limited = mint();
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(json::parse(limited.body).at("error").at("data").at("limit"), "dev_token");
  EXPECT_TRUE(limited.headers.contains("retry-after"));
  EXPECT_EQ(run.terminate(), 0);
  std::filesystem::remove_all(data);
  std::filesystem::remove_all(data + "-bus");
}

// Secrets never reach a log line: the token secret, tokens, and passwords in
// AMQP URLs (one node down, logged while failing over).
TEST(HardeningLogs, NoSecretOrPasswordInAnyLogLine) {
  const std::string amqp = intercomm::testing::test_amqp_url();
  ASSERT_FALSE(amqp.empty()) << "INTERCOMM_TEST_AMQP is not set: run through scripts/test.sh";
  const std::string dir = intercomm::testing::servers_dir() + "/logs-" + intercomm::core::new_message_id();
  std::filesystem::create_directories(dir);
  const std::string log = dir + "/gateway.log";
  // A node nobody listens on, with its own password, first in the list.
  const std::string down = "amqp://guest:down-node-password-Xy7@127.0.0.1:1/";
  ChildProcess gateway({"/bin/sh", "-c",
                        std::string("exec ") + INTERCOMM_BINARY + " gateway --listen 127.0.0.1:0 --log-level trace" +
                            " --secret " + kSecret + " --amqp " + down + "," + amqp + " 2> " + log});
  const auto port = port_of(gateway.wait_for_line("intercomm gateway: listening on ", 60s));
  ASSERT_NE(port, 0);
  const std::string token = intercomm::gateway::mint_hs256(kSecret, "alice", 3600s);
  {
    Client client(port);
    client.request("POST", "/v1/messages", R"({"receiver":"bob","body":"hi"})",
                   {"Authorization: Bearer " + token, "Content-Type: application/json"});
    Client bad(port);
    bad.request("GET", "/v1/users/alice/messages", "", {"Authorization: Bearer " + token + "x"});
  }
  EXPECT_EQ(gateway.terminate(), 0);
  std::ifstream file(log);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("127.0.0.1:1"), std::string::npos) << "the down node was never logged: " << text;
  for (const std::string& secret : {std::string(kSecret), token, std::string("down-node-password-Xy7")}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << "logged: " << secret;
  }
  std::filesystem::remove_all(dir);
}

// A broker that hangs (SIGSTOP: connections open, nothing answered): every
// request still ends by its deadline, 503 or 504 with a JSON error.
TEST(HardeningBus, RequestsEndByTheirDeadlineWhileTheBrokerHangs) {
  const std::string dir = intercomm::testing::servers_dir() + "/stalled-" + intercomm::core::new_message_id();
  intercomm::testing::RabbitNode node(dir + "/rabbitmq");
  ASSERT_TRUE(node.started());
  ChildProcess mta({INTERCOMM_BINARY, "mta", "--amqp", node.url(), "--store", "rocksdb:" + dir + "/store"});
  ASSERT_FALSE(mta.wait_for_line("intercomm mta: serving ").empty());
  ChildProcess gateway({INTERCOMM_BINARY, "gateway", "--listen", "127.0.0.1:0", "--amqp", node.url(), "--secret",
                        kSecret, "--rpc-timeout-ms", "1000", "--publish-timeout-ms", "1000"});
  const auto port = port_of(gateway.wait_for_line("intercomm gateway: listening on "));
  ASSERT_NE(port, 0);
  const auto send = [&] {
    Client client(port, 15);
    return client.request("POST", "/v1/messages", R"({"receiver":"bob","body":"hi"})",
                          {bearer("alice"), "Content-Type: application/json"});
  };
  ASSERT_EQ(send().status, 202);

  ASSERT_TRUE(node.pause());
  std::vector<Client::Response> answers(10);
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    clients.emplace_back([&, i] {
      if (i % 2 == 0) {
        answers[i] = send();
      } else {
        Client client(port, 15);
        answers[i] = client.request("GET", "/v1/users/alice/messages", "", {bearer("alice")});
      }
    });
  }
  for (auto& client : clients) client.join();
  ASSERT_TRUE(node.resume());
  for (std::size_t i = 0; i < answers.size(); ++i) {
    const auto& answer = answers[i];
    EXPECT_TRUE(answer.status == 503 || answer.status == 504)
        << i << ": " << answer.status << " " << answer.body << " (0: no answer within 15 s)";
    if (answer.status != 0) {
      EXPECT_TRUE(json::parse(answer.body).as_object().contains("error")) << answer.body;
    }
  }
  EXPECT_EQ(gateway.terminate(), 0);
  EXPECT_EQ(mta.terminate(), 0);
}

}  // namespace
