#!/usr/bin/env bash
# Starts a private Redis and Redis Cluster, runs bench/store_bench (RocksDB in a
# scratch folder, Redis, Redis Cluster), stops the servers.
#   bench/run_store_bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh redis-server redis-tools
scripts/build.sh release > /dev/null
dir=build/bench-servers
rm -rf "$dir/redis" "$dir/redis-cluster" "$dir/rocksdb"
trap 'tests/support/redis.sh stop "$dir/redis"; tests/support/redis_cluster.sh stop "$dir/redis-cluster"' EXIT
redis=$(tests/support/redis.sh start "$dir/redis")
cluster=$(tests/support/redis_cluster.sh start "$dir/redis-cluster")
build/release/bench/store_bench "$dir/rocksdb" "$redis" "$cluster" "$@"
