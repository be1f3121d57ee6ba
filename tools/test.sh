#!/usr/bin/env bash
# The README's test command (and CI's, via .ci/run): installs what is
# missing, then from scratch
#   1. builds with gcc, warnings as errors, and runs every test with ctest
#      (unit, samplectl, mounted, crash/differential stress);
#   2. builds with ASan + UBSan and runs the unit and mounted tests again;
#   3. builds the libFuzzer targets with clang and runs each for a short,
#      fixed time (SAMPLEFS_FUZZ_SECONDS, default 20).
# Set SAMPLEFS_SKIP_SANITIZE=1 or SAMPLEFS_SKIP_FUZZ=1 to skip a stage.
# A throwaway PostgreSQL cluster (tools/pg-test-cluster.sh: initdb as an
# unprivileged user into a temporary directory, a Unix socket only) runs
# for the whole script, so the catalog suite and the mounted suites run on
# PostgreSQL too (SAMPLEFS_TEST_PG_URL); it is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
ROOT=${SAMPLEFS_BUILD_DIR:-build/ci}
JOBS=$(nproc)
rm -rf "$ROOT"
t0=$SECONDS
eval "$(tools/pg-test-cluster.sh start)"
trap 'tools/pg-test-cluster.sh stop "${SAMPLEFS_TEST_PG_DIR:-}"' EXIT
stage() { printf '\n=== %s (%ds so far) ===\n' "$*" $((SECONDS - t0)); }

stage "build: gcc, -Werror"
cmake -S . -B "$ROOT/main" -DCMAKE_BUILD_TYPE=Release -DSAMPLEFS_WERROR=ON
cmake --build "$ROOT/main" -j"$JOBS"
stage "tests: all"
ctest --test-dir "$ROOT/main" --output-on-failure --timeout 900 -j2

if [ "${SAMPLEFS_SKIP_SANITIZE:-0}" != 1 ]; then
  stage "build: ASan + UBSan"
  cmake -S . -B "$ROOT/asan" -DCMAKE_BUILD_TYPE=Debug -DSAMPLEFS_SANITIZE=ON \
        -DSAMPLEFS_WERROR=ON -DSAMPLEFS_BENCH=OFF
  cmake --build "$ROOT/asan" -j"$JOBS" --target catalog_test fs_test samplefs samplectl
  stage "tests: unit and mounted under ASan + UBSan"
  # detect_leaks: the daemon must not leak over a mount/unmount cycle.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$ROOT/asan" --output-on-failure --timeout 900 -j2 -L 'unit|mounted' -LE postgres
fi

if [ "${SAMPLEFS_SKIP_FUZZ:-0}" != 1 ]; then
  stage "build: libFuzzer targets (clang)"
  CC=clang CXX=clang++ cmake -S . -B "$ROOT/fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAMPLEFS_FUZZ=ON
  cmake --build "$ROOT/fuzz" -j"$JOBS"
  stage "fuzzing: ${SAMPLEFS_FUZZ_SECONDS:-20}s per target"
  SAMPLEFS_FUZZ_SECONDS=${SAMPLEFS_FUZZ_SECONDS:-20} ctest --test-dir "$ROOT/fuzz" -V -L fuzz \
    | grep -E "executed_units|tests passed|Passed|Failed|reproducer"
fi
stage "all stages passed"
