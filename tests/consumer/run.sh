#!/usr/bin/env bash
# Builds and runs tests/consumer against mp, as a subproject or installed.
# usage: run.sh subproject <mp source root> <scratch dir>
#        run.sh installed <mp source root> <scratch dir> <mp build dir>
# MP_CONSUMER_SANITIZE: the -Db_sanitize of the mp build, which the consumer
# must share to load a sanitized libmp.
set -euo pipefail
mode=$1 source_root=$2 scratch=$3
options=(-Db_sanitize="${MP_CONSUMER_SANITIZE:-none}" -Db_lundef=false)
rm -rf "$scratch"
mkdir -p "$scratch"
cp -r "$source_root/tests/consumer" "$scratch/project"
cd "$scratch"
if [ "$mode" = subproject ]; then
  mkdir project/subprojects
  ln -s "$source_root" project/subprojects/mp
  meson setup build project "${options[@]}" >/dev/null
  # Only bench/ uses Boost: a subproject must not even look for it.
  if grep -i 'boost' build/meson-logs/meson-log.txt; then
    echo "mp as a subproject looked for Boost (above); only bench/ may"
    exit 1
  fi
else
  # Installed into a staging root; pkg-config's sysroot points the flags of
  # mp.pc (prefix /usr/local) into it.
  meson install -C "$4" --no-rebuild --quiet --destdir "$scratch/root"
  pc_file=$(find "$scratch/root" -name mp.pc)
  [ -n "$pc_file" ] || { echo "mp.pc was not installed"; exit 1; }
  export PKG_CONFIG_PATH=$(dirname "$pc_file") PKG_CONFIG_SYSROOT_DIR="$scratch/root"
  meson setup build project "${options[@]}" -Dinstalled=true >/dev/null
  export LD_LIBRARY_PATH=$(dirname "$(dirname "$pc_file")")
fi
meson compile -C build >/dev/null
output=$(timeout 120 build/consumer)
echo "$output"
[[ "$output" == "hello from Process-1 42 9 ok" ]]
