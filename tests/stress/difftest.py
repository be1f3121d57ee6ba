#!/usr/bin/env python3
"""Issue 6, "Nothing lost" (2): a differential random tester.

Runs seeded random sequences of file operations inside an image's files/
tree of a real samplefs mount and, step by step, in a plain directory, and
fails on the first difference in a result, an errno or the tree's contents.
On a failure it prints the seed and shrinks the sequence (delta debugging:
remove steps, re-run on fresh trees) to the shortest one that still fails,
printed as a Python list to paste into REGRESSIONS below.

Operations: open (read-only, read-write, create, exclusive, truncate,
append) into one of a few descriptor slots, close, write at offsets (holes
included), read, ftruncate, fsync, truncate by path, whole-file write and
read (like cp and cat), rename (files and folders, over existing names),
unlink, mkdir, rmdir, symlink, readlink, setxattr/getxattr/removexattr/
listxattr of user.* attributes, chmod, chown (the mount runs with
allow_other), utime (exact atime/mtime back, times before 1970 included,
ctime now), a read after utime (relatime: whether the atime moved), stat
(mode, link count, owner), listdir. Every result is
compared, and after about a third of the steps ("check") and at the end the
whole tree: names, types, file sizes and bytes, permission bits of files,
symlink targets, link counts, owners and user.* attributes. (Not after every step: reading every
file refills the kernel's page cache and hides bugs in what it caches.)

Where samplefs legitimately differs from a plain directory, the operation
is left out or the attribute is not compared (tests/README.md keeps the
list): hard links (EPERM), mknod of FIFOs, sockets and devices (EPERM),
names that are not UTF-8 or longer than 255 bytes (EINVAL/ENAMETOOLONG),
directory sizes, inode numbers, st_blocks, timestamps (they depend on
when each side ran the step), and the user.samplefs.* and
user.xdg.* attributes samplefs lists on every record.

Concurrent mode (--workers N) runs N workers, each on its own subtree and
its own plain directory, while other threads list the mount (os.walk), read
its files and tag the image (setfattr user.xdg.tags), for --seconds.

Usage:
  difftest.py                               # the ctest budget: the regressions,
                                            # 3 seeds x 500 ops, a 20 s concurrent run
  difftest.py --seed 17 --seeds 200 --ops 1000      # longer sequential runs
  difftest.py --workers 6 --seconds 600 --no-sequential
  difftest.py --replay case.json            # re-run a printed sequence
Environment: SAMPLEFS_BIN (set by ctest), TMPDIR for temporary trees.
Exit 0 ok, 1 difference found, 77 skipped (no /dev/fuse).
"""
import argparse
import errno
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mounted"))
from mountlib import Mount, fuse_available  # noqa: E402

SLOTS = 4
NAMES = ["a", "b", "c", "data.bin", "x y", "ü"]
DIRS = ["d1", "d2", "sub"]
XATTRS = ["user.t.one", "user.t.two", "user.t.3"]
# Times for utime: before 1970 (with nanoseconds), around 1970, now-ish
# and far ahead (an atime in the future is never due under relatime).
TIMES_NS = [-157766400000000001, -1000000000, -1, 1, 1000000000123456789, 1500000000000000000,
            4102444800000000000]
OPEN_FLAGS = {
    "r": os.O_RDONLY,
    "rw": os.O_RDWR,
    "w": os.O_WRONLY,
    "rwc": os.O_RDWR | os.O_CREAT,
    "wc": os.O_WRONLY | os.O_CREAT,
    "wct": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "rwct": os.O_RDWR | os.O_CREAT | os.O_TRUNC,
    "rwcx": os.O_RDWR | os.O_CREAT | os.O_EXCL,
    "rwt": os.O_RDWR | os.O_TRUNC,
    "wa": os.O_WRONLY | os.O_APPEND,
    "rwca": os.O_RDWR | os.O_CREAT | os.O_APPEND,
}

