#!/usr/bin/env bash
# The README's main command as a new user runs it (issue 17): tools/demo.sh
# in a fresh `git clone` of the committed HEAD, with nothing beside the
# clone, in an empty $HOME. It must find its vocabulary in the repository,
# mount a catalog showing it, and, when populating fails, leave nothing
# mounted.
#
#   test_demo.sh SOURCE_DIR BUILD_DIR
#
# BUILD_DIR's samplefs and samplectl are passed as SAMPLEFS_PREBUILT (the
# demo then skips its own two-minute cmake build; everything else it does
# runs from the clone). Uncommitted changes are not tested: the clone
# takes HEAD. Exit 77 (skip) without /dev/fuse or when SOURCE_DIR is not a
# git checkout.
set -euo pipefail
src=$(cd "$1" && pwd)
prebuilt=$(cd "$2" && pwd)
[ -e /dev/fuse ] || { echo "skip: no /dev/fuse"; exit 77; }
git -C "$src" rev-parse --verify -q HEAD >/dev/null || { echo "skip: $src is not a git checkout"; exit 77; }
for b in mount/samplefs tools/samplectl; do
  [ -x "$prebuilt/$b" ] || { echo "FAIL: $prebuilt/$b is not built"; exit 1; }
done

tmp=$(mktemp -d)
mnt=$tmp/mnt
cleanup() {
  if mountpoint -q "$mnt"; then fusermount3 -u "$mnt" || fusermount3 -uz "$mnt"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

git clone -q "$src" "$tmp/lab/samplefs"
[ "$(ls -A "$tmp/lab")" = samplefs ] || fail "something beside the clone"
clone=$tmp/lab/samplefs
mkdir "$tmp/home"
# A clean environment: only what a login shell would have.
demo() {
  env -i PATH="$PATH" HOME="$tmp/home" LANG=C.UTF-8 \
    SAMPLEFS_DEMO_MNT="$mnt" SAMPLEFS_PREBUILT="$prebuilt" "$clone/tools/demo.sh"
}

# Nothing in the repository reads the project's shared folder (README.md
# may name SPEC.md as the contract).
if grep -rIn -e '\.\./shared' -e '/work/shared' "$clone" --exclude-dir=.git --exclude=test_demo.sh |
   grep -v 'SPEC\.md'; then
  fail "the repository refers to files outside it"
fi

echo "--- demo.sh in a fresh clone"
demo > "$tmp/demo.log" 2>&1 || { cat "$tmp/demo.log"; fail "demo.sh failed"; }
mountpoint -q "$mnt" || fail "demo.sh left nothing mounted"

# Every name of the vocabulary is a record of the mount.
tail -n +2 "$clone/tools/demo/species.csv" | cut -d, -f1 | while read -r name; do
  [ -d "$mnt/species/$name" ] || fail "species/$name missing"
done
tail -n +2 "$clone/tools/demo/dyes.csv" | cut -d, -f1 | while read -r name; do
  [ -d "$mnt/dyes/$name" ] || fail "dyes/$name missing"
done
[ "$(getfattr --absolute-names --only-values -n user.samplefs.long_name "$mnt/dyes/A647")" = "Alexa Fluor 647" ] ||
  fail "dyes/A647 has the wrong long_name"
for s in HeLa-2026-001 HeLa-2026-002 HeLa-2026-003 U2OS-2026-001 RatHeart-2026-001; do
  [ -d "$mnt/slides/$s" ] || fail "slides/$s missing"
done
python3 -m json.tool "$mnt/slides/HeLa-2026-001/slide.json" > "$tmp/slide.json" || fail "slide.json unreadable"
grep -q '"tubulin"' "$tmp/slide.json" || fail "slide.json lacks its labellings"
[ "$(head -n 1 "$mnt/slides/HeLa-2026-001/images/cell01/files/localisations.csv")" = x,y,z,intensity ] ||
  fail "localisations.csv unreadable"
db=$tmp/home/.local/share/samplefs/catalog.db
n=$(sqlite3 "$db" 'SELECT count(*) FROM file_info')
[ "$n" -gt 0 ] || fail "file_info is empty"
echo "ok: $n files, species/dyes/slides from tools/demo"

fusermount3 -u "$mnt"

echo "--- demo.sh whose populating fails"
rm "$clone/tools/demo/dyes.csv"
if demo > "$tmp/demo2.log" 2>&1; then cat "$tmp/demo2.log"; fail "demo.sh succeeded without dyes.csv"; fi
grep -q "unmounting" "$tmp/demo2.log" || { cat "$tmp/demo2.log"; fail "no message about the failure"; }
! mountpoint -q "$mnt" || fail "a failed demo left $mnt mounted"
echo "ok: nothing left mounted"
echo PASS
