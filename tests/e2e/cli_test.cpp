// The intercomm executable as a user meets it: help, subcommands, exit codes.
#include "core/limits.hpp"
#include "gateway/jwt.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

constexpr std::string_view kLongSecret = "cli-test-secret-0123456789abcdef0123456789";

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs intercomm with `args`, in the test's environment less INTERCOMM_SECRET plus
// `env`, after the shell commands `before` (e.g. "ulimit -n 300;").
Outcome run(const std::string& args, const std::string& env = "", const std::string& before = "") {
  const std::string command =
      before + "env -u INTERCOMM_SECRET " + env + " " + INTERCOMM_BINARY + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  Outcome outcome;
  if (pipe == nullptr) return outcome;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) outcome.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

TEST(Cli, HelpListsEverySubcommandPlannedInDesign) {
  const auto help = run("--help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* name : {"run", "gateway", "mta", "mda", "token", "config"}) {
    EXPECT_NE(help.output.find(std::string("  ") + name + " "), std::string::npos) << name << "\n"
                                                                                   << help.output;
  }
}

TEST(Cli, WorkersTakeConcurrencyFlags) {
  for (const char* worker : {"mta", "mda"}) {
    const auto outcome = run(std::string(worker) + " --help");
    EXPECT_EQ(outcome.exit_code, 0) << worker;
    EXPECT_NE(outcome.output.find("--prefetch"), std::string::npos) << worker << ": " << outcome.output;
    EXPECT_NE(outcome.output.find("--threads"), std::string::npos) << worker << ": " << outcome.output;
  }
}

TEST(Cli, ConfigPrintsEffectiveValuesWithSecretsMasked) {
  const auto outcome =
      run("config --listen 127.0.0.1:9999 --secret topsecret-0123456789abcdef0123456789 "
          "--amqp amqp://me:pw123@127.0.0.1:5999/");
  EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("127.0.0.1:9999"), std::string::npos) << outcome.output;
  EXPECT_EQ(outcome.output.find("topsecret"), std::string::npos) << outcome.output;
  EXPECT_EQ(outcome.output.find("pw123"), std::string::npos) << outcome.output;
}

TEST(Cli, EnvironmentReachesTheConfig) {
  const auto plain = run("config");
  const auto with_env = run("config", "INTERCOMM_STORE=redis://127.0.0.1:6999");
  ASSERT_EQ(plain.exit_code, 0);
  ASSERT_EQ(with_env.exit_code, 0);
  EXPECT_EQ(plain.output.find("redis://127.0.0.1:6999"), std::string::npos);
  EXPECT_NE(with_env.output.find("redis://127.0.0.1:6999"), std::string::npos) << with_env.output;
}

TEST(Cli, BadFlagValuesAreRefusedWithWhatIsExpected) {
  const auto outcome = run("config --listen nowhere");
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("HOST:PORT"), std::string::npos) << outcome.output;
  EXPECT_NE(run("").exit_code, 0);
  EXPECT_NE(run("frobnicate").exit_code, 0);
}

TEST(Cli, TokenIsMintedWithTheConfiguredSecretAndVerifies) {
  const auto minted = run("token --user alice --ttl 600", "INTERCOMM_SECRET=" + std::string(kLongSecret));
  ASSERT_EQ(minted.exit_code, 0) << minted.output;
  std::string token = minted.output;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  auto claims = intercomm::gateway::verify_hs256(token, std::string(kLongSecret));
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->subject, "alice");
  EXPECT_FALSE(intercomm::gateway::verify_hs256(token, "another-secret"));
}

TEST(Cli, TokenWithoutSecretOrWithABadUserFails) {
  const auto no_secret = run("token --user alice");
  EXPECT_NE(no_secret.exit_code, 0);
  EXPECT_NE(no_secret.output.find("INTERCOMM_SECRET"), std::string::npos) << no_secret.output;
  const auto bad_user = run("token --user 'not a user' --secret " + std::string(kLongSecret));
  EXPECT_NE(bad_user.exit_code, 0);
  EXPECT_NE(bad_user.output.find("--user"), std::string::npos) << bad_user.output;
}

// HS256 secrets shorter than 32 bytes are refused everywhere, and the refusal
// does not repeat the secret.
TEST(Cli, ShortSecretsAreRefused) {
  for (const std::string command : {"run --listen 127.0.0.1:0", "gateway --listen 127.0.0.1:0", "token --user alice"}) {
    const auto outcome = run(command + " --secret short-secret-31-bytes-long-xxxx");
    EXPECT_NE(outcome.exit_code, 0) << command << ": " << outcome.output;
    EXPECT_NE(outcome.output.find("at least 32 bytes"), std::string::npos) << command << ": " << outcome.output;
    EXPECT_EQ(outcome.output.find("short-secret-31"), std::string::npos) << command << ": " << outcome.output;
  }
  const auto from_env = run("token --user alice", "INTERCOMM_SECRET=abc");
  EXPECT_NE(from_env.exit_code, 0);
  EXPECT_NE(from_env.output.find("at least 32 bytes"), std::string::npos) << from_env.output;
}

