// intercomm: the one executable; each service is a subcommand. The only composition root.
#include "bus/amqp.hpp"
#include "core/config.hpp"
#include "core/logging.hpp"
#include "core/message.hpp"
#include "core/version.hpp"
#include "gateway/jwt.hpp"
#include "mta/mta.hpp"
#include "store/open.hpp"
#include "worker/worker.hpp"

#include <fmt/core.h>
#include <signal.h>
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

// SIGTERM and SIGINT are blocked in every thread and taken by wait_for_stop().
sigset_t stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

// Waits for the bus to connect; false when it did not within `timeout` or a
// stop signal came first (a SIGTERM during start-up stops at once).
bool wait_connected_or_stop(const intercomm::bus::Bus& bus, std::chrono::seconds timeout) {
  const sigset_t signals = stop_signals();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!bus.connected()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    const timespec tick{0, 100'000'000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) return false;
  }
  return true;
}

void wait_for_stop() {
  const sigset_t signals = stop_signals();
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("stopping on signal {}", signal);
}

struct WorkerFlags {
  std::uint16_t prefetch = 64;
  unsigned threads = 2;
};

// intercomm mta: serves rpc_queue_mta over RabbitMQ until SIGTERM, then drains.
int run_mta(const Config& config, const WorkerFlags& flags) {
  intercomm::core::logging::init(config.log_format, config.log_level);
  auto store = intercomm::store::open_store(config.store);
  if (!store) {
    fmt::print(stderr, "intercomm mta: {}\n", store.error().message);
    return 1;
  }
  intercomm::bus::AmqpOptions amqp;
  amqp.url = config.amqp;
  auto bus = intercomm::bus::connect_amqp(amqp);
  if (!wait_connected_or_stop(*bus, std::chrono::seconds(30))) {
    fmt::print(stderr, "intercomm mta: cannot reach RabbitMQ at {} within 30 s\n",
               intercomm::core::mask_url_password(config.amqp));
    return 1;
  }
  intercomm::worker::WorkerOptions options;
  options.prefetch = flags.prefetch;
  options.threads = flags.threads;
  intercomm::worker::Worker worker(*bus, std::string(intercomm::mta::kWorkerName), options);
  intercomm::mta::MtaOptions mta_options;
  mta_options.limits.max_body_bytes = config.max_body_bytes;
  intercomm::mta::register_jobs(worker, **store, *bus, mta_options);
  if (auto started = worker.start(); !started) {
    fmt::print(stderr, "intercomm mta: {}\n", started.error().message);
    return 1;
  }
  wait_for_stop();
  worker.stop();
  return 0;
}

// intercomm token: a development token signed with the configured secret.
int mint_token(const Config& config, const std::string& user, long ttl) {
  if (config.secret.empty()) {
    fmt::print(stderr, "intercomm token: no secret: pass --secret or set INTERCOMM_SECRET\n");
    return 2;
  }
  if (!intercomm::core::is_user_id(user)) {
    fmt::print(stderr, "intercomm token: --user must be 1-64 of [A-Za-z0-9_.-]\n");
    return 2;
  }
  if (ttl <= 0) {
    fmt::print(stderr, "intercomm token: --ttl must be a positive number of seconds\n");
    return 2;
  }
  fmt::print("{}\n", intercomm::gateway::mint_hs256(config.secret, user, std::chrono::seconds(ttl)));
  return 0;
}

int run_all_in_one(const Config& config) {
  intercomm::core::logging::init(config.log_format, config.log_level);
  fmt::print("intercomm {} (all in one)\n\nconfiguration:\n{}", intercomm::core::version(),
             intercomm::core::describe(config));
  fmt::print("bus            = {}\n", config.amqp_given ? "RabbitMQ (--amqp)" : "in-process");
  fmt::print(
      "\nThe gateway and the MDA are not built yet in this version, so `run` has nothing to serve.\n"
      "Built: the bus, the store, `intercomm mta` (the MTA's jobs over RabbitMQ) and `intercomm token`\n"
      "(see README.md and docs/).\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t signals = stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

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

  auto* mta = app.add_subcommand("mta", "Message Transfer Agent worker: serves rpc_queue_mta over RabbitMQ");
  add_config_options(*mta, config, kAmqp | kStore | kLogging | kLimits);
  WorkerFlags worker_flags;
  mta->add_option("--prefetch", worker_flags.prefetch, "Jobs in hand at once")
      ->envname("INTERCOMM_PREFETCH")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  mta->add_option("--threads", worker_flags.threads, "Handler threads")
      ->envname("INTERCOMM_THREADS")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();

  auto* mda = app.add_subcommand("mda", "Message Delivery Agent worker (not built yet)");
  add_config_options(*mda, config, kAmqp | kStore | kLogging);

  std::string token_user;
  long token_ttl = 3600;
  auto* token = app.add_subcommand("token", "Mint an HS256 token for a user, signed with --secret");
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
  if (mta->parsed()) return run_mta(config, worker_flags);
  if (mda->parsed()) return not_built("mda", "delivers messages live and to webhooks");
  if (token->parsed()) return mint_token(config, token_user, token_ttl);
  return 2;
}
