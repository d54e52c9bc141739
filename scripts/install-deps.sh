#!/usr/bin/env bash
# Installs the Debian packages mp needs, only those missing. Idempotent and
# non-interactive; a no-op (a few dpkg queries) when everything is there.
# Usage: scripts/install-deps.sh [extra-package ...] [--optional package ...]
# Extra packages are required like the base list. Optional ones (Open MPI for
# mp::mpi) are installed when missing and this runs as root; otherwise a note
# says how, and the build goes on without them (meson leaves that part out).
set -euo pipefail

required=(g++ make meson ninja-build pkg-config python3 libboost-dev libcereal-dev
          doctest-dev libssl-dev)
optional=()
while [ $# -gt 0 ]; do
  if [ "$1" = --optional ]; then
    shift
    optional+=("$@")
    break
  fi
  required+=("$1")
  shift
done

missing_of() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(missing_of "${required[@]}")
mapfile -t missing_optional < <(missing_of ${optional[@]+"${optional[@]}"})
[ ${#missing[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if [ ${#missing_optional[@]} -gt 0 ]; then
    echo "mp: optional packages missing, building without them (as root: apt-get install -y" \
      "${missing_optional[*]})" >&2
  fi
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "mp: not root; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
missing+=(${missing_optional[@]+"${missing_optional[@]}"})
echo "mp: installing missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
