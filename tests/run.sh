#!/usr/bin/env bash
# Install, build and run the whole dpool test suite (ctest).
# Runs as root in CI: the multi-host tests create their own network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh python3 iproute2 procps valgrind parallel
ctest --test-dir "${DPOOL_BUILD_DIR:-build}" --output-on-failure -j 2 "$@"
