#!/usr/bin/env bash
# Installs every Debian package sluice needs to build, test and benchmark.
# Idempotent and quiet when everything is present. Uses sudo when not root.
#
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also the benchmark peers (nginx, varnish, wrk, ...)
#
# Boost 1.81 is picked explicitly: Debian 12's default Boost is 1.74, whose -dev packages
# conflict with 1.81's, and whose Asio does not build coroutines with GCC 12 as is.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-system1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libboost-context1.81-dev
  libssl-dev libzstd-dev zlib1g-dev libsqlite3-dev sqlite3 libpq-dev libhiredis-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev libconcurrentqueue-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang-format clang-tidy
  curl procps python3
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(nginx-light libnginx-mod-nchan varnish wrk hyperfine redis-server postgresql)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A stale or missing package list is the common cause of "Unable to locate package".
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
