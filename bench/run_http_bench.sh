#!/usr/bin/env bash
# POST /v1/messages accepted/s and latency: intercomm embedded (`intercomm run`),
# split (gateway + MTA over RabbitMQ and Redis), and nginx answering a fixed 202
# to the same requests (the HTTP ceiling of this machine), all in one run, with
# wrk as the load. "stored/s" divides the messages accepted by the time from the
# load's start until the last of them was stored (the sustained rate). Prints a
# Markdown table.
#   bench/run_http_bench.sh [--duration SECONDS] [--connections "1 64"]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
connections="1 64"
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    *) echo "usage: $0 [--duration SECONDS] [--connections \"1 64\"]" >&2; exit 2 ;;
  esac
done

scripts/setup.sh nginx wrk curl rabbitmq-server redis-server redis-tools
scripts/build.sh release > /dev/null
bin=build/release/intercomm
dir=$PWD/build/bench-http
rm -rf "$dir"
mkdir -p "$dir"

# shellcheck source=bench/common.sh
source bench/common.sh

secret=bench-secret-0123456789abcdef0123456789abcdef
token=$("$bin" token --secret "$secret" --user alice --ttl 86400)
cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"receiver":"bob","body":"merhaba, a benchmark message of about sixty bytes"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA

results=()
measure() {  # NAME BASE_URL (nginx: no backlog)
  for c in $connections; do
    local started finished drain stored
    started=$(date +%s.%N)
    read -r rate p50 p99 bad < <(load "$2/v1/messages" "$c" "$dir/post.lua")
    if [[ $1 == nginx ]]; then
      stored="-"
    else
      drain=$(backlog_seconds "$2" "$token")
      finished=$(date +%s.%N)
      stored=$(python3 -c "print(f'{$rate * $duration / ($finished - $started):.0f}')")
      echo "  $1: the backlog was stored ${drain} s after the load ended" >&2
    fi
    results+=("$1|$c|$rate|$p50|$p99|$bad|$stored")
    echo "  $1, $c connections: $rate/s accepted, $stored/s stored, p50 $p50 ms, p99 $p99 ms, non-2xx $bad" >&2
  done
}

echo "== nginx (fixed 202)" >&2
start_nginx
measure nginx "http://127.0.0.1:$nginx_port"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

echo "== intercomm run (embedded: in-process bus, RocksDB)" >&2
start_server embedded run --store "rocksdb:$dir/embedded" --rate-limits send=off
measure embedded "http://127.0.0.1:$port"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

echo "== split (intercomm gateway + intercomm mta, RabbitMQ, Redis)" >&2
amqp=$(tests/support/rabbitmq.sh start "$dir/rabbitmq")
redis=$(tests/support/redis.sh start "$dir/redis")
start_worker mta "$amqp" "$redis"
start_server gateway gateway --amqp "$amqp" --rate-limits send=off
measure split "http://127.0.0.1:$port"

echo
echo "wrk -t1, ${duration} s per row, POST /v1/messages with a bearer token and a 62-byte body."
echo
echo "| target | connections | accepted/s | p50 ms | p99 ms | non-202 | vs nginx | stored/s (sustained) |"
echo "|---|---|---|---|---|---|---|---|"
declare -A ceiling
for row in "${results[@]}"; do
  IFS='|' read -r name c rate p50 p99 bad stored <<< "$row"
  [[ $name == nginx ]] && ceiling[$c]=$rate
done
for row in "${results[@]}"; do
  IFS='|' read -r name c rate p50 p99 bad stored <<< "$row"
  ratio=$(python3 -c "print(f'{100*$rate/${ceiling[$c]}:.0f}%')")
  echo "| $name | $c | $rate | $p50 | $p99 | $bad | $ratio | $stored |"
done
