#!/usr/bin/env python3
"""Small files and metadata edits (issue 16): samplefs against a plain
directory and three FUSE passthroughs, in one run.

Targets (--targets, comma-separated; default all that are available):

  plain       a directory on the disk that holds the samplefs store
  bindfs      `bindfs -f -o default_permissions` (its defaults)
  bindfs-mt   `bindfs -f --multithreaded -o big_writes,kernel_cache,default_permissions`
  pthp        libfuse's example passthrough_hp (`--passthrough-hp PATH`,
              run as `passthrough_hp --foreground SRC MNT`, its defaults);
              skipped when the binary is absent. Build it with
              -DHAVE_UTIMENSAT -DHAVE_SETXATTR (libfuse's meson build
              defines them on Linux): compiled without them, every utimens
              and xattr request fails with EOPNOTSUPP, so cp -a, tar -x,
              rsync and copytree fail on it
  samplefs    the daemon under test (`--samplefs PATH`, `-f -o create`);
              copies go to slides/BENCH/images/<case>/files/

Groups (--groups, comma-separated; default all):

  copy    cp -r, cp -a, tar -x, rsync -a, rsync -aX and Python's
          shutil.copytree of two trees: "flat" (10,000 x 64 KiB in one
          folder) and "zarr" (50,000 x 4 KiB in 3 levels: 5 x 100 folders
          of 100 chunks, OME-Zarr-like); rm -rf of the copied tree. The
          default cases are every tool on the flat tree and cp -r on the
          zarr tree (--cases all: every tool on both, about 20 min more). samplefs
          gets a fresh catalog per case and then copies the same tree again
          into another image of that catalog ("content already in the
          store": every object deduplicates).
  meta    setfattr of user.xdg.tags on 10,000 files and 1,000 slides
          (folders elsewhere), per-file time; samplefs: the tags are listed
          in tags/<tag>/ right after, and again after a remount (durable);
          getfattr -d of the 10,000 files, cold and warm.
  memory  samplefs RSS and open descriptors while cp -r copies 100,000
          x 4 KiB and while dd writes 10 GiB: no growth after the first
          tenth, and the 20,000-descriptor limit holds.
  trace   requests per file: a samplefs (and bindfs-mt) mounted with -d,
          each tool copying 1,000 x 64 KiB; FUSE opcodes counted per file.
  perf    `perf record -g` of the samplefs daemon during cp -r, rsync -a of
          the flat tree and setfattr on 10,000 files; flat profiles are
          written to the work dir (`perf-*.txt`) and printed.

Every copy case runs --rounds times (default 2) in alternating target
order with new content each round, and keeps the best; the "+ sync"
figure adds a sync(2) and an fsync of the destination folder (what waits
until samplefs has committed the files). Daemon CPU per file is the
daemon's utime+stime (all threads) over the copy, from the best round.
Sources live on a private tmpfs (root), so a copy measures the destination.

    sudo python3 tests/bench/smallfile_bench.py --samplefs build/rel/mount/samplefs \\
        --passthrough-hp /path/to/passthrough_hp [--quick] [--groups copy,meta] \\
        [--cases flat:cp-r,zarr:tar-x] [--targets plain,bindfs-mt,samplefs]

Without --quick the figures replace the smallfile_bench sections of
tests/bench/README.md (--readme no to only print). Python 3 standard
library only; imports helpers from mount_bench.py.
"""
import argparse
import collections
import datetime
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mount_bench import (GIB, MIB, BenchBase, CommandFailed, RssSampler, bindfs_version,  # noqa: E402
                         cpu_seconds, drop_caches, human_bytes, human_count, log, put_block, run,
                         timed, timed_sync, unmount, wait_mounted, write_file)

README = os.path.join(HERE, "README.md")
ALL_TARGETS = ("plain", "bindfs", "bindfs-mt", "pthp", "samplefs")
TARGET_TITLES = {"plain": "plain", "bindfs": "bindfs", "bindfs-mt": "bindfs tuned",
                 "pthp": "passthrough_hp", "samplefs": "samplefs"}
FUSE_TARGETS = ("bindfs", "bindfs-mt", "pthp", "samplefs")

TOOLS = collections.OrderedDict([
    # name: (label, command template; {src} the source tree, {tar} its tarball, {dst} the folder copied into)
    ("cp-r", ("cp -r", "cp -r {src} {dst}/")),
    ("cp-a", ("cp -a", "cp -a {src} {dst}/")),
    ("tar-x", ("tar -x", "tar -xf {tar} -C {dst}")),
    ("rsync-a", ("rsync -a", "rsync -a {src} {dst}/")),
    ("rsync-aX", ("rsync -aX", "rsync -aX {src} {dst}/")),
    ("copytree", ("shutil.copytree",
                  f"{sys.executable} -c 'import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])' "
                  "{src} {dst}/{name}")),
])
RSYNC_TOOLS = ("rsync-a", "rsync-aX")

SIZES = {
    "full": dict(flat_n=10000, flat_size=64 << 10, zarr_levels=5, zarr_rows=100, zarr_cols=100,
                 zarr_size=4 << 10, meta_n=10000, slides_n=1000, mem_levels=10, huge=10 * GIB,
                 trace_n=1000, perf_n=10000),
    "quick": dict(flat_n=1000, flat_size=64 << 10, zarr_levels=5, zarr_rows=10, zarr_cols=100,
                  zarr_size=4 << 10, meta_n=1000, slides_n=100, mem_levels=1, huge=1 * GIB,
                  trace_n=200, perf_n=1000),
}
DEFAULT_CASES = ("flat:cp-r,flat:cp-a,flat:tar-x,flat:rsync-a,flat:rsync-aX,flat:copytree,"
                 "zarr:cp-r")
