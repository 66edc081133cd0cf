#!/usr/bin/env bash
# Builds Porter and runs the demo on the embedded default store (a SQLite file).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh" "$root/build/demo" -DCMAKE_BUILD_TYPE=Release \
  -DPORTER_BUILD_TESTS=OFF -DPORTER_BUILD_BENCHMARKS=OFF >/dev/null
exec "$root/build/demo/examples/porter_demo" "$@"
