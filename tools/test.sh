#!/usr/bin/env bash
# The README's test command: installs what is missing, builds from scratch
# with warnings as errors, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
BUILD=${SAMPLEFS_BUILD_DIR:-build/ci}
rm -rf "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAMPLEFS_WERROR=ON
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure --timeout 600 -j2
