#!/usr/bin/env bash
# What the delivery contract costs (per-inbox seq, ordered lanes). The same
# loads, in one run, in embedded mode (`intercomm run`) and split mode
# (gateway + MTA + MDA over RabbitMQ and Redis), against three builds:
#   before     the last commit without seqs or lanes (built from --baseline
#              in build/baseline, in a git worktree)
#   lanes 0    this build, send_message unordered on rpc_queue_mta (--lanes 0)
#   lanes 16   this build as shipped: ordered lanes (--lanes 16)
# Measured:
#   - stored/s: wrk -c64 POSTs for `--duration` s from alice to bob (one
#     conversation: one lane) and from alice to bob1..bob100 (100
#     conversations), divided by the time until the last accepted message was
#     stored: alice's inbox seq reaches the number accepted (before: a
#     sentinel sent after the load is readable; one FIFO queue then);
#   - POST -> WebSocket frame latency at a fixed offered rate (stream_bench).
# Prints Markdown tables.
#   bench/run_ordering_bench.sh [--duration 10] [--rate-embedded 1000] [--rate-split 500] [--baseline REV]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
rate_embedded=1000
rate_split=500
baseline=1efba81  # the commit before per-inbox seqs and ordered lanes
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rate-embedded) rate_embedded=$2; shift 2 ;;
    --rate-split) rate_split=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    *) echo "usage: $0 [--duration S] [--rate-embedded R] [--rate-split R] [--baseline REV]" >&2; exit 2 ;;
  esac
done

scripts/setup.sh wrk curl rabbitmq-server redis-server redis-tools
scripts/build.sh release > /dev/null
new_bin=build/release/intercomm
# The baseline, built once in its own worktree (ccache makes it quick).
worktree=$PWD/build/baseline
if [[ ! -x $worktree/build/release/intercomm || $(git -C "$worktree" rev-parse HEAD) != $(git rev-parse "$baseline") ]]; then
  git worktree remove --force "$worktree" 2> /dev/null || rm -rf "$worktree"
  git worktree add --detach "$worktree" "$baseline" > /dev/null
  (cd "$worktree" && scripts/build.sh release > /dev/null)
fi
old_bin=$worktree/build/release/intercomm
dir=$PWD/build/bench-ordering
rm -rf "$dir"
mkdir -p "$dir"

# shellcheck source=bench/common.sh
source bench/common.sh

secret=bench-secret-0123456789abcdef0123456789abcdef
amqp=$(tests/support/rabbitmq.sh start "$dir/rabbitmq")
redis=$(tests/support/redis.sh start "$dir/redis")

# The value of the gateway's confirmed-publish counter.
confirmed() {  # BASE_URL
  curl -fs "$1/metrics" | awk '/^intercomm_jobs_published_total\{outcome="confirmed"\}/ {print $2}'
}

# The last seq of USER's inbox (0 while the gateway cannot answer).
last_seq() {  # BASE_URL USER TOKEN
  curl -fs "$1/v1/users/$2/messages?limit=1" -H "Authorization: Bearer $3" 2> /dev/null |
    python3 -c 'import json,sys
try:
  m = json.load(sys.stdin)["messages"]; print(m[0]["seq"] if m else 0)
except Exception:
  print(0)'
}

# A wrk script: alice POSTs to one of CONVERSATIONS receivers.
lua() {  # CONVERSATIONS TOKEN FILE
  cat > "$3" <<LUA
local n = 0
request = function()
  n = n + 1
  local receiver = $1 == 1 and "bob" or ("bob" .. (n % $1))
  return wrk.format("POST", "/v1/messages",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer $2"},
    '{"receiver":"' .. receiver .. '","body":"a benchmark message of about sixty bytes, #' .. n .. '"}')
end
LUA
}

