#!/usr/bin/env bash
# Builds Porter with its tests and runs the whole suite (unit, conformance per
# store, engine, admin, SQLite multi-process and crash tests, examples, consumer
# builds, the README's code). A development build: warnings are errors here
# (not in a user's own build of Porter). Extra arguments go to cmake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${PORTER_BUILD_DIR:-$root/build/test}
# What only the tests use: a PostgreSQL server they start themselves, promtool (package prometheus)
# for /metrics, the page in chromium driven by node + npm (npm only when missing: NodeSource's nodejs
# ships its own and conflicts with Debian's).
bash "$root/scripts/deps.sh" postgresql prometheus chromium nodejs $(command -v npm >/dev/null || echo npm)
bash "$root/scripts/build.sh" "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTER_WARNINGS_AS_ERRORS=ON "$@"
# PORTER_CTEST_ARGS: extra ctest arguments (CI's sanitizer runs pass a retry policy).
read -r -a ctest_extra <<< "${PORTER_CTEST_ARGS:-}"
ctest --test-dir "$dir" -j "$(nproc)" --output-on-failure "${ctest_extra[@]}"
