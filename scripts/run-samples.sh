#!/usr/bin/env bash
# Runs every sample program in the build directory, one after the other.
set -euo pipefail
build=${1:-build}
status=0
while read -r sample; do
  [ -n "$sample" ] || continue
  echo "=== samples/$sample"
  "$build/samples/$sample" || { echo "!!! $sample failed with status $?"; status=1; }
  echo
done < <(sed -n 's/^ *\x27\([a-z_]*\)\x27 *: *\[.*/\1/p' samples/meson.build)
exit $status
