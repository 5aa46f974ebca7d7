#!/usr/bin/env bash
# Installs what intercomm needs to build and test, from Debian 12 packages only.
# Idempotent: installs nothing when everything is present.
set -euo pipefail

packages=(
  cmake ninja-build ccache g++ pkg-config python3
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  librabbitmq-dev librocksdb-dev libhiredis-dev libssl-dev
  libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev openssl
)
# Extra packages a caller needs on top (e.g. servers for the test run).
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
