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

# Starts `intercomm WORKER` (mta, mda) on AMQP and STORE, logging to
# $dir/LOG.log (LOG defaults to WORKER); returns once it serves.
start_worker() {  # WORKER AMQP STORE [LOG]
  local log="$dir/${4:-$1}.log"
  "$bin" "$1" --amqp "$2" --store "$3" --log-level warn > "$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q "intercomm $1: serving" "$log" && return 0; sleep 0.1; done
  echo "$(basename "$0"): intercomm $1 did not start; see $log" >&2
  return 1
}

# Runs wrk against URL with C connections and the Lua SCRIPT for `duration`
# seconds; prints "rate p50 p99 non2xx".
load() {  # URL C SCRIPT
  local url=$1 c=$2 out
  out=$(wrk -t1 -c"$c" -d"${duration}s" --latency -s "$3" "$url")
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
print(f"{rate:.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")
PY
}

# Sends one more message (alice to bob) after a load of alice's and waits
# until it can be read; prints the seconds that took. Only a measure of the
# whole backlog when alice's messages are stored first in, first out (one
# queue, or one conversation).
backlog_seconds() {  # BASE_URL TOKEN
  local start id
  start=$(date +%s.%N)
  id=$(curl -fs -X POST "$1/v1/messages" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d '{"receiver":"bob","body":"sentinel"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["message_id"])')
  for _ in $(seq 6000); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$1/v1/messages/$id" -H "Authorization: Bearer $2") == 200 ]] && break
    sleep 0.1
  done
  python3 -c "import time; print(f'{time.time() - $start:.1f}')"
}

# Starts nginx answering POST /v1/messages with a fixed 202 (the HTTP ceiling of
# this machine), config and logs under $dir/nginx; sets nginx_port and adds its pid.
start_nginx() {
  nginx_port=$(free_port)
  mkdir -p "$dir/nginx"
  cat > "$dir/nginx/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location = /v1/messages {
      default_type application/json;
      return 202 '{"message_id":"01M8ZBENCH0000000000000000","status":"accepted"}';
    }
    location = /healthz { return 200 'ok'; }
  }
}
NGINX
  nginx -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" &
  pids+=($!)
  wait_http "http://127.0.0.1:$nginx_port/healthz"
}

# Starts `intercomm COMMAND` (run, gateway) on a free loopback port with ARGS,
# logging to $dir/LOG.log; sets port and server_pid once /healthz answers.
start_server() {  # LOG COMMAND ARGS...
  local log="$dir/$1.log" command=$2
  shift 2
  port=$(free_port)
  "$bin" "$command" --listen "127.0.0.1:$port" --secret "$secret" --log-level warn "$@" > "$log" 2>&1 &
  pids+=($!)
  server_pid=$!
  wait_http "http://127.0.0.1:$port/healthz"
}
