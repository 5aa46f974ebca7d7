// intercomm mta and intercomm mda, and the worker options `run` shares with them.
#include "app/workers.hpp"

#include "app/lifecycle.hpp"
#include "core/logging.hpp"
#include "store/open.hpp"

#include <fmt/core.h>

#include <cstdio>

namespace intercomm::app {

void add_worker_options(CLI::App& command, WorkerFlags& flags, unsigned WorkerFlags::*threads) {
  command
      .add_option("--prefetch", flags.prefetch, "Jobs a worker holds at once (each lane has its own window)")
      ->envname("INTERCOMM_PREFETCH")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  command.add_option("--threads", flags.*threads, "Handler threads of a worker")
      ->envname("INTERCOMM_THREADS")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
}

void add_lanes_option(CLI::App& command, WorkerFlags& flags) {
  command
      .add_option("--lanes", flags.lanes,
                  "Ordered lanes of send_message: one conversation's messages are stored in the order "
                  "they were accepted (0: unordered, for comparison only)")
      ->envname("INTERCOMM_LANES")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command
      .add_option("--lane-prefetch", flags.lane_prefetch,
                  "Jobs each lane holds at once, stored together in one turn (the batch under a backlog)")
      ->envname("INTERCOMM_LANE_PREFETCH")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
}

worker::WorkerOptions worker_options(const WorkerFlags& flags) {
  worker::WorkerOptions options;
  options.prefetch = flags.prefetch;
  options.threads = flags.threads;
  options.lanes = flags.lanes;
  options.lane_prefetch = flags.lane_prefetch;
  return options;
}

mta::MtaOptions mta_options(const core::Config& config) {
  mta::MtaOptions options;
  options.limits.max_body_bytes = config.max_body_bytes;
  options.max_subscriptions_per_user = config.max_subscriptions_per_user;
  return options;
}

namespace {

worker::WorkerOptions live_worker_options(const WorkerFlags& flags) {
  worker::WorkerOptions options = worker_options(flags);
  options.threads = flags.mda_threads;
  return options;
}

worker::WorkerOptions webhook_worker_options(const core::Config& config) {
  worker::WorkerOptions options;
  options.threads = config.webhook_concurrency;
  options.prefetch = static_cast<std::uint16_t>(config.webhook_concurrency);
  options.lanes = 0;
  return options;
}

mda::WebhookOptions webhook_options(const core::Config& config) {
  mda::WebhookOptions options;
  options.timeout = std::chrono::milliseconds(config.webhook_timeout_ms);
  options.allow_private = config.allow_private_webhooks;
  return options;
}

// Started, a line for scripts and tests, then serving until SIGTERM.
template <class Stop>
int serve_until_stopped(std::string_view name, std::string_view queues, Stop stop) {
  // Scripts and tests wait for this line: the queues and their bindings exist now.
  fmt::print("intercomm {}: serving {}\n", name, queues);
  std::fflush(stdout);
  wait_for_stop();
  stop();
  return 0;
}

}  // namespace

MdaWorkers::MdaWorkers(bus::Bus& bus, const WorkerFlags& flags, const core::Config& config)
    : bus_(bus),
      config_(config),
      client_(std::make_shared<mda::WebhookClient>(webhook_options(config))),
      live_(bus, std::string(mda::kWorkerName), live_worker_options(flags)),
      webhooks_(bus, std::string(mda::kWebhookWorkerName), webhook_worker_options(config)) {}

MdaWorkers::~MdaWorkers() {
  stop();
}

core::Result<void> MdaWorkers::start(store::Store& store) {
  mda::MdaOptions options;
  auto schedule = mda::parse_retry_schedule(config_.webhook_retry_schedule);
  if (!schedule) return schedule.error();
  options.retry_schedule = std::move(*schedule);
  options.webhook = webhook_options(config_);
  options.client = client_;
  if (auto registered = mda::register_jobs(live_, webhooks_, store, bus_, std::move(options)); !registered) {
    return registered;
  }
  if (auto started = live_.start(); !started) return started;
  return webhooks_.start();
}

void MdaWorkers::stop() {
  client_->stop();
  webhooks_.stop();
  live_.stop();
}

int run_mta(const core::Config& config, const WorkerFlags& flags) {
  core::logging::init(config.log_format, config.log_level);
  auto store = store::open_store(config.store);
  if (!store) {
    fmt::print(stderr, "intercomm mta: {}\n", store.error().message);
    return 1;
  }
  auto bus = connect_rabbitmq(config, "mta");
  if (!bus) return 1;
  worker::Worker worker(*bus, std::string(mta::kWorkerName), worker_options(flags));
  mta::register_jobs(worker, **store, *bus, mta_options(config));
  if (auto started = worker.start(); !started) {
    fmt::print(stderr, "intercomm mta: {}\n", started.error().message);
    return 1;
  }
  return serve_until_stopped("mta", worker.queue(), [&] { worker.stop(); });
}

int run_mda(const core::Config& config, const WorkerFlags& flags) {
  core::logging::init(config.log_format, config.log_level);
  auto store = store::open_store(config.store);
  if (!store) {
    fmt::print(stderr, "intercomm mda: {}\n", store.error().message);
    return 1;
  }
  auto bus = connect_rabbitmq(config, "mda");
  if (!bus) return 1;
  MdaWorkers workers(*bus, flags, config);
  if (auto started = workers.start(**store); !started) {
    fmt::print(stderr, "intercomm mda: {}\n", started.error().message);
    return started.error().code == core::ErrorCode::invalid_params ? 2 : 1;  // a bad flag
  }
  return serve_until_stopped("mda", workers.live().queue() + " and " + workers.webhooks().queue(),
                             [&] { workers.stop(); });
}

}  // namespace intercomm::app
