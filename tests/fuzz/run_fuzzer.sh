#!/usr/bin/env bash
# run_fuzzer.sh BINARY CORPUS_DIR [SECONDS]: runs a libFuzzer target on a
# copy of its seed corpus for SECONDS (default $SAMPLEFS_FUZZ_SECONDS, or 20) and prints the number of
# executions. New inputs go to a scratch corpus, not the source tree.
set -euo pipefail
bin=$1; seeds=$2; secs=${3:-${SAMPLEFS_FUZZ_SECONDS:-20}}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -d "$seeds" ] && cp -r "$seeds/." "$work/corpus/"
"$bin" -max_total_time="$secs" -max_len=4096 -rss_limit_mb=1024 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" 2>"$work/log" || {
  tail -50 "$work/log"
  for a in "$work"/crash-* "$work"/leak-* "$work"/oom-*; do
    [ -e "$a" ] && { echo "reproducer: $(basename "$a") ($(xxd -p "$a" | head -c 400))"; }
  done
  exit 1
}
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/log" | sed "s|^|$(basename "$bin"): |"