# Sequences that once failed, kept as regression tests (see tests/README.md).
REGRESSIONS = {
    # A file unlinked while open gave its id to the next new record (SQLite's
    # INTEGER PRIMARY KEY reuses the newest id); the open descriptor then
    # reached the new folder or symlink: EIO instead of the file's bytes.
    "id-reuse-folder": [
        ["mkdir", "d2", 0o755],
        ["open", 1, "d2/x y", "rwct", 0o644],
        ["unlink", "d2/x y"],
        ["mkdir", "d2/d1", 0o755],
        ["read", 1, 0, 1],
    ],
    "id-reuse-symlink": [
        ["mkdir", "d1", 0o755],
        ["open", 1, "d1/d1", "wc", 0o644],
        ["open", 1, "d1/d1", "r", 0o600],
        ["unlink", "d1/d1"],
        ["symlink", "d1", "data.bin"],
        ["read", 1, 6389, 100],
    ],
    # The same, with a file: the unlinked file's pending write must not land
    # in the new file that took its id.
    "id-reuse-file": [
        ["open", 0, "a", "wc", 0o644],
        ["write", 0, 0, 1000, "w0"],
        ["unlink", "a"],
        ["writefile", "b", 3000, "b1"],
        ["write", 0, 500, 1000, "w1"],
        ["close", 0],
        ["readfile", "b"],
    ],
    # fsync of a file unlinked while open published nowhere and dropped the
    # data: later reads through the still-open descriptor saw the version
    # from before the writes (or ENOENT).
    "orphan-fsync-then-read": [
        ["mkdir", "sub", 0o755],
        ["open", 1, "sub/ü", "rwct", 0o644],
        ["unlink", "sub/ü"],
        ["write", 1, 305, 6845, "139"],
        ["fsync", 1],
        ["read", 1, 6157, 1],
    ],
    "orphan-after-rename-ftruncate-fsync": [
        ["writefile", "x y", 39768, "60"],
        ["open", 2, "x y", "rw", 0o600],
        ["rename", "x y", "sub"],
        ["unlink", "sub"],
        ["ftruncate", 2, 14218],
        ["fsync", 2],
        ["read", 2, 9091, 1],
    ],
    # A descriptor opened before an overwrite went on reading the old object
    # (a "snapshot"), but the kernel's page cache is one per inode: its short
    # read cached the old size and bytes, and the writer's own read returned
    # them (found in the concurrent mode; no "check" here, since reading the
    # tree would refill the cache).
    "old-reader-fills-page-cache": [
        ["writefile", "f", 100, "v1"],
        ["open", 1, "f", "r", 0o644],
        ["open", 0, "f", "rw", 0o644],
        ["write", 0, 4096, 4096, "w"],
        ["read", 1, 0, 4096],
        ["read", 0, 0, 8192],
    ],
}


def blob(seed, size):
    return random.Random(seed).randbytes(size)


def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


# ---------------------------------------------------------------------------
# One side: a tree (mount or plain directory) and its descriptor slots


