#!/usr/bin/env bash
# Installs samplefs's build and test dependencies from Debian's packages,
# only when one is missing (so a warm machine does not touch the network).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git
      libfuse3-dev fuse3 libsqlite3-dev sqlite3 libpq-dev postgresql postgresql-client libxxhash-dev xxhash
      libspdlog-dev nlohmann-json3-dev libcli11-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      attr rsync tar bindfs python3 python3-pandas valgrind clang libclang-rt-14-dev util-linux procps
      help2man man-db libglib2.0-bin gvfs-daemons dbus)
# The desktop tests (tests/mounted/test_desktop.py: Dolphin under Xvfb,
# kioclient5): 274 packages, ~44 MB to download, ~310 MiB installed, about
# 3 minutes on a fresh Debian 12 (--no-install-recommends keeps out the
# rest of Plasma). SAMPLEFS_NO_DESKTOP=1 leaves them out; those tests then
# skip, saying so.
if [ "${SAMPLEFS_NO_DESKTOP:-0}" != 1 ]; then
  pkgs+=(xvfb xdotool dolphin kde-cli-tools)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian package starts a cluster of its own (port 5432); the tests
# never use it (tools/pg-test-cluster.sh makes a throwaway one), so it is
# left as the machine's administrator set it.
