#!/usr/bin/env python3
"""Mounted benchmark: a plain directory, a bindfs mount of it, and samplefs.

Runs the same everyday tools (dd, cp, rsync, tar, rm, find, ls, getfattr,
setfattr) against three targets in one run, so the figures share one
machine state:

  plain     a directory on the disk that holds the samplefs store
  bindfs    `bindfs --multithreaded -o big_writes,kernel_cache,
            default_permissions` of that directory (a FUSE passthrough in
            its best configuration: the cost of FUSE itself; its defaults,
            one thread and 4 KiB writes, understate what FUSE can do)
  samplefs  the daemon under test, on its own catalog and store on the
            same disk

and prints a table of figures, with the targets of the tracking issues
(3: reads and listings, 4: copying data in, 5: metadata and queries) and
whether each is met. Without --quick the figures also replace this
script's sections in tests/bench/README.md (other sections are kept).

    python3 tests/bench/mount_bench.py --samplefs build/bench/mount/samplefs [--quick]

"Cold" means `sync; echo 3 > /proc/sys/vm/drop_caches` and a fresh mount
of bindfs and samplefs; "warm" is the best of repeated runs right after.
Sources of the copies live on a private tmpfs, so a copy measures the
destination only (and drop_caches cannot evict them). Every write test
times the tool, then a `sync` right after it: "+ sync" figures are the
two added (the data is on the disk when the clock stops).

Needs root (drop_caches, the tmpfs, clear_refs), /dev/fuse, fusermount3,
bindfs, rsync, tar, getfattr/setfattr. Python 3 standard library only.
Not registered in ctest: the full run takes about 17 minutes on the
development VM (most of it samplefs's small-file copies), --quick under 3.
"""
import argparse
import contextlib
import datetime
import os
import platform
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
MIB = 1 << 20
GIB = 1 << 30
EMPTY_HASH = "99aa06d3014798d86001c324468d497f"  # XXH3-128 of no bytes
TARGETS = ("plain", "bindfs", "samplefs")

SIZES = {
    "full": dict(big=2 * GIB, huge=10 * GIB, small_n=10000, small_size=64 << 10,
                 list_dirs=1000, list_per_dir=100, xattr_n=10000,
                 q_slides=1000, q_images=2, q_files=500),
    "quick": dict(big=256 * MIB, huge=1 * GIB, small_n=1000, small_size=64 << 10,
                  list_dirs=100, list_per_dir=100, xattr_n=1000,
                  q_slides=100, q_images=2, q_files=250),
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def human_count(n):
    return f"{n:,}"


def human_bytes(n):
    if n >= GIB and n % GIB == 0:
        return f"{n // GIB} GiB"
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    return f"{n // 1024} KiB"


# ---------------------------------------------------------------------------
# Running commands and timing them


class CommandFailed(Exception):
    pass


def run(cmd, cwd=None, capture=False, check=True):
    """Runs a shell command; returns its stdout if capture, else None."""
    p = subprocess.run(cmd, shell=True, cwd=cwd, text=True,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise CommandFailed(f"`{cmd}` exited with {p.returncode}: {p.stderr.strip()[-600:]}")
    return p.stdout if capture else None


def timed(cmd, cwd=None):
    """Wall-clock seconds of a shell command (raises CommandFailed)."""
    t0 = time.monotonic()
    run(cmd, cwd=cwd)
    return time.monotonic() - t0


def timed_sync(path=None):
    """sync(2), then fsync of the destination directory: sync(2) does not
    reach a FUSE daemon, and samplefs commits closed files in the
    background, so its `sync DIR` (fsyncdir) is what waits until they are
    durable and recorded. The same is done on every target."""
    t0 = time.monotonic()
    os.sync()
    if path:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.monotonic() - t0


IS_ROOT = os.geteuid() == 0


def drop_caches():
    os.sync()
    if IS_ROOT:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def wait_mounted(path, proc, what, log_path=None):
    deadline = time.time() + 60
    while time.time() < deadline:
        if is_mounted(path):
            return
        if proc.poll() is not None:
            text = ""
            if log_path and os.path.exists(log_path):
                with open(log_path) as f:
                    text = f.read()[-2000:]
            raise RuntimeError(f"{what} exited with {proc.returncode} before mounting\n{text}")
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not mount {path} within 60 s")


def unmount(path, proc):
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", path], check=False)
    if proc is not None:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if is_mounted(path):
        subprocess.run(["fusermount3", "-uz", path], check=False)


# ---------------------------------------------------------------------------
# Memory of a daemon


def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    """Resets VmHWM to the current RSS (clear_refs 5, Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5\n")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples a process's VmRSS every `period` seconds while in a with block
    (smallfile_bench.Sampler adds its open descriptors through sample())."""

    def __init__(self, pid, period=0.1):
        self.pid = pid
        self.period = period
        self.samples = []  # (seconds since start, KiB, what sample() adds)
        self.hwm_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        """What is measured at each tick after the time: (VmRSS KiB,)."""
        return (proc_status_kib(self.pid, "VmRSS"),)

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - t0,) + self.sample())
            except OSError:
                return
            self._stop.wait(self.period)

    def __enter__(self):
        reset_peak_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        try:
            self.hwm_kib = proc_status_kib(self.pid, "VmHWM")
        except OSError:
            self.hwm_kib = 0
        return False

    def profile(self):
        """RSS (MiB) at 25/50/75/100 % of the run: shows whether it grows."""
        if not self.samples:
            return []
        out = []
        for q in (0.25, 0.5, 0.75, 1.0):
            idx = min(len(self.samples) - 1, int(q * (len(self.samples) - 1)))
            out.append(self.samples[idx][1] / 1024)
        return out


# ---------------------------------------------------------------------------
# Results


class Row:
    def __init__(self, section, label, goal=None, nbytes=None, unit="s"):
        self.section = section
        self.label = label
        self.goal = goal  # see GOALS
        self.nbytes = nbytes
        self.unit = unit
        self.values = {}  # target -> float, or str for an error
        self.note = ""


# goal -> (text, predicate(values) -> bool)
def _v(values, t):
    v = values.get(t)
    return v if isinstance(v, (int, float)) else None


