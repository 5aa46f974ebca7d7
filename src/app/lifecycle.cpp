// Stop signals and bus connections of the subcommands.
#include "app/lifecycle.hpp"

#include "bus/amqp.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <sys/resource.h>

#include <cstdio>

namespace intercomm::app {

sigset_t stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

bool wait_connected_or_stop(const bus::Bus& bus, std::chrono::seconds timeout) {
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

std::unique_ptr<bus::Bus> connect_rabbitmq(const core::Config& config, std::string_view who) {
  bus::AmqpOptions amqp;
  amqp.urls = config.amqp;
  auto connection = bus::connect_amqp(amqp);
  if (!wait_connected_or_stop(*connection, std::chrono::seconds(30))) {
    fmt::print(stderr, "intercomm {}: cannot reach RabbitMQ at {} within 30 s\n", who,
               core::mask_url_passwords(config.amqp));
    return nullptr;
  }
  return connection;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(host), ec);
  return !ec && address.is_loopback();
}

core::Result<std::size_t> fit_connections_to_fd_limit(std::size_t max_connections, bool explicitly_set) {
  // The store, the journal, the bus, webhook connections, logs: what the
  // process needs besides its clients' sockets.
  constexpr rlim_t kOwnFiles = 256;
  const rlim_t needed = static_cast<rlim_t>(max_connections) + kOwnFiles;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return max_connections;
  if (limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = std::min(needed, limit.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur >= needed) return max_connections;
  const std::size_t fits = limit.rlim_cur > kOwnFiles * 2 ? static_cast<std::size_t>(limit.rlim_cur - kOwnFiles)
                                                           : static_cast<std::size_t>(limit.rlim_cur / 2);
  if (explicitly_set) {
    return core::Error::of(
        core::ErrorCode::invalid_params,
        fmt::format("--max-connections {} needs {} file descriptors and the limit is {} (ulimit -n, hard limit "
                    "{}): raise the limit or pass --max-connections {} or less",
                    max_connections, needed, limit.rlim_cur, limit.rlim_max, fits));
  }
  spdlog::warn("at most {} connections instead of {}: the file descriptor limit is {} (ulimit -n)", fits,
               max_connections, limit.rlim_cur);
  return fits;
}

}  // namespace intercomm::app
