#!/usr/bin/env bash
# scripts/fuzz.sh [seconds]: builds the libFuzzer targets of tests/fuzz with
# clang, ASan and UBSan, and runs each for `seconds` (Default: 30) from its
# seed corpus in tests/fuzz/corpus/<name>/. New inputs go to the build
# directory, never into the tree; a crash leaves its input in
# <build>/artifacts/ and fails the script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
dir=${PORTER_FUZZ_BUILD_DIR:-$root/build/fuzz}

bash "$root/scripts/deps.sh" clang libclang-rt-14-dev
CC=clang CXX=clang++ bash "$root/scripts/build.sh" "$dir" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTER_SANITIZE=address,undefined -DPORTER_BUILD_FUZZERS=ON \
  -DPORTER_BUILD_TESTS=OFF -DPORTER_BUILD_EXAMPLES=OFF -DPORTER_BUILD_BENCHMARKS=OFF -DPORTER_INSTALL=OFF

passed=0
mkdir -p "$dir/artifacts"
for seeds in "$root"/tests/fuzz/corpus/*/; do
  name=$(basename "$seeds")
  fuzzer="$dir/tests/fuzz/porter_fuzz_$name"
  [ -x "$fuzzer" ] || { echo "fuzz: no target for corpus $name (PORTER_WITH_SQLITE off?)"; continue; }
  mkdir -p "$dir/corpus/$name"
  echo "fuzz: $name for ${seconds}s"
  # -timeout: one input running 10 s is a hang; the last lines say how far it got.
  "$fuzzer" "$dir/corpus/$name" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$dir/artifacts/$name-" -print_final_stats=1 >"$dir/$name.log" 2>&1 ||
    { tail -n 60 "$dir/$name.log"; echo "fuzz: $name FAILED: input in $dir/artifacts/"; exit 1; }
  grep -E "^(Done|stat::number_of_executed_units)" "$dir/$name.log" || true
  passed=$((passed + 1))
done
echo "fuzz: $passed passed, 0 failed"