class Side:
    def __init__(self, root):
        self.root = root
        self.fds = [None] * SLOTS

    def p(self, rel):
        return os.path.join(self.root, rel)

    def close_all(self):
        for i, fd in enumerate(self.fds):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                self.fds[i] = None

    def apply(self, op):
        """Runs one operation; returns a comparable result."""
        try:
            return ("ok", self._apply(op))
        except OSError as e:
            return ("err", err_name(e))

    def _apply(self, op):
        kind = op[0]
        if kind == "check":  # the whole tree is compared (compare_step)
            return None
        if kind == "open":
            _, slot, rel, flags, mode = op
            if self.fds[slot] is not None:
                os.close(self.fds[slot])
                self.fds[slot] = None
            self.fds[slot] = os.open(self.p(rel), OPEN_FLAGS[flags], mode)
            return None
        if kind in ("close", "write", "read", "ftruncate", "fsync"):
            fd = self.fds[op[1]]
            if fd is None:
                return "no descriptor"
            if kind == "close":
                self.fds[op[1]] = None
                os.close(fd)
                return None
            if kind == "write":
                _, _, off, size, seed = op
                return os.pwrite(fd, blob(seed, size), off)
            if kind == "read":
                _, _, off, size = op
                return digest(os.pread(fd, size, off))
            if kind == "ftruncate":
                os.ftruncate(fd, op[2])
                return None
            os.fsync(fd)
            return None
        if kind == "append":
            fd = self.fds[op[1]]
            if fd is None:
                return "no descriptor"
            return os.write(fd, blob(op[3], op[2]))
        if kind == "truncate":
            os.truncate(self.p(op[1]), op[2])
            return None
        if kind == "writefile":
            _, rel, size, seed = op
            fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, blob(seed, size))
            finally:
                os.close(fd)
            return None
        if kind == "readfile":
            fd = os.open(self.p(op[1]), os.O_RDONLY)
            try:
                chunks = []
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    chunks.append(b)
            finally:
                os.close(fd)
            return digest(b"".join(chunks))
        if kind == "rename":
            os.rename(self.p(op[1]), self.p(op[2]))
            return None
        if kind == "unlink":
            os.unlink(self.p(op[1]))
            return None
        if kind == "mkdir":
            os.mkdir(self.p(op[1]), op[2])
            return None
        if kind == "rmdir":
            os.rmdir(self.p(op[1]))
            return None
        if kind == "symlink":
            os.symlink(op[1], self.p(op[2]))
            return None
        if kind == "readlink":
            return os.readlink(self.p(op[1]))
        if kind == "setxattr":
            _, rel, name, value, flags = op
            os.setxattr(self.p(rel), name, value.encode(), flags)
            return None
        if kind == "getxattr":
            return os.getxattr(self.p(op[1]), op[2]).decode()
        if kind == "removexattr":
            os.removexattr(self.p(op[1]), op[2])
            return None
        if kind == "listxattr":
            return sorted(n for n in os.listxattr(self.p(op[1])) if n.startswith("user.t."))
        if kind == "chmod":
            os.chmod(self.p(op[1]), op[2])
            return None
        if kind == "chown":
            # The mount runs with allow_other, so owners are its own (issue 18).
            os.chown(self.p(op[1]), op[2], op[3], follow_symlinks=False)
            return None
        if kind == "utime":
            # Times given (before 1970 too) come back exactly; ctime is now,
            # whatever they are (issue 18 points 1, 2 and 6).
            _, rel, atime, mtime = op
            before = time.time_ns()
            os.utime(self.p(rel), ns=(atime, mtime), follow_symlinks=False)
            st = os.lstat(self.p(rel))
            return [st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns >= before - 10**7]
        if kind == "atime":
            # relatime: a read moves an atime not newer than mtime/ctime and
            # leaves one in the future (issue 18 point 1).
            _, rel, atime, mtime = op
            p = self.p(rel)
            if not stat.S_ISREG(os.lstat(p).st_mode):
                return "not a file"
            os.utime(p, ns=(atime, mtime))
            with open(p, "rb") as f:
                f.read(1)
            st = os.stat(p)
            return [st.st_atime_ns == atime, st.st_mtime_ns]
        if kind == "stat":
            st = os.lstat(self.p(op[1]))
            t = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                return [t, st.st_size, stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid, st.st_gid]
            if stat.S_ISLNK(st.st_mode):
                return [t, st.st_size, st.st_uid, st.st_gid]
            return [t, stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid, st.st_gid]
        if kind == "listdir":
            return sorted(os.listdir(self.p(op[1])))
        raise ValueError(f"unknown operation {op!r}")

    def snapshot(self):
        """The comparable state of the whole tree."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.root)
                try:
                    st = os.lstat(full)
                    if stat.S_ISLNK(st.st_mode):
                        out[rel] = ("symlink", os.readlink(full), st.st_uid, st.st_gid)
                        continue
                    xattrs = {n: os.getxattr(full, n).decode() for n in sorted(os.listxattr(full))
                              if n.startswith("user.t.")}
                    if stat.S_ISDIR(st.st_mode):
                        # Link counts: 2 + subfolders, as a local filesystem's (issue 18).
                        out[rel] = ("dir", oct(stat.S_IMODE(st.st_mode)), st.st_nlink, st.st_uid, st.st_gid,
                                    xattrs)
                    else:
                        with open(full, "rb") as f:
                            data = f.read()
                        out[rel] = ("file", st.st_size, len(data), digest(data), oct(stat.S_IMODE(st.st_mode)),
                                    st.st_nlink, st.st_uid, st.st_gid, xattrs)
                except OSError as e:
                    out[rel] = ("error", err_name(e))
        return out


# ---------------------------------------------------------------------------
# Random sequences


class Generator:
    """Draws plausible operations, steered by the reference tree's state."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def existing(self, ref_root):
        files, dirs, links = [], [""], []
        for dirpath, dirnames, filenames in os.walk(ref_root):
            for n in dirnames:
                rel = os.path.relpath(os.path.join(dirpath, n), ref_root)
                (links if os.path.islink(os.path.join(dirpath, n)) else dirs).append(rel)
            for n in filenames:
                rel = os.path.relpath(os.path.join(dirpath, n), ref_root)
                (links if os.path.islink(os.path.join(dirpath, n)) else files).append(rel)
        return files, dirs, links

    def path(self, files, dirs, links, want="any"):
        r = self.rng
        pools = {"file": files, "dir": [d for d in dirs if d], "link": links,
                 "any": files + [d for d in dirs if d] + links}[want]
        if pools and r.random() < 0.75:
            return r.choice(pools)
        parent = r.choice(dirs)
        name = r.choice(DIRS if want == "dir" else NAMES + DIRS[:1])
        return os.path.join(parent, name) if parent else name

    def size(self):
        r = self.rng.random()
        if r < 0.1:
            return 0
        if r < 0.75:
            return self.rng.randint(1, 5000)
        if r < 0.95:
            return self.rng.randint(5000, 70000)
        return self.rng.randint(70000, 300000)

    def offset(self):
        r = self.rng.random()
        if r < 0.4:
            return 0
        if r < 0.85:
            return self.rng.randint(0, 20000)
        return self.rng.randint(20000, 400000)

    def op(self, ref, step):
        r = self.rng
        files, dirs, links = self.existing(ref.root)
        open_slots = [i for i, fd in enumerate(ref.fds) if fd is not None]
        slot = r.choice(open_slots) if open_slots and r.random() < 0.9 else r.randrange(SLOTS)
        choices = [
            ("open", 10), ("close", 6), ("write", 16), ("append", 2), ("read", 8), ("ftruncate", 3),
            ("fsync", 3), ("truncate", 3), ("writefile", 6), ("readfile", 5), ("rename", 6),
            ("unlink", 4), ("mkdir", 5), ("rmdir", 3), ("symlink", 2), ("readlink", 1),
            ("setxattr", 4), ("getxattr", 2), ("removexattr", 1), ("listxattr", 1), ("chmod", 2),
            ("stat", 4), ("listdir", 3), ("chown", 1), ("utime", 2), ("atime", 2),
        ]
        kind = r.choices([c for c, _ in choices], [w for _, w in choices])[0]
        if kind == "open":
            return ["open", slot, self.path(files, dirs, links, "file"), r.choice(sorted(OPEN_FLAGS)),
                    r.choice([0o644, 0o600, 0o640])]
        if kind == "close":
            return ["close", slot]
        if kind == "write":
            return ["write", slot, self.offset(), self.size(), f"{step}"]
        if kind == "append":
            return ["append", slot, self.size(), f"{step}"]
        if kind == "read":
            return ["read", slot, self.offset(), r.choice([1, 100, 4096, 65536, 1 << 20])]
        if kind == "ftruncate":
            return ["ftruncate", slot, self.offset()]
        if kind == "fsync":
            return ["fsync", slot]
        if kind == "truncate":
            return ["truncate", self.path(files, dirs, links, "file"), self.offset()]
        if kind == "writefile":
            return ["writefile", self.path(files, dirs, links, "file"), self.size(), f"{step}"]
        if kind == "readfile":
            return ["readfile", self.path(files, dirs, links, "file")]
        if kind == "rename":
            src = self.path(files, dirs, links, r.choice(["file", "file", "dir", "any"]))
            return ["rename", src, self.path(files, dirs, links, r.choice(["file", "dir", "any"]))]
        if kind == "unlink":
            return ["unlink", self.path(files, dirs, links, r.choice(["file", "file", "link", "dir"]))]
        if kind == "mkdir":
            return ["mkdir", self.path(files, dirs, links, "dir"), 0o755]
        if kind == "rmdir":
            return ["rmdir", self.path(files, dirs, links, r.choice(["dir", "dir", "file"]))]
        if kind == "symlink":
            link = self.path(files, dirs, links, "file")
            # Targets stay inside the link's own folder, so that both trees
            # resolve them alike.
            return ["symlink", r.choice(NAMES + DIRS), link]
        if kind == "readlink":
            return ["readlink", self.path(files, dirs, links, r.choice(["link", "file"]))]
        if kind == "setxattr":
            return ["setxattr", self.path(files, dirs, links), r.choice(XATTRS),
                    r.choice(["", "v", "value " * r.randint(1, 20), "ü→x"]), r.choice([0, 0, 1, 2])]
        if kind == "getxattr":
            return ["getxattr", self.path(files, dirs, links), r.choice(XATTRS)]
        if kind == "removexattr":
            return ["removexattr", self.path(files, dirs, links), r.choice(XATTRS)]
        if kind == "listxattr":
            return ["listxattr", self.path(files, dirs, links)]
        if kind == "chmod":
            return ["chmod", self.path(files, dirs, links, r.choice(["file", "file", "dir"])),
                    r.choice([0o600, 0o644, 0o444, 0o755, 0o700])]
        if kind == "chown":
            return ["chown", self.path(files, dirs, links), r.choice([0, 1000, 65534]), r.choice([0, 100, 65534])]
        if kind == "utime":
            return ["utime", self.path(files, dirs, links), r.choice(TIMES_NS), r.choice(TIMES_NS)]
        if kind == "atime":
            return ["atime", self.path(files, dirs, links, "file"), r.choice(TIMES_NS), r.choice(TIMES_NS)]
        if kind == "stat":
            return ["stat", self.path(files, dirs, links)]
        return ["listdir", r.choice(dirs)]


