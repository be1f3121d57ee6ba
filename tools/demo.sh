#!/usr/bin/env bash
# The README's main command: builds samplefs, creates a demo catalog on the
# embedded SQLite default (~/.local/share/samplefs), mounts it and prints
# what to try. Re-running it remounts the same catalog without duplicating.
# Its names come from tools/demo/ (species.csv, dyes.csv): a clone needs
# nothing beside it.
#
#   tools/demo.sh            mount at ~/samplefs-demo
#   SAMPLEFS_DEMO_MNT=/mnt/x tools/demo.sh
#   SAMPLEFS_BUILD_DIR=dir   build there (default build/release)
#   SAMPLEFS_PREBUILT=dir    use the samplefs/samplectl already built in
#                            that build directory, no cmake (tests/tools/
#                            test_demo.sh, which checks a fresh clone, uses
#                            it to save a two-minute build)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [ -n "${SAMPLEFS_PREBUILT:-}" ]; then
  BUILD=$SAMPLEFS_PREBUILT
else
  BUILD=${SAMPLEFS_BUILD_DIR:-build/release}
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAMPLEFS_BENCH=OFF >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target samplefs samplectl
fi
MNT=${SAMPLEFS_DEMO_MNT:-$HOME/samplefs-demo}
mkdir -p "$MNT"
if mountpoint -q "$MNT"; then fusermount3 -u "$MNT"; fi
"$BUILD/tools/samplectl" init
"$BUILD/mount/samplefs" "$MNT"
# A failed populate must not leave a half-filled catalog mounted, looking
# like a working demo.
trap 'echo "demo: populating failed; unmounting $MNT" >&2; fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"' EXIT
python3 tools/demo_populate.py "$MNT" tools/demo
sync "$MNT"  # closed files are committed in the background: wait for them
trap - EXIT
cat <<TXT

samplefs demo catalog mounted at $MNT (catalog and store in ~/.local/share/samplefs).
Try:
  ls $MNT/species $MNT/dyes $MNT/tags
  ls -l $MNT/species/HeLa/slides/
  cat $MNT/slides/HeLa-2026-001/slide.json
  getfattr -d -m - $MNT/slides/HeLa-2026-001
  getfattr -d $MNT/slides/HeLa-2026-001/images/cell01/files/raw_0001.h5
  find $MNT/slides/HeLa-2026-001/images/cell01/files
  ls "$MNT/query/species=HeLa,dye=A647/slides/"
  setfattr -n user.xdg.tags -v good,review $MNT/slides/U2OS-2026-001 && ls $MNT/tags/review/slides
  sqlite3 ~/.local/share/samplefs/catalog.db 'SELECT slide, path, size FROM file_info LIMIT 10'
Unmount with: fusermount3 -u $MNT
TXT
