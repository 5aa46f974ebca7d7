#!/usr/bin/env bash
# A private RabbitMQ node for tests: its own node name, ports and data dir.
#   rabbitmq.sh start DIR [AMQP_PORT]   start (or restart) the node kept in DIR, print its AMQP URL
#   rabbitmq.sh stop DIR                stop it cleanly (and its epmd)
#   rabbitmq.sh kill DIR                kill -9 the node (for failure tests)
#   rabbitmq.sh pause|resume DIR        SIGSTOP / SIGCONT the node (a broker that hangs)
#   rabbitmq.sh ctl DIR ARGS...         rabbitmqctl on the node
# Ports are chosen free on 127.0.0.1 the first time and kept in DIR/env. The
# nodes of a cluster share an epmd and a cookie: RABBITMQ_TEST_EPMD_PORT and
# RABBITMQ_TEST_COOKIE, when set at the first start (rabbitmq_cluster.sh).
set -euo pipefail

cmd=${1:?usage: rabbitmq.sh start|stop|kill DIR [PORT]}
dir=$(realpath -m "${2:?DIR required}")

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

as_node_user() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u rabbitmq -- env HOME="$dir" "$@"
  else
    env HOME="$dir" "$@"
  fi
}

load_env() {
  # shellcheck disable=SC1091
  source "$dir/env"
  export RABBITMQ_NODENAME RABBITMQ_NODE_IP_ADDRESS RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT \
    RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE RABBITMQ_PID_FILE RABBITMQ_ENABLED_PLUGINS_FILE \
    ERL_EPMD_PORT RABBITMQ_CONFIG_FILE RABBITMQ_ADVANCED_CONFIG_FILE RABBITMQ_CONF_ENV_FILE \
    ERL_EPMD_ADDRESS RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS RABBITMQ_CTL_ERL_ARGS
}

ctl() { as_node_user /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" "$@"; }

case "$cmd" in
  start)
    mkdir -p "$dir/mnesia" "$dir/log"
    if [[ ! -f "$dir/env" ]]; then
      port=${3:-$(free_port)}
      cat > "$dir/env" <<ENV
RABBITMQ_NODENAME=intercomm_test_${port}@localhost
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=${port}
RABBITMQ_DIST_PORT=$(free_port)
ERL_EPMD_PORT=${RABBITMQ_TEST_EPMD_PORT:-$(free_port)}
RABBITMQ_MNESIA_BASE=$dir/mnesia
RABBITMQ_LOG_BASE=$dir/log
RABBITMQ_PID_FILE=$dir/rabbitmq.pid
RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
RABBITMQ_CONFIG_FILE=$dir/rabbitmq
RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
ENV
      # Small disk-free limit so shared build machines do not trip the disk alarm.
      printf 'disk_free_limit.absolute = 50MB\nloopback_users = none\n' > "$dir/rabbitmq.conf"
      : > "$dir/rabbitmq-env.conf"
      # RabbitMQ needs an Erlang cookie of its own in HOME=$dir.
      if [[ -n ${RABBITMQ_TEST_COOKIE:-} ]]; then
        printf '%s' "$RABBITMQ_TEST_COOKIE" > "$dir/.erlang.cookie"
      else
        head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/.erlang.cookie"
      fi
      chmod 400 "$dir/.erlang.cookie"
    fi
    # The MTA's ordered lanes need the consistent-hash exchange (bundled with RabbitMQ).
    echo "[rabbitmq_consistent_hash_exchange]." > "$dir/enabled_plugins"
    [[ $(id -u) -eq 0 ]] && chown -R rabbitmq:rabbitmq "$dir"
    load_env
    # Every connection and queue segment is a file: the default 1024 runs out
    # over a long test run, and then the node accepts no connection at all.
    # (runuser's PAM session resets the limit: raise it inside.)
    as_node_user sh -c 'ulimit -n "$(ulimit -Hn)"; exec /usr/lib/rabbitmq/bin/rabbitmq-server' \
      > "$dir/log/stdout.log" 2>&1 &
    if ! timeout 120 bash -c "until [[ -s '$RABBITMQ_PID_FILE' ]]; do sleep 0.2; done"; then
      echo "rabbitmq.sh: node did not write its pid file; see $dir/log" >&2
      exit 1
    fi
    if ! ctl --timeout 120 await_startup > /dev/null; then
      echo "rabbitmq.sh: node did not start; see $dir/log" >&2
      exit 1
    fi
    echo "amqp://guest:guest@127.0.0.1:${RABBITMQ_NODE_PORT}/"
    ;;
  stop)
    [[ -f "$dir/env" ]] || exit 0
    load_env
    pid=$(cat "$RABBITMQ_PID_FILE" 2>/dev/null || true)
    ctl stop > /dev/null 2>&1 || true
    if [[ -n "$pid" ]]; then
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    # A cluster's epmd is shared: the cluster script stops it after the last node.
    [[ -z ${RABBITMQ_TEST_KEEP_EPMD:-} ]] && { epmd -port "$ERL_EPMD_PORT" -kill > /dev/null 2>&1 || true; }
    ;;
  ctl)
    load_env
    shift 2
    ctl "$@"
    ;;
  pause|resume)  # SIGSTOP / SIGCONT: a node that hangs without closing a connection
    load_env
    kill "-$([[ $cmd == pause ]] && echo STOP || echo CONT)" "$(cat "$RABBITMQ_PID_FILE")"
    ;;
  kill)
    load_env
    pid=$(cat "$RABBITMQ_PID_FILE")
    kill -9 "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$RABBITMQ_PID_FILE"
    ;;
  *)
    echo "usage: rabbitmq.sh start|stop|kill|pause|resume|ctl DIR [PORT|ARGS...]" >&2
    exit 2
    ;;
esac
