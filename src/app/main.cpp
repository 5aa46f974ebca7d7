// intercomm: the one executable; each service is a subcommand. The only composition root.
#include "app/dlq.hpp"
#include "app/gauges.hpp"
#include "app/lifecycle.hpp"
#include "app/workers.hpp"
#include "bus/amqp.hpp"
#include "bus/inproc.hpp"
#include "bus/rpc_client.hpp"
#include "bus/topology.hpp"
#include "core/config.hpp"
#include "core/limits.hpp"
#include "core/logging.hpp"
#include "core/message.hpp"
#include "core/version.hpp"
#include "gateway/api.hpp"
#include "gateway/jwt.hpp"
#include "gateway/server.hpp"
#include "gateway/web.hpp"
#include "mda/mda.hpp"
#include "mta/mta.hpp"
#include "store/open.hpp"
#include "worker/worker.hpp"

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <openssl/rand.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>

namespace {

using intercomm::app::WorkerFlags;
using intercomm::app::wait_connected_or_stop;
using intercomm::app::wait_for_stop;
using intercomm::core::Config;

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

// Fits --max-connections to the file descriptor limit (see
// fit_connections_to_fd_limit); false after saying why it cannot.
bool fit_connections(Config& config, std::string_view who) {
  auto fits = intercomm::app::fit_connections_to_fd_limit(config.max_connections, config.max_connections_given);
  if (!fits) {
    fmt::print(stderr, "intercomm {}: {}\n", who, fits.error().message);
    return false;
  }
  config.max_connections = *fits;
  return true;
}

intercomm::gateway::ServerOptions server_options(const Config& config, intercomm::gateway::Metrics& metrics) {
  auto listen = intercomm::core::parse_host_port(config.listen);  // checked by CLI11 already
  intercomm::gateway::ServerOptions options;
  options.host = listen->host;
  options.port = listen->port;
  options.max_body_bytes = intercomm::core::max_request_bytes(config.max_body_bytes);
  options.threads = std::max(1U, std::thread::hardware_concurrency());
  options.max_connections = config.max_connections;
  options.metrics = &metrics;
  return options;
}

// The REST API's options, or null after saying why (a bad key file).
std::optional<intercomm::gateway::ApiOptions> api_options(const Config& config,
                                                          intercomm::gateway::Metrics& metrics,
                                                          std::string_view who) {
  std::string public_key;
  if (!config.jwt_public_key.empty()) {
    std::ifstream file(config.jwt_public_key);
    public_key.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    if (!file.good() && !file.eof()) {
      fmt::print(stderr, "intercomm {}: cannot read {}\n", who, config.jwt_public_key);
      return std::nullopt;
    }
  }
  auto verifier = intercomm::gateway::TokenVerifier::make(
      config.secret, public_key, intercomm::gateway::TokenRules{config.jwt_audience, config.jwt_issuer});
  if (!verifier) {
    fmt::print(stderr, "intercomm {}: {}\n", who, verifier.error().message);
    return std::nullopt;
  }
  auto limits = intercomm::gateway::RateLimits::parse(config.rate_limits);
  if (!limits) {
    fmt::print(stderr, "intercomm {}: --rate-limits: {}\n", who, limits.error().message);
    return std::nullopt;
  }
  intercomm::gateway::ApiOptions options;
  options.verifier = std::move(*verifier);
  options.rate_limits = *limits;
  options.limits.max_body_bytes = config.max_body_bytes;
  options.rpc_timeout = std::chrono::milliseconds(config.rpc_timeout_ms);
  options.publish_timeout = std::chrono::milliseconds(config.publish_timeout_ms);
  options.metrics = &metrics;
  return options;
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  std::string hex;
  for (unsigned char byte : raw) hex += fmt::format("{:02x}", byte);
  return hex;
}

intercomm::gateway::StreamOptions stream_options(const Config& config) {
  intercomm::gateway::StreamOptions options;
  options.rpc_timeout = std::chrono::milliseconds(config.rpc_timeout_ms);
  return options;
}

// What a gateway hears on its reply queue besides RPC replies: live frames
// for its sockets, and changes of users' blocks.
struct Live {
  std::shared_ptr<intercomm::gateway::StreamHub> stream;
  std::shared_ptr<intercomm::gateway::BlockList> blocks;
  intercomm::core::Result<std::unique_ptr<intercomm::bus::RpcClient>> rpc =
      intercomm::core::Error::of(intercomm::core::ErrorCode::unavailable);
};

Live open_live(intercomm::bus::Bus& bus, const Config& config) {
  Live live;
  live.stream = std::make_shared<intercomm::gateway::StreamHub>(bus, stream_options(config));
  intercomm::gateway::BlockListOptions block_options;
  block_options.rpc_timeout = std::chrono::milliseconds(config.rpc_timeout_ms);
  block_options.patience = std::chrono::milliseconds(config.publish_timeout_ms);
  live.blocks = std::make_shared<intercomm::gateway::BlockList>(bus, block_options);
  // What was published while the bus was down is gone: sockets read what they
  // missed from the inboxes, and every cached block list is dropped.
  bus.on_reconnected([stream = std::weak_ptr(live.stream), blocks = std::weak_ptr(live.blocks)] {
    if (auto hub = stream.lock()) hub->resync();
    if (auto list = blocks.lock()) list->forget_all();
  });
  live.rpc = intercomm::bus::RpcClient::open(bus, [stream = live.stream, blocks = live.blocks](
                                                      intercomm::bus::Envelope& e) {
    return blocks->deliver(e) || stream->deliver(e);
  });
  if (!live.rpc) return live;
  live.stream->set_rpc(**live.rpc);
  live.blocks->set_rpc(**live.rpc);
  live.blocks->start();
  return live;
}

// intercomm gateway: REST over RabbitMQ until SIGTERM.
int run_gateway(Config config) {
  intercomm::core::logging::init(config.log_format, config.log_level);
  if (!fit_connections(config, "gateway")) return 2;
  if (config.secret.empty() && config.jwt_public_key.empty()) {
    fmt::print(stderr,
               "intercomm gateway: no token key: pass --secret (HS256) or --jwt-public-key (RS256), "
               "or set INTERCOMM_SECRET\n");
    return 2;
  }
  intercomm::gateway::Metrics metrics;
  auto options = api_options(config, metrics, "gateway");
  if (!options) return 2;
  auto bus = intercomm::app::connect_rabbitmq(config, "gateway");
  if (!bus) return 1;
  auto live = open_live(*bus, config);
  if (!live.rpc) {
    fmt::print(stderr, "intercomm gateway: {}\n", live.rpc.error().message);
    return 1;
  }
  options->stream = live.stream;
  options->blocks = live.blocks;
  auto& rpc = live.rpc;
  metrics.add_source([bus = bus.get()] { return intercomm::app::dead_letter_metrics(*bus); });
  intercomm::gateway::Router router;
  intercomm::gateway::add_api_routes(router, *bus, **rpc, std::move(*options));
  intercomm::gateway::add_web_routes(router, {});
  const auto listen = server_options(config, metrics);
  intercomm::gateway::HttpServer server(router, listen);
  auto port = server.start();
  if (!port) {
    fmt::print(stderr, "intercomm gateway: {}\n", port.error().message);
    return 1;
  }
  fmt::print("intercomm gateway: listening on http://{}:{}\n", listen.host, *port);
  std::fflush(stdout);
  wait_for_stop();
  server.stop();
  return 0;
}

// intercomm run: gateway + MTA in one process, in-process bus (or --amqp), --store.
int run_all_in_one(Config config, const WorkerFlags& flags) {
  intercomm::core::logging::init(config.log_format, config.log_level);
  if (!fit_connections(config, "run")) return 2;
  const bool dev_secret = config.secret.empty();
  if (dev_secret) {
    // Development mode mints tokens for anyone who asks (/v1/dev/token): only
    // where nobody else can ask.
    const auto listen = intercomm::core::parse_host_port(config.listen);
    if (config.amqp_given || !intercomm::app::is_loopback_host(listen->host)) {
      fmt::print(stderr,
                 "intercomm run: no --secret: development mode (a generated secret, tokens for anyone at "
                 "/v1/dev/token) runs only on a loopback --listen with the in-process bus; pass --secret "
                 "(or INTERCOMM_SECRET) of at least {} bytes, e.g. from: openssl rand -hex 32\n",
                 intercomm::core::kMinSecretBytes);
      return 2;
    }
    config.secret = random_hex(32);
  }
  auto store = intercomm::store::open_store(config.store);
  if (!store) {
    fmt::print(stderr, "intercomm run: {}\n", store.error().message);
    return 1;
  }

  intercomm::gateway::Metrics metrics;
  auto options = api_options(config, metrics, "run");
  if (!options) return 2;
  const auto dev_token_limit = options->rate_limits.dev_token;

  std::shared_ptr<intercomm::bus::InprocBroker> broker;
  const auto connect = [&]() -> std::unique_ptr<intercomm::bus::Bus> {
    if (!config.amqp_given) return intercomm::bus::connect_inproc(broker);
    intercomm::bus::AmqpOptions amqp;
    amqp.urls = config.amqp;
    return intercomm::bus::connect_amqp(amqp);
  };
  if (!config.amqp_given) {
    const std::string journal = intercomm::app::bus_journal_path(config.store);
    auto opened = intercomm::bus::open_inproc_broker(journal);
    if (!opened) {
      fmt::print(stderr, "intercomm run: {}\n", opened.error().message);
      return 1;
    }
    broker = std::move(*opened);
  }
  auto mta_bus = connect();
  auto mda_bus = connect();
  auto gateway_bus = connect();
  if (!wait_connected_or_stop(*mta_bus, std::chrono::seconds(30)) ||
      !wait_connected_or_stop(*mda_bus, std::chrono::seconds(30)) ||
      !wait_connected_or_stop(*gateway_bus, std::chrono::seconds(30))) {
    fmt::print(stderr, "intercomm run: cannot reach RabbitMQ at {}\n",
               intercomm::core::mask_url_passwords(config.amqp));
    return 1;
  }
  intercomm::worker::Worker mta(*mta_bus, std::string(intercomm::mta::kWorkerName),
                                intercomm::app::worker_options(flags));
  intercomm::mta::register_jobs(mta, **store, *mta_bus, intercomm::app::mta_options(config));
  if (auto started = mta.start(); !started) {
    fmt::print(stderr, "intercomm run: {}\n", started.error().message);
    return 1;
  }
  intercomm::app::MdaWorkers mda(*mda_bus, flags, config);
  if (auto started = mda.start(**store); !started) {
    fmt::print(stderr, "intercomm run: {}\n", started.error().message);
    return started.error().code == intercomm::core::ErrorCode::invalid_params ? 2 : 1;
  }
  auto live = open_live(*gateway_bus, config);
  if (!live.rpc) {
    fmt::print(stderr, "intercomm run: {}\n", live.rpc.error().message);
    return 1;
  }
  options->stream = live.stream;
  options->blocks = live.blocks;
  auto& rpc = live.rpc;
  metrics.add_source([&mta, &mda] {
    return "# HELP intercomm_worker_jobs_total Jobs a worker of this process settled, by outcome.\n"
           "# TYPE intercomm_worker_jobs_total counter\n" +
           intercomm::app::worker_metrics(mta) + intercomm::app::worker_metrics(mda.live()) +
           intercomm::app::worker_metrics(mda.webhooks()) +
           "# HELP intercomm_worker_circuit_open 1 while a worker pauses: every job it tried failed transiently.\n"
           "# TYPE intercomm_worker_circuit_open gauge\n"
           "# HELP intercomm_worker_jobs_held Jobs a worker holds to retry after a transient failure.\n"
           "# TYPE intercomm_worker_jobs_held gauge\n" +
           intercomm::app::worker_gauges(mta) + intercomm::app::worker_gauges(mda.live()) +
           intercomm::app::worker_gauges(mda.webhooks());
  });
  metrics.add_source([bus = gateway_bus.get()] { return intercomm::app::dead_letter_metrics(*bus); });
  intercomm::gateway::Router router;
  intercomm::store::Store* store_ptr = store->get();
  options->ready = [store_ptr] { return store_ptr->ping(); };
  options->workers_ready = [&mta, &mda] {
    return !mta.stats().circuit_open && !mda.live().stats().circuit_open && !mda.webhooks().stats().circuit_open;
  };
  intercomm::gateway::add_api_routes(router, *gateway_bus, **rpc, std::move(*options));
  intercomm::gateway::WebOptions web;
  if (dev_secret) web.dev_secret = config.secret;
  web.dev_token_limit = dev_token_limit;
  web.metrics = &metrics;
  intercomm::gateway::add_web_routes(router, std::move(web));
  const auto listen = server_options(config, metrics);
  intercomm::gateway::HttpServer server(router, listen);
  auto port = server.start();
  if (!port) {
    fmt::print(stderr, "intercomm run: {}\n", port.error().message);
    return 1;
  }
  fmt::print("intercomm {}: serving on http://{}:{} (chat page at /)\n", intercomm::core::version(),
             listen.host, *port);
  fmt::print("bus: {}; store: {}\n",
             config.amqp_given ? "RabbitMQ" : "in-process, journaled in " + intercomm::app::bus_journal_path(config.store),
             intercomm::core::mask_url_password(config.store));
  if (dev_secret) {
    fmt::print("development secret (generated; pass --secret to choose one): {}\n", config.secret);
    for (const char* user : {"alice", "bob"}) {
      fmt::print("token for {}: {}\n", user,
                 intercomm::gateway::mint_hs256(config.secret, user, std::chrono::hours(24)));
    }
  }
  std::fflush(stdout);
  wait_for_stop();
  // Stop taking requests, give the MTA and the live MDA a moment to empty
  // their queues, then stop them: webhook attempts in flight end at once.
  // Jobs still queued stay in the journal and are served at the next start.
  server.stop();
  if (broker) {
    for (const auto name : {intercomm::mta::kWorkerName, intercomm::mda::kWorkerName}) {
      const auto queue = intercomm::bus::worker_queue(name);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (intercomm::bus::inproc_pending(*broker, queue) > 0 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (const auto left = intercomm::bus::inproc_pending(*broker, queue); left > 0) {
        spdlog::info("{} jobs left in {}: journaled, served at the next start", left, queue);
      }
    }
  }
  mta.stop();
  mda.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t signals = intercomm::app::stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  CLI::App app{"intercomm: user-to-user messaging over RabbitMQ (gateway, MTA, MDA)", "intercomm"};
  app.set_version_flag("--version", std::string(intercomm::core::version()));
  app.require_subcommand(1);
  app.footer("Each flag also reads INTERCOMM_<FLAG> from the environment, e.g. INTERCOMM_LISTEN.");

  Config config;
  using namespace intercomm::core;

  auto* run = app.add_subcommand("run", "All in one: gateway + MTA + MDA, in-process bus, RocksDB store");
  add_config_options(*run, config,
                     kListen | kAmqp | kStore | kSecret | kLogging | kLimits | kGateway | kWebhooks);

  auto* gateway = app.add_subcommand("gateway", "REST and WebSocket gateway over RabbitMQ");
  add_config_options(*gateway, config, kListen | kAmqp | kStore | kSecret | kLogging | kLimits | kGateway);

  auto* mta = app.add_subcommand("mta", "Message Transfer Agent worker: serves rpc_queue_mta over RabbitMQ");
  add_config_options(*mta, config, kAmqp | kStore | kLogging | kLimits | kSubscriptionLimit);
  add_config_options(*run, config, kSubscriptionLimit);
  WorkerFlags worker_flags;
  intercomm::app::add_worker_options(*mta, worker_flags);
  intercomm::app::add_worker_options(*run, worker_flags);
  intercomm::app::add_lanes_option(*mta, worker_flags);
  intercomm::app::add_lanes_option(*run, worker_flags);

  auto* mda = app.add_subcommand("mda",
                                 "Message Delivery Agent worker: serves rpc_queue_mda (live delivery) and "
                                 "rpc_queue_mda_webhook (webhooks) over RabbitMQ");
  add_config_options(*mda, config, kAmqp | kStore | kLogging | kWebhooks);
  intercomm::app::add_worker_options(*mda, worker_flags, &WorkerFlags::mda_threads);

  std::string token_user;
  long token_ttl = 3600;
  auto* token = app.add_subcommand("token", "Mint an HS256 token for a user, signed with --secret");
  add_config_options(*token, config, kSecret);
  token->add_option("--user", token_user, "User the token acts for")->required();
  token->add_option("--ttl", token_ttl, "Lifetime in seconds")->capture_default_str();

  auto run_dlq = intercomm::app::add_dlq_command(app, config);

  auto* show_config = app.add_subcommand("config", "Print the configuration in effect, secrets masked");
  add_config_options(*show_config, config, kAllOptions);

  CLI11_PARSE(app, argc, argv);

  if (run->parsed()) {
    finish_config(*run, config);
    return run_all_in_one(config, worker_flags);
  }
  if (show_config->parsed()) {
    finish_config(*show_config, config);
    fmt::print("{}", describe(config));
    return 0;
  }
  if (gateway->parsed()) {
    finish_config(*gateway, config);
    return run_gateway(config);
  }
  if (mta->parsed()) return intercomm::app::run_mta(config, worker_flags);
  if (mda->parsed()) return intercomm::app::run_mda(config, worker_flags);
  if (token->parsed()) return mint_token(config, token_user, token_ttl);
  if (const int code = run_dlq(); code >= 0) return code;
  return 2;
}
