// Test helper: a worker built on the framework that serves the seed's get_message
// from an in-memory map over RabbitMQ, until SIGTERM. Prints "ready" once consuming.
#include "bus/amqp.hpp"
#include "core/logging.hpp"
#include "worker/worker.hpp"

#include <boost/json/parse.hpp>

#include <csignal>
#include <cstdio>

namespace json = boost::json;
using intercomm::core::Error;
using intercomm::core::ErrorCode;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fputs("usage: seed_worker AMQP_URL WORKER_NAME\n", stderr);
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  intercomm::core::logging::init(intercomm::core::LogFormat::text);  // stderr: stdout says "ready"
  intercomm::bus::AmqpOptions options;
  options.urls = {argv[1]};
  auto bus = intercomm::bus::connect_amqp(options);
  if (!intercomm::bus::wait_connected(*bus, std::chrono::seconds(20))) {
    std::fputs("seed_worker: cannot connect\n", stderr);
    return 1;
  }
  // The seed's riak bucket, as a map: message_id -> message.
  const std::map<std::string, json::value> messages{
      {"X9J0UI76GBWQTF", json::parse(R"({"sender": "user_1", "receiver":"user_2", "body": "merhaba"})")}};

  intercomm::worker::Worker worker(*bus, argv[2]);
  worker.on("get_message",
            [&](const json::object& params,
                const intercomm::worker::JobContext&) -> intercomm::core::Result<json::value> {
              const auto* id = params.if_contains("message_id");
              if (id == nullptr || !id->is_string()) return Error::of(ErrorCode::invalid_params);
              auto found = messages.find(std::string(id->get_string()));
              if (found == messages.end()) return Error::of(ErrorCode::not_found);
              return found->second;
            });
  if (auto started = worker.start(); !started) {
    std::fprintf(stderr, "seed_worker: %s\n", started.error().message.c_str());
    return 1;
  }
  std::puts("ready");
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  worker.stop();
  return 0;
}
