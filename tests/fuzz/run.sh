#!/usr/bin/env bash
# The libFuzzer targets: builds build/fuzz with clang (libFuzzer, ASan and
# UBSan), then runs each target for a bounded time on a copy of its seed
# corpus (tests/fuzz/corpus/<target>/). Fails on any crash, leak, timeout or
# out-of-memory; what failed is kept in build/fuzz/findings/ and named here.
#   tests/fuzz/run.sh [--seconds N] [--long] [TARGET...]
# Default: 60 s per target (CI), two at a time. --long: 15 minutes per target.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh clang libclang-rt-14-dev libhiredis-dev

seconds=60
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --long) seconds=900; shift ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(jwt_fuzz jsonrpc_fuzz message_fuzz journal_fuzz redis_reply_fuzz http_fuzz stream_fuzz)
((${#targets[@]})) || targets=("${all[@]}")

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/intercomm-ccache}
# Paths relative to the checkout in the cache key: a clone elsewhere reuses
# what an earlier build compiled (the sanitized build is the slowest to make).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
# -O1 and line tables only: what libFuzzer runs best with, and the fastest to compile.
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" \
  -DCMAKE_CXX_COMPILER=clang++ -DINTERCOMM_FUZZ=ON > /dev/null
cmake --build build/fuzz --target fuzzers -j "${INTERCOMM_JOBS:-2}"

work=build/fuzz/work
findings=build/fuzz/findings
rm -rf "$work" "$findings"
mkdir -p "$findings"
# One target at a time per core.
run_target() {  # TARGET
  local target=$1 flags
  mkdir -p "$work/$target"
  flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
         -artifact_prefix="$findings/$target-")
  # The gateway targets serve from threads that outlive one input: their
  # leaks are checked when the process ends, not after each input.
  [[ $target == http_fuzz || $target == stream_fuzz ]] && flags+=(-detect_leaks=0)
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "build/fuzz/fuzz/$target" "${flags[@]}" "$work/$target" "tests/fuzz/corpus/$target" \
      > "$work/$target.log" 2>&1; then
    echo "fuzz: $target ok for ${seconds} s: $(grep -E '^stat::number_of_executed_units' "$work/$target.log" |
      awk '{print $2}') inputs"
  else
    echo "fuzz: $target FAILED; the log is $work/$target.log, the input in $findings/:" >&2
    ls "$findings" >&2 || true
    tail -40 "$work/$target.log" >&2
    return 1
  fi
}

status=0
pids=()
for target in "${targets[@]}"; do
  run_target "$target" &
  pids+=($!)
  if ((${#pids[@]} >= ${INTERCOMM_JOBS:-2})); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
