#!/usr/bin/env bash
# A private Redis Cluster for tests: 3 masters with one replica each on
# loopback, each node with its own port and data dir (AOF, appendfsync always).
#   redis_cluster.sh start DIR          start it (or start its stopped nodes again), print its URL
#   redis_cluster.sh stop DIR           stop every node
#   redis_cluster.sh kill-node DIR PORT kill -9 one node
#   redis_cluster.sh start-node DIR PORT start one node again
set -euo pipefail

cmd=${1:?usage: redis_cluster.sh start|stop|kill-node|start-node DIR [PORT]}
dir=$(realpath -m "${2:?DIR required}")

# Six ports P, each with P+10000 (its cluster bus port) free too, both below
# the kernel's ephemeral range: a port in it can be taken by any outgoing
# connection between this check and the node's bind (seen in a parallel run).
free_ports() {
  python3 - <<'PY'
import random, socket
try:
    ephemeral_low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    ephemeral_low = 32768
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); return True
    except OSError:
        return False
    finally:
        s.close()
chosen = []
while len(chosen) < 6:
    port = random.randint(10000, max(10001, ephemeral_low - 10001))
    if port not in chosen and port + 10000 not in chosen and free(port) and free(port + 10000):
        chosen.append(port)
print("\n".join(map(str, chosen)))
PY
}

start_node() {
  local port=$1 node="$dir/$1"
  mkdir -p "$node"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$node" --daemonize yes \
    --pidfile "$node/redis.pid" --logfile "$node/redis.log" \
    --cluster-enabled yes --cluster-config-file "$node/nodes.conf" --cluster-node-timeout 2000 \
    --appendonly yes --appendfsync always --save "" --protected-mode yes
  for _ in $(seq 100); do
    redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  echo "redis_cluster.sh: node $port did not start; see $node/redis.log" >&2
  return 1
}

stop_node() {
  local node="$dir/$1"
  [[ -f "$node/redis.pid" ]] || return 0
  local pid
  pid=$(cat "$node/redis.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$node/redis.pid"
}

url() {
  local nodes
  nodes=$(sed 's/^/127.0.0.1:/' "$dir/ports" | paste -sd, -)
  echo "redis-cluster://$nodes"
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    fresh=0
    if [[ ! -f "$dir/ports" ]]; then
      free_ports > "$dir/ports"
      fresh=1
    fi
    while read -r port; do start_node "$port"; done < "$dir/ports"
    if ((fresh)); then
      redis-cli --cluster create $(sed 's/^/127.0.0.1:/' "$dir/ports") --cluster-replicas 1 --cluster-yes \
        > "$dir/create.log" 2>&1 || { cat "$dir/create.log" >&2; exit 1; }
    fi
    # Ready when every node sees the cluster as ok and every master has its replica.
    for _ in $(seq 300); do
      ok=1
      while read -r port; do
        redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
        info=$(redis-cli -p "$port" info replication 2>/dev/null || true)
        if grep -q 'role:master' <<< "$info"; then
          grep -q 'connected_slaves:1' <<< "$info" || ok=0
        fi
      done < "$dir/ports"
      ((ok)) && break
      sleep 0.1
    done
    ((ok)) || { echo "redis_cluster.sh: cluster did not become ok" >&2; exit 1; }
    url
    ;;
  stop)
    [[ -f "$dir/ports" ]] || exit 0
    while read -r port; do stop_node "$port"; done < "$dir/ports"
    ;;
  kill-node)
    port=${3:?PORT required}
    pid=$(cat "$dir/$port/redis.pid")
    kill -9 "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/$port/redis.pid"
    ;;
  start-node)
    start_node "${3:?PORT required}"
    ;;
  *)
    echo "usage: redis_cluster.sh start|stop|kill-node|start-node DIR [PORT]" >&2
    exit 2
    ;;
esac
