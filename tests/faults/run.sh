#!/usr/bin/env bash
# The fault suite: one scenario per fault, each on private servers started
# here, each under the same load (tests/faults/fault_driver: sender/receiver
# pairs at a fixed rate, receivers on WebSockets that resume from their seq),
# the fault injected while the load runs. Every scenario prints one line —
# offered, accepted, non-202 by status, accepted-not-stored,
# accepted-not-delivered, duplicates stored, stored-despite-503, socket order
# violations, recovery seconds — and the suite fails on any loss.
#   tests/faults/run.sh [--long] [--build release|asan] [SCENARIO...]
# Short (the default, in CI): 12 s of load per scenario. --long: 120 s, the
# fault repeated through it. Scenarios: run-killed gateway-killed mta-killed
# mda-killed rabbitmq-node-killed rabbitmq-node-killed-gateways-apart
# redis-killed redis-cluster-master-killed redis-cluster-master-lost
# store-paused (default: all).
set -euo pipefail
cd "$(dirname "$0")/../.."

long=0
kind=release
only=()
while (($#)); do
  case "$1" in
    --long) long=1; shift ;;
    --build) kind=$2; shift 2 ;;
    -*) echo "usage: $0 [--long] [--build release|asan] [SCENARIO...]" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done

seconds=12 fault_at=4 repeat=1
if ((long)); then seconds=120 fault_at=15 repeat=4; fi
rate=${FAULTS_RATE:-200}
pairs=${FAULTS_PAIRS:-10}

scripts/setup.sh rabbitmq-server redis-server redis-tools > /dev/null
scripts/build.sh "$kind" > /dev/null
bin=$PWD/build/$kind/intercomm
driver=$PWD/build/$kind/tests/faults/fault_driver
dir=$PWD/build/faults-$kind
rm -rf "$dir"
mkdir -p "$dir"
secret=faults-secret-0123456789abcdef0123456789abcdef

declare -A command pid
servers=()  # "script dir" of servers to stop at the end
results=()
failed=0

