// intercomm dlq (see dlq.cpp), and where `intercomm run` journals its bus.
#pragma once

#include "core/config.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace intercomm::app {

// Adds `intercomm dlq list|show|replay|purge` to `app`. The returned function
// runs the command after parsing: its exit code, or -1 when dlq was not the
// command given.
std::function<int()> add_dlq_command(CLI::App& app, core::Config& config);

// Where `intercomm run` journals its in-process queues: beside a RocksDB store
// (rocksdb:./intercomm-data -> ./intercomm-data-bus), else ./intercomm-bus.
std::string bus_journal_path(std::string_view store);

}  // namespace intercomm::app
