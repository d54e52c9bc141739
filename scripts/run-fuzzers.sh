#!/usr/bin/env bash
# Runs every libFuzzer target in a build directory for a given time each.
# Usage: scripts/run-fuzzers.sh <build-dir> <seconds-per-target> [target ...]
# A crash, a timeout (a hang) or an allocation over the malloc limit stops a
# target and leaves its input in <build-dir>/fuzz-artifacts/; keep each such
# input under fuzz/regressions/<target>/ so that the test suite replays it.
set -uo pipefail
build=$1 seconds=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(cd "$build/fuzz" && find . -maxdepth 1 -type f -executable -name 'fuzz_*' -printf '%f\n' | sort))
mkdir -p "$build/fuzz-artifacts"
status=0
for target in "${targets[@]}"; do
  corpus="$build/fuzz-corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
  echo "=== $target for ${seconds}s"
  if "$build/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
       -malloc_limit_mb=1024 -print_final_stats=1 \
       -artifact_prefix="$build/fuzz-artifacts/$target-" "$corpus" "${seeds[@]}" \
       > "$build/fuzz-artifacts/$target.log" 2>&1; then
    grep -E "stat::number_of_executed_runs|stat::peak_rss_mb" "$build/fuzz-artifacts/$target.log" | tr '\n' ' '
    echo "-> clean"
  else
    echo "-> FOUND A PROBLEM: see $build/fuzz-artifacts/$target.log"
    tail -30 "$build/fuzz-artifacts/$target.log"
    status=1
  fi
done
exit $status