# ---------------------------------------------------------------------------
# Running and comparing


class Lab:
    """A mount plus a plain directory; hands out fresh subtree pairs."""

    def __init__(self, base):
        self.base = base
        # allow_other: files show the owners they record (chown compared).
        self.m = Mount(os.path.join(base, "mount"), options=("allow_other",))
        self.ref_base = os.path.join(base, "ref")
        os.makedirs(self.ref_base)
        self.n = 0
        self.lock = threading.Lock()

    def start(self):
        self.m.start()
        os.mkdir(self.m.path("species", "HeLa"))
        os.mkdir(self.m.path("species", "HeLa", "slides", "S1"))
        os.mkdir(self.m.path("slides", "S1", "images", "cell01"))
        self.files = self.m.path("slides", "S1", "images", "cell01", "files")

    def fresh(self):
        with self.lock:
            self.n += 1
            name = f"t{self.n:05d}"
        mine, ref = os.path.join(self.files, name), os.path.join(self.ref_base, name)
        os.mkdir(mine)
        os.mkdir(ref)
        return Side(mine), Side(ref)

    def stop(self):
        return self.m.stop()


def explain(op, mine, ref):
    """For a differing read: the sizes each descriptor reports and whether
    reading again gives the same answer (a transient or a cached state)."""
    if op[0] != "read" or mine.fds[op[1]] is None or ref.fds[op[1]] is None:
        return ""
    try:
        sizes = (os.fstat(mine.fds[op[1]]).st_size, os.fstat(ref.fds[op[1]]).st_size)
        again = mine.apply(op) == ref.apply(op)
        where = ""
        if not again:
            _, slot, off, size = op
            a, b = os.pread(mine.fds[slot], size, off), os.pread(ref.fds[slot], size, off)
            first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            last = max((i for i in range(min(len(a), len(b))) if a[i] != b[i]), default=first)
            where = f"; bytes {off + first}..{off + last} differ, samplefs has {a[first:first + 24]!r}, " \
                    f"the plain directory {b[first:first + 24]!r}"
        return f" [fstat sizes {sizes[0]} / {sizes[1]}; read again: {'same as' if again else 'differs from'} " \
               f"the plain directory{where}]"
    except OSError as e:
        return f" [{e}]"


