#!/usr/bin/env bash
# Runs the samplefs daemon under valgrind (memcheck) for one whole mount
# session and reports memory errors and leaks:
#
#   mount (samplefs -f under valgrind) -> populate a small catalog through
#   the mount (mkdir, cp, ln -s, setfattr, mv, rm; labellings with sqlite3
#   while mounted) -> a full find -> read and cmp every file in every view
#   -> ls -lR, getfattr -R, sidecars, status.json, lookups that fail ->
#   fusermount3 -u -> valgrind's exit status.
#
# usage: tools/valgrind-check.sh DAEMON [WORKDIR]
#   DAEMON   the samplefs binary to check (e.g. build/rd/mount/samplefs);
#            this script builds nothing. A RelWithDebInfo or Debug build
#            gives readable stacks.
#   WORKDIR  where catalog, store, mount point and logs go (default: a new
#            temporary directory, removed when the check passes).
# env:
#   VALGRIND_EXTRA  more valgrind options, e.g. "--gen-suppressions=all"
#
# Exits 0 when valgrind found no errors and no definite or indirect leaks,
# 1 when it did or the session failed (the report is printed and kept in
# WORKDIR/valgrind.log), 2 on a usage error, 77 (ctest's "skipped") when
# valgrind, FUSE or a tool is missing. Takes 20-60 s: memcheck slows the
# daemon down some 20-50 times. ctest runs it as valgrind_check (label
# valgrind; `ctest -LE valgrind` leaves it out).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
DAEMON=$(realpath "$1")
[[ -x "$DAEMON" ]] || { echo "valgrind-check: $1 is not an executable" >&2; exit 2; }
for tool in valgrind fusermount3 setfattr getfattr cmp; do
  command -v "$tool" >/dev/null || { echo "valgrind-check: skipped, $tool is missing" >&2; exit 77; }
done
[[ -e /dev/fuse ]] || { echo "valgrind-check: skipped, /dev/fuse is missing" >&2; exit 77; }

