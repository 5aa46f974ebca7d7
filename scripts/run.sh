#!/usr/bin/env bash
# A newcomer's first command: install what is missing, build, start `intercomm run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec build/release/intercomm run "$@"