def _goal_le_bindfs(values):
    s, b = _v(values, "samplefs"), _v(values, "bindfs")
    return None if s is None or b is None else s <= b


def _goal_lt_bindfs(values):
    s, b = _v(values, "samplefs"), _v(values, "bindfs")
    return None if s is None or b is None else s < b


def _goal_copy(values):
    s, b, p = _v(values, "samplefs"), _v(values, "bindfs"), _v(values, "plain")
    if s is None or b is None or p is None:
        return None
    return s <= b and s <= 1.5 * p


GOALS = {
    "read": ("speed >= bindfs", _goal_le_bindfs),
    "faster": ("faster than bindfs", _goal_lt_bindfs),
    "copy": ("<= bindfs and <= 1.5x plain", _goal_copy),
    "small": ("<= bindfs", _goal_le_bindfs),
    "flat": ("flat: no growth during the write (<= 4 MiB)", None),  # decided in the bench
    "contention": ("samplefs <= 1.5x", lambda values: None if _v(values, "samplefs") is None
                   else _v(values, "samplefs") <= 1.5),
}


class Results:
    def __init__(self):
        self.rows = []
        self.notes = {}  # section -> list of lines
        self.flat_ok = None

    def row(self, section, label, goal=None, nbytes=None, unit="s"):
        for r in self.rows:
            if r.section == section and r.label == label:
                return r
        r = Row(section, label, goal, nbytes, unit)
        self.rows.append(r)
        return r

    def set(self, section, label, target, value, goal=None, nbytes=None, unit="s"):
        self.row(section, label, goal, nbytes, unit).values[target] = value

    def best(self, section, label, target, value, goal=None, nbytes=None, unit="s"):
        """Keeps the smallest value of repeated runs (a failure never replaces a figure)."""
        row = self.row(section, label, goal, nbytes, unit)
        old = row.values.get(target)
        if not isinstance(old, float) or (isinstance(value, float) and value < old):
            row.values[target] = value

    def note(self, section, text):
        self.notes.setdefault(section, []).append(text)

    @staticmethod
    def fmt(row, target):
        v = row.values.get(target)
        if v is None:
            return "—"
        if isinstance(v, str):
            return v
        if row.unit == "MiB":
            return f"{v:.0f} MiB"
        if row.unit == "n":
            return human_count(int(v))
        if row.unit == "x":
            return f"{v:.2f}x"
        text = f"{v:.2f} s" if v < 100 else f"{v:.0f} s"
        if row.nbytes and v > 0:
            text += f" ({row.nbytes / MIB / v:.0f} MiB/s)"
        return text

    def verdict(self, row):
        if row.goal is None:
            return "", None
        text, pred = GOALS[row.goal]
        if row.goal == "flat":
            ok = self.flat_ok
        else:
            ok = pred(row.values)
        return text, ok

    def ratio(self, row):
        s, b = _v(row.values, "samplefs"), _v(row.values, "bindfs")
        if s is None or b is None or b == 0 or row.unit not in ("s",):
            return ""
        return f"{s / b:.2f}x"

    def table(self, section):
        rows = [r for r in self.rows if r.section == section]
        if not rows:
            return ""
        lines = ["| measurement | plain | bindfs | samplefs | samplefs/bindfs time | target | met |",
                 "|---|---|---|---|---|---|---|"]
        for r in rows:
            goal, ok = self.verdict(r)
            met = "" if r.goal is None else ("yes" if ok else "**no**" if ok is False else "?")
            lines.append(f"| {r.label} | {self.fmt(r, 'plain')} | {self.fmt(r, 'bindfs')} | "
                         f"{self.fmt(r, 'samplefs')} | {self.ratio(r)} | {goal} | {met} |")
        for n in self.notes.get(section, []):
            lines.append("")
            lines.append(n)
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# What every bench of this folder shares: smallfile_bench.py and pg_bench.py
# subclass BenchBase, as Bench below does (the work dir with its tmpfs of
# sources, the run's time and load, teardown, the environment line's parts
# and the README blocks).


def cpu_seconds(pid):
    """utime + stime of a process, all its threads (dead ones included), in
    seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class BenchBase:
    def __init__(self, args, sizes):
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.sz = sizes[self.mode]
        self.work = os.path.abspath(args.workdir)
        self.src = os.path.join(self.work, "src")  # tmpfs (as root): copy sources
        self.src_is_tmpfs = False
        self.elapsed = 0.0
        self.load_before = self.load_after = (0.0,)

    def make_work(self, tmpfs_size, tmpfs_name):
        """A fresh work dir (an earlier run's mounts undone, its files removed
        in the background) with src/ on a private tmpfs of `tmpfs_size` (a
        mount option value) when root."""
        if os.path.exists(self.work):
            self.cleanup_mounts()
            remove_in_background(self.work)
        os.makedirs(self.src)
        if IS_ROOT:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_size},mode=0700", tmpfs_name,
                                self.src], capture_output=True, text=True)
            self.src_is_tmpfs = r.returncode == 0
        if not self.src_is_tmpfs:
            log("warning: sources are on the disk, not on a tmpfs (needs root)")

    def cleanup_mounts(self):
        """Unmounts the sources' tmpfs; a subclass unmounts its targets first."""
        if is_mounted(self.src):
            subprocess.run(["umount", self.src], check=False)

    def teardown(self):
        self.cleanup_mounts()
        if not self.args.keep and os.path.exists(self.work):
            remove_in_background(self.work)

    def setup(self):
        raise NotImplementedError

    def run_groups(self):
        raise NotImplementedError

    def run_all(self):
        """setup, the groups and teardown (also after a failure), timed, with
        the load average before and after."""
        t0 = time.monotonic()
        self.load_before = os.getloadavg()
        try:
            self.setup()
            log(f"setup done in {time.monotonic() - t0:.0f} s")
            self.run_groups()
        finally:
            self.teardown()
            self.elapsed = time.monotonic() - t0
            self.load_after = os.getloadavg()

    # -- the parts of the environment line every README table starts with
    def run_text(self):
        """The date, mode, groups (--only) and length of the run."""
        only = f", only {self.args.only}" if getattr(self.args, "only", None) else ""
        return f"{datetime.date.today().isoformat()}, {self.mode} mode{only} ({self.elapsed / 60:.1f} min)"

    @staticmethod
    def machine_text():
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
        return f"Linux {platform.release()}, {os.cpu_count()} cores, {mem:.0f} GiB"

    def load_text(self):
        return f"load average {self.load_before[0]:.1f} before, {self.load_after[0]:.1f} after"

    def sources_text(self):
        return f"sources on {'tmpfs' if self.src_is_tmpfs else 'the disk'}"

    def print_tables(self, environment, sections):
        """The environment line, then each of `sections` ((key, title)) that
        has figures, as a table."""
        print()
        print(environment)
        for key, title in sections:
            body = self.results.table(key)
            if body:
                print(f"\n## {title}\n\n{body}")


