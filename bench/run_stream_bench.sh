#!/usr/bin/env bash
# End-to-end latency (POST /v1/messages -> the receiver's WebSocket frame) at
# fixed offered rates, and memory per idle WebSocket, for `intercomm run` and
# for split mode (gateway + MTA + MDA over RabbitMQ and Redis).
#   bench/run_stream_bench.sh [--rates 100,500,1000,2000] [--seconds 5] [--idle 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh rabbitmq-server redis-server redis-tools curl
scripts/build.sh release > /dev/null
bin=build/release/intercomm
dir=$PWD/build/bench-stream
rm -rf "$dir"
mkdir -p "$dir"
ulimit -n "$(ulimit -Hn)"  # 10,000 sockets on each side

# shellcheck source=bench/common.sh
source bench/common.sh

secret=bench-secret-0123456789abcdef0123456789abcdef

echo "## embedded (intercomm run)"
port=$(free_port)
"$bin" run --listen "127.0.0.1:$port" --store "rocksdb:$dir/embedded" --secret "$secret" --log-level warn --rate-limits send=off \
  --max-connections 20000 > "$dir/embedded.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"
build/release/bench/stream_bench "$port" "$secret" "${pids[-1]}" "$@"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

echo
echo "## split (intercomm gateway + mta + mda, RabbitMQ, Redis)"
amqp=$(tests/support/rabbitmq.sh start "$dir/rabbitmq")
redis=$(tests/support/redis.sh start "$dir/redis")
start_worker mta "$amqp" "$redis"
start_worker mda "$amqp" "$redis"
port=$(free_port)
"$bin" gateway --listen "127.0.0.1:$port" --amqp "$amqp" --secret "$secret" --log-level warn --rate-limits send=off \
  --max-connections 20000 > "$dir/gateway.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"
build/release/bench/stream_bench "$port" "$secret" "${pids[-1]}" "$@"
