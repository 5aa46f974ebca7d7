#include "core/config.hpp"  // first: the header is self-contained

#include "core/limits.hpp"

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <vector>

namespace intercomm::core {
namespace {

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) previous_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (previous_) {
      setenv(name_, previous_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> previous_;
};

// Parses `args` as the options of a subcommand; returns the error text, empty on success.
std::string parse(Config& config, std::vector<std::string> args, unsigned options = kAllOptions) {
  CLI::App app;
  add_config_options(app, config, options);
  std::vector<const char*> argv{"intercomm"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
    finish_config(app, config);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return {};
}

TEST(Config, DefaultsAreDesignsTable) {
  Config config;
  ASSERT_EQ(parse(config, {}), "");
  EXPECT_EQ(config.listen, "127.0.0.1:8080");
  EXPECT_EQ(config.amqp, std::vector<std::string>{"amqp://guest:guest@127.0.0.1:5672/"});
  EXPECT_FALSE(config.amqp_given);
  EXPECT_EQ(config.store, "rocksdb:./intercomm-data");
  EXPECT_EQ(config.log_format, LogFormat::text);
  EXPECT_EQ(config.max_body_bytes, 64U * 1024U);
}

TEST(Config, EnvironmentOverridesDefaultAndFlagOverridesEnvironment) {
  ScopedEnv listen("INTERCOMM_LISTEN", "0.0.0.0:9000");
  ScopedEnv format("INTERCOMM_LOG_FORMAT", "json");
  ScopedEnv store("INTERCOMM_STORE", "redis://127.0.0.1:6390");
  Config from_env;
  ASSERT_EQ(parse(from_env, {}), "");
  EXPECT_EQ(from_env.listen, "0.0.0.0:9000");
  EXPECT_EQ(from_env.log_format, LogFormat::json);
  EXPECT_EQ(from_env.store, "redis://127.0.0.1:6390");

  Config from_flag;
  ASSERT_EQ(parse(from_flag, {"--listen", "127.0.0.1:7000", "--log-format", "text"}), "");
  EXPECT_EQ(from_flag.listen, "127.0.0.1:7000");
  EXPECT_EQ(from_flag.log_format, LogFormat::text);
  EXPECT_EQ(from_flag.store, "redis://127.0.0.1:6390");
}

TEST(Config, AmqpGivenByFlagOrEnvironment) {
  Config by_flag;
  ASSERT_EQ(parse(by_flag, {"--amqp", "amqp://u:p@127.0.0.1:5673/"}), "");
  EXPECT_TRUE(by_flag.amqp_given);
  ScopedEnv amqp("INTERCOMM_AMQP", "amqp://u:p@127.0.0.1:5674/");
  Config by_env;
  ASSERT_EQ(parse(by_env, {}), "");
  EXPECT_TRUE(by_env.amqp_given);
  EXPECT_EQ(by_env.amqp, std::vector<std::string>{"amqp://u:p@127.0.0.1:5674/"});
}

TEST(Config, AmqpTakesTheNodesOfACluster) {
  Config repeated;
  ASSERT_EQ(parse(repeated, {"--amqp", "amqp://a:5672/", "--amqp", "amqp://b:5672/"}), "");
  EXPECT_EQ(repeated.amqp, (std::vector<std::string>{"amqp://a:5672/", "amqp://b:5672/"}));
  Config listed;
  ASSERT_EQ(parse(listed, {"--amqp", "amqp://a:5672/,amqp://b:5672/,amqp://c:5672/"}), "");
  EXPECT_EQ(listed.amqp.size(), 3U);
  ScopedEnv amqp("INTERCOMM_AMQP", "amqp://u:p@a:5672/,amqp://u:p@b:5672/");
  Config by_env;
  ASSERT_EQ(parse(by_env, {}), "");
  EXPECT_EQ(by_env.amqp, (std::vector<std::string>{"amqp://u:p@a:5672/", "amqp://u:p@b:5672/"}));
  EXPECT_EQ(describe(by_env).find(":p@"), std::string::npos) << "every node's password is masked";
  Config bad;
  EXPECT_NE(parse(bad, {"--amqp", "amqp://a:5672/,http://b"}), "") << "each node is checked";
}

TEST(Config, MalformedValuesAreRefusedWithWhatIsExpected) {
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  for (const auto& c : {
           Case{{"--listen", "8080"}, "HOST:PORT"},
           Case{{"--listen", "127.0.0.1:99999"}, "HOST:PORT"},
           Case{{"--listen", "::1:80"}, "HOST:PORT"},
           Case{{"--store", "postgres://x"}, "rocksdb:PATH"},
           Case{{"--store", "rocksdb:"}, "rocksdb:PATH"},
           Case{{"--amqp", "http://x"}, "AMQP URL"},
           Case{{"--log-format", "xml"}, "xml"},
           Case{{"--log-level", "loud"}, "loud"},
           Case{{"--max-body-bytes", "0"}, "range"},
           // One byte past what a bus message can carry once JSON-escaped.
           Case{{"--max-body-bytes", std::to_string(intercomm::core::kMaxBodyBytesLimit + 1)},
                "larger than the bus allows"},
           Case{{"--unknown", "1"}, "--unknown"},
       }) {
    Config config;
    const std::string error = parse(config, c.args);
    EXPECT_NE(error.find(c.says), std::string::npos) << c.args[0] << " " << c.args[1] << " -> " << error;
  }
  ScopedEnv bad("INTERCOMM_LISTEN", "nowhere");
  Config config;
  EXPECT_NE(parse(config, {}).find("HOST:PORT"), std::string::npos);
}

TEST(Config, SubcommandsTakeOnlyTheirOptions) {
  Config config;
  EXPECT_NE(parse(config, {"--listen", "127.0.0.1:1"}, kAmqp | kStore), "");
  EXPECT_EQ(parse(config, {"--store", "rocksdb:/tmp/x"}, kAmqp | kStore), "");
}

TEST(HostPort, ParsesNamesV4AndBracketedV6) {
  auto v4 = parse_host_port("127.0.0.1:0");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  auto v6 = parse_host_port("[::1]:8443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8443);
  auto name = parse_host_port("localhost:65535");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->port, 65535);
  for (std::string_view bad : {"", ":80", "host:", "host:-1", "host:8o", "[::1:80", "[]:80", "host:65536"}) {
    EXPECT_FALSE(parse_host_port(bad)) << bad;
  }
}

TEST(Describe, MasksSecretsAndPasswords) {
  Config config;
  config.secret = "s3cr3t-value";
  config.amqp = {"amqp://svc:hunter2@rabbit:5672/prod"};
  config.store = "redis://:redispw@127.0.0.1:6379";
  const std::string text = describe(config);
  EXPECT_EQ(text.find("s3cr3t-value"), std::string::npos) << text;
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_EQ(text.find("redispw"), std::string::npos) << text;
  EXPECT_NE(text.find("amqp://svc:****@rabbit:5672/prod"), std::string::npos) << text;
  EXPECT_NE(text.find("listen"), std::string::npos);
}

TEST(Describe, UrlsWithoutPasswordsAreUnchanged) {
  EXPECT_EQ(mask_url_password("rocksdb:./data"), "rocksdb:./data");
  EXPECT_EQ(mask_url_password("amqp://rabbit:5672/"), "amqp://rabbit:5672/");
  EXPECT_EQ(mask_url_password("amqp://user@rabbit:5672/"), "amqp://user@rabbit:5672/");
  EXPECT_EQ(mask_url_password("amqp://rabbit:5672/path@x"), "amqp://rabbit:5672/path@x");
}

}  // namespace
}  // namespace intercomm::core