# Starts what MODE needs for VARIANT (before, or a number of lanes); sets
# `bin`, `url` and `gateway_pid`.
deploy() {  # MODE VARIANT
  local port lanes=()
  port=$(free_port)
  bin=$new_bin
  if [[ $2 == before ]]; then bin=$old_bin; else lanes=(--lanes "$2"); fi
  if [[ $1 == embedded ]]; then
    rm -rf "$dir/embedded" "$dir/embedded-bus"
    "$bin" run --listen "127.0.0.1:$port" --store "rocksdb:$dir/embedded" --secret "$secret" --log-level warn --rate-limits send=off \
      "${lanes[@]}" > "$dir/embedded.log" 2>&1 &
    pids+=($!)
  else
    redis-cli -u "$redis" flushall > /dev/null  # inboxes of every variant start empty
    "$bin" mta --amqp "$amqp" --store "$redis" --log-level warn "${lanes[@]}" > "$dir/mta.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 300); do grep -q "intercomm mta: serving" "$dir/mta.log" && break; sleep 0.1; done
    start_worker mda "$amqp" "$redis"
    "$bin" gateway --listen "127.0.0.1:$port" --amqp "$amqp" --secret "$secret" --log-level warn --rate-limits send=off \
      > "$dir/gateway.log" 2>&1 &
    pids+=($!)
  fi
  gateway_pid=${pids[-1]}
  url="http://127.0.0.1:$port"
  wait_http "$url/healthz"
}

undeploy() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

results=()
run=0
for mode in embedded split; do
  rate=$rate_embedded
  [[ $mode == split ]] && rate=$rate_split
  for lanes in before 0 16; do
    deploy "$mode" "$lanes"
    for conversations in 1 100; do
      run=$((run + 1))
      alice="alice_r${run}"
      token=$("$bin" token --secret "$secret" --user "$alice" --ttl 86400)
      lua "$conversations" "$token" "$dir/post.lua"
      before=$(confirmed "$url")
      started=$(date +%s.%N)
      read -r accepted_rate _ _ bad < <(load "$url/v1/messages" 64 "$dir/post.lua")
      accepted=$(( $(confirmed "$url") - before ))
      if [[ $lanes == before ]]; then
        backlog_seconds "$url" "$token" > /dev/null
      else
        for _ in $(seq 6000); do
          (( $(last_seq "$url" "$alice" "$token") >= accepted )) && break
          sleep 0.1
        done
      fi
      stored=$(python3 -c "import time; print(f'{$accepted / (time.time() - $started):.0f}')")
      echo "  $mode, lanes $lanes, $conversations conversation(s): $accepted_rate/s accepted, $stored/s stored" >&2
      results+=("$mode|$conversations|$lanes|$accepted_rate|$stored|$bad")
    done
    # The old build's frames carry no seq; stream_bench reads only the message in them.
    latency=$(build/release/bench/stream_bench "${url##*:}" "$secret" "$gateway_pid" --rates "$rate" --seconds 5 \
      --idle 0 | awk -F'|' '/^\| [0-9]/ {gsub(/ /, ""); print $4 " " $6 " " $7}')
    echo "  $mode, lanes $lanes: $rate msg/s offered, received/p50/p99: $latency" >&2
    results+=("$mode|latency|$lanes|$rate|$latency")
    undeploy
  done
done

echo
echo "wrk -t1 -c64, ${duration} s per load; latency: stream_bench at a fixed offered rate for 5 s."
echo
echo "| mode | conversations | build | accepted/s | stored/s | stored/s vs before | non-202 |"
echo "|---|---|---|---|---|---|---|"
declare -A unordered
for row in "${results[@]}"; do
  IFS='|' read -r mode conversations lanes a b _ <<< "$row"
  [[ $conversations != latency && $lanes == before ]] && unordered[$mode$conversations]=$b
done
for row in "${results[@]}"; do
  IFS='|' read -r mode conversations lanes a b c <<< "$row"
  [[ $conversations == latency ]] && continue
  ratio=$(python3 -c "print(f'{100*$b/${unordered[$mode$conversations]}:.0f}%')")
  [[ $lanes == before ]] || lanes="lanes $lanes"
  echo "| $mode | $conversations | $lanes | $a | $b | $ratio | $c |"
done
echo
echo "| mode | build | offered msg/s | received | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
for row in "${results[@]}"; do
  IFS='|' read -r mode conversations lanes rate latency <<< "$row"
  [[ $conversations != latency ]] && continue
  read -r received p50 p99 <<< "$latency"
  [[ $lanes == before ]] || lanes="lanes $lanes"
  echo "| $mode | $lanes | $rate | $received | $p50 | $p99 |"
done
