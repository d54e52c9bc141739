#!/bin/sh
# Usage: run.sh <compiler command> <include dir> <source> <expected message>
# The compiler command may be several words ("ccache c++").
# Passes when the source fails to compile and its first error is the
# static_assert with the expected text (mp's message comes before any other).
compiler=$1 include=$2 source=$3 expected=$4
# shellcheck disable=SC2086 # split on purpose
if output=$($compiler -std=c++20 -fsyntax-only -I"$include" "$source" 2>&1); then
  echo "FAIL: $source compiled, but it must not"
  exit 1
fi
first_error=$(printf '%s\n' "$output" | grep -m1 'error')
if ! printf '%s' "$first_error" | grep -q "$expected"; then
  echo "FAIL: the first error of $source is not: $expected"
  printf '%s\n' "$output" | head -20
  exit 1
fi
echo "ok: $source is refused first with: $expected"
