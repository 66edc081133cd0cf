#!/usr/bin/env bash
# tests/consumer/run.sh <find_package|add_subdirectory> <porter source dir> <porter build dir> <work dir>
# Builds and runs the tiny consumer app the way a user would.
set -euo pipefail
mode=$1 src=$2 build=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
case "$mode" in
  find_package)
    cmake --install "$build" --prefix "$work/prefix" >/dev/null
    cmake -S "$src/tests/consumer/find_package" -B "$work/app" -G Ninja "${launcher[@]}" \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null ;;
  add_subdirectory)
    cmake -S "$src/tests/consumer/add_subdirectory" -B "$work/app" -G Ninja "${launcher[@]}" \
      -DPORTER_SOURCE_DIR="$src" >/dev/null ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
cmake --build "$work/app" -j "$(nproc)" >/dev/null
"$work/app/app"