def compare_step(i, op, mine, ref):
    """None, or a description of the first difference after step i. The
    trees are compared at "check" steps only: reading every file after
    every step would refill the kernel's page cache and hide bugs in it."""
    a, b = mine.apply(op), ref.apply(op)
    if a != b:
        return ("result " + (a[1] if a[0] == "err" else "ok"),
                f"step {i} {op!r}: samplefs {a!r}, plain directory {b!r}" + explain(op, mine, ref))
    if op[0] != "check":
        return None
    sa, sb = mine.snapshot(), ref.snapshot()
    if sa != sb:
        diff = []
        for k in sorted(set(sa) | set(sb)):
            if sa.get(k) != sb.get(k):
                diff.append(f"  {k}: samplefs {sa.get(k)!r}, plain directory {sb.get(k)!r}")
        return ("tree", f"after step {i} {op!r}, the trees differ:\n" + "\n".join(diff[:10]))
    return None


def run_ops(lab, ops):
    """Replays `ops` on fresh trees; returns (index, kind, message) of the
    first difference, or None."""
    mine, ref = lab.fresh()
    try:
        for i, op in enumerate(list(ops) + [["check"]]):
            d = compare_step(i, op, mine, ref)
            if d:
                return (min(i, len(ops) - 1), d[0], d[1])
        return None
    finally:
        mine.close_all()
        ref.close_all()


