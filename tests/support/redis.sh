#!/usr/bin/env bash
# A private standalone Redis for tests: its own port and data dir, AOF with
# appendfsync always.
#   redis.sh start DIR [PORT]   start (or restart) the server kept in DIR, print its URL
#   redis.sh stop DIR           stop it
#   redis.sh kill DIR           kill -9 it (for failure tests)
set -euo pipefail

cmd=${1:?usage: redis.sh start|stop|kill DIR [PORT]}
dir=$(realpath -m "${2:?DIR required}")

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [[ -f "$dir/port" ]] || echo "${3:-$(free_port)}" > "$dir/port"
    port=$(cat "$dir/port")
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
      --appendonly yes --appendfsync always --save "" --protected-mode yes
    for _ in $(seq 100); do
      redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
      sleep 0.1
    done
    redis-cli -p "$port" ping | grep -q PONG || { echo "redis.sh: server did not start; see $dir/redis.log" >&2; exit 1; }
    echo "redis://127.0.0.1:$port"
    ;;
  stop)
    [[ -f "$dir/redis.pid" ]] || exit 0
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/redis.pid"
    ;;
  kill)
    pid=$(cat "$dir/redis.pid")
    kill -9 "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/redis.pid"
    ;;
  *)
    echo "usage: redis.sh start|stop|kill DIR [PORT]" >&2
    exit 2
    ;;
esac
