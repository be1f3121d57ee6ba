"""Mounted-test harness: a real samplefs mount in a temporary directory.

Every mounted test starts the real daemon on a fresh catalog and store,
drives the mount with real tools (cp, rsync, tar, find, getfattr, ...) and
checks the catalog with Python's sqlite3 module. A test is skipped, saying
why, only when /dev/fuse is missing.

Environment:
  SAMPLEFS_BIN     path of the samplefs daemon (set by ctest)
  SAMPLECTL_BIN    path of samplectl (set by ctest)
  SAMPLEFS_KEEP=1  keep the temporary directory of a failed test
"""
import contextlib
import errno
import hashlib
import os
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


def fuse_available():
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


class Mount:
    """One samplefs daemon on `root`/mnt with catalog `root`/catalog.db."""

    def __init__(self, root, options=(), env=None):
        self.root = root
        self.mnt = os.path.join(root, "mnt")
        self.catalog = os.path.join(root, "catalog.db")
        self.store = os.path.join(root, "store")
        self.config = os.path.join(root, "samplefs.conf")
        self.log = os.path.join(root, "samplefs.log")
        self.options = list(options)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        os.makedirs(self.mnt, exist_ok=True)
        if not os.path.exists(self.config):
            with open(self.config, "w") as f:
                f.write(f"catalog = {self.catalog}\nstore = {self.store}\nlog_level = info\n")

    def init(self):
        """Creates the catalog and store as a user does (`samplectl init`):
        the daemon refuses a catalog that does not exist, since a misspelt
        path would otherwise start an empty one."""
        if not os.path.exists(self.catalog):
            subprocess.run([SAMPLECTL, "--config", self.config, "init"], check=True,
                           stdout=subprocess.DEVNULL, env=self.env)
        return self

    def start(self, options=None, env=None):
        opts = self.options if options is None else list(options)
        if "ro" not in opts:
            self.init()
        cmd = [SAMPLEFS, "--config", self.config, self.mnt, "-f"]
        if opts:
            cmd += ["-o", ",".join(opts)]
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                     env=dict(self.env, **(env or {})))
        logf.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if is_mounted(self.mnt):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"samplefs exited with {self.proc.returncode}:\n{self.read_log()}")
            time.sleep(0.02)
        raise RuntimeError("samplefs did not mount within 20 s:\n" + self.read_log())

    def stop(self):
        """Unmounts cleanly and waits for the daemon to exit (returns its status)."""
        if self.proc is None:
            return None
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
        self.proc = None
        return rc

    def kill(self):
        """kill -9 the daemon and lazily unmount what is left."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
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
        if self.proc is None or self.proc.poll() is not None or not is_mounted(self.mnt):
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

    def setUp(self):
        if not fuse_available():
            self.skipTest("/dev/fuse or fusermount3 is missing: mounted tests need FUSE")
        self.tmp = tempfile.mkdtemp(prefix="samplefs-test-")
        self.m = Mount(self.tmp, self.mount_options)
        self.m.start()

    def tearDown(self):
        rc = self.m.stop()
        failed = any(e for e in self._outcome.errors if e[1]) if hasattr(self._outcome, "errors") else False
        if os.environ.get("SAMPLEFS_KEEP") and failed:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertIn(rc, (0, None), "daemon did not exit cleanly")

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
