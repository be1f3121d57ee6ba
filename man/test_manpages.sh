#!/bin/sh
# Renders the built manual pages with man -l (as `man` would show them once
# installed) and checks what they must say. Usage: test_manpages.sh PAGE...
set -eu
command -v man >/dev/null 2>&1 || { echo "SKIP: man is not installed (man-db)"; exit 77; }
fail=0
check() {  # page needle...
  page=$1; shift
  out=$(MANPAGER=cat MANWIDTH=100 man -l -P cat "$page" 2>&1) || { echo "FAIL: man -l $page: $out"; fail=1; return; }
  for n in "$@"; do
    printf '%s' "$out" | grep -qF -- "$n" || { echo "FAIL: $page lacks '$n'"; fail=1; }
  done
  echo "ok: $page ($(printf '%s\n' "$out" | wc -l) lines)"
}
for page in "$@"; do
  case "$page" in
    *samplefs.8) check "$page" "SAMPLEFS(8)" "NAME" "samplefs - mount a samplefs" "SYNOPSIS" "-o sync_close" \
                       "-o nonempty" "QUERIES" "samplectl(1)" "0.1.0" ;;
    *samplectl.1) check "$page" "SAMPLECTL(1)" "samplectl - create, import, query" "--config" "import" \
                        "query" "fsck" "QUERY EXPRESSIONS" "EXAMPLES" "samplefs(8)" "0.1.0" ;;
  esac
done
exit $fail