// Development mode mints tokens for anyone: only on loopback with the in-process bus.
TEST(Cli, DevelopmentModeOnlyOnLoopbackWithTheInProcessBus) {
  for (const std::string flags : {"--listen 0.0.0.0:0", "--listen [::]:0", "--listen 192.0.2.1:0",
                                  "--listen 127.0.0.1:0 --amqp amqp://guest:guest@127.0.0.1:1/"}) {
    const auto outcome = run("run " + flags, "INTERCOMM_STORE=rocksdb:/dev/null/store");
    EXPECT_EQ(outcome.exit_code, 2) << flags << ": " << outcome.output;
    EXPECT_NE(outcome.output.find("pass --secret"), std::string::npos) << flags << ": " << outcome.output;
  }
}

TEST(Cli, AmqpsIsRefusedRatherThanSpokenInClear) {
  const auto outcome = run("gateway --listen 127.0.0.1:0 --secret " + std::string(kLongSecret) +
                           " --amqp amqps://me:pw123@127.0.0.1:5671/");
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("amqps:// (TLS) is not supported"), std::string::npos) << outcome.output;
  EXPECT_EQ(outcome.output.find("pw123"), std::string::npos) << outcome.output;
}

TEST(Cli, BadRateLimitsAreRefusedAtStart) {
  const auto outcome = run("gateway --listen 127.0.0.1:0 --secret " + std::string(kLongSecret) +
                           " --rate-limits send=fast");
  EXPECT_EQ(outcome.exit_code, 2) << outcome.output;
  EXPECT_NE(outcome.output.find("RATE/UNIT:BURST"), std::string::npos) << outcome.output;
}

// --max-connections must fit under the file descriptor limit: an explicit
// value that cannot is refused, naming the limit; the default is lowered.
TEST(Cli, MaxConnectionsIsCheckedAgainstTheDescriptorLimit) {
  const std::string serve = "run --listen 127.0.0.1:0 --secret " + std::string(kLongSecret);
  const std::string no_store = "INTERCOMM_STORE=rocksdb:/dev/null/store";  // cannot be created, even by root
  const auto refused = run(serve + " --max-connections 1000", no_store, "ulimit -n 300 && ");
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("--max-connections 1000 needs 1256 file descriptors and the limit is 300"),
            std::string::npos)
      << refused.output;
  // The default (10000) is lowered to fit, with a warning, and start-up goes
  // on (here to fail on the store, which comes after the check).
  const auto lowered = run(serve, no_store, "ulimit -n 600 && ");
  EXPECT_NE(lowered.output.find("at most 344 connections instead of 10000"), std::string::npos) << lowered.output;
}

TEST(Cli, GatewayWithoutSecretRefusesToStart) {
  const auto outcome = run("gateway --listen 127.0.0.1:0");
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("INTERCOMM_SECRET"), std::string::npos) << outcome.output;
}

// No configuration may accept (202) a message a worker would refuse: a body
// limit past what one bus message carries is refused at start, by every
// service that takes it, before anything listens or connects.
TEST(Cli, ABodyLimitLargerThanTheBusCarriesIsRefusedAtStart) {
  const std::string too_large = std::to_string(intercomm::core::kMaxBodyBytesLimit + 1);
  for (const std::string& service :
       {std::string("run --listen 127.0.0.1:0"), "gateway --listen 127.0.0.1:0 --secret " + std::string(kLongSecret),
        std::string("mta")}) {
    const auto outcome =
        run(service + " --max-body-bytes " + too_large, "INTERCOMM_STORE=rocksdb:/dev/null/store");
    EXPECT_NE(outcome.exit_code, 0) << service;
    EXPECT_NE(outcome.output.find("larger than the bus allows"), std::string::npos)
        << service << ": " << outcome.output;
    EXPECT_NE(outcome.output.find(std::to_string(intercomm::core::kMaxBodyBytesLimit)), std::string::npos)
        << "the message names the largest value allowed: " << outcome.output;
  }
  const auto largest = run("config --max-body-bytes " + std::to_string(intercomm::core::kMaxBodyBytesLimit));
  EXPECT_EQ(largest.exit_code, 0) << largest.output;
}

TEST(Cli, VersionIsPrinted) {
  const auto outcome = run("--version");
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_FALSE(outcome.output.empty());
}

}  // namespace
