#!/usr/bin/env bash
# Builds Porter and starts the seeds' scenario (an LMS's imports, transcodes,
# reports, catalog syncs and digests on a SQLite job file) with the Background
# Jobs page on localhost. It prints the page's address and the sign-in tokens
# of a superadmin and of a power user; Ctrl-C stops it. Arguments go to the
# demo (--port N, --memory, --keep, --admin-token T, --user-token T).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh" "$root/build/demo" -DCMAKE_BUILD_TYPE=Release \
  -DPORTER_BUILD_TESTS=OFF -DPORTER_BUILD_BENCHMARKS=OFF >/dev/null
exec "$root/build/demo/examples/porter_jobs_page" "$@"
