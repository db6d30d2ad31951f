#!/usr/bin/env bash
# Install what dpool needs from Debian's packages (only what is missing) and
# build it into build/ (programs in build/bin, libraries in build/lib).
# Usage: bash deploy/setup.sh [extra packages...]
#   DPOOL_BUILD_DIR   build folder (default: build)
#   DPOOL_CMAKE_ARGS  extra cmake arguments (e.g. -DDPOOL_SANITIZE=ON)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc make cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libmicrohttpd-dev "$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

build="${DPOOL_BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${DPOOL_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)" >&2
