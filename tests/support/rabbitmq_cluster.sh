#!/usr/bin/env bash
# A private 3-node RabbitMQ cluster on loopback, each node a tests/support/rabbitmq.sh
# node in DIR/node<i>, sharing one epmd and one cookie.
#   rabbitmq_cluster.sh start DIR        start the cluster (or its stopped nodes), print the AMQP URLs, comma-separated
#   rabbitmq_cluster.sh stop DIR         stop every node
#   rabbitmq_cluster.sh kill-node DIR I  kill -9 node I (1-3)
#   rabbitmq_cluster.sh start-node DIR I start node I again (it rejoins)
set -euo pipefail
cd "$(dirname "$0")/../.."

cmd=${1:?usage: rabbitmq_cluster.sh start|stop|kill-node|start-node DIR [I]}
dir=$(realpath -m "${2:?DIR required}")
node=tests/support/rabbitmq.sh

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_node() {  # I
  RABBITMQ_TEST_EPMD_PORT=$(cat "$dir/epmd_port") RABBITMQ_TEST_COOKIE=$(cat "$dir/cookie") \
    "$node" start "$dir/node$1"
}

node_name() {  # I
  grep '^RABBITMQ_NODENAME=' "$dir/node$1/env" | cut -d= -f2
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    fresh=0
    if [[ ! -f "$dir/epmd_port" ]]; then
      fresh=1
      free_port > "$dir/epmd_port"
      head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/cookie"
    fi
    urls=()
    for i in 1 2 3; do urls+=("$(start_node "$i")"); done
    if ((fresh)); then
      for i in 2 3; do
        "$node" ctl "$dir/node$i" stop_app > /dev/null
        "$node" ctl "$dir/node$i" join_cluster "$(node_name 1)" > /dev/null
        "$node" ctl "$dir/node$i" start_app > /dev/null
      done
    fi
    (IFS=,; echo "${urls[*]}")
    ;;
  stop)
    for i in 3 2 1; do RABBITMQ_TEST_KEEP_EPMD=1 "$node" stop "$dir/node$i" || true; done
    [[ -f "$dir/epmd_port" ]] && { epmd -port "$(cat "$dir/epmd_port")" -kill > /dev/null 2>&1 || true; }
    ;;
  kill-node)
    "$node" kill "$dir/node${3:?node 1-3}"
    ;;
  start-node)
    start_node "${3:?node 1-3}" > /dev/null
    ;;
  *)
    echo "usage: rabbitmq_cluster.sh start|stop|kill-node|start-node DIR [I]" >&2
    exit 2
    ;;
esac