cleanup() {
  for name in "${!pid[@]}"; do kill -9 "${pid[$name]}" 2> /dev/null || true; done
  for server in "${servers[@]}"; do
    read -r script path <<< "$server"
    "$script" stop "$path" > /dev/null 2>&1 || true
  done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_line() {  # FILE PREFIX [SECONDS]
  for _ in $(seq $((${3:-60} * 10))); do
    grep -q "^$2" "$1" 2> /dev/null && return 0
    sleep 0.1
  done
  echo "faults: no '$2' in $1" >&2
  return 1
}

# start NAME READY ARGS...: runs intercomm ARGS as service NAME (its log in
# $logs/NAME.log, one directory per scenario) and waits for its READY line; restart NAME runs it again.
start() {
  local name=$1 ready=$2
  shift 2
  command[$name]="$ready|$*"
  "$bin" "$@" >> "$logs/$name.log" 2>&1 &
  pid[$name]=$!
  wait_line "$logs/$name.log" "$ready"
}
restart() {
  local name=$1 ready args
  IFS='|' read -r ready args <<< "${command[$name]}"
  # shellcheck disable=SC2086
  start "$name" "$ready" $args
}
kill_service() {
  kill -9 "${pid[$1]}" 2> /dev/null || true
  wait "${pid[$1]}" 2> /dev/null || true
}
stop_services() {
  for name in "${!pid[@]}"; do kill "${pid[$name]}" 2> /dev/null || true; done
  for name in "${!pid[@]}"; do wait "${pid[$name]}" 2> /dev/null || true; done
  pid=()
  command=()
}

# A vhost of its own on a RabbitMQ node (a scenario's queues start empty).
vhost_url() {  # NODE_DIR BASE_URL NAME
  tests/support/rabbitmq.sh ctl "$1" add_vhost "$3" > /dev/null
  tests/support/rabbitmq.sh ctl "$1" set_permissions -p "$3" guest '.*' '.*' '.*' > /dev/null
  echo "${2%/}/$3"
}

# Gateway + MTAs + MDAs over AMQP and STORE: gateway "senders" and gateway
# "receivers" (their ports in $senders_port and $receivers_port).
split_up() {  # AMQP STORE MTAS MDAS [AMQP_OF_RECEIVERS_GATEWAY]
  local amqp=$1 store=$2
  for i in $(seq "$3"); do start "mta$i" "intercomm mta: serving" mta --amqp "$amqp" --store "$store" --log-level info; done
  for i in $(seq "$4"); do start "mda$i" "intercomm mda: serving" mda --amqp "$amqp" --store "$store" --log-level info; done
  senders_port=$(free_port)
  receivers_port=$(free_port)
  start senders "intercomm gateway: listening" gateway --listen "127.0.0.1:$senders_port" --amqp "$amqp" \
    --secret "$secret" --log-level info
  start receivers "intercomm gateway: listening" gateway --listen "127.0.0.1:$receivers_port" \
    --amqp "${5:-$amqp}" --secret "$secret" --log-level info
}

# Runs the load in the background while FAULT (a function) runs `repeat`
# times, spaced through the load; then records the driver's line.
load_with() {  # NAME SENDERS RECEIVERS FAULT
  local name=$1 out="$dir/$1.driver"
  "$driver" --name "$name" --senders "$2" --receivers "$3" --secret "$secret" --pairs "$pairs" --rate "$rate" \
    --seconds "$seconds" --drain 120 > "$out" 2> "$out.err" &
  local driver_pid=$!
  wait_line "$out" "load started"
  local gap=$(((seconds - fault_at) / repeat))
  for round in $(seq "$repeat"); do
    sleep "$((round == 1 ? fault_at : gap))"
    echo "  $name: fault $round/$repeat" >&2
    "$4"
  done
  local status=0
  wait "$driver_pid" || status=$?
  local line
  line=$(tail -n 1 "$out")
  results+=("$line")
  echo "$line"
  ((status == 0)) || failed=1
}

selected() {  # NAME
  ((${#only[@]} == 0)) && return 0
  for name in "${only[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}

# --- shared servers for the split scenarios that do not break them ---
rabbit_dir=$dir/rabbitmq
redis_dir=$dir/redis-shared
shared_up=0
shared() {
  ((shared_up)) && return 0
  rabbit_url=$(tests/support/rabbitmq.sh start "$rabbit_dir")
  servers+=("tests/support/rabbitmq.sh $rabbit_dir")
  shared_redis=$(tests/support/redis.sh start "$redis_dir")
  servers+=("tests/support/redis.sh $redis_dir")
  shared_up=1
}

# --- the scenarios ---

scenario_run_killed() {
  local port store=$dir/run-killed/data
  port=$(free_port)
  start run "intercomm " run --listen "127.0.0.1:$port" --store "rocksdb:$store" --secret "$secret" --log-level info
  fault() { kill_service run; sleep 1; restart run; }
  load_with run-killed "127.0.0.1:$port" "127.0.0.1:$port" fault
  stop_services
}

# SERVICE of a split deployment (MTAS and MDAS workers) SIGKILLed, back after 1 s.
service_killed_scenario() {  # NAME SERVICE MTAS MDAS
  shared
  split_up "$(vhost_url "$rabbit_dir" "$rabbit_url" "$1")" "$shared_redis" "$3" "$4"
  killed_service=$2
  fault() { kill_service "$killed_service"; sleep 1; restart "$killed_service"; }
  load_with "$1" "127.0.0.1:$senders_port" "127.0.0.1:$receivers_port" fault
  stop_services
}

scenario_gateway_killed() { service_killed_scenario gateway-killed receivers 1 1; }
scenario_mta_killed() { service_killed_scenario mta-killed mta1 2 1; }
scenario_mda_killed() { service_killed_scenario mda-killed mda1 1 2; }

rabbit_cluster_dir=$dir/rabbitmq-cluster
cluster_urls=""
rabbit_cluster() {
  [[ -n $cluster_urls ]] && return 0
  cluster_urls=$(tests/support/rabbitmq_cluster.sh start "$rabbit_cluster_dir")
  servers+=("tests/support/rabbitmq_cluster.sh $rabbit_cluster_dir")
}

# The cluster's three URLs for vhost NAME, node FIRST tried first.
cluster_vhost() {  # NAME FIRST
  local urls=() url
  tests/support/rabbitmq.sh ctl "$rabbit_cluster_dir/node1" add_vhost "$1" > /dev/null
  tests/support/rabbitmq.sh ctl "$rabbit_cluster_dir/node1" set_permissions -p "$1" guest '.*' '.*' '.*' > /dev/null
  IFS=, read -r -a all <<< "$cluster_urls"
  for i in 0 1 2; do
    url=${all[$(((i + $2 - 1) % 3))]}
    urls+=("${url%/}/$1")
  done
  (IFS=,; echo "${urls[*]}")
}

# Node I of the cluster killed, started again after SECONDS.
rabbit_node_down() {  # I SECONDS
  tests/support/rabbitmq_cluster.sh kill-node "$rabbit_cluster_dir" "$1"
  sleep "$2"
  tests/support/rabbitmq_cluster.sh start-node "$rabbit_cluster_dir" "$1"
}

scenario_rabbitmq_node_killed() {
  local seconds=$((long ? seconds : 24))  # the node is down for 10 s: load on after it is back
  rabbit_cluster
  local store=$dir/rabbit-node-killed-redis
  local redis
  redis=$(tests/support/redis.sh start "$store")
  servers+=("tests/support/redis.sh $store")
  split_up "$(cluster_vhost node-killed 1)" "$redis" 1 1
  fault() { rabbit_node_down 1 10; }
  load_with rabbitmq-node-killed "127.0.0.1:$senders_port" "127.0.0.1:$receivers_port" fault
  stop_services
}

scenario_rabbitmq_node_killed_gateways_apart() {
  rabbit_cluster
  local store=$dir/rabbit-gateways-apart-redis
  local redis
  redis=$(tests/support/redis.sh start "$store")
  servers+=("tests/support/redis.sh $store")
  # Senders (and the workers) on node 2; the receivers' gateway knows only
  # node 1, the one killed: its sockets stay open through the outage, and the
  # load ends before the node is back (nothing live comes after the gap).
  local receivers_url
  receivers_url=$(cluster_vhost gateways-apart 1)
  split_up "$(cluster_vhost gateways-apart 2)" "$redis" 1 1 "${receivers_url%%,*}"
  fault() { rabbit_node_down 1 10; }
  load_with rabbitmq-node-killed-gateways-apart "127.0.0.1:$senders_port" "127.0.0.1:$receivers_port" fault
  stop_services
}

scenario_redis_killed() {
  shared
  local store=$dir/redis-killed
  local redis
  redis=$(tests/support/redis.sh start "$store")
  servers+=("tests/support/redis.sh $store")
  split_up "$(vhost_url "$rabbit_dir" "$rabbit_url" redis-killed)" "$redis" 1 1
  fault() {
    tests/support/redis.sh kill "$store"
    sleep 3
    tests/support/redis.sh start "$store" > /dev/null
  }
  load_with redis-killed "127.0.0.1:$senders_port" "127.0.0.1:$receivers_port" fault
  stop_services
}

redis_cluster_scenario() {  # NAME BACK_AFTER (never: stays down)
  shared
  local store=$dir/$1 back_after=$2
  local cluster master
  cluster=$(tests/support/redis_cluster.sh start "$store")
  servers+=("tests/support/redis_cluster.sh $store")
  split_up "$(vhost_url "$rabbit_dir" "$rabbit_url" "$1")" "$cluster" 1 1
  killed=()
  fault() {
    # A master of the cluster as it is now (a previous round may have moved them).
    master=$(redis-cli -p "$(head -n 1 "$store/ports")" cluster nodes |
      awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "[:@]"); print a[2]; exit}')
    tests/support/redis_cluster.sh kill-node "$store" "$master"
    killed+=("$master")
    if [[ $back_after != never ]]; then
      sleep "$back_after"
      tests/support/redis_cluster.sh start-node "$store" "$master"
    fi
  }
  load_with "$1" "127.0.0.1:$senders_port" "127.0.0.1:$receivers_port" fault
  stop_services
}

scenario_redis_cluster_master_killed() { redis_cluster_scenario redis-cluster-master-killed 5; }
scenario_redis_cluster_master_lost() {
  local saved=$repeat
  repeat=1  # a 3-master cluster survives the loss of one master, not of every one
  redis_cluster_scenario redis-cluster-master-lost never
  repeat=$saved
}

scenario_store_paused() {
  shared
  local store=$dir/store-paused
  local redis
  redis=$(tests/support/redis.sh start "$store")
  servers+=("tests/support/redis.sh $store")
  split_up "$(vhost_url "$rabbit_dir" "$rabbit_url" store-paused)" "$redis" 1 1
  fault() {
    local redis_pid
    redis_pid=$(cat "$store/redis.pid")
    kill -STOP "$redis_pid"
    sleep 10
    kill -CONT "$redis_pid"
  }
  load_with store-paused "127.0.0.1:$senders_port" "127.0.0.1:$receivers_port" fault
  stop_services
}

for scenario in run-killed gateway-killed mta-killed mda-killed rabbitmq-node-killed \
  rabbitmq-node-killed-gateways-apart redis-killed redis-cluster-master-killed redis-cluster-master-lost \
  store-paused; do
  selected "$scenario" || continue
  echo "== $scenario" >&2
  logs=$dir/logs/$scenario
  mkdir -p "$logs"
  "scenario_${scenario//-/_}"
done

echo
echo "fault suite ($kind, $((long ? 120 : 12)) s of load per scenario, $rate msg/s over $pairs pairs):"
printf '%s\n' "${results[@]}"
exit "$failed"
