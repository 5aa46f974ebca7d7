#!/usr/bin/env bash
# Every throughput figure in one run, on the same machine in the same minutes:
#  - accepted/s of POST /v1/messages (wrk, 64 connections): nginx answering a
#    fixed 202 (the HTTP ceiling), embedded (`intercomm run`), split (gateway +
#    MTA + MDA over RabbitMQ and Redis); stored/s (sustained: the backlog paid);
#    CPU seconds per 1,000 messages of each server process under that load;
#  - POST -> the receiver's WebSocket frame at fixed offered rates (p50/p99/p99.9),
#    the highest flat rate, CPU seconds per 1,000 messages at each rate;
#  - memory per idle WebSocket (a fresh embedded process and a fresh split gateway;
#    read 2 s after the last socket opened, and again at 12 s);
#  - split stored/s with 1, 2 and 4 `intercomm mta` processes.
# Writes build/bench-all/results.md (the tables), latency.png and scaling.png
# (gnuplot), and the raw figures next to them.
#   bench/run_all.sh [--seconds N] [--rates 500,1000,...] [--idle N] [--mtas "1 2 4"]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10   # per wrk row
rates=500,1000,2000,4000,8000
rate_seconds=5
idle=10000
mtas="1 2 4"
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --mtas) mtas=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--rates 500,1000,...] [--idle N] [--mtas \"1 2 4\"]" >&2; exit 2 ;;
  esac
done
duration=$seconds  # read by common.sh's load()

began=$(date +%s)
progress() { printf '[%3ds] %s\n' $(($(date +%s) - began)) "$*" >&2; }

progress "setting up and building"
scripts/setup.sh nginx wrk curl gnuplot rabbitmq-server redis-server redis-tools > /dev/null
scripts/build.sh release > /dev/null
bin=build/release/intercomm
dir=$PWD/build/bench-all
rm -rf "$dir"
mkdir -p "$dir"
ulimit -n "$(ulimit -Hn)"

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
raw=$dir/raw.txt  # one line per figure: KIND key=value ...
: > "$raw"

cpu_of() {  # PID... : user+system CPU seconds so far, summed
  python3 - "$@" <<'PY'
import os, sys
total = 0.0
for pid in sys.argv[1:]:
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    fields = text[text.rindex(")") + 2:].split()
    total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
print(f"{total:.2f}")
PY
}

# wrk at 64 connections: accepted/s, latency, stored/s with the backlog paid,
# and the CPU each named process spent (from the load's start until stored).
accept_row() {  # NAME BASE_URL [LABEL=PID,PID ...]
  local name=$1 url=$2 started finished rate p50 p99 bad stored cpus="" label pids
  shift 2
  declare -A before=()
  for group in "$@"; do
    label=${group%%=*}; pids=${group#*=}
    before[$label]=$(cpu_of ${pids//,/ })
  done
  started=$(date +%s.%N)
  read -r rate p50 p99 bad < <(load "$url/v1/messages" 64 "$dir/post.lua")
  stored=-
  if [[ $name != nginx ]]; then
    backlog_seconds "$url" "$token" > /dev/null
    finished=$(date +%s.%N)
    stored=$(python3 -c "print(f'{$rate * $duration / ($finished - $started):.0f}')")
  fi
  for group in "$@"; do
    label=${group%%=*}; pids=${group#*=}
    cpus+=" cpu_$label=$(python3 -c "print(f'{($(cpu_of ${pids//,/ }) - ${before[$label]}) * 1000 / ($rate * $duration):.3f}')")"
  done
  echo "ACCEPT name=$name accepted=$rate p50=$p50 p99=$p99 non202=$bad stored=$stored$cpus" >> "$raw"
  progress "  $name: $rate/s accepted (p99 $p99 ms, non-202 $bad), $stored/s stored;$cpus (CPU s per 1,000)"
}

stream_rows() {  # NAME PORT GATEWAY_PID CPU_PIDS
  build/release/bench/stream_bench "$2" "$secret" "$3" --rates "$rates" --seconds "$rate_seconds" \
    --idle 0 --cpu-pids "$4" > "$dir/stream-$1.txt"
  sed -n "s/^RESULT /STREAM name=$1 /p" "$dir/stream-$1.txt" >> "$raw"
  grep -E '^RESULT' "$dir/stream-$1.txt" | sed 's/^/    /' >&2
}

# Memory per idle socket, on a gateway that served nothing before: after a
# load, sockets reuse the heap the load freed and look cheaper than they are.
idle_row() {  # NAME PORT GATEWAY_PID
  build/release/bench/stream_bench "$2" "$secret" "$3" --rates "" --idle "$idle" --settle 2,12 \
    > "$dir/idle-$1.txt"
  sed -n -e "s/^IDLE /IDLE name=$1 /p" -e "s/^IDLE_LATER /IDLE_LATER name=$1 /p" "$dir/idle-$1.txt" >> "$raw"
  grep -E '^IDLE' "$dir/idle-$1.txt" | sed 's/^/    /' >&2
}

# ---------------------------------------------------------------- nginx
progress "nginx answering a fixed 202 (${seconds} s)"
start_nginx
accept_row nginx "http://127.0.0.1:$nginx_port"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

# ---------------------------------------------------------------- embedded
progress "embedded: intercomm run (in-process bus, RocksDB)"
start_server embedded run --store "rocksdb:$dir/embedded" --rate-limits send=off --max-connections 12000
run_pid=$server_pid
accept_row embedded "http://127.0.0.1:$port" "run=$run_pid"
progress "embedded: POST -> frame at $rates msg/s"
sleep 3  # what the load left (RocksDB flushes) settles first
stream_rows embedded "$port" "$run_pid" "$run_pid"
kill "$run_pid"; wait "$run_pid" 2>/dev/null || true
progress "embedded: $idle idle sockets on a fresh intercomm run"
start_server embedded-idle run --store "rocksdb:$dir/embedded-idle" --max-connections 12000
idle_row embedded "$port" "$server_pid"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true

# ---------------------------------------------------------------- split
progress "split: starting RabbitMQ and Redis"
amqp=$(tests/support/rabbitmq.sh start "$dir/rabbitmq")
redis=$(tests/support/redis.sh start "$dir/redis")
rabbit_pid=$(cat "$dir/rabbitmq/rabbitmq.pid")
redis_pid=$(cat "$dir/redis/redis.pid")
mta_pids=()
start_mta() {
  start_worker mta "$amqp" "$redis" "mta-${#mta_pids[@]}"
  mta_pids+=("${pids[-1]}")
}
start_mta
start_worker mda "$amqp" "$redis"
mda_pid=${pids[-1]}
start_server gateway gateway --amqp "$amqp" --rate-limits send=off --max-connections 12000
gateway_pid=$server_pid
split_groups() {
  local mtas_csv
  mtas_csv=$(IFS=,; echo "${mta_pids[*]}")
  echo "gateway=$gateway_pid mta=$mtas_csv mda=$mda_pid rabbitmq=$rabbit_pid redis=$redis_pid"
}
# More MTAs first: the idle sockets' 10,000 bindings, unbound when they
# close, would keep RabbitMQ busy during whatever came next.
for n in $mtas; do
  while ((${#mta_pids[@]} < n)); do start_mta; done
  progress "split: accepted and stored with $n intercomm mta"
  # shellcheck disable=SC2046
  accept_row split "http://127.0.0.1:$port" $(split_groups)
  sed -i "\$s/\$/ mtas=$n/" "$raw"
done
while ((${#mta_pids[@]} > 1)); do
  kill "${mta_pids[-1]}"; wait "${mta_pids[-1]}" 2>/dev/null || true
  unset 'mta_pids[-1]'
done
progress "split (one of each process): POST -> frame at $rates msg/s"
sleep 3
stream_rows split "$port" "$gateway_pid" "$gateway_pid,${mta_pids[0]},$mda_pid,$rabbit_pid,$redis_pid"
progress "split: $idle idle sockets on a fresh intercomm gateway"
start_server gateway-idle gateway --amqp "$amqp" --max-connections 12000
idle_row split "$port" "$server_pid"

# ---------------------------------------------------------------- report
progress "writing $dir/results.md and the plots"
python3 bench/report_all.py "$raw" "$dir" "$rate_seconds"
if command -v gnuplot > /dev/null; then
  gnuplot -e "dir='$dir'" bench/plots.gp
fi
cat "$dir/results.md"
progress "done: $dir/results.md, $dir/latency.png, $dir/scaling.png"
