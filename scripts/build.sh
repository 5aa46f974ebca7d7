#!/usr/bin/env bash
# Configures and builds one build tree: build.sh release|asan [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-release}
shift || true
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)    flags=(-DCMAKE_BUILD_TYPE=Debug -DINTERCOMM_SANITIZE=ON) ;;
  *) echo "build.sh: unknown build kind '$kind' (release|asan)" >&2; exit 2 ;;
esac
[[ -n "${CI:-}" ]] && flags+=(-DINTERCOMM_WERROR=ON)

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/intercomm-ccache}
cmake -S . -B "build/$kind" -G Ninja "${flags[@]}" "$@" >/dev/null
cmake --build "build/$kind" -j "${INTERCOMM_JOBS:-2}"
