#!/usr/bin/env bash
# A newcomer's second command (and CI's only one): install, build, run every test,
# in the normal build and in the sanitizer (ASan+UBSan) build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

status=0
for kind in release asan; do
  echo "== build: $kind"
  scripts/build.sh "$kind"
  echo "== test: $kind"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "build/$kind" --output-on-failure -j 2 || status=1
done
exit $status
