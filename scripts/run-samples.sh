#!/usr/bin/env bash
# Runs every sample program in the build directory, one after the other.
# usage: run-samples.sh [build dir]
#        run-samples.sh --targets   (their meson target names, for `make demo`)
set -euo pipefail
samples() { sed -n 's/^ *\x27\([a-z_]*\)\x27 *: *\[.*/\1/p' samples/meson.build; }
if [ "${1:-}" = --targets ]; then
  samples | sed 's|^|samples/|'
  exit 0
fi
build=${1:-build}
status=0
while read -r sample; do
  [ -n "$sample" ] || continue
  echo "=== samples/$sample"
  "$build/samples/$sample" || { echo "!!! $sample failed with status $?"; status=1; }
  echo
done < <(samples)
exit $status
