#!/usr/bin/env bash
# A newcomer's second command (and CI's only one): install what is missing
# (Debian packages; playwright-core and ws from npm for the browser and the
# JavaScript client's tests), build,
# start a private RabbitMQ node, Redis and a Redis Cluster, and run every test
# in the normal build and in the sanitizer (ASan+UBSan) build; then the fault
# suite's short run (tests/faults/run.sh: every fault scenario on servers of
# its own, counting every message), and every libFuzzer target for 60 s
# (tests/fuzz/run.sh). Servers it started are stopped on exit, also when
# tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh rabbitmq-server python3-pika redis-server redis-tools chromium
# The browser test drives Debian's Chromium with playwright-core from npm; the
# JavaScript client's tests run in Node with npm's ws.
command -v npm > /dev/null || scripts/setup.sh nodejs npm
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error)

servers=build/test-servers
rm -rf "$servers"
mkdir -p "$servers"
stop_servers() {
  tests/support/rabbitmq.sh stop "$servers/rabbitmq" || true
  tests/support/redis.sh stop "$servers/redis" || true
  tests/support/redis_cluster.sh stop "$servers/redis-cluster" || true
}
trap stop_servers EXIT

for kind in release asan; do
  echo "== build: $kind"
  scripts/build.sh "$kind"
done

echo "== start: rabbitmq"
INTERCOMM_TEST_AMQP=$(tests/support/rabbitmq.sh start "$servers/rabbitmq")
export INTERCOMM_TEST_AMQP
echo "== start: redis"
INTERCOMM_TEST_REDIS=$(tests/support/redis.sh start "$servers/redis")
export INTERCOMM_TEST_REDIS
echo "== start: redis cluster (3 masters, 3 replicas)"
INTERCOMM_TEST_REDIS_CLUSTER=$(tests/support/redis_cluster.sh start "$servers/redis-cluster")
export INTERCOMM_TEST_REDIS_CLUSTER
export INTERCOMM_TEST_SERVERS_DIR=$PWD/$servers

status=0
for kind in release asan; do
  echo "== test: $kind"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "build/$kind" --output-on-failure -j 2 || status=1
done
stop_servers
trap - EXIT
echo "== faults: short run (tests/faults/run.sh --long runs them for minutes)"
tests/faults/run.sh || status=1
echo "== fuzz: 60 s per target (tests/fuzz/run.sh --long runs them for 15 minutes each)"
tests/fuzz/run.sh || status=1
exit $status
