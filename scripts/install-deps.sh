#!/usr/bin/env bash
# Installs the Debian packages mp needs, only those missing. Idempotent and
# non-interactive; a no-op (a few dpkg queries) when everything is there.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail

packages=(g++ make meson ninja-build pkg-config python3 libboost-dev libcereal-dev
          doctest-dev libssl-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "mp: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "mp: not root; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
