"""Mounted-test harness: a real samplefs mount in a temporary directory.

Every mounted test starts the real daemon on a fresh catalog and store,
drives the mount with real tools (cp, rsync, tar, find, getfattr, ...) and
checks the catalog with Python's sqlite3 module. A test is skipped, saying
why, only when /dev/fuse is missing.

Environment:
  SAMPLEFS_BIN     path of the samplefs daemon (set by ctest)
  SAMPLECTL_BIN    path of samplectl (set by ctest)
  SAMPLEFS_KEEP=1  keep the temporary directory of a failed test
  SAMPLEFS_TEST_CATALOG=postgres
                   every Mount's catalog is a fresh schema of the PostgreSQL
                   database SAMPLEFS_TEST_PG_URL (tools/pg-test-cluster.sh);
                   m.sql(), m.db(), m.connect() and m.cli_sql() then go
                   through psql, so tests check the catalog the same way
  SAMPLEFS_TEST_DAEMONIZE=1
                   run every Mount as users run it, without -f: the daemon
                   forks and detaches (issue 13: only a detached daemon
                   showed that the catalog was opened before the fork)

Two modes (Mount(daemonize=...), default from SAMPLEFS_TEST_DAEMONIZE):
  foreground  `samplefs --config CFG MNT -f`: the daemon is our child
              (Mount.proc), logging to stderr, which goes to samplefs.log.
  daemonized  `samplefs --config CFG MNT`: the launcher mounts, forks and
              exits; the detached daemon logs to the config's log_file (the
              same samplefs.log). Its pid is found in /proc by its command
              line. The test process makes itself a child subreaper
              (PR_SET_CHILD_SUBREAPER), so the orphaned daemon is reparented
              to it and its exit status can still be collected with
              waitpid(); where that is impossible the exit is seen in /proc
              and its status is EXIT_UNKNOWN.
Use Mount.pid, Mount.poll()/alive()/wait() and Mount.kill(sig) rather than
Mount.proc, so that a test works in both modes.
"""
import contextlib
import ctypes
import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLEFS = os.environ.get("SAMPLEFS_BIN", "samplefs")
SAMPLECTL = os.environ.get("SAMPLECTL_BIN", "samplectl")


DAEMONIZE = os.environ.get("SAMPLEFS_TEST_DAEMONIZE", "") not in ("", "0")
PG_URL = os.environ.get("SAMPLEFS_TEST_PG_URL", "")
ENGINE = "postgresql" if os.environ.get("SAMPLEFS_TEST_CATALOG", "") in ("postgres", "postgresql") else "sqlite"
_schema_counter = itertools.count(1)


def pg_url_with_schema(schema):
    return PG_URL + ("&" if "?" in PG_URL else "?") + "options=-csearch_path%3D" + schema


def psql(url, sql, check=True):
    """Runs `sql` with psql (autocommit, errors stop it); returns stdout."""
    r = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()} [{sql[:200]}]")
    return r.stdout


def _pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return "'" + str(v).replace("'", "''") + "'"


def _pg_sql(query, params):
    """SQLite-flavoured test SQL -> PostgreSQL: `?` gets the quoted
    parameter, a bare `user` column is quoted (PostgreSQL's USER is the
    current role)."""
    params = list(params)
    out, quote, plain = [], None, []

    def flush():
        out.append(re.sub(r'(?<![.\w"])user\b(?!")', '"user"', "".join(plain)))
        plain.clear()

    for c in query:
        if quote:
            out.append(c)
            if c == quote:
                quote = None
        elif c in "'\"":
            flush()
            quote = c
            out.append(c)
        elif c == "?":
            flush()
            out.append(_pg_literal(params.pop(0)))
        else:
            plain.append(c)
    flush()
    return "".join(out)


class PgRow(tuple):
    """A row like sqlite3.Row: by index or by column name."""

    def __new__(cls, pairs):
        row = super().__new__(cls, [v for _, v in pairs])
        row._names = [k for k, _ in pairs]
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self):
        return list(self._names)


class PgCursor:
    def __init__(self, rows):
        self._rows = rows

    def fetchall(self):
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self):
        return self._rows.pop(0) if self._rows else None

    def __iter__(self):
        return iter(self.fetchall())