ALL_CASES = ",".join(f"{d}:{t}" for d in ("flat", "zarr") for t in TOOLS)


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Sampler(RssSampler):
    """RSS and open descriptors of a daemon, sampled while in a with block."""

    def __init__(self, pid, period=0.25):
        super().__init__(pid, period)  # samples: (seconds, rss KiB, fds)

    def sample(self):
        return super().sample() + (fd_count(self.pid),)

    def max_fds(self):
        return max((s[2] for s in self.samples), default=0)

    def growth_after_tenth(self):
        """(RSS growth MiB, fd growth) from a tenth of the way in to the end."""
        if len(self.samples) < 4:
            return None, None
        tenth = len(self.samples) // 10
        rss0, fd0 = self.samples[tenth][1], self.samples[tenth][2]
        rest = self.samples[tenth:]
        return (max(s[1] for s in rest) - rss0) / 1024, max(s[2] for s in rest) - fd0

    def profile(self):
        out = []
        for q in (0.1, 0.25, 0.5, 0.75, 1.0):
            if self.samples:
                s = self.samples[min(len(self.samples) - 1, int(q * (len(self.samples) - 1)))]
                out.append((s[1] / 1024, s[2]))
        return out

    def summary(self):
        """(RSS growth MiB, fd growth) after the first tenth, and the text that
        shows them with the RSS / descriptor profile."""
        g_rss, g_fd = self.growth_after_tenth()
        prof = " / ".join(f"{r:.0f} MiB, {fd} fds" for r, fd in self.profile())
        return g_rss, g_fd, (f"RSS / open descriptors at 10/25/50/75/100 %: {prof}; growth after the first "
                             f"tenth: {g_rss:.1f} MiB, {g_fd} fds")


# ---------------------------------------------------------------------------
# Targets


class Target:
    """A place to copy into: a plain directory or a FUSE mount of one."""

    def __init__(self, name, work, argv=None):
        self.name = name
        self.back = os.path.join(work, f"{name}-back")
        self.mnt = os.path.join(work, f"{name}-mnt") if argv else self.back
        self.argv = argv  # None: plain
        self.proc = None
        self.log_path = os.path.join(work, f"{name}.log")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def mount(self, debug=False):
        os.makedirs(self.back, exist_ok=True)
        if not self.argv:
            return
        os.makedirs(self.mnt, exist_ok=True)
        argv = self.argv + [self.back, self.mnt]
        if debug:
            argv = argv + (["--debug-fuse"] if self.name == "pthp" else ["-d"])
        with open(self.log_path, "a") as lf:
            self.proc = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT)
        wait_mounted(self.mnt, self.proc, self.name, self.log_path)

    def umount(self):
        if self.argv:
            unmount(self.mnt, self.proc)
            self.proc = None

    def fresh(self):
        """Nothing kept from earlier cases (peers: an empty backing folder)."""
        pass

    def new_dest(self, name):
        d = os.path.join(self.mnt, name)
        os.mkdir(d)
        return d

    def remove_dest(self, name):
        """Untimed: deleted in the backing folder (a peer that ran out of
        descriptors cannot delete through its mount), then remounted so the
        daemon starts the next case with nothing held."""
        d = os.path.join(self.back, name)
        if os.path.exists(d):
            run(f"rm -rf {d}")
        if self.argv and self.name == "pthp":
            self.umount()
            self.mount()

    def meta_dir(self, name):
        """A folder for metadata edits: slides (samplefs) or folders."""
        d = os.path.join(self.mnt, name)
        os.makedirs(d, exist_ok=True)
        return d


class SamplefsTarget(Target):
    def __init__(self, work, binary):
        super().__init__("samplefs", work, [binary, "-f", "-o", "create"])
        self.work = work
        self.gen = 0
        self.root = None
        # Deleting the last case's store right before a copy leaves ext4's
        # inode allocator skipping the inodes it freed seconds ago
        # (recently_deleted(): 32% of the daemon's CPU in a perf of cp -r
        # right after such a delete), so old stores are kept until the end
        # (--delete-stores: delete them between cases, as the first run did).
        self.keep_old = True

    def mount(self, debug=False):
        if self.root is None:
            self.new_root()
        conf = os.path.join(self.root, "samplefs.conf")
        os.makedirs(self.mnt, exist_ok=True)
        argv = [self.argv[0], "--config", conf, self.mnt, "-f", "-o", "create"] + (["-d"] if debug else [])
        self.log_path = os.path.join(self.root, "samplefs.log")
        with open(self.log_path, "a") as lf:
            self.proc = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT)
        wait_mounted(self.mnt, self.proc, "samplefs", self.log_path)

    def new_root(self):
        self.gen += 1
        self.root = os.path.join(self.work, f"samplefs-{self.gen}")
        self.mnt = os.path.join(self.root, "mnt")
        os.makedirs(self.root)
        with open(os.path.join(self.root, "samplefs.conf"), "w") as f:
            f.write(f"catalog = {self.root}/catalog.db\nstore = {self.root}/store\nlog_level = warn\n")

    def fresh(self, debug=False):
        """A new, empty catalog and store, with species Bench and slide BENCH."""
        old = self.root
        self.umount()
        if old and not self.keep_old:
            run(f"rm -rf {old}")
        self.new_root()
        self.mount(debug)
        os.mkdir(os.path.join(self.mnt, "species", "Bench"))
        os.mkdir(os.path.join(self.mnt, "species", "Bench", "slides", "BENCH"))

    def new_dest(self, name):
        os.mkdir(os.path.join(self.mnt, "slides", "BENCH", "images", name))
        return os.path.join(self.mnt, "slides", "BENCH", "images", name, "files")

    def remove_dest(self, name):
        d = os.path.join(self.mnt, "slides", "BENCH", "images", name, "files")
        for n in os.listdir(d) if os.path.isdir(d) else ():
            run(f"rm -rf {os.path.join(d, n)}")

    def meta_dir(self, name):
        return os.path.join(self.mnt, "species", "Bench", "slides")


# ---------------------------------------------------------------------------
# Sources


class Dataset:
    """A tree of small files on the tmpfs, its file list and its tarball."""

    def __init__(self, name, root, tree, files):
        self.name = name
        self.root = root            # the folder holding `tree`
        self.tree = tree            # the top folder's name (what tools copy)
        self.files = files          # paths of the files
        self.src = os.path.join(root, tree)
        self.tar = os.path.join(root, f"{tree}.tar")
        self.seed = None
        self.tar_seed = None
        self.nbytes = sum(os.path.getsize(p) for p in files)

    def reseed(self, seed):
        """New content: the first 16 bytes of every file become (seed, index)."""
        if seed == self.seed:
            return
        for i, p in enumerate(self.files):
            with open(p, "r+b") as f:
                f.write(struct.pack("<QQ", seed, i))
        self.seed = seed

    def tarball(self):
        if self.tar_seed != self.seed:
            run(f"tar -cf {self.tar} -C {self.root} {self.tree}")
            self.tar_seed = self.seed
        return self.tar


