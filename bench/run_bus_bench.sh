#!/usr/bin/env bash
# Starts a private RabbitMQ node, runs bench/bus_bench against it, stops the node.
#   bench/run_bus_bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh rabbitmq-server
scripts/build.sh release > /dev/null
dir=build/bench-servers/rabbitmq
rm -rf "$dir"
trap 'tests/support/rabbitmq.sh stop "$dir"' EXIT
url=$(tests/support/rabbitmq.sh start "$dir")
build/release/bench/bus_bench "$url" "$@"