class PgConnection:
    """Enough of sqlite3.Connection for the tests, through psql: each
    statement commits on its own; values keep their JSON types (integers
    stay integers)."""

    def __init__(self, url):
        self.url = url
        self.row_factory = None

    def execute(self, query, params=()):
        sql = _pg_sql(query, params).strip().rstrip(";")
        if re.match(r"(?is)^\s*(select|with|values)\b", sql):
            out = psql(self.url, f"SELECT row_to_json(q) FROM ({sql}) AS q")
            rows = [PgRow(json.loads(line, object_pairs_hook=list)) for line in out.splitlines() if line]
        else:
            psql(self.url, sql)
            rows = []
        return PgCursor(rows)

    def executemany(self, query, seq):
        for params in seq:
            self.execute(query, params)

    def iterdump(self):
        """Every row of every table, in a fixed order (sqlite3's iterdump
        stands for the same: did anything change?)."""
        tables = [r[0] for r in self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")]
        lines = []
        for t in tables:
            out = psql(self.url, f'SELECT row_to_json(x)::text FROM "{t}" x ORDER BY row_to_json(x)::text')
            lines += [f"{t}: {line}" for line in out.splitlines()]
        return iter(lines)

    def commit(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
EXIT_UNKNOWN = "exited (status unknown: not our child)"
PR_SET_CHILD_SUBREAPER = 36
_subreaper = None


def become_subreaper():
    """Makes this process the child subreaper of its descendants, so a
    daemon that detaches (fork, parent exits) is reparented to us and
    waitpid() can collect its exit status. Returns whether that worked."""
    global _subreaper
    if _subreaper is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


def proc_state(pid):
    """The state letter of /proc/PID/stat (R, S, D, Z, ...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return None


def fuse_available():
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


class Mount:
    """One samplefs daemon on `root`/mnt with catalog `root`/catalog.db."""

    def __init__(self, root, options=(), env=None, daemonize=None):
        self.root = root
        self.mnt = os.path.join(root, "mnt")
        self.catalog = os.path.join(root, "catalog.db")
        self.store = os.path.join(root, "store")
        self.config = os.path.join(root, "samplefs.conf")
        self.log = os.path.join(root, "samplefs.log")
        self.options = list(options)
        self.env = dict(os.environ, **(env or {}))
        self.daemonize = DAEMONIZE if daemonize is None else bool(daemonize)
        self.proc = None  # foreground: the daemon (our child)
        self.launcher = None  # daemonized: the process we ran (exits once detached)
        self._daemon_pid = None  # daemonized: the detached daemon
        self._exit = None  # daemonized: its exit status, once collected
        os.makedirs(self.mnt, exist_ok=True)
        self.engine = ENGINE
        if self.engine == "postgresql":
            # A fresh schema of the test database for each Mount (created
            # once: a Mount made on an existing root reuses its config).
            schema_file = os.path.join(root, "pg_schema")
            if not os.path.exists(schema_file):
                if not PG_URL:
                    raise unittest.SkipTest("SAMPLEFS_TEST_CATALOG=postgres needs SAMPLEFS_TEST_PG_URL")
                schema = f"mt_{os.getpid()}_{next(_schema_counter)}"
                psql(PG_URL, f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
                with open(schema_file, "w") as f:
                    f.write(schema)
            with open(schema_file) as f:
                self.schema = f.read().strip()
            self.catalog = pg_url_with_schema(self.schema)
        if not os.path.exists(self.config):
            # log_file: where a detached daemon logs (stderr in the foreground).
            with open(self.config, "w") as f:
                f.write(f"catalog = {self.catalog}\nstore = {self.store}\nlog_level = info\n"
                        f"log_file = {self.log}\n")

    def init(self):
        """Creates the catalog and store as a user does (`samplectl init`):
        the daemon refuses a catalog that does not exist, since a misspelt
        path would otherwise start an empty one."""
        if self.engine == "postgresql" or not os.path.exists(self.catalog):
            subprocess.run([SAMPLECTL, "--config", self.config, "init"], check=True,
                           stdout=subprocess.DEVNULL, env=self.env)
        return self

    def drop_schema(self):
        if self.engine == "postgresql":
            psql(PG_URL, f"DROP SCHEMA IF EXISTS {self.schema} CASCADE", check=False)

    def connect(self):
        """A read-write connection to the catalog, as a user's script has
        (sqlite3, or psql for PostgreSQL)."""
        if self.engine == "postgresql":
            return PgConnection(self.catalog)
        return sqlite3.connect(self.catalog)

    def tables(self):
        """The catalog's table names."""
        if self.engine == "postgresql":
            return {r[0] for r in self.sql("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = current_schema()")}
        return {r[0] for r in self.sql("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def cli_sql(self, sql):
        """Runs `sql` with the engine's command-line client (sqlite3, psql)."""
        if self.engine == "postgresql":
            return psql(self.catalog, _pg_sql(sql, ()))
        r = subprocess.run(["sqlite3", "-cmd", ".timeout 5000", self.catalog, sql],
                           capture_output=True, text=True, check=True)
        return r.stdout

    def command(self, options=None):
        opts = self.options if options is None else list(options)
        cmd = [SAMPLEFS, "--config", self.config, self.mnt]
        if not self.daemonize:
            cmd.append("-f")
        if opts:
            cmd += ["-o", ",".join(opts)]
        return cmd

    def start(self, options=None, env=None):
        opts = self.options if options is None else list(options)
        if "ro" not in opts:
            self.init()
        cmd = self.command(opts)
        logf = open(self.log, "a")
        if self.daemonize:
            become_subreaper()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                env=dict(self.env, **(env or {})))
        logf.close()
        if self.daemonize:
            return self._start_daemonized(cmd, proc)
        self.proc = proc
        deadline = time.time() + 20
        while time.time() < deadline:
            if is_mounted(self.mnt):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"samplefs exited with {self.proc.returncode}:\n{self.read_log()}")
            time.sleep(0.02)
        raise RuntimeError("samplefs did not mount within 20 s:\n" + self.read_log())

    def _start_daemonized(self, cmd, launcher):
        """The launcher mounts, forks (fuse_daemonize) and exits 0 once the
        child has detached: find that child by its command line."""
        self.launcher = launcher
        self._daemon_pid = None
        self._exit = None
        try:
            rc = launcher.wait(timeout=20)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
            raise RuntimeError("samplefs (daemonized) did not detach within 20 s:\n" + self.read_log())
        if rc != 0:
            raise RuntimeError(f"samplefs (daemonized) exited with {rc}:\n{self.read_log()}")
        if not is_mounted(self.mnt):
            raise RuntimeError("samplefs (daemonized) exited 0 but nothing is mounted:\n" + self.read_log())
        want = [os.fsencode(a) for a in cmd]
        deadline = time.time() + 5
        while True:
            found = []
            for d in os.listdir("/proc"):
                if d.isdigit() and int(d) != launcher.pid and proc_cmdline(d) == want \
                        and proc_state(d) not in (None, "Z"):
                    found.append(int(d))
            if len(found) == 1:
                self._daemon_pid = found[0]
                return self
            if len(found) > 1:
                raise RuntimeError(f"several samplefs daemons run {cmd}: {found}")
            if time.time() > deadline:
                raise RuntimeError(f"mounted, but no detached samplefs process runs {cmd}:\n"
                                   + self.read_log())
            time.sleep(0.02)

    @property
    def pid(self):
        """The daemon's pid (the detached child when daemonized); None when
        not started."""
        if self.daemonize:
            return self._daemon_pid
        return self.proc.pid if self.proc is not None else None

    def poll(self):
        """None while the daemon runs; once it exited, its exit status as
        Popen gives it (negative: killed by that signal), or EXIT_UNKNOWN
        (daemonized, not reparented to us). None also when not started."""
        if not self.daemonize:
            return self.proc.poll() if self.proc is not None else None
        pid = self._daemon_pid
        if pid is None or self._exit is not None:
            return self._exit
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not our child (no subreaper): gone, or a zombie of someone else.
            if proc_state(pid) in (None, "Z"):
                self._exit = EXIT_UNKNOWN
            return self._exit
        if got == pid:
            self._exit = os.waitstatus_to_exitcode(status)
        return self._exit

    def alive(self):
        return self.pid is not None and self.poll() is None

    def wait(self, timeout=None):
        """Waits for the daemon to exit; returns poll(). Raises
        subprocess.TimeoutExpired like Popen.wait."""
        if not self.daemonize:
            return self.proc.wait(timeout=timeout)
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None and self._daemon_pid is not None:
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(self.command(), timeout)
            time.sleep(0.02)
        return self._exit

    def _forget(self):
        self.proc = None
        self.launcher = None
        self._daemon_pid = None

    def stop(self):
        """Unmounts cleanly and waits for the daemon to exit (returns its status)."""
        if self.pid is None:
            return None
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            rc = self.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL, unmount=False)
            rc = "did not exit within 30 s of the unmount: killed"
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
        self._forget()
        return rc

    def kill(self, sig=signal.SIGKILL, unmount=True):
        """Sends `sig` to the daemon. SIGKILL (kill -9, the default) also
        waits for it to die, forgets it and lazily unmounts what is left."""
        if self.alive():
            os.kill(self.pid, sig)
        if sig != signal.SIGKILL:
            return
        if self.pid is not None:
            self.wait()
        self._forget()
        if unmount:
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False,
                           stderr=subprocess.DEVNULL)

    def restart(self):
        self.stop()
        return self.start()

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def read_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def errors(self):
        with open(self.path(".samplefs", "errors")) as f:
            return f.read()

    def settle(self):
        """Waits until every file closed so far is recorded in the catalog:
        the mount commits closed files in the background, in batches, and
        fsync() of any of its directories (`sync DIR`) waits for them. A
        test that reads the catalog right after a tool closed its files
        would otherwise race the commit."""
        if not self.alive() or not is_mounted(self.mnt):
            return
        fd = os.open(self.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def db(self, settle=True):
        """A read-only SQLite connection to the catalog (works while mounted),
        after settle()."""
        if settle:
            self.settle()
        if self.engine == "postgresql":
            return PgConnection(self.catalog)
        con = sqlite3.connect(f"file:{self.catalog}?mode=ro", uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        return con

    def sql(self, query, params=()):
        with contextlib.closing(self.db()) as con:
            return [tuple(r) for r in con.execute(query, params)]

    def object_path(self, hexhash):
        return os.path.join(self.store, "objects", hexhash[:2], hexhash[2:4], hexhash)


class MountedTestCase(unittest.TestCase):
    """Base class: self.m is a started Mount on a fresh catalog."""

    mount_options = ()
    daemonize = None  # None: $SAMPLEFS_TEST_DAEMONIZE decides

    def setUp(self):
        if not fuse_available():
            self.skipTest("/dev/fuse or fusermount3 is missing: mounted tests need FUSE")
        self.tmp = tempfile.mkdtemp(prefix="samplefs-test-")
        self.m = Mount(self.tmp, self.mount_options, daemonize=self.daemonize)
        self.m.start()

    def tearDown(self):
        rc = self.m.stop()
        log_tail = self.m.read_log()[-3000:]
        failed = any(e for e in self._outcome.errors if e[1]) if hasattr(self._outcome, "errors") else False
        if os.environ.get("SAMPLEFS_KEEP") and failed:
            print(f"kept {self.tmp}")
        else:
            self.m.drop_schema()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertIn(rc, (0, None, EXIT_UNKNOWN), "daemon did not exit cleanly:\n" + log_tail)

    # -- helpers ---------------------------------------------------------
    def run_tool(self, *cmd, check=True, **kw):
        r = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
        if check and r.returncode != 0:
            self.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def assertErrno(self, err, fn, *args, **kw):
        """fn(*args) must raise OSError with errno `err`."""
        with self.assertRaises(OSError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.errno, err,
                         f"expected {errno.errorcode[err]}, got "
                         f"{errno.errorcode.get(cm.exception.errno)}: {cm.exception}")

    def make_image(self, species="HeLa", slide="S1", image="cell01"):
        """Creates species/slide/image through the mount; returns files/ path."""
        m = self.m
        if not os.path.isdir(m.path("species", species)):
            os.mkdir(m.path("species", species))
        if not os.path.isdir(m.path("slides", slide)):
            os.mkdir(m.path("species", species, "slides", slide))
        os.mkdir(m.path("slides", slide, "images", image))
        return m.path("slides", slide, "images", image, "files")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def write_random(path, size, seed=0):
    """Writes `size` deterministic pseudo-random bytes to `path`."""
    import random
    r = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(r.randbytes(n))
            left -= n