def make_files(paths, size, seed):
    block = os.urandom(size + 4096)
    for i, p in enumerate(paths):
        off = (i * 64) % 4096
        data = bytearray(block[off:off + size])
        data[0:16] = struct.pack("<QQ", seed, i)
        with open(p, "wb") as f:
            f.write(data)


def make_flat(root, tree, n, size, seed):
    d = os.path.join(root, tree)
    os.makedirs(d)
    paths = [os.path.join(d, f"frame_{i:05d}.tif") for i in range(n)]
    make_files(paths, size, seed)
    return Dataset(tree, root, tree, paths)


def make_zarr(root, tree, levels, rows, cols, size, seed):
    """OME-Zarr-like: tree/<level>/<row>/<col>, plus small .zarray/.zattrs."""
    top = os.path.join(root, tree)
    os.makedirs(top)
    with open(os.path.join(top, ".zattrs"), "w") as f:
        f.write('{"multiscales": [{"version": "0.4"}]}\n')
    paths = []
    for lv in range(levels):
        ld = os.path.join(top, str(lv))
        os.mkdir(ld)
        with open(os.path.join(ld, ".zarray"), "w") as f:
            f.write(f'{{"chunks": [1, 64, 64], "dtype": "<u2", "level": {lv}}}\n')
        for r in range(rows):
            rd = os.path.join(ld, str(r))
            os.mkdir(rd)
            paths.extend(os.path.join(rd, str(c)) for c in range(cols))
    make_files(paths, size, seed)
    return Dataset(tree, root, tree, paths)


# ---------------------------------------------------------------------------
# Results


class Results:
    def __init__(self):
        self.rows = collections.OrderedDict()  # key -> dict
        self.cpu = collections.OrderedDict()   # label -> {target: us per file}
        self.fds = collections.OrderedDict()   # label -> {target: max fds}
        self.notes = []
        self.checks = []  # (label, text, ok)

    def row(self, key, label, goal, nfiles=None):
        if key not in self.rows:
            self.rows[key] = dict(label=label, goal=goal, nfiles=nfiles, t={}, sync={})
        return self.rows[key]

    def best(self, key, label, goal, target, value, sync=None, nfiles=None):
        """Keeps the smallest time; returns True if this one is the new best."""
        r = self.row(key, label, goal, nfiles)
        old = r["t"].get(target)
        if isinstance(value, float) and (not isinstance(old, float) or value < old):
            r["t"][target] = value
            if sync is not None:
                r["sync"][target] = sync
            return True
        if old is None:
            r["t"][target] = value
        return False


def _num(v):
    return v if isinstance(v, float) else None


def verdict(r, results):
    """(goal text, ok or None)."""
    t = r["t"]
    s = _num(t.get("samplefs"))
    goal = r["goal"]
    if goal is None or s is None:
        return ("" if goal is None else goal[0]), None
    kind = goal[1]
    if kind == "copy":
        factor = goal[2]
        b, p = _num(t.get("bindfs-mt")), _num(t.get("plain"))
        if (b is not None and s >= b) or (p is not None and s > factor * p):
            return goal[0], False
        return goal[0], (True if b is not None and p is not None else None)  # "?" if a peer is missing
    if kind == "dup":
        new = _num(results.rows.get(goal[2], {}).get("t", {}).get("samplefs"))
        return goal[0], None if new is None else s <= new
    if kind == "per-file":
        return goal[0], s / r["nfiles"] * 1e6 <= goal[2]
    if kind == "vs-bindfs":
        bs = [x for x in (_num(t.get("bindfs")), _num(t.get("bindfs-mt"))) if x is not None]
        return goal[0], None if not bs else s <= goal[2] * min(bs)
    return goal[0], None


def fmt_cell(r, target):
    v = r["t"].get(target)
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    text = f"{v:.2f} s"
    if r.get("nfiles") and r["goal"] and r["goal"][1] in ("per-file",):
        text += f" ({v / r['nfiles'] * 1e6:.0f} µs/file)"
    sy = r["sync"].get(target)
    if isinstance(sy, float):
        text += f" ({sy:.2f})"
    return text


def results_table(bench):
    res = bench.results
    targets = bench.target_names
    head = "| measurement | " + " | ".join(TARGET_TITLES[t] for t in targets) + \
        " | samplefs / plain | samplefs / bindfs tuned | target | met |"
    lines = [head, "|" + "---|" * (len(targets) + 5)]
    for key, r in res.rows.items():
        s, p, b = (_num(r["t"].get(x)) for x in ("samplefs", "plain", "bindfs-mt"))
        rp = f"{s / p:.2f}x" if s and p else ""
        rb = f"{s / b:.2f}x" if s and b else ""
        goal, ok = verdict(r, res)
        met = "" if not goal else ("yes" if ok else "**no**" if ok is False else "?")
        lines.append(f"| {r['label']} | " + " | ".join(fmt_cell(r, t) for t in targets) +
                     f" | {rp} | {rb} | {goal} | {met} |")
    return "\n".join(lines)


def cpu_table(bench):
    res = bench.results
    targets = [t for t in bench.target_names if t in FUSE_TARGETS]
    if not res.cpu:
        return ""
    lines = ["| daemon CPU per file (µs, utime+stime) | " + " | ".join(TARGET_TITLES[t] for t in targets) + " |",
             "|" + "---|" * (len(targets) + 1)]
    for label, vals in res.cpu.items():
        lines.append(f"| {label} | " + " | ".join(f"{vals[t]:.0f}" if t in vals else "—" for t in targets) + " |")
    if res.fds:
        lines += ["", "| daemon open descriptors, most seen during the copy | " +
                  " | ".join(TARGET_TITLES[t] for t in targets) + " |",
                  "|" + "---|" * (len(targets) + 1)]
        for label, vals in res.fds.items():
            lines.append(f"| {label} | " + " | ".join(human_count(vals[t]) if t in vals else "—"
                                                      for t in targets) + " |")
    return "\n".join(lines)


