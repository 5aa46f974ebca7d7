// intercomm: the one executable; each service is a subcommand. The only composition root.
#include "core/config.hpp"
#include "core/logging.hpp"
#include "core/version.hpp"

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

namespace {

using intercomm::core::Config;

// A subcommand whose service is planned in DESIGN.md but not built in this
// version. It says so and fails, rather than pretending to serve.
int not_built(std::string_view name, std::string_view role) {
  fmt::print(stderr, "intercomm {}: not built yet in version {} ({}).\n", name, intercomm::core::version(),
             role);
  return 2;
}

int run_all_in_one(const Config& config) {
  intercomm::core::logging::init(config.log_format, config.log_level);
  fmt::print("intercomm {} (all in one)\n\nconfiguration:\n{}", intercomm::core::version(),
             intercomm::core::describe(config));
  fmt::print("bus            = {}\n", config.amqp_given ? "RabbitMQ (--amqp)" : "in-process");
  fmt::print(
      "\nThe gateway, MTA and MDA are not built yet in this version, so there is nothing to serve.\n"
      "This build provides the JSON-RPC core, message model, ids and configuration (see docs/).\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"intercomm: user-to-user messaging over RabbitMQ (gateway, MTA, MDA)", "intercomm"};
  app.set_version_flag("--version", std::string(intercomm::core::version()));
  app.require_subcommand(1);
  app.footer("Each flag also reads INTERCOMM_<FLAG> from the environment, e.g. INTERCOMM_LISTEN.");

  Config config;
  using namespace intercomm::core;

  auto* run = app.add_subcommand("run", "All in one: gateway + MTA + MDA, in-process bus, RocksDB store");
  add_config_options(*run, config, kListen | kAmqp | kStore | kSecret | kLogging | kLimits);

  auto* gateway = app.add_subcommand("gateway", "REST + WebSocket gateway (not built yet)");
  add_config_options(*gateway, config, kListen | kAmqp | kStore | kSecret | kLogging | kLimits);

  auto* mta = app.add_subcommand("mta", "Message Transfer Agent worker (not built yet)");
  add_config_options(*mta, config, kAmqp | kStore | kLogging | kLimits);

  auto* mda = app.add_subcommand("mda", "Message Delivery Agent worker (not built yet)");
  add_config_options(*mda, config, kAmqp | kStore | kLogging);

  std::string token_user;
  long token_ttl = 3600;
  auto* token = app.add_subcommand("token", "Mint a development token for a user (not built yet)");
  add_config_options(*token, config, kSecret);
  token->add_option("--user", token_user, "User the token acts for")->required();
  token->add_option("--ttl", token_ttl, "Lifetime in seconds")->capture_default_str();

  auto* show_config = app.add_subcommand("config", "Print the configuration in effect, secrets masked");
  add_config_options(*show_config, config, kAllOptions);

  CLI11_PARSE(app, argc, argv);

  if (run->parsed()) {
    finish_config(*run, config);
    return run_all_in_one(config);
  }
  if (show_config->parsed()) {
    finish_config(*show_config, config);
    fmt::print("{}", describe(config));
    return 0;
  }
  if (gateway->parsed()) return not_built("gateway", "the REST + WebSocket front door");
  if (mta->parsed()) return not_built("mta", "stores and routes messages");
  if (mda->parsed()) return not_built("mda", "delivers messages live and to webhooks");
  if (token->parsed()) return not_built("token", "mints tokens once the gateway's auth exists");
  return 2;
}
