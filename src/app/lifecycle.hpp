// How the subcommands wait: for a stop signal, and for the bus to connect.
#pragma once

#include "bus/bus.hpp"
#include "core/config.hpp"

#include <signal.h>

#include <chrono>
#include <memory>
#include <string_view>

namespace intercomm::app {

// SIGTERM and SIGINT: blocked in every thread (main blocks them before any
// thread starts) and taken by wait_for_stop().
sigset_t stop_signals();

// Waits for the bus to connect; false when it did not within `timeout` or a
// stop signal came first (a SIGTERM during start-up stops at once).
bool wait_connected_or_stop(const bus::Bus& bus, std::chrono::seconds timeout);

void wait_for_stop();

// A RabbitMQ connection for subcommand `who`, or null after saying why (it
// waits up to 30 s for the broker; a stop signal meanwhile gives up at once).
std::unique_ptr<bus::Bus> connect_rabbitmq(const core::Config& config, std::string_view who);

// 127.0.0.0/8, ::1 or "localhost".
bool is_loopback_host(std::string_view host);

// Makes room for `max_connections` sockets plus the process's own files under
// RLIMIT_NOFILE, raising the soft limit up to the hard one when needed.
// Returns the connections to allow: `max_connections`, or fewer (with a
// warning) when the limit cannot hold them and the flag was left at its
// default; an error saying what to change when it was set explicitly.
core::Result<std::size_t> fit_connections_to_fd_limit(std::size_t max_connections, bool explicitly_set);

}  // namespace intercomm::app
