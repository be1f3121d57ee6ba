#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS
# (default 300): the long run of what CI runs for a few seconds.
#   tools/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
BUILD=${SAMPLEFS_FUZZ_BUILD_DIR:-build/fuzz}
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAMPLEFS_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
SAMPLEFS_FUZZ_SECONDS=${1:-300} ctest --test-dir "$BUILD" --output-on-failure -L fuzz