def run_random(lab, seed, n_ops, stop_event=None):
    """Generates and runs one seeded sequence; returns (ops, failure)."""
    gen = Generator(seed)
    mine, ref = lab.fresh()
    ops = []
    try:
        while len(ops) < n_ops:
            if stop_event is not None and stop_event.is_set():
                break
            # A third of the steps are followed by a comparison of the trees.
            op = gen.op(ref, len(ops)) if not ops or ops[-1][0] == "check" or gen.rng.random() < 0.65 \
                else ["check"]
            ops.append(op)
            d = compare_step(len(ops) - 1, op, mine, ref)
            if d:
                return ops, (len(ops) - 1, d[0], d[1])
        d = compare_step(len(ops), ["check"], mine, ref)
        if d:
            return ops, (max(len(ops) - 1, 0), d[0], d[1])
        return ops, None
    finally:
        mine.close_all()
        ref.close_all()


def signature(failure, ops):
    i, kind, _ = failure
    return (kind,) if kind == "tree" else (kind, ops[i][0])


def shrink(lab, ops, failure, budget_s=240):
    """ddmin: the shortest sub-sequence that still fails the same way (same
    kind of difference at the same kind of operation)."""
    want = signature(failure, ops)
    ops = ops[:failure[0] + 1]
    deadline = time.time() + budget_s

    def fails(candidate):
        f = run_ops(lab, candidate)
        return f if f and signature(f, candidate) == want else None

    n = 2
    while len(ops) >= 2 and time.time() < deadline:
        chunk = max(1, len(ops) // n)
        reduced = False
        for start in range(0, len(ops), chunk):
            candidate = ops[:start] + ops[start + chunk:]
            f = candidate and fails(candidate)
            if f:
                ops = candidate[:f[0] + 1]
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(ops), n * 2)
    return ops, run_ops(lab, ops)


