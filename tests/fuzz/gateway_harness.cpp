// The in-process gateway the HTTP and WebSocket fuzz targets talk to.
#include "fuzz/gateway_harness.hpp"

#include "bus/inproc.hpp"
#include "bus/rpc_client.hpp"
#include "gateway/api.hpp"
#include "gateway/jwt.hpp"
#include "gateway/server.hpp"
#include "gateway/web.hpp"
#include "mda/mda.hpp"
#include "mta/mta.hpp"
#include "store/open.hpp"
#include "worker/worker.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

namespace intercomm::fuzz {
namespace {

// Everything lives until the process ends: reachable from here, so never a leak.
struct Gateway {
  std::shared_ptr<bus::InprocBroker> broker;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<bus::Bus> worker_bus;
  std::unique_ptr<bus::Bus> gateway_bus;
  std::unique_ptr<worker::Worker> mta;
  std::unique_ptr<worker::Worker> live;
  std::unique_ptr<worker::Worker> webhooks;
  std::shared_ptr<gateway::StreamHub> stream;
  std::unique_ptr<bus::RpcClient> rpc;
  gateway::Router router;
  gateway::Metrics metrics;
  std::unique_ptr<gateway::HttpServer> server;
  std::uint16_t port = 0;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz gateway: %s\n", what.c_str());
  std::abort();
}

Gateway* start() {
  spdlog::set_level(spdlog::level::off);  // millions of refused requests are not news
  const std::string dir = (std::filesystem::temp_directory_path() / ("intercomm-fuzz-" + std::to_string(getpid())))
                              .string();
  std::filesystem::remove_all(dir);
  auto* g = new Gateway;
  auto broker = bus::open_inproc_broker(dir + "/bus");
  if (!broker) fail(broker.error().message);
  g->broker = *broker;
  auto store = store::open_store("rocksdb:" + dir + "/store");
  if (!store) fail(store.error().message);
  g->store = std::move(*store);
  g->worker_bus = bus::connect_inproc(g->broker);
  g->gateway_bus = bus::connect_inproc(g->broker);
  worker::WorkerOptions options;
  options.threads = 4;
  g->mta = std::make_unique<worker::Worker>(*g->worker_bus, std::string(mta::kWorkerName), options);
  mta::register_jobs(*g->mta, *g->store, *g->worker_bus);
  g->live = std::make_unique<worker::Worker>(*g->worker_bus, std::string(mda::kWorkerName), options);
  g->webhooks = std::make_unique<worker::Worker>(*g->worker_bus, std::string(mda::kWebhookWorkerName), options);
  mda::MdaOptions mda_options;
  mda_options.webhook.timeout = std::chrono::milliseconds(200);
  if (auto registered = mda::register_jobs(*g->live, *g->webhooks, *g->store, *g->worker_bus, mda_options);
      !registered) {
    fail(registered.error().message);
  }
  for (auto* w : {g->mta.get(), g->live.get(), g->webhooks.get()}) {
    if (auto started = w->start(); !started) fail(started.error().message);
  }
  g->stream = std::make_shared<gateway::StreamHub>(*g->gateway_bus, gateway::StreamOptions{});
  auto rpc = bus::RpcClient::open(*g->gateway_bus,
                                  [stream = g->stream](bus::Envelope& e) { return stream->deliver(e); });
  if (!rpc) fail(rpc.error().message);
  g->rpc = std::move(*rpc);
  g->stream->set_rpc(*g->rpc);
  auto verifier = gateway::TokenVerifier::make(std::string(kSecret));
  if (!verifier) fail(verifier.error().message);
  gateway::ApiOptions api;
  api.verifier = std::move(*verifier);
  api.rate_limits = gateway::RateLimits::parse("send=off,subscription=off,auth_failure=off").value();
  api.rpc_timeout = std::chrono::milliseconds(1000);
  api.publish_timeout = std::chrono::milliseconds(1000);
  api.metrics = &g->metrics;
  api.stream = g->stream;
  gateway::add_api_routes(g->router, *g->gateway_bus, *g->rpc, std::move(api));
  gateway::WebOptions web;
  web.dev_secret = std::string(kSecret);
  web.dev_token_limit = gateway::RateLimit{};
  gateway::add_web_routes(g->router, std::move(web));
  gateway::ServerOptions server;
  server.port = 0;
  server.metrics = &g->metrics;
  g->server = std::make_unique<gateway::HttpServer>(g->router, server);
  auto port = g->server->start();
  if (!port) fail(port.error().message);
  g->port = *port;
  return g;
}

}  // namespace

std::uint16_t gateway_port() {
  static Gateway* gateway = start();
  return gateway->port;
}

std::string token_for(std::string_view user) {
  return gateway::mint_hs256(kSecret, user, std::chrono::hours(24));
}

std::string exchange(std::string_view bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(gateway_port());
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  // A failed connect is the test client's trouble, not a finding, while it can
  // heal (no local port free yet): tried again for a while, then reported with errno.
  for (int attempt = 0;; ++attempt) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) break;
    const int error = errno;
    if (attempt == 200 || (error != EADDRNOTAVAIL && error != EAGAIN && error != EINTR)) {
      fail("connect: " + std::string(std::strerror(error)));
    }
    usleep(10'000);
  }
  std::string answer;
  char chunk[16384];
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the gateway closed early (a refused request): what it said still counts
    sent += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  for (;;) {
    pollfd readable{fd, POLLIN, 0};
    if (poll(&readable, 1, 5000) <= 0) break;
    const auto n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    answer.append(chunk, static_cast<std::size_t>(n));
  }
  // Closed with a reset, so that the client keeps no TIME_WAIT port: a million
  // inputs would otherwise run this side out of local ports.
  const linger abort_on_close{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  close(fd);
  return answer;
}

}  // namespace intercomm::fuzz
