#!/usr/bin/env bash
# Live delivery (POST /v1/messages -> the receiver's WebSocket frame) without
# and then with 1,000 webhook attempts hanging on a receiver that accepts and
# never answers, in the same run: `intercomm run`, then split mode (gateway +
# MTA + MDA over RabbitMQ and Redis).
#   bench/run_tarpit_bench.sh [--rates 200,1000] [--seconds 5]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh rabbitmq-server redis-server redis-tools curl python3
scripts/build.sh release > /dev/null
bin=build/release/intercomm
dir=$PWD/build/bench-tarpit
rm -rf "$dir"
mkdir -p "$dir/tarpit"
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(--rates 200,1000 --seconds 5)

# shellcheck source=bench/common.sh
source bench/common.sh

secret=bench-tarpit-secret-of-32-bytes-or-more
hooks=(--allow-private-webhooks --webhook-timeout-ms 120000)

python3 bench/tarpit.py serve "$dir/tarpit" &
pids+=($!)
for _ in $(seq 100); do [[ -s $dir/tarpit/port ]] && break; sleep 0.1; done
tarpit_url="http://127.0.0.1:$(cat "$dir/tarpit/port")"

accepted() { cat "$dir/tarpit/accepted" 2> /dev/null || echo 0; }

# Measures live delivery through PORT (gateway PID) before and after 100 users
# with 10 webhooks each receive one message each.
compare() {  # PORT PID
  echo "### no webhooks"
  build/release/bench/stream_bench "$1" "$secret" "$2" --idle 0 "${args[@]}" | grep -v "idle WebSockets"
  local before
  before=$(accepted)
  python3 bench/tarpit.py load "$1" "$secret" "$tarpit_url" 100 10
  for _ in $(seq 600); do (($(accepted) - before >= 64)) && break; sleep 0.1; done
  echo
  echo "### 1,000 webhook attempts queued, $(($(accepted) - before)) hanging on the tarpit (never answered)"
  build/release/bench/stream_bench "$1" "$secret" "$2" --idle 0 "${args[@]}" | grep -v "idle WebSockets"
}

echo "## embedded (intercomm run)"
port=$(free_port)
"$bin" run --listen "127.0.0.1:$port" --store "rocksdb:$dir/embedded" --secret "$secret" --log-level warn --rate-limits send=off \
  "${hooks[@]}" > "$dir/embedded.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"
compare "$port" "${pids[-1]}"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

echo
echo "## split (intercomm gateway + mta + mda, RabbitMQ, Redis)"
amqp=$(tests/support/rabbitmq.sh start "$dir/rabbitmq")
redis=$(tests/support/redis.sh start "$dir/redis")
start_worker mta "$amqp" "$redis"
"$bin" mda --amqp "$amqp" --store "$redis" --log-level warn "${hooks[@]}" > "$dir/mda.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q "intercomm mda: serving" "$dir/mda.log" && break; sleep 0.1; done
port=$(free_port)
"$bin" gateway --listen "127.0.0.1:$port" --amqp "$amqp" --secret "$secret" --log-level warn --rate-limits send=off \
  > "$dir/gateway.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"
compare "$port" "${pids[-1]}"
