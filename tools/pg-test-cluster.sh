#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (facility mode, SPEC section 6).
#
#   eval "$(tools/pg-test-cluster.sh start)"   # exports SAMPLEFS_TEST_PG_URL, SAMPLEFS_TEST_PG_DIR
#   tools/pg-test-cluster.sh stop "$SAMPLEFS_TEST_PG_DIR"
#
# initdb runs as an unprivileged user (PostgreSQL refuses root: the
# `postgres` user of the Debian package when run as root, else the caller)
# into a fresh temporary directory; the server listens on a Unix socket in
# that directory only (no TCP), with trust authentication for local
# connections. Prints nothing and exits 0 when PostgreSQL's binaries are
# missing, so callers can skip cleanly.
set -euo pipefail
cmd=${1:-start}

bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir=$d; done
if [ -z "$bindir" ] && command -v initdb >/dev/null; then bindir=$(dirname "$(command -v initdb)"); fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$PGOWNER" -- "$@"
  else
    "$@"
  fi
}

# Starts the server of the cluster in $1 (as its owner, $PGOWNER).
server_start() {
  as_owner "$bindir/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
    -o "-c listen_addresses='' -c unix_socket_directories='$1' -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null
}

case "$cmd" in
  start)
    if [ -z "$bindir" ]; then
      echo "# pg-test-cluster: PostgreSQL binaries not found; PostgreSQL tests will skip" >&2
      exit 0
    fi
    PGOWNER=$(id -un)
    [ "$(id -u)" -eq 0 ] && PGOWNER=postgres
    if ! id "$PGOWNER" >/dev/null 2>&1; then
      echo "# pg-test-cluster: no unprivileged user '$PGOWNER'; PostgreSQL tests will skip" >&2
      exit 0
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/samplefs-pg.XXXXXX")
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown "$PGOWNER" "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U samplefs_test --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    # Tuned for throwaway test data: no fsync, small WAL; a socket only.
    server_start "$dir"
    as_owner "$bindir/createdb" -h "$dir" -U samplefs_test samplefs_test
    # The database must be usable by the (root) test processes too: it is,
    # through the socket with trust authentication as role samplefs_test.
    chmod 777 "$dir"
    echo "export SAMPLEFS_TEST_PG_DIR='$dir'"
    echo "export SAMPLEFS_TEST_PG_URL='postgresql://samplefs_test@/samplefs_test?host=$dir'"
    ;;
  stop)
    dir=${2:-${SAMPLEFS_TEST_PG_DIR:-}}
    [ -n "$dir" ] && [ -d "$dir/data" ] || exit 0
    PGOWNER=$(stat -c %U "$dir/data")
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  pause|resume)
    # The database going away while mounted (test_faults): the server is
    # stopped (-m fast: sessions are disconnected) or started again, with
    # the same data and socket.
    dir=${2:-${SAMPLEFS_TEST_PG_DIR:-}}
    [ -n "$dir" ] && [ -d "$dir/data" ] || { echo "no cluster at '$dir'" >&2; exit 1; }
    PGOWNER=$(stat -c %U "$dir/data")
    if [ "$cmd" = pause ]; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    else
      server_start "$dir"
    fi
    ;;
  *)
    echo "usage: $0 start | stop [DIR] | pause [DIR] | resume [DIR]" >&2
    exit 2
    ;;
esac