def bindfs_version():
    try:
        return subprocess.run(["bindfs", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "bindfs ?"


def put_block(text, key, body, headings=()):
    """`text` (a README) with the block between <!-- KEY:begin --> and
    <!-- KEY:end --> replaced by `body`; a new block is appended at the end,
    after the lines `headings`."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        return text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    for h in headings:
        text = text.rstrip("\n") + f"\n\n{h}\n"
    return text.rstrip("\n") + f"\n\n{block}\n"


def write_file(path, text):
    """Replaces `path` whole (a temporary file renamed over it)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------------------
# The three targets


class Bench(BenchBase):
    def __init__(self, args):
        super().__init__(args, SIZES)
        self.plain = os.path.join(self.work, "plain")      # the plain directory
        self.bmnt = os.path.join(self.work, "bindfs-mnt")  # bindfs of self.plain
        self.sroot = os.path.join(self.work, "samplefs")   # catalog, store, mnt
        self.smnt = os.path.join(self.sroot, "mnt")
        self.qroot = os.path.join(self.work, "query")      # the 1M-file catalog
        self.qmnt = os.path.join(self.qroot, "mnt")
        self.samplefs_bin = os.path.abspath(args.samplefs)
        self.bproc = None
        self.sproc = None
        self.qproc = None
        self.results = Results()

    # -- paths where each target's data goes
    def data_dir(self, target):
        return {
            "plain": os.path.join(self.plain, "data"),
            "bindfs": os.path.join(self.bmnt, "bdata"),  # lands in plain/bdata
            "samplefs": os.path.join(self.smnt, "slides", "BENCH", "images", "data", "files"),
        }[target]

    def tree_dir(self, target):
        return {
            "plain": os.path.join(self.plain, "tree"),
            "bindfs": os.path.join(self.bmnt, "tree"),
            "samplefs": os.path.join(self.smnt, "slides", "BENCH", "images", "tree", "files"),
        }[target]

    def pid(self, target):
        if target == "bindfs":
            return self.bproc.pid if self.bproc else None
        if target == "samplefs":
            return self.sproc.pid if self.sproc else None
        return None

    # -- mounts
    def mount_bindfs(self):
        os.makedirs(self.bmnt, exist_ok=True)
        self.bproc = subprocess.Popen(["bindfs", "-f", "--multithreaded", "-o",
                                       "big_writes,kernel_cache,default_permissions", self.plain, self.bmnt],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_mounted(self.bmnt, self.bproc, "bindfs")

    def umount_bindfs(self):
        unmount(self.bmnt, self.bproc)
        self.bproc = None

    def start_samplefs(self, root, mnt):
        conf = os.path.join(root, "samplefs.conf")
        logf = os.path.join(root, "samplefs.log")
        os.makedirs(mnt, exist_ok=True)
        with open(logf, "a") as lf:
            proc = subprocess.Popen([self.samplefs_bin, "--config", conf, mnt, "-f", "-o", "create"],
                                    stdout=lf, stderr=subprocess.STDOUT)
        wait_mounted(mnt, proc, "samplefs", logf)
        return proc

    def mount_samplefs(self):
        self.sproc = self.start_samplefs(self.sroot, self.smnt)

    def umount_samplefs(self):
        unmount(self.smnt, self.sproc)
        self.sproc = None

    def remount(self, target):
        """A fresh mount (nothing cached in the daemon or the kernel's FUSE state)."""
        if target == "bindfs":
            self.umount_bindfs()
            self.mount_bindfs()
        elif target == "samplefs":
            self.umount_samplefs()
            self.mount_samplefs()

    def cold(self, target):
        os.sync()
        self.remount(target)
        drop_caches()

    # -- setup
    def setup(self):
        src_bytes = 2 * self.sz["big"] + 3 * self.sz["small_n"] * self.sz["small_size"] + 64 * MIB
        self.make_work(src_bytes + 256 * MIB, "samplefs-bench-src")
        os.makedirs(os.path.join(self.plain, "data"))
        for root in (self.sroot, self.qroot):
            os.makedirs(root)
            with open(os.path.join(root, "samplefs.conf"), "w") as f:
                f.write(f"catalog = {root}/catalog.db\nstore = {root}/store\nlog_level = warn\n")

        log(f"generating sources on {'tmpfs' if self.src_is_tmpfs else 'disk'}")
        self.big_src = os.path.join(self.src, "big.raw")
        if not self.args.only or {"copy", "fsync", "reads"} & set(self.args.only.split(",")):
            write_pattern_file(self.big_src, self.sz["big"], seed=1)
        self.small_srcs = {}
        for i, name in enumerate(("cp", "rsync", "tar")):
            d = os.path.join(self.src, f"small-{name}", "frames")
            os.makedirs(d)
            write_small_files(d, self.sz["small_n"], self.sz["small_size"], seed=10 + i)
            self.small_srcs[name] = d
        self.tarball = os.path.join(self.src, "small.tar")
        run(f"tar -cf {self.tarball} -C {os.path.dirname(self.small_srcs['tar'])} frames")
        shutil.rmtree(os.path.dirname(self.small_srcs["tar"]))

        log(f"creating the listing tree: {human_count(self.sz['list_dirs'] * self.sz['list_per_dir'])} "
            f"files in {human_count(self.sz['list_dirs'])} folders (plain; samplefs through SQL)")
        make_plain_tree(os.path.join(self.plain, "tree"), self.sz["list_dirs"], self.sz["list_per_dir"])

        # samplefs: records through the mount, the big tree through SQL.
        self.mount_samplefs()
        for d in ("species/Bench", "species/Bench/slides/BENCH", "slides/BENCH/images/data",
                  "slides/BENCH/images/tree"):
            os.mkdir(os.path.join(self.smnt, d))
        self.umount_samplefs()
        insert_tree(os.path.join(self.sroot, "catalog.db"), "BENCH", "tree",
                    self.sz["list_dirs"], self.sz["list_per_dir"])
        self.mount_samplefs()
        self.mount_bindfs()
        os.mkdir(self.data_dir("bindfs"))
        os.sync()

    def cleanup_mounts(self):
        for mnt, proc in ((self.bmnt, self.bproc), (self.smnt, self.sproc), (self.qmnt, self.qproc)):
            if is_mounted(mnt) or proc is not None:
                unmount(mnt, proc)
        self.bproc = self.sproc = self.qproc = None
        super().cleanup_mounts()

    # -- measurement helpers
    def measure(self, section, label, target, fn, goal=None, nbytes=None, best=False):
        try:
            v = fn()
        except (CommandFailed, OSError, RuntimeError) as e:
            log(f"  {label} [{target}] failed: {e}")
            v = "failed"
        if best:
            self.results.best(section, label, target, v, goal, nbytes)
        else:
            self.results.set(section, label, target, v, goal, nbytes)
        if isinstance(v, float):
            extra = f" ({nbytes / MIB / v:.0f} MiB/s)" if nbytes and v > 0 else ""
            log(f"  {label:<38} {target:<9} {v:8.2f} s{extra}")
        return v

    # -----------------------------------------------------------------------
    # Issue 4: copying data in

    def bench_copy(self):
        S = "copy"
        big = self.sz["big"]
        hb = human_bytes(big)
        rounds = self.args.rounds
        for rnd in range(rounds):
            # Alternate the order so that neither target always follows the
            # other's writeback; every round copies new content (samplefs
            # would otherwise deduplicate against the previous round).
            order = TARGETS if rnd % 2 == 0 else tuple(reversed(TARGETS))
            log(f"copying data in: cp of a {hb} file (round {rnd + 1} of {rounds})")
            if rnd:
                write_pattern_file(self.big_src, big, seed=1 + rnd)
            # Every target's previous copy goes first, then the page cache:
            # each copy of the round starts from the same memory state. On
            # this VM memory not touched for a while is several times slower
            # to write (the host maps it back on first use); deleting each
            # target's old copy right before its new one handed the plain
            # directory the pages its last copy had just freed, while
            # samplefs's had left the page cache when they were published
            # (README, "Mount: copying data in").
            for t in TARGETS:
                dst = os.path.join(self.data_dir(t), "big")
                if os.path.exists(dst):
                    run(f"rm -rf {dst}")
            drop_caches()
            for t in order:
                dst = os.path.join(self.data_dir(t), "big")
                os.mkdir(dst)
                os.sync()
                pid = self.pid(t)
                sampler = RssSampler(pid) if pid else contextlib.nullcontext()
                with sampler:
                    cp = self.measure(S, f"cp {hb} file", t, lambda: timed(f"cp {self.big_src} {dst}/"),
                                      "copy", big, best=True)
                    sy = timed_sync(dst)
                if isinstance(cp, float):
                    self.results.best(S, f"cp {hb} file + sync", t, cp + sy, "copy", big)
                    log(f"  {'  ... + sync':<38} {t:<9} {cp + sy:8.2f} s")
                if pid:
                    self.results.best(S, f"daemon peak RSS during cp {hb}", t, -sampler.hwm_kib / 1024, unit="MiB")
        for t in TARGETS:  # peak RSS: the largest of the rounds (stored negated by best())
            r = self.results.row(S, f"daemon peak RSS during cp {hb}")
            if isinstance(r.values.get(t), float):
                r.values[t] = -r.values[t]
        if rounds > 1:
            self.results.note(S, f"The {hb} copy ran {rounds} times in alternating order: the best time "
                                 f"and the largest peak RSS are shown.")

        self.bench_smallcopy()

        # A large write straight into the mount: memory must stay flat.
        self.bench_huge()

    def bench_smallcopy(self):
        """cp -r, rsync -a, tar -x and rm -rf of the small files (part of
        "copy"; alone with --only smallcopy)."""
        S = "copy"
        n, size = self.sz["small_n"], self.sz["small_size"]
        what = f"{human_count(n)} x {human_bytes(size)}"
        ops = [
            ("cp -r", "cp", lambda src, dst: f"cp -r {src} {dst}/cp"),
            ("rsync -a", "rsync", lambda src, dst: f"rsync -a {src} {dst}/rsync/"),
            ("tar -x", "tar", lambda src, dst: f"mkdir {dst}/tar && tar -xf {self.tarball} -C {dst}/tar"),
        ]
        for label, key, cmd in ops:
            log(f"copying data in: {label} of {what}")
            for t in TARGETS:
                os.sync()
                c = cmd(self.small_srcs.get(key), self.data_dir(t))
                v = self.measure(S, f"{label} {what}", t, lambda: timed(c), "small", n * size)
                sy = timed_sync(self.data_dir(t))
                if isinstance(v, float):
                    self.results.set(S, f"{label} {what} + sync", t, v + sy, "small", n * size)
        # Two rounds in alternating order, on the cp and the tar trees (the
        # same 10,000 files), the best kept: on a disk mounted with `discard`
        # ext4 is still discarding the previous target's freed blocks when
        # the next one starts, so a fixed order always handed the last
        # target (samplefs) a busy disk.
        label = f"rm -rf {human_count(n)} files"
        for rnd, tree in enumerate(("cp", "tar")):
            log(f"copying data in: rm -rf of {what} (round {rnd + 1} of 2, the {tree} trees)")
            for t in TARGETS if rnd % 2 == 0 else tuple(reversed(TARGETS)):
                os.sync()
                d = os.path.join(self.data_dir(t), tree)
                v = self.measure(S, label, t, lambda: timed(f"rm -rf {d}"), "small", best=True)
                sy = timed_sync(self.data_dir(t))
                if isinstance(v, float):
                    self.results.best(S, f"{label} + sync", t, v + sy, "small")
        self.results.note(S, "rm -rf ran 2 rounds in alternating order (the cp and the tar trees): "
                             "the best time is shown.")

    def bench_huge(self):
        S = "copy"
        huge = self.sz["huge"]
        log(f"copying data in: {human_bytes(huge)} from /dev/zero into samplefs (peak RSS)")
        pid = self.pid("samplefs")
        dst = os.path.join(self.data_dir("samplefs"), "huge")
        os.mkdir(dst)
        os.sync()
        with RssSampler(pid, 0.25) as sampler:
            v = self.measure(S, f"dd {human_bytes(huge)} from /dev/zero (bs=1M)", "samplefs",
                             lambda: timed(f"dd if=/dev/zero of={dst}/zeros bs=1M count={huge // MIB} status=none"),
                             None, huge)
        self.results.set(S, f"daemon peak RSS during {human_bytes(huge)} write", "samplefs",
                         sampler.hwm_kib / 1024, "flat", unit="MiB")
        prof = sampler.profile()
        if len(sampler.samples) >= 4:
            # Growth from a tenth of the way in to the end: the worker threads
            # and their buffers all exist after the first second; anything
            # that grows with the amount written shows here.
            tenth = len(sampler.samples) // 10
            early = sampler.samples[tenth][1]
            growth = (max(kib for _, kib in sampler.samples[tenth:]) - early) / 1024
            self.results.flat_ok = growth <= 4
            self.results.note(S, f"samplefs RSS at 25/50/75/100 % of the {human_bytes(huge)} write: "
                                 + " / ".join(f"{x:.1f}" for x in prof)
                                 + f" MiB (growth after the first tenth: {growth:.1f} MiB). The level differs from "
                                 "the cp row's (a long write keeps more FUSE worker threads, each with a "
                                 "1 MiB receive buffer, resident); the shape is what matters.")
        run(f"rm -rf {dst}")

    # -----------------------------------------------------------------------
    # Issue 3: reads and listings

    # -----------------------------------------------------------------------
    # Issue 13 point 8: an acquisition that fsyncs while it writes

    def store_bytes(self, target):
        """Bytes the target's storage holds: the samplefs store's objects, or
        the plain directory (bindfs writes there too)."""
        root = os.path.join(self.sroot, "store", "objects") if target == "samplefs" else self.plain
        total = 0
        for d, _, names in os.walk(root):
            for n in names:
                try:
                    total += os.lstat(os.path.join(d, n)).st_size
                except OSError:
                    pass
        return total

    def bench_fsync(self):
        S = "fsync"
        big = self.sz["big"]
        every = 64 * MIB
        hb = human_bytes(big)
        label = f"write {hb}, fsync every {human_bytes(every)}"
        chunk = os.urandom(MIB)
        for t in TARGETS:
            dst = os.path.join(self.data_dir(t), "fsync")
            os.makedirs(dst, exist_ok=True)
            os.sync()
            before = self.store_bytes(t)

            def write():
                t0 = time.monotonic()
                with open(os.path.join(dst, "acq.raw"), "wb") as f:
                    for i in range(big // MIB):
                        # A different first byte per MiB: no block repeats.
                        f.write(i.to_bytes(8, "little") + chunk[8:])
                        if (i + 1) * MIB % every == 0:
                            f.flush()
                            os.fsync(f.fileno())
                return time.monotonic() - t0

            self.measure(S, label, t, write, "copy", big)
            timed_sync(dst)
            grown = self.store_bytes(t) - before
            self.results.set(S, f"{label}: storage growth", t, grown / MIB, unit="MiB")
            log(f"  {'  ... storage growth':<38} {t:<9} {grown / MIB:8.0f} MiB")
            run(f"rm -rf {dst}")
        self.results.note(S, f"`{label}`: a Python writer, 1 MiB writes, `fsync` every 64 MiB, then close; "
                             "storage growth is what the store (samplefs) or the directory (plain, bindfs) "
                             "holds more afterwards. Before issue 13 each fsync published a new object of the "
                             "whole file so far: the sum of the prefixes.")

    def bench_reads(self):
        S = "reads"
        big = self.sz["big"]
        hb = human_bytes(big)
        files = {t: os.path.join(self.data_dir(t), "big", os.path.basename(self.big_src)) for t in TARGETS}
        if not os.path.exists(files["plain"]):
            # bench_copy was skipped: put the file in place.
            for t in TARGETS:
                os.makedirs(os.path.dirname(files[t]), exist_ok=True)
                run(f"cp {self.big_src} {files[t]}")
        rounds = self.args.rounds
        for rnd in range(rounds):
            order = TARGETS if rnd % 2 == 0 else tuple(reversed(TARGETS))
            log(f"reads: sequential read of a {hb} file (dd bs=1M, round {rnd + 1} of {rounds})")
            for t in order:
                cmd = f"dd if={files[t]} of=/dev/null bs=1M status=none"
                self.cold(t)
                self.measure(S, f"read {hb} cold", t, lambda: timed(cmd), "read", big, best=True)
                warm = min(timed(cmd) for _ in range(2))
                self.results.best(S, f"read {hb} warm", t, warm, "read", big)
                log(f"  {'read warm (best of 2)':<38} {t:<9} {warm:8.2f} s ({big / MIB / warm:.0f} MiB/s)")
        if rounds > 1:
            self.results.note(S, f"Reads ran {rounds} rounds in alternating order; the best of each is shown.")
        self.bench_listings()

    def bench_listings(self):
        """find and ls -lR of the listing tree (part of "reads"; alone with
        --only listings)."""
        S = "reads"
        nfiles = self.sz["list_dirs"] * self.sz["list_per_dir"]
        what = f"{human_count(nfiles)} files / {human_count(self.sz['list_dirs'])} folders"
        for tool, cmd in (("find", "find {} > /dev/null"), ("ls -lR", "ls -lR {} > /dev/null")):
            log(f"listings: {tool} over {what}")
            for t in TARGETS:
                c = cmd.format(self.tree_dir(t))
                self.cold(t)
                self.measure(S, f"{tool} {what} cold", t, lambda: timed(c), "faster")
                self.measure(S, f"{tool} {what} warm", t, lambda: min(timed(c) for _ in range(2)), "faster")

    # -----------------------------------------------------------------------
    # Issue 5 (and 3's getfattr -d): metadata

    def xattr_files(self, t):
        """Up to xattr_n files written by rsync (real data files)."""
        d = os.path.join(self.data_dir(t), "rsync", "frames")
        if not os.path.isdir(d):
            os.makedirs(d, exist_ok=True)
            run(f"cp -r {self.small_srcs['rsync']}/. {d}/")
        names = sorted(os.listdir(d))[: self.sz["xattr_n"]]
        return [os.path.join(d, n) for n in names]

    def bench_xattrs(self):
        S3, S5 = "reads", "meta"
        n = self.sz["xattr_n"]
        log(f"metadata: setfattr/getfattr of user.xdg.tags on {human_count(n)} files")
        lists = {}
        for t in TARGETS:
            files = self.xattr_files(t)
            listfile, dump = write_tag_inputs(os.path.join(self.work, f"xattr-{t}"), files)
            lists[t] = listfile
            os.sync()
            self.measure(S5, f"setfattr tags on {human_count(len(files))} files", t,
                         lambda: timed(f"setfattr --restore={dump}"), "small")
            self.measure(S5, f"getfattr -n user.xdg.tags on {human_count(len(files))} files", t,
                         lambda: timed(f"xargs -0 -a {listfile} getfattr --absolute-names "
                                       f"-n user.xdg.tags > /dev/null"), "small")
        for t in TARGETS:
            cmd = f"xargs -0 -a {lists[t]} getfattr --absolute-names -d > /dev/null"
            self.cold(t)
            self.measure(S3, f"getfattr -d {human_count(n)} files cold", t, lambda: timed(cmd), "faster")
            self.measure(S3, f"getfattr -d {human_count(n)} files warm", t,
                         lambda: min(timed(cmd) for _ in range(2)), "faster")

    def bench_query(self):
        S = "meta"
        sz = self.sz
        nfiles = sz["q_slides"] * sz["q_images"] * sz["q_files"]
        log(f"queries: building a catalog of {human_count(nfiles)} files through SQL")
        t0 = time.monotonic()
        self.qproc = self.start_samplefs(self.qroot, self.qmnt)  # creates the schema and empty object
        unmount(self.qmnt, self.qproc)
        self.qproc = None
        matching = build_query_catalog(os.path.join(self.qroot, "catalog.db"), sz["q_slides"],
                                       sz["q_images"], sz["q_files"])
        log(f"  built in {time.monotonic() - t0:.1f} s; species=HeLa,dye=A647 matches {matching} slides")
        qdir = os.path.join(self.qmnt, "query", "species=HeLa,dye=A647", "slides")
        for label, cmd in (("ls", f"ls {qdir} | wc -l"), ("ls -R", f"ls -R {qdir} | wc -l")):
            os.sync()
            self.qproc = self.start_samplefs(self.qroot, self.qmnt)
            drop_caches()
            t0 = time.monotonic()
            out = run(cmd, capture=True)
            cold = time.monotonic() - t0
            lines = int(out.strip() or 0)
            what = f"{label} query/species=HeLa,dye=A647/slides/ ({human_count(nfiles)}-file catalog)"
            self.results.set(S, f"{what} cold", "samplefs", cold)
            t0 = time.monotonic()
            run(cmd, capture=True)
            warm = time.monotonic() - t0
            self.results.set(S, f"{what} warm", "samplefs", warm)
            log(f"  {label}: {human_count(lines)} lines, cold {cold:.2f} s, warm {warm:.2f} s")
            self.results.set(S, f"{label} of the query: lines listed", "samplefs", float(lines), unit="n")
            unmount(self.qmnt, self.qproc)
            self.qproc = None

    # -----------------------------------------------------------------------
    # Issue 14: a listing while a copy writes into the same mount

    def find_loop(self, cmd, stop):
        """Times `cmd` over and over until stop() is true; returns the times."""
        times = []
        while not stop():
            times.append(timed(cmd))
        return times

    def bench_contention(self):
        S = "contention"
        nfiles = self.sz["list_dirs"] * self.sz["list_per_dir"]
        ncopy = self.sz["small_n"]
        what = f"find {human_count(nfiles)} files"
        src = self.small_srcs["cp"]
        # during / idle of each round, per kind and target: the best-of
        # figures below pair the best idle run with the best busy one, which
        # may come from different rounds; the median of the rounds' own
        # ratios does not (one cold `find` per round is a single sample).
        per_round = {"cold": {t: [] for t in TARGETS}, "warm": {t: [] for t in TARGETS}}
        for rnd in range(self.args.rounds):
            for t in TARGETS:
                tree = self.tree_dir(t)
                cmd = f"find {tree} > /dev/null"
                log(f"contention: {what} idle, then during cp -r of {human_count(ncopy)} files [{t}], "
                    f"round {rnd + 1}")
                self.cold(t)
                cold_idle = timed(cmd)
                warm_idle = sorted(timed(cmd) for _ in range(5))[2]
                dest = os.path.join(self.data_dir(t), f"contention-{rnd}")
                self.cold(t)
                cp = subprocess.Popen(["cp", "-r", src, dest], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
                t0 = time.monotonic()
                # Start the listing once the copy is under way (its first files exist).
                while cp.poll() is None and not (os.path.isdir(dest) and os.listdir(dest)):
                    time.sleep(0.01)
                during = self.find_loop(cmd, lambda: cp.poll() is not None)
                cp.wait()
                cp_s = time.monotonic() - t0
                if cp.returncode != 0:
                    log(f"  cp -r failed: {cp.stderr.read()[-300:]}")
                if len(during) < 2:
                    log(f"  the copy ended after {len(during)} listing(s): no warm figure")
                cold_busy = during[0] if during else None
                warm_busy = sorted(during[1:])[(len(during) - 1) // 2] if len(during) > 1 else None
                if cold_busy and cold_idle:
                    per_round["cold"][t].append(cold_busy / cold_idle)
                if warm_busy and warm_idle:
                    per_round["warm"][t].append(warm_busy / warm_idle)
                log(f"  {t:<9} cold idle {cold_idle:.2f} s, during {cold_busy if cold_busy else 0:.2f} s; "
                    f"warm idle {warm_idle:.2f} s, during (median of {len(during) - 1}) "
                    f"{warm_busy if warm_busy else 0:.2f} s; cp -r {cp_s:.2f} s")
                self.results.best(S, f"{what} cold, idle", t, cold_idle)
                self.results.best(S, f"{what} warm, idle (median of 5)", t, warm_idle)
                if cold_busy is not None:
                    self.results.best(S, f"{what} cold, during cp -r", t, cold_busy)
                if warm_busy is not None:
                    self.results.best(S, f"{what} warm, during cp -r (median)", t, warm_busy)
                self.results.best(S, f"cp -r {human_count(ncopy)} x {human_bytes(self.sz['small_size'])} "
                                     f"while finds run", t, cp_s)
                run(f"rm -rf {dest}")
                os.sync()
        rows = {r.label: r for r in self.results.rows if r.section == S}
        for kind in ("cold", "warm"):
            idle = [r for l, r in rows.items() if l.startswith(f"{what} {kind}, idle")][0]
            busy = [r for l, r in rows.items() if l.startswith(f"{what} {kind}, during")]
            for t in TARGETS:
                a = _v(idle.values, t)
                b = _v(busy[0].values, t) if busy else None
                if a and b:
                    self.results.set(S, f"{what} {kind}: during / idle", t, b / a,
                                     goal="contention", unit="x")
        for kind in ("cold", "warm"):
            for t in TARGETS:
                ratios = sorted(per_round[kind][t])
                if not ratios:
                    continue
                log(f"  {kind} during / idle per round [{t}]: " + ", ".join(f"{r:.2f}x" for r in ratios))
                self.results.set(S, f"{what} {kind}: during / idle, median of the {len(ratios)} rounds' own ratios",
                                 t, statistics.median(ratios), goal="contention", unit="x")
                self.results.set(S, f"{what} {kind}: during / idle, worst round", t, ratios[-1], unit="x")
        self.results.note(S, f"The copy writes {human_count(ncopy)} files into the same mount (`cp -r` from "
                             "a tmpfs); `find` starts once the copy's first files exist and then runs over and "
                             "over until the copy ends: the first run after a fresh mount and drop_caches is "
                             "\"cold\", the median of the rest \"warm\". Idle: the same on the idle mount "
                             f"(warm = median of 5). Best of {self.args.rounds} rounds.")

    # -----------------------------------------------------------------------

    def run_groups(self):
        groups = self.args.only.split(",") if self.args.only else ["copy", "fsync", "reads", "xattrs", "query",
                                                                    "contention"]
        # smallcopy and listings are parts of copy and reads, for runs that
        # need only them (--only smallcopy,listings).
        for g in ("copy", "smallcopy", "fsync", "reads", "listings", "xattrs", "query", "contention"):
            if g in groups:
                getattr(self, f"bench_{g}")()


def remove_in_background(path):
    """Renames `path` aside and deletes it in a detached rm.

    Deleting tens of GiB takes minutes on a disk mounted with `discard`
    (ext4 then discards every freed extent synchronously), and no figure
    depends on it."""
    trash = f"{path}.trash-{os.getpid()}-{int(time.time())}"
    os.rename(path, trash)
    subprocess.Popen(["rm", "-rf", trash], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


# ---------------------------------------------------------------------------
# Data generation


def write_tag_inputs(stem, files, shift=0):
    """STEM.list, the NUL-separated `files` (for xargs -0 getfattr), and
    STEM.dump, a `setfattr --restore` input that tags file i with
    user.xdg.tags=good,batch<(i + shift) % 10>,bench. Returns their paths."""
    listfile, dump = stem + ".list", stem + ".dump"
    with open(listfile, "w") as f:
        f.write("\0".join(files) + "\0")
    with open(dump, "w") as f:
        for i, p in enumerate(files):
            f.write(f'# file: {p}\nuser.xdg.tags="good,batch{(i + shift) % 10},bench"\n\n')
    return listfile, dump


def write_pattern_file(path, size, seed):
    """Incompressible, non-repeating content (a random block, varied per MiB)."""
    block = os.urandom(8 * MIB)
    with open(path, "wb") as f:
        for i in range(size // MIB):
            off = (i % 8) * MIB
            chunk = bytearray(block[off:off + MIB])
            chunk[0:16] = struct.pack("<QQ", seed, i)
            f.write(chunk)


def write_small_files(d, n, size, seed):
    block = os.urandom(size + 4096)
    for i in range(n):
        with open(os.path.join(d, f"frame_{i:05d}.tif"), "wb") as f:
            off = (i * 64) % 4096
            data = bytearray(block[off:off + size])
            data[0:16] = struct.pack("<QQ", seed, i)
            f.write(data)


def make_plain_tree(root, ndirs, per_dir):
    os.makedirs(root)
    for d in range(ndirs):
        dd = os.path.join(root, f"d{d:04d}")
        os.mkdir(dd)
        for i in range(per_dir):
            os.close(os.open(os.path.join(dd, f"f{i:03d}"), os.O_CREAT | os.O_WRONLY, 0o644))


ENTRY_INSERT = ("INSERT INTO entry(image_id, parent_id, name, type, size, hash, mode, mtime_ns, target, kind) "
                "VALUES (?, ?, ?, ?, 0, ?, ?, ?, NULL, 'other')")


def insert_tree(catalog, slide, image, ndirs, per_dir):
    """Adds ndirs folders of per_dir empty files under an image's files/."""
    con = sqlite3.connect(catalog)
    con.execute("PRAGMA foreign_keys=ON")
    img_id, root_id = con.execute(
        "SELECT i.id, e.id FROM image i JOIN slide s ON s.id = i.slide_id "
        "JOIN entry e ON e.image_id = i.id AND e.parent_id IS NULL "
        "WHERE s.reference = ? AND i.name = ?", (slide, image)).fetchone()
    now = time.time_ns()
    with con:
        for d in range(ndirs):
            cur = con.execute(ENTRY_INSERT, (img_id, root_id, f"d{d:04d}", "folder", None, 0o755, now))
            con.executemany(ENTRY_INSERT, [(img_id, cur.lastrowid, f"f{i:03d}", "file", EMPTY_HASH, 0o644, now)
                                           for i in range(per_dir)])
    con.close()


def build_query_catalog(catalog, nslides, nimages, nfiles):
    """species HeLa/Mouse-B6, dyes A647/A488; a quarter of the slides are HeLa+A647.

    Returns how many slides the query species=HeLa,dye=A647 matches."""
    con = sqlite3.connect(catalog)
    con.execute("PRAGMA foreign_keys=ON")
    now = time.time_ns()
    ts = "2026-01-05T10:00:00Z"
    with con:
        sp = [con.execute("INSERT INTO species(name, species) VALUES (?, ?)", (n, o)).lastrowid
              for n, o in (("HeLa", "Human"), ("Mouse-B6", "Mouse"))]
        sa = [con.execute("INSERT INTO sample(name, species_id, sample_type) VALUES (?, ?, 'Cell Culture')",
                          (f"P{i}", sp[i])).lastrowid for i in range(2)]
        dy = [con.execute("INSERT INTO dye(short_name, long_name) VALUES (?, ?)", (s, l)).lastrowid
              for s, l in (("A647", "Alexa Fluor 647"), ("A488", "Alexa Fluor 488"))]
        matching = 0
        for s in range(nslides):
            species = s % 2          # even: HeLa
            dye = (s // 2) % 2       # 0, 0, 1, 1, ...: A647 on s % 4 in (0, 1)
            matching += species == 0 and dye == 0
            sid = con.execute("INSERT INTO slide(reference, sample_id, creator, created, modified) "
                              "VALUES (?, ?, 'bench', ?, ?)", (f"Q{s:05d}", sa[species], ts, ts)).lastrowid
            con.execute("INSERT INTO labelling(slide_id, structure, dye_id) VALUES (?, 'tubulin', ?)",
                        (sid, dy[dye]))
            for i in range(nimages):
                iid = con.execute("INSERT INTO image(slide_id, name, user, acquired) VALUES (?, ?, 'bench', ?)",
                                  (sid, f"img{i:02d}", ts)).lastrowid
                root = con.execute(ENTRY_INSERT, (iid, None, "", "folder", None, 0o755, 0)).lastrowid
                con.executemany(ENTRY_INSERT, [(iid, root, f"frame_{f:05d}.tif", "file", EMPTY_HASH, 0o644, now)
                                               for f in range(nfiles)])
    con.close()
    return matching


# ---------------------------------------------------------------------------
# Report

SECTIONS = (
    ("reads", "Mount: reads and listings"),
    ("copy", "Mount: copying data in"),
    ("fsync", "Mount: writing with periodic fsync"),
    ("meta", "Mount: metadata and queries"),
    ("contention", "Mount: a listing during a copy"),
)


def environment_line(bench):
    return (f"{bench.run_text()}, {bench.machine_text()}, {bindfs_version()}; {bench.load_text()} "
            f"(other engineers' builds share the machine); {bench.sources_text()}.")


def update_readme(path, bench, sections=None):
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    for key, title in SECTIONS:
        body = bench.results.table(key)
        if not body or (sections and key not in sections):
            continue
        text = put_block(text, f"mount_bench:{key}",
                         f"_Measured by `tests/bench/mount_bench.py`: {environment_line(bench)}_\n\n{body}",
                         [f"## {title}"])
    write_file(path, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samplefs", required=True, help="the samplefs daemon binary")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test, ~3 min)")
    ap.add_argument("--workdir", default="/var/tmp/samplefs-bench/mount",
                    help="scratch directory on the disk under test (removed first and at the end)")
    ap.add_argument("--only", help="comma-separated groups: copy,fsync,reads,xattrs,query,contention; "
                                   "smallcopy (copy's 10,000 small files only), listings (reads' find and "
                                   "ls -lR only)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of the large-file copy and read, alternating the order (best is kept)")
    ap.add_argument("--readme", choices=("auto", "yes", "no"), default="auto",
                    help="write the figures into tests/bench/README.md (auto: only in full mode)")
    ap.add_argument("--sections",
                    help="comma-separated README tables to rewrite (default: every table measured). "
                         "With --only reads,xattrs use --sections reads: xattrs also measures two "
                         "rows of the meta table, which would replace it whole")
    args = ap.parse_args()

    missing = [t for t in ("fusermount3", "bindfs", "rsync", "tar", "getfattr", "setfattr", "dd")
               if shutil.which(t) is None]
    if missing or not os.path.exists("/dev/fuse"):
        print(f"mount_bench: cannot run: missing {', '.join(missing) or '/dev/fuse'}", file=sys.stderr)
        return 2
    if not os.access(args.samplefs, os.X_OK):
        print(f"mount_bench: {args.samplefs} is not an executable", file=sys.stderr)
        return 2
    if not IS_ROOT:
        print("mount_bench: warning: not root, so cold runs cannot drop the page cache", file=sys.stderr)

    bench = Bench(args)
    bench.run_all()
    bench.print_tables(environment_line(bench), SECTIONS)
    if args.readme == "yes" or (args.readme == "auto" and not args.quick):
        update_readme(README, bench, args.sections.split(",") if args.sections else None)
        print(f"\nwrote {README}")
    missed = [r.label for r in bench.results.rows if bench.results.verdict(r)[1] is False]
    if missed:
        print(f"\n{len(missed)} target(s) missed: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
