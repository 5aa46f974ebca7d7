# Sourced by the benchmark scripts: what they start and how they wait for it.
# Expects $dir (the scratch folder). Processes added to `pids` and the RabbitMQ
# and Redis under $dir are stopped on exit.
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  tests/support/rabbitmq.sh stop "$dir/rabbitmq" > /dev/null 2>&1 || true
  tests/support/redis.sh stop "$dir/redis" > /dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() {  # URL
  for _ in $(seq 300); do
    curl -fs "$1" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): nothing answers at $1" >&2
  return 1
}

# Starts `intercomm WORKER` (mta, mda) on AMQP and STORE; returns once it serves.
start_worker() {  # WORKER AMQP STORE
  "$bin" "$1" --amqp "$2" --store "$3" --log-level warn > "$dir/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q "intercomm $1: serving" "$dir/$1.log" && return 0; sleep 0.1; done
  echo "$(basename "$0"): intercomm $1 did not start; see $dir/$1.log" >&2
  return 1
}
