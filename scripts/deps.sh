#!/usr/bin/env bash
# Installs the Debian 12 packages Porter builds with, when any are missing,
# plus any named as arguments (scripts/fuzz.sh adds clang and libFuzzer's).
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config catch2 libfmt-dev nlohmann-json3-dev
          libsqlite3-dev libbenchmark-dev
          libpq-dev                        # the PostgreSQL store
          libcpp-httplib-dev libcli11-dev  # porter::http and the porter command
          "$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "porter: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "porter: missing packages: ${missing[*]}" >&2
  echo "porter: run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