def report(lab, seed, ops, failure, do_shrink, out_dir):
    print(f"DIFFERENCE (seed {seed}): {failure[2]}")
    if do_shrink:
        small, f = shrink(lab, ops, failure)
        print(f"shrunk from {failure[0] + 1} to {len(small)} steps:")
        if f:
            print(f"  {f[2]}")
        ops = small
    path = os.path.join(out_dir, f"difftest-seed{seed}.json")
    with open(path, "w") as fh:
        json.dump(ops, fh)
    print("sequence (difftest.py --replay " + path + "):")
    print("[\n" + "".join(f"    {json.dumps(op, ensure_ascii=False)},\n" for op in ops) + "]")
    print(f"DIFFERENCE (seed {seed}): {failure[2]}")


# ---------------------------------------------------------------------------
# Concurrent mode


def concurrent(lab, workers, seconds, seed, ops_per_sequence, stats):
    stop_event = threading.Event()
    failures = []
    counts = {"ops": 0, "walks": 0, "reads": 0, "tags": 0}
    count_lock = threading.Lock()

    def worker(w):
        k = 0
        while not stop_event.is_set():
            s = seed * 1000 + w * 100000 + k
            k += 1
            ops, f = run_random(lab, s, ops_per_sequence, stop_event)
            with count_lock:
                counts["ops"] += len(ops)
            if f:
                failures.append((s, ops, f))
                stop_event.set()

    def tolerated(e):
        # Workers create and delete under our feet.
        return e.errno in (errno.ENOENT, errno.ESTALE, errno.ENOTDIR, errno.EISDIR, errno.ENODATA,
                           errno.ELOOP)

    def lister():
        while not stop_event.is_set():
            for dirpath, dirnames, filenames in os.walk(lab.m.mnt):
                if stop_event.is_set():
                    break
                for n in filenames:
                    try:
                        os.lstat(os.path.join(dirpath, n))
                    except OSError as e:
                        if not tolerated(e):
                            failures.append((None, [], (0, "walk", f"lstat {dirpath}/{n}: {e}")))
                            stop_event.set()
            with count_lock:
                counts["walks"] += 1

    def reader():
        rng = random.Random(seed)
        while not stop_event.is_set():
            for dirpath, dirnames, filenames in os.walk(lab.files):
                if stop_event.is_set():
                    break
                for n in filenames:
                    if rng.random() < 0.5 or os.path.islink(os.path.join(dirpath, n)):
                        continue
                    try:
                        # O_NOATIME: a read here must not move the atime a
                        # worker's "atime" or "utime" step is comparing.
                        fd = os.open(os.path.join(dirpath, n), os.O_RDONLY | os.O_NOATIME)
                        with open(fd, "rb") as f:
                            while f.read(1 << 20):
                                pass
                        with count_lock:
                            counts["reads"] += 1
                    except OSError as e:
                        if not tolerated(e):
                            failures.append((None, [], (0, "read", f"read {dirpath}/{n}: {e}")))
                            stop_event.set()

    def tagger():
        rng = random.Random(seed + 1)
        image = os.path.dirname(lab.files)
        while not stop_event.is_set():
            tags = sorted(rng.sample(["good", "bad", "blurry", "tubulin", "t1", "t2"], rng.randint(1, 3)))
            value = ",".join(tags)
            r = subprocess.run(["setfattr", "-n", "user.xdg.tags", "-v", value, image],
                               capture_output=True, text=True)
            got = os.getxattr(image, "user.xdg.tags").decode()
            if r.returncode != 0 or sorted(t for t in got.split(",") if t) != tags:
                failures.append((None, [], (0, "tag", f"setfattr user.xdg.tags={value}: rc {r.returncode} "
                                                      f"{r.stderr.strip()}, read back {got!r}")))
                stop_event.set()
            with count_lock:
                counts["tags"] += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    threads += [threading.Thread(target=f) for f in (lister, reader, tagger)]
    for t in threads:
        t.start()
    t0 = time.time()
    deadline = t0 + seconds
    while time.time() < deadline and not stop_event.is_set():
        time.sleep(0.1)
    stop_event.set()
    for t in threads:
        t.join()
    stats["concurrent_ops"] += counts["ops"]
    print(f"concurrent: {workers} workers, {counts['ops']} operations compared, {counts['walks']} walks, "
          f"{counts['reads']} reads, {counts['tags']} tag edits in {time.time() - t0:.1f} s")
    return failures


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    ap.add_argument("--seeds", type=int, default=3, help="sequential sequences, seeds seed..seed+N-1 (default 3)")
    ap.add_argument("--ops", type=int, default=500, help="operations per sequence (default 500)")
    ap.add_argument("--workers", type=int, default=4, help="concurrent workers (default 4; 0: no concurrent run)")
    ap.add_argument("--seconds", type=float, default=20, help="length of the concurrent run (default 20)")
    ap.add_argument("--no-sequential", action="store_true", help="only the concurrent run")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--replay", help="a JSON list of operations to run (as printed on a failure)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if not fuse_available():
        print("SKIP: /dev/fuse or fusermount3 is missing: the differential test needs FUSE")
        return 77
    base = tempfile.mkdtemp(prefix="samplefs-diff-")
    lab = Lab(base)
    lab.start()
    stats = {"sequential_ops": 0, "concurrent_ops": 0, "sequences": 0}
    ok = True
    t0 = time.time()
    try:
        if args.replay:
            with open(args.replay) as f:
                ops = json.load(f)
            f = run_ops(lab, ops)
            print(f"replay of {len(ops)} steps: " + (f[2] if f else "no difference"))
            ok = f is None
            return 0 if ok else 1
        for name, ops in REGRESSIONS.items():
            f = run_ops(lab, ops)
            if f:
                print(f"REGRESSION {name}: {f[2]}")
                ok = False
            else:
                stats["sequential_ops"] += len(ops)
        if REGRESSIONS:
            print(f"{len(REGRESSIONS)} regression sequences replayed")
        if not args.no_sequential:
            for seed in range(args.seed, args.seed + args.seeds):
                ops, f = run_random(lab, seed, args.ops)
                stats["sequences"] += 1
                if f:
                    report(lab, seed, ops, f, not args.no_shrink, base)
                    ok = False
                    break
                stats["sequential_ops"] += len(ops)
                print(f"seed {seed}: {len(ops)} operations, no difference")
        if ok and args.workers > 0:
            failures = concurrent(lab, args.workers, args.seconds, args.seed, args.ops, stats)
            if failures:
                ok = False
                seed, ops, f = failures[0]
                if seed is None:
                    print(f"CONCURRENT FAILURE: {f[2]}")
                else:
                    print(f"concurrent worker sequence (seed {seed}) differs; reproducing it alone:")
                    alone = run_ops(lab, ops)
                    if alone:
                        report(lab, seed, ops, alone, not args.no_shrink, base)
                    else:
                        print(f"  it does not fail alone (a concurrency bug): {f[2]}")
                        report(lab, seed, ops, f, False, base)
    finally:
        rc = lab.stop()
        if rc != 0:
            print(f"daemon exited {rc} at unmount")
            ok = False
        if args.keep or not ok:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'ok' if ok else 'FAILED'}: {stats['sequential_ops']} sequential and {stats['concurrent_ops']} "
          f"concurrent operations compared without a difference in {time.time() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