def trace_table(counts, nfiles):
    """counts: OrderedDict label -> Counter(opcode -> n)."""
    if not counts:
        return ""
    total = collections.Counter()
    for c in counts.values():
        total.update(c)
    ops = [op for op, _ in total.most_common() if op not in ("INIT", "DESTROY", "STATFS")]
    lines = ["| requests per file | total | " + " | ".join(ops) + " |", "|" + "---|" * (len(ops) + 2)]
    for label, c in counts.items():
        n = sum(v for k, v in c.items() if k in ops)
        lines.append(f"| {label} | **{n / nfiles:.1f}** | " +
                     " | ".join(f"{c[op] / nfiles:.2f}" if c[op] else "" for op in ops) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The bench


class Bench(BenchBase):
    def __init__(self, args):
        super().__init__(args, SIZES)
        self.results = Results()
        self.traces = collections.OrderedDict()  # target -> OrderedDict label -> Counter
        self.perf_text = []
        self.targets = collections.OrderedDict()
        wanted = args.targets.split(",") if args.targets else list(ALL_TARGETS)
        for t in wanted:
            if t == "plain":
                self.targets[t] = Target("plain", self.work)
            elif t == "bindfs":
                self.targets[t] = Target("bindfs", self.work, ["bindfs", "-f", "-o", "default_permissions"])
            elif t == "bindfs-mt":
                self.targets[t] = Target("bindfs-mt", self.work,
                                         ["bindfs", "-f", "--multithreaded", "-o",
                                          "big_writes,kernel_cache,default_permissions"])
            elif t == "pthp":
                if args.passthrough_hp and os.access(args.passthrough_hp, os.X_OK):
                    self.targets[t] = Target("pthp", self.work, [os.path.abspath(args.passthrough_hp),
                                                                "--foreground"])
                else:
                    log("passthrough_hp: no --passthrough-hp binary, target skipped")
            elif t == "samplefs":
                self.targets[t] = SamplefsTarget(self.work, os.path.abspath(args.samplefs))
                self.targets[t].keep_old = not args.delete_stores
            else:
                raise SystemExit(f"unknown target {t}")
        self.target_names = list(self.targets)
        cases = ALL_CASES if args.cases == "all" else (args.cases or DEFAULT_CASES)
        self.cases = [c.split(":") for c in cases.split(",")]
        self.groups = args.groups.split(",") if args.groups else ["copy", "meta", "memory", "trace", "perf"]
        self.datasets = {}

    # -- setup
    def setup(self):
        self.make_work("6g", "smallfile-bench-src")
        sz = self.sz
        log("generating sources")
        self.datasets["flat"] = make_flat(os.path.join(self.src, "flat"), "frames",
                                          sz["flat_n"], sz["flat_size"], 1)
        if any(ds == "zarr" for ds, _ in self.cases) and "copy" in self.groups:
            self.datasets["zarr"] = make_zarr(os.path.join(self.src, "zarr"), "img.zarr", sz["zarr_levels"],
                                              sz["zarr_rows"], sz["zarr_cols"], sz["zarr_size"], 2)
        if "trace" in self.groups:
            self.datasets["trace"] = make_flat(os.path.join(self.src, "trace"), "frames",
                                               sz["trace_n"], sz["flat_size"], 3)
        if "memory" in self.groups:
            self.datasets["mem"] = make_zarr(os.path.join(self.src, "mem"), "mem.zarr", sz["mem_levels"],
                                             100, 100, 4096, 4)
        for t in self.targets.values():
            if isinstance(t, SamplefsTarget):
                t.fresh()
            else:
                t.mount()

    def cleanup_mounts(self):
        for t in self.targets.values():
            try:
                t.umount()
            except (OSError, subprocess.SubprocessError) as e:
                log(f"unmounting {t.name}: {e}")
        super().cleanup_mounts()

    # -- one timed copy
    def copy_once(self, t, tool, ds, dst):
        """(seconds, sync seconds, daemon CPU seconds, max fds) or a failure string."""
        label, tmpl = TOOLS[tool]
        cmd = tmpl.format(src=ds.src, tar=ds.tar, dst=dst, name=ds.tree)
        os.sync()
        pid = t.pid
        cpu0 = cpu_seconds(pid) if pid else 0
        sampler = Sampler(pid, 0.5) if pid else None
        try:
            if sampler:
                sampler.__enter__()
            t0 = time.monotonic()
            run(cmd)
            v = time.monotonic() - t0
            sy = timed_sync(dst)
        except (CommandFailed, OSError) as e:
            msg = str(e)
            m = re.search(r"(Too many open files|No space left|Input/output error|Operation not permitted"
                          r"|Permission denied|No such file or directory)", msg)
            log(f"  {label} [{t.name}] failed: {msg[:300]}")
            return "failed" + (f": {m.group(1)}" if m else "")
        finally:
            if sampler:
                sampler.__exit__(None, None, None)
        cpu = (cpu_seconds(pid) - cpu0) if pid else None
        return v, sy, cpu, (sampler.max_fds() if sampler else None)

    # -- copy cases
    def bench_copy(self):
        rounds = self.args.rounds
        for rnd in range(rounds):
            order = self.target_names if rnd % 2 == 0 else list(reversed(self.target_names))
            for ci, (dsname, tool) in enumerate(self.cases):
                ds = self.datasets[dsname]
                targets = [x for x in order if not (dsname == "zarr" and x == "bindfs" and not self.args.zarr_bindfs)]
                ds.reseed(1000 + 100 * rnd + ci)
                if tool == "tar-x":
                    ds.tarball()
                label, _ = TOOLS[tool]
                nfiles = len(ds.files)
                what = (f"{human_count(nfiles)} x {human_bytes(os.path.getsize(ds.files[0]))}"
                        + (" (3 levels)" if dsname == "zarr" else ""))
                key = f"{dsname}:{tool}"
                factor = 2.5 if tool in RSYNC_TOOLS else 2.0
                goal = (f"< bindfs tuned, <= {factor:g}x plain", "copy", factor)
                log(f"{label} of {what} (round {rnd + 1} of {rounds}): {', '.join(targets)}")
                if "samplefs" in self.targets:
                    self.targets["samplefs"].fresh()
                drop_caches()
                for tn in targets:
                    t = self.targets[tn]
                    dst = t.new_dest(f"{tool}-new")
                    out = self.copy_once(t, tool, ds, dst)
                    self.record(key, f"{label} {what}", goal, tn, out, nfiles)
                if "samplefs" in self.targets:
                    t = self.targets["samplefs"]
                    dst = t.new_dest(f"{tool}-dup")
                    out = self.copy_once(t, tool, ds, dst)
                    self.record(key + ":dup", f"{label} {what}, content already in the store",
                                ("<= the same copy of new content", "dup", key), "samplefs", out, nfiles)
                # rm -rf of the copied tree (the best over every case of the dataset)
                rkey = f"{dsname}:rm"
                rgoal = ("< bindfs tuned, <= 1.5x plain", "copy", 1.5)
                for tn in targets:
                    t = self.targets[tn]
                    tree = os.path.join(self.dest_path(t, f"{tool}-new"), ds.tree)
                    if not os.path.exists(tree):
                        continue
                    out = self.copy_once_cmd(t, f"rm -rf {tree}", os.path.dirname(tree))
                    self.record(rkey, f"rm -rf {what}", rgoal, tn, out, nfiles)
                for tn in targets:
                    self.targets[tn].remove_dest(f"{tool}-new")
        self.note_copies(rounds)

    def note_copies(self, rounds):
        """How the copy tables were measured (a note under them)."""
        self.results.notes.append(
            f"Copies: best of {rounds} rounds in alternating target order, new content each round; samplefs "
            "on a fresh catalog per case. A cell is the tool's time, then (in parentheses) with a sync(2) "
            "and an fsync of the destination folder added. rm -rf: the best over all the cases of that tree."
            + ("" if self.args.zarr_bindfs else " bindfs with its defaults is left out of the 3-level tree "
               "(minutes per copy; `--zarr-bindfs` adds it)."))

    def copy_once_cmd(self, t, cmd, sync_dir):
        os.sync()
        pid = t.pid
        cpu0 = cpu_seconds(pid) if pid else 0
        try:
            v = timed(cmd)
            sy = timed_sync(sync_dir)
        except (CommandFailed, OSError) as e:
            log(f"  `{cmd}` [{t.name}] failed: {str(e)[:300]}")
            return "failed"
        return v, sy, (cpu_seconds(pid) - cpu0) if pid else None, None

    def record(self, key, label, goal, target, out, nfiles):
        if isinstance(out, str):
            self.results.best(key, label, goal, target, out, nfiles=nfiles)
            return
        v, sy, cpu, fds = out
        better = self.results.best(key, label, goal, target, v, v + sy, nfiles=nfiles)
        cpu_text = f", daemon CPU {cpu / nfiles * 1e6:.0f} µs/file" if cpu is not None else ""
        log(f"  {target:<10} {v:7.2f} s (+ sync {v + sy:7.2f} s){cpu_text}"
            + (f", {fds} fds" if fds else ""))
        if better and cpu is not None:
            self.results.cpu.setdefault(label, {})[target] = cpu / nfiles * 1e6
        if fds:
            d = self.results.fds.setdefault(label, {})
            d[target] = max(d.get(target, 0), fds)

    # -- metadata edits
    def bench_meta(self):
        n, ns = self.sz["meta_n"], self.sz["slides_n"]
        ds = self.datasets["flat"]
        ds.reseed(5)
        if "samplefs" in self.targets:
            self.targets["samplefs"].fresh()
        lists, files_of, dirs_of = {}, {}, {}
        log(f"metadata: preparing {human_count(n)} files and {human_count(ns)} slides/folders per target")
        for tn, t in self.targets.items():
            dst = t.new_dest("meta")
            run(f"cp -r {ds.src} {dst}/")
            names = sorted(os.listdir(os.path.join(dst, ds.tree)))[:n]
            files_of[tn] = [os.path.join(dst, ds.tree, x) for x in names]
            mdir = t.meta_dir("metadirs")
            dirs_of[tn] = [os.path.join(mdir, f"S{i:05d}") for i in range(ns)]
            for d in dirs_of[tn]:
                os.mkdir(d)
            lists[tn] = os.path.join(self.work, f"meta-{tn}.list")
            with open(lists[tn], "w") as f:
                f.write("\0".join(files_of[tn]) + "\0")
            timed_sync(dst)
        for rnd in range(self.args.rounds):
            order = self.target_names if rnd % 2 == 0 else list(reversed(self.target_names))
            for what, paths_of, count in (("files", files_of, n), ("slides", dirs_of, ns)):
                label = (f"setfattr user.xdg.tags on {human_count(count)} {what}"
                         + (" (folders elsewhere)" if what == "slides" else ""))
                log(f"{label} (round {rnd + 1})")
                for tn in order:
                    dump = os.path.join(self.work, f"dump-{tn}-{what}")
                    with open(dump, "w") as f:
                        for i, p in enumerate(paths_of[tn]):
                            f.write(f'# file: {p}\nuser.xdg.tags="good,batch{i % 10},bench,r{rnd}"\n\n')
                    out = self.copy_once_cmd(self.targets[tn], f"setfattr --restore={dump}",
                                             os.path.dirname(paths_of[tn][0]))
                    self.record(f"meta:set:{what}", label, ("<= 100 µs per file", "per-file", 100.0),
                                tn, out, count)
        if "samplefs" in self.targets:
            t = self.targets["samplefs"]
            last = self.args.rounds - 1
            want_files, want_slides = (n + 9) // 10, (ns + 9) // 10
            def visible():
                f = len(os.listdir(os.path.join(t.mnt, "tags", f"r{last}", "files")))
                b = len(os.listdir(os.path.join(t.mnt, "tags", "batch0", "files")))
                s = len(os.listdir(os.path.join(t.mnt, "tags", "batch0", "slides")))
                return f, b, s
            try:
                f1, b1, s1 = visible()
                t.umount()
                t.mount()
                f2, b2, s2 = visible()
                ok = (f1 == n and b1 == want_files and s1 == want_slides and (f2, b2, s2) == (f1, b1, s1))
                self.results.checks.append(
                    ("tags visible at once and durable", f"right after setfattr: tags/r{last}/files/ {f1} "
                     f"(of {n}), tags/batch0/files/ {b1} (of {want_files}), tags/batch0/slides/ {s1} "
                     f"(of {want_slides}); after a remount: {f2}, {b2}, {s2}", ok))
            except OSError as e:
                self.results.checks.append(("tags visible at once and durable", f"failed: {e}", False))
        for tn in self.target_names:
            cmd = f"xargs -0 -a {lists[tn]} getfattr --absolute-names -d > /dev/null"
            t = self.targets[tn]
            label = f"getfattr -d of {human_count(n)} files"
            goal = ("<= 1.2x the faster bindfs", "vs-bindfs", 1.2)
            log(f"{label}: {tn}")
            t.umount()
            t.mount()
            drop_caches()
            out = self.copy_once_cmd(t, cmd, os.path.dirname(files_of[tn][0]))
            self.record("meta:get:cold", label + " cold", goal, tn, out, n)
            for _ in range(2):
                out = self.copy_once_cmd(t, cmd, os.path.dirname(files_of[tn][0]))
                self.record("meta:get:warm", label + " warm", goal, tn, out, n)

    # -- memory and descriptors
    def bench_memory(self):
        if "samplefs" not in self.targets:
            return
        t = self.targets["samplefs"]
        ds = self.datasets["mem"]
        t.fresh()
        nfiles = len(ds.files)
        limit = int(open(f"/proc/{t.pid}/limits").read().split("Max open files")[1].split()[0])
        log(f"memory: cp -r of {human_count(nfiles)} x 4 KiB into samplefs (RSS, descriptors)")
        dst = t.new_dest("mem")
        with Sampler(t.pid, 0.25) as s:
            try:
                v = timed(f"cp -r {ds.src} {dst}/")
                sy = timed_sync(dst)
                res = f"{v:.1f} s (+ sync {v + sy:.1f} s)"
            except CommandFailed as e:
                res = f"failed: {str(e)[:200]}"
        g_rss, g_fd, text = s.summary()
        ok = g_rss is not None and g_rss <= 4 and s.max_fds() < limit and not res.startswith("failed")
        self.results.checks.append(
            (f"memory and descriptors flat: cp -r of {human_count(nfiles)} files",
             f"{res}; {text}; peak RSS {s.hwm_kib / 1024:.0f} MiB; most descriptors {s.max_fds()} (limit {limit})",
             ok))
        log(f"  {self.results.checks[-1][1]}")
        huge = self.sz["huge"]
        log(f"memory: dd of {human_bytes(huge)} into samplefs")
        d2 = t.new_dest("huge")
        with Sampler(t.pid, 0.25) as s:
            v = timed(f"dd if=/dev/zero of={d2}/zeros bs=1M count={huge // MIB} status=none")
        g_rss, g_fd, text = s.summary()
        self.results.checks.append((f"memory flat: dd of {human_bytes(huge)}", f"{v:.1f} s; {text}",
                                    g_rss is not None and g_rss <= 4 and g_fd <= 2))
        log(f"  {self.results.checks[-1][1]}")
        t.fresh()

    # -- requests per file
    def bench_trace(self):
        ds = self.datasets["trace"]
        n = len(ds.files)
        for tn in ("samplefs", "bindfs-mt"):
            if tn not in self.targets:
                continue
            t = self.targets[tn]
            log(f"trace: requests per file on {tn} (-d), {human_count(n)} x {human_bytes(ds.nbytes // n)}")
            if isinstance(t, SamplefsTarget):
                t.fresh(debug=True)
            else:
                t.umount()
                t.log_path = os.path.join(self.work, f"{tn}-trace.log")
                t.mount(debug=True)
            counts = collections.OrderedDict()

            def count(label, fn):
                time.sleep(0.3)
                a = os.path.getsize(t.log_path)
                fn()
                time.sleep(0.5)
                b = os.path.getsize(t.log_path)
                with open(t.log_path, "rb") as f:
                    f.seek(a)
                    text = f.read(b - a).decode("utf-8", "replace")
                counts[label] = collections.Counter(re.findall(r"opcode: ([A-Z_]+)", text))

            for i, tool in enumerate(TOOLS):
                ds.reseed(7000 + i)
                if tool == "tar-x":
                    ds.tarball()
                label, tmpl = TOOLS[tool]
                dst = t.new_dest(f"tr-{tool}")
                cmd = tmpl.format(src=ds.src, tar=ds.tar, dst=dst, name=ds.tree)
                count(label, lambda: (run(cmd), timed_sync(dst)))
                if tn == "samplefs" and tool in ("cp-r", "rsync-a"):
                    d2 = t.new_dest(f"tr-{tool}-dup")
                    cmd2 = tmpl.format(src=ds.src, tar=ds.tar, dst=d2, name=ds.tree)
                    count(f"{label}, content already in the store", lambda: (run(cmd2), timed_sync(d2)))
            top = os.path.join(self.dest_path(t, "tr-cp-r"), ds.tree)
            files = sorted(os.path.join(top, x) for x in os.listdir(top))
            dump = os.path.join(self.work, f"trace-dump-{tn}")
            with open(dump, "w") as f:
                for i, p in enumerate(files):
                    f.write(f'# file: {p}\nuser.xdg.tags="good,batch{i % 10},bench"\n\n')
            listf = os.path.join(self.work, f"trace-list-{tn}")
            with open(listf, "w") as f:
                f.write("\0".join(files) + "\0")
            count("setfattr user.xdg.tags", lambda: run(f"setfattr --restore={dump}"))
            count("getfattr -d", lambda: run(f"xargs -0 -a {listf} getfattr --absolute-names -d > /dev/null"))
            tree = os.path.join(self.dest_path(t, "tr-cp-r"), ds.tree)
            count("rm -rf", lambda: (run(f"rm -rf {tree}"), timed_sync(os.path.dirname(tree))))
            self.traces[tn] = counts
            if isinstance(t, SamplefsTarget):
                t.fresh()
            else:
                t.umount()
                t.mount()

    def dest_path(self, t, name):
        if isinstance(t, SamplefsTarget):
            return os.path.join(t.mnt, "slides", "BENCH", "images", name, "files")
        return os.path.join(t.mnt, name)

    # -- perf
    def bench_perf(self):
        if "samplefs" not in self.targets or not shutil.which("perf"):
            return
        t = self.targets["samplefs"]
        ds = self.datasets["flat"]
        for i, tool in enumerate(("cp-r", "rsync-a", "setfattr")):
            t.fresh()
            ds.reseed(9000 + i)
            data = os.path.join(self.work, f"perf-{tool}.data")
            if tool == "setfattr":
                dst = t.new_dest("perf")
                run(f"cp -r {ds.src} {dst}/")
                timed_sync(dst)
                files = sorted(os.path.join(dst, ds.tree, x) for x in os.listdir(os.path.join(dst, ds.tree)))
                dump = os.path.join(self.work, "perf-dump")
                with open(dump, "w") as f:
                    for j, p in enumerate(files):
                        f.write(f'# file: {p}\nuser.xdg.tags="good,batch{j % 10},bench"\n\n')
                cmd = f"setfattr --restore={dump}"
                label = f"setfattr of {human_count(len(files))} files"
            else:
                lab, tmpl = TOOLS[tool]
                dst = t.new_dest("perf")
                cmd = tmpl.format(src=ds.src, tar=ds.tar, dst=dst, name=ds.tree) + f" && sync {dst}"
                label = f"{lab} of {human_count(len(ds.files))} files"
            log(f"perf: {label}")
            os.sync()
            cpu0 = cpu_seconds(t.pid)
            rec = subprocess.Popen(["perf", "record", "-g", "-o", data, "-p", str(t.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            t0 = time.monotonic()
            run(cmd)
            wall = time.monotonic() - t0
            cpu = cpu_seconds(t.pid) - cpu0
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=120)
            flat = run(f"perf report -i {data} --stdio --no-children -g none --percent-limit 0.7 "
                       f"2>/dev/null | grep -v '^#' | grep -v '^$' | head -40", capture=True)
            dso = run(f"perf report -i {data} --stdio --no-children -g none --sort dso "
                      f"2>/dev/null | grep -v '^#' | grep -v '^$' | head -12", capture=True)
            # Inclusive time by symbol: kernel stacks are whole (syscall entry
            # points show what the daemon asks the kernel for); user stacks
            # stop early in a build without frame pointers.
            incl = run(f"perf report -i {data} --stdio --children -g none --percent-limit 4 "
                       f"2>/dev/null | grep -v '^#' | grep -v '^$' | head -45", capture=True)
            text = (f"### perf: {label} ({wall:.2f} s, daemon CPU {cpu:.2f} s)\n\nBy shared object:\n\n"
                    f"{dso}\nBy symbol (self time, >= 0.7%):\n\n{flat}\n"
                    f"Inclusive (children, >= 4%):\n\n{incl}")
            with open(os.path.join(self.work, f"perf-{tool}.txt"), "w") as f:
                f.write(text)
            if self.args.perf_out:
                os.makedirs(self.args.perf_out, exist_ok=True)
                with open(os.path.join(self.args.perf_out, f"perf-{tool}.txt"), "w") as f:
                    f.write(text)
                shutil.copy(data, os.path.join(self.args.perf_out, f"perf-{tool}.data"))
            self.perf_text.append(text)
        t.fresh()

    def load_log(self, path):
        """Rebuilds the copy cases' figures from the log of a run (e.g. one
        that stopped before writing its tables): `--from-log LOG`."""
        by_label = {lab: key for key, (lab, _) in TOOLS.items()}
        head = re.compile(r"^\[[\d:]+\] (.+?) of ([\d,]+ x \d+ [KMG]iB(?: \(3 levels\))?) "
                          r"\(round (\d+) of (\d+)\): (.+)$")
        ok = re.compile(r"^\[[\d:]+\]\s+(\S+)\s+([\d.]+) s \(\+ sync\s+([\d.]+) s\)"
                        r"(?:, daemon CPU (\d+) µs/file)?(?:, (\d+) fds)?$")
        bad = re.compile(r"^\[[\d:]+\]\s+(.+?) \[(\S+)\] failed: (.*)$")
        cases, cur = [], None
        rounds = 1
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                m = head.match(line)
                if m and m.group(1) in by_label:
                    cur = dict(tool=by_label[m.group(1)], what=m.group(2), targets=m.group(5).split(", "),
                               entries=[])
                    rounds = int(m.group(4))
                    cases.append(cur)
                    continue
                if cur is None:
                    continue
                m = ok.match(line)
                if m:
                    cpu = float(m.group(4)) if m.group(4) else None
                    cur["entries"].append((m.group(1), float(m.group(2)), float(m.group(3)), cpu,
                                           int(m.group(5)) if m.group(5) else None))
                    continue
                m = bad.match(line)
                if m:
                    r = re.search(r"(Too many open files|Operation not supported|No space left|"
                                  r"Directory not empty)", line)
                    cur["entries"].append((m.group(2), "failed" + (f": {r.group(1)}" if r else "")))
                elif line.startswith("["):
                    cur = None
        for c in cases:
            tool, what = c["tool"], c["what"]
            dsname = "zarr" if "levels" in what else "flat"
            nfiles = int(what.split(" x ")[0].replace(",", ""))
            label = TOOLS[tool][0]
            key = f"{dsname}:{tool}"
            factor = 2.5 if tool in RSYNC_TOOLS else 2.0
            goal = (f"< bindfs tuned, <= {factor:g}x plain", "copy", factor)
            entries = list(c["entries"])
            phases = [("copy", len(c["targets"]))] + ([("dup", 1)] if "samplefs" in c["targets"] else [])
            for phase, count in phases:
                for _ in range(count):
                    if not entries:
                        break
                    e = entries.pop(0)
                    k, lab, g = ((key, f"{label} {what}", goal) if phase == "copy" else
                                 (key + ":dup", f"{label} {what}, content already in the store",
                                  ("<= the same copy of new content", "dup", key)))
                    out = e[1] if len(e) == 2 else (e[1], e[2] - e[1], None if e[3] is None else e[3] * nfiles / 1e6,
                                                     e[4])
                    self.record(k, lab, g, e[0], out, nfiles)
            for e in entries:  # rm -rf of the copied tree
                if len(e) == 2:
                    continue  # a tree the failed copy left unremovable
                self.record(f"{dsname}:rm", f"rm -rf {what}", ("< bindfs tuned, <= 1.5x plain", "copy", 1.5),
                            e[0], (e[1], e[2] - e[1], None if e[3] is None else e[3] * nfiles / 1e6, None),
                            nfiles)
        self.note_copies(rounds)

    def run_groups(self):
        for g in ("copy", "meta", "memory", "trace", "perf"):
            if g in self.groups:
                getattr(self, f"bench_{g}")()


# ---------------------------------------------------------------------------
# Report


def environment_line(bench, args):
    picked = []
    if args.groups:
        picked.append(f"groups {args.groups}")
    if args.cases:
        picked.append(f"cases {args.cases}")
    if args.targets:
        picked.append(f"targets {args.targets}")
    if getattr(args, "from_log", None):
        picked.append("copy group; tables rebuilt from the run's log with --from-log")
    return (f"{datetime.date.today().isoformat()}, {bench.mode} mode"
            f"{' (' + '; '.join(picked) + ')' if picked else ''}, {args.rounds} rounds, "
            f"{bench.elapsed / 60:.1f} min; {bench.machine_text()}, "
            f"{bindfs_version()}, passthrough_hp {'from libfuse 3.14' if 'pthp' in bench.targets else 'absent'}; "
            + (f"{bench.load_text()}; " if bench.load_before[0] else "") + f"{bench.sources_text()}.")


def report_blocks(bench, args):
    env = environment_line(bench, args)
    res = bench.results
    parts = [f"_Measured by `tests/bench/smallfile_bench.py`: {env}_", "", results_table(bench)]
    for label, text, ok in res.checks:
        parts += ["", f"- **{label}**: {'met' if ok else '**not met**'}. {text}"]
    for n in res.notes:
        parts += ["", n]
    results = "\n".join(parts)
    where = []
    c = cpu_table(bench)
    if c:
        where += [c, ""]
    for tn, counts in bench.traces.items():
        where += [f"Requests per file, {TARGET_TITLES[tn]} (`-d` trace, {human_count(bench.sz['trace_n'])} "
                  f"x 64 KiB, the kernel's own requests around the copy included):", "",
                  trace_table(counts, bench.sz["trace_n"]), ""]
    return results, "\n".join(where).rstrip("\n"), "\n\n".join(bench.perf_text)


SECTION_TITLE = "Mount: small files and metadata edits (issue 16)"


def update_readme(path, blocks):
    text = open(path).read()
    for key, body in zip(("results", "where"), blocks[:2]):
        if body:
            headings = [f"## {SECTION_TITLE}"] + (["### Where the time goes"] if key == "where" else [])
            text = put_block(text, f"smallfile_bench:{key}", body, [h for h in headings if h not in text])
    write_file(path, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samplefs", required=True, help="the samplefs daemon binary")
    ap.add_argument("--passthrough-hp", help="libfuse's example passthrough_hp binary (target pthp)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--groups", help="comma-separated: copy,meta,memory,trace,perf (default all)")
    ap.add_argument("--cases", help=f"comma-separated DATASET:TOOL copy cases, or `all` (default {DEFAULT_CASES}); "
                                    f"datasets flat, zarr; tools {', '.join(TOOLS)}")
    ap.add_argument("--targets", help=f"comma-separated, of {','.join(ALL_TARGETS)} (default all)")
    ap.add_argument("--zarr-bindfs", action="store_true", help="also run bindfs (defaults) on the zarr tree")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per case (best kept)")
    ap.add_argument("--workdir", default="/var/tmp/samplefs-bench/smallfile")
    ap.add_argument("--perf-out", help="also keep perf data and reports in this folder")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--readme", choices=("auto", "yes", "no"), default="auto",
                    help="write the tables into tests/bench/README.md (auto: only in full mode)")
    ap.add_argument("--delete-stores", action="store_true",
                    help="delete each case's samplefs catalog and store before the next case (default: keep "
                         "them until the end; needs about 2 x 0.7 GiB of disk per flat case)")
    ap.add_argument("--from-log", help="only rebuild the copy tables from the log of an earlier run")
    args = ap.parse_args()

    missing = [t for t in ("fusermount3", "bindfs", "rsync", "tar", "getfattr", "setfattr")
               if shutil.which(t) is None]
    if missing or not os.path.exists("/dev/fuse"):
        print(f"smallfile_bench: cannot run: missing {', '.join(missing) or '/dev/fuse'}", file=sys.stderr)
        return 2
    bench = Bench(args)
    if args.from_log:
        bench.load_log(args.from_log)
        stamps = re.findall(r"^\[(\d+):(\d+):(\d+)\]", open(args.from_log).read(), re.M)
        secs = [int(h) * 3600 + int(m) * 60 + int(x) for h, m, x in stamps]
        bench.elapsed = (secs[-1] - secs[0]) % 86400 if secs else 0.0
        bench.load_before, bench.load_after = (0.0,), (0.0,)
        bench.src_is_tmpfs = "sources are on the disk" not in open(args.from_log).read()
        blocks = report_blocks(bench, args)
        print("\n" + "\n\n".join(b for b in blocks if b))
        if args.readme == "yes":
            update_readme(README, blocks)
        return 0
    bench.run_all()
    blocks = report_blocks(bench, args)
    print("\n" + "\n\n".join(b for b in blocks if b))
    if args.readme == "yes" or (args.readme == "auto" and not args.quick):
        update_readme(README, blocks)
        print(f"\nwrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