if [[ $# -eq 2 ]]; then
  W=$(realpath -m "$2"); mkdir -p "$W"; KEEP=1
else
  W=$(mktemp -d /tmp/samplefs-valgrind.XXXXXX); KEEP=0
fi
MNT=$W/mnt SRC=$W/src LOG=$W/valgrind.log
mkdir -p "$MNT" "$SRC"
printf 'catalog = %s\nstore = %s\nlog_level = info\n' "$W/catalog.db" "$W/store" >"$W/samplefs.conf"

mounted() { grep -qs " $(realpath "$MNT") " /proc/self/mounts; }
VG_PID=
cleanup() {
  if [[ -n "$VG_PID" ]] && kill -0 "$VG_PID" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
    wait "$VG_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'echo; echo "valgrind-check: FAILED at line $LINENO (work dir $W kept)"' ERR

step() { printf '  %-58s' "$1"; }
ok() { printf 'ok\n'; }

# --- source data: a PYME series, an OME-Zarr tree, a Micro-Manager folder
head -c 3145851 /dev/urandom >"$SRC/cell01.h5"
head -c 204801 /dev/urandom >"$SRC/cell01.h5r"
printf 'x_nm,y_nm\n1.5,2.5\n' >"$SRC/cell01_locs.csv"
mkdir -p "$SRC/cell02.zarr/0/0/0/0/0" "$SRC/Pos0"
printf '{"zarr_format": 2}\n' >"$SRC/cell02.zarr/.zgroup"
for c in 0 1; do head -c 8192 /dev/urandom >"$SRC/cell02.zarr/0/0/0/0/0/$c"; done
for t in 0 1 2 3; do head -c 65536 /dev/urandom >"$SRC/Pos0/img_channel000_position000_time00000000${t}_z000.tif"; done
printf '{"Summary": {}}\n' >"$SRC/Pos0/metadata.txt"
: >"$SRC/acquisition.log"

echo "valgrind-check: $DAEMON (work dir $W)"
step "mount under valgrind"
# shellcheck disable=SC2086
valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30 \
  --log-file="$LOG" ${VALGRIND_EXTRA:-} \
  "$DAEMON" --config "$W/samplefs.conf" "$MNT" -f -o create >"$W/samplefs.log" 2>&1 &
VG_PID=$!
for _ in $(seq 1200); do
  mounted && break
  kill -0 "$VG_PID" 2>/dev/null || { echo "FAILED: the daemon exited"; cat "$W/samplefs.log" "$LOG"; exit 1; }
  sleep 0.1
done
mounted || { echo "FAILED: not mounted after 120 s"; exit 1; }
ok

step "populate: mkdir, cp -a, ln -s, setfattr, mv, rm"
mkdir "$MNT/species/HeLa" "$MNT/species/Rat-Wistar" "$MNT/dyes/A647" "$MNT/dyes/A488"
setfattr -n user.samplefs.long_name -v "Alexa Fluor 647" "$MNT/dyes/A647"
mkdir "$MNT/species/HeLa/slides/HeLa-P12-s01" "$MNT/species/Rat-Wistar/slides/RW07-LV-s01"
mkdir "$MNT/slides/HeLa-P12-s01/images/cell01" "$MNT/slides/RW07-LV-s01/images/cell01"
F1=$MNT/slides/HeLa-P12-s01/images/cell01/files
F2=$MNT/slides/RW07-LV-s01/images/cell01/files
cp -a "$SRC/." "$F1/"
cp "$SRC/cell01.h5" "$F2/z-stack 1 (Zelle α).tif"
ln -s cell01.h5 "$F1/latest.h5"
setfattr -n user.xdg.tags -v good,dstorm "$MNT/slides/HeLa-P12-s01"
setfattr -n user.xdg.comment -v "fixed 4% PFA" "$MNT/slides/HeLa-P12-s01"
setfattr -n user.objective -v "60x/1.49 oil" "$MNT/slides/HeLa-P12-s01"
setfattr -n user.xdg.tags -v best "$MNT/slides/HeLa-P12-s01/images/cell01"
setfattr -n user.xdg.tags -v checked "$F1/Pos0/metadata.txt"
setfattr -n user.xdg.tags -v good "$F2/z-stack 1 (Zelle α).tif"
echo "frame,x,y" >"$F1/extra.csv"
echo "0,1,2" >>"$F1/extra.csv"
mv "$F1/extra.csv" "$F1/Pos0/extra.csv"
rm "$F1/Pos0/extra.csv"
if command -v sqlite3 >/dev/null; then
  sqlite3 "$W/catalog.db" "PRAGMA busy_timeout = 10000;
    INSERT INTO labelling(slide_id, structure, dye_id)
    SELECT s.id, 'tubulin', d.id FROM slide s, dye d WHERE s.reference = 'HeLa-P12-s01' AND d.short_name = 'A647';
    INSERT INTO labelling(slide_id, structure, dye_id)
    SELECT s.id, 'RyR', d.id FROM slide s, dye d WHERE s.reference = 'RW07-LV-s01' AND d.short_name = 'A488';" >/dev/null
  sleep 1.5  # the kernel may cache listings for a second
fi
ok

step "find over the whole mount"
N=$(find "$MNT" | wc -l)
printf '%6d paths ' "$N"; ok

step "read every file in every view, cmp with the sources"
n=0
while IFS= read -r -d '' f; do
  cat "$f" >/dev/null
  n=$((n + 1))
done < <(find "$MNT" -type f -print0)
for v in "slides/HeLa-P12-s01" "species/HeLa/slides/HeLa-P12-s01" "tags/good/slides/HeLa-P12-s01" \
         "query/species=HeLa,dye=A647/slides/HeLa-P12-s01" "dyes/A647/slides/HeLa-P12-s01"; do
  [[ -d "$MNT/$v" ]] || { echo "FAILED: $v is missing"; exit 1; }
  for rel in cell01.h5 cell01.h5r cell01_locs.csv acquisition.log latest.h5 cell02.zarr/0/0/0/0/0/1 \
             Pos0/metadata.txt Pos0/img_channel000_position000_time000000003_z000.tif; do
    src=$SRC/$rel; [[ $rel == latest.h5 ]] && src=$SRC/cell01.h5
    cmp "$src" "$MNT/$v/images/cell01/files/$rel"
  done
done
cmp "$SRC/cell01.h5" "$MNT/tags/good/files/RW07-LV-s01:cell01:z-stack 1 (Zelle α).tif"
printf '%6d files ' "$n"; ok

step "ls -lR, getfattr -R, sidecars, bad lookups"
ls -lRA "$MNT" >/dev/null
getfattr -R -d -m - "$MNT/slides" "$MNT/species" "$MNT/dyes" >/dev/null 2>&1
getfattr -n user.samplefs.hash "$F1/cell01.h5" >/dev/null 2>&1
getfattr -n security.selinux "$F1/cell01.h5" >/dev/null 2>&1 && { echo "FAILED: security.selinux answered"; exit 1; }
cat "$MNT/slides/HeLa-P12-s01/slide.json" "$MNT/.samplefs/status.json" >/dev/null
stat "$MNT/slides/nope" >/dev/null 2>&1 && { echo "FAILED: slides/nope exists"; exit 1; }
stat "$MNT/query/not-a-query" >/dev/null 2>&1 && { echo "FAILED: a bad query resolved"; exit 1; }
grep -q not-a-query "$MNT/.samplefs/errors"
ok

step "unmount (fusermount3 -u) and wait for valgrind"
fusermount3 -u "$MNT"
set +e
wait "$VG_PID"
RC=$?
set -e
VG_PID=
ok

echo
grep -E "ERROR SUMMARY|in use at exit|All heap blocks|definitely lost|indirectly lost|possibly lost|still reachable|Invalid|uninitialised|FILE DESCRIPTORS" "$LOG" | sed 's/^==[0-9]*== /  /' || true
if [[ $RC -ne 0 ]]; then
  echo
  echo "valgrind-check: FAILED (exit $RC); full report in $LOG"
  sed 's/^==[0-9]*== //' "$LOG" | sed -n '/^Invalid\|^Conditional\|^Use of\|^Syscall\|definitely lost in\|indirectly lost in/,/^$/p' | head -150
  trap - EXIT
  exit 1
fi
echo "valgrind-check: passed (no memory errors, no definite or indirect leaks)"
trap - EXIT
[[ $KEEP -eq 1 ]] || rm -rf "$W"
