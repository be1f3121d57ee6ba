#!/usr/bin/env python3
"""Issue 6, "Nothing lost" (1): crash consistency of samplefs.

Two parts, both against the real daemon (tests/mounted/mountlib.py):

1. Crash points. catalog/crash_point.h makes a process _exit(99) at a named
   point when SAMPLEFS_CRASH_AT names it (SAMPLEFS_CRASH_AFTER=N skips the
   first N hits). For every point (after-staging-fsync, after-link,
   before-commit, after-commit, before-reply, during-sidecar-apply, and
   during-gc in samplectl) a short workload (copy a few files, overwrite one
   with fsync, edit slide.json) runs until the daemon dies there; the mount
   is lazily unmounted, remounted without the crash environment, and checked.

2. Random kills. cp -r, rsync -a or tar -x of a tree of small and medium
   files (and a writer that fsyncs and logs each success) run into the
   mount; the daemon is kill -9'ed at a random (seeded) moment, remounted
   and checked; N iterations on one cumulative catalog.

What is checked after every crash (check_invariants):
  - PRAGMA integrity_check is ok and PRAGMA foreign_key_check is empty;
  - every file record's object exists, has the recorded size, and its bytes
    hash (xxhsum -H2) to the recorded hash;
  - every file is its old version or its new one, never a mix (a file
    being created may also be empty: its record is created at create()
    pointing at the empty object, docs/DECISIONS.md); at a point before the
    commit the file being published is old, at one after it, new;
  - everything whose close() or fsync() returned 0 before the crash is there
    with its content; a tool that exited 0, followed by `sync DIR` (which
    waits for the commits of closed files, done in the background), left
    its whole tree;
  - samplectl fsck finds no problem (unreferenced objects and staging files
    are information), samplectl gc --grace 0 removes the unreferenced
    objects, and fsck then counts none;
  - the remounted daemon writes and reads a file, and unmounts cleanly.

Usage:
  crash_test.py [--seed S] [--iterations N] [--keep]
  SAMPLEFS_STRESS_ITERATIONS=200 crash_test.py   # a longer random-kill run
Environment: SAMPLEFS_BIN, SAMPLECTL_BIN (set by ctest), TMPDIR for the
temporary trees. Exit 0 ok, 1 failure, 77 skipped (no /dev/fuse).
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mounted"))
from mountlib import Mount, fuse_available, is_mounted  # noqa: E402

SAMPLECTL = os.environ.get("SAMPLECTL_BIN", "samplectl")
CRASH_RC = 99  # catalog/crash_point.cc
IMAGE = ("slides", "S1", "images", "cell01", "files")
# Points in the publish path, in the order they are reached, and whether
# the version being published is committed when the process dies there.
PUBLISH_POINTS = [("after-staging-fsync", False), ("after-link", False), ("before-commit", False),
                  ("after-commit", True), ("before-reply", True)]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def blob(seed, size):
    return random.Random(seed).randbytes(size)


def run(cmd, check_rc=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check_rc and r.returncode != 0:
        raise Failure(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def xxh128_many(paths):
    """{path: XXH3-128 hex} by xxhsum -H2, the reference implementation."""
    out = {}
    paths = list(paths)
    for i in range(0, len(paths), 200):
        r = run(["xxhsum", "-H2"] + paths[i:i + 200])
        for line in r.stdout.splitlines():
            h, p = line.split(None, 1)
            out[p.strip()] = h
    return out


# ---------------------------------------------------------------------------
# Invariants


def file_records(m):
    """{path under files/: (size, hash)} of the image's file records."""
    rows = m.sql("SELECT p.path, e.size, e.hash FROM entry e JOIN entry_path p ON p.id = e.id "
                 "WHERE e.type = 'file'")
    return {path: (size, h) for path, size, h in rows}


def check_catalog_and_objects(m):
    check(m.sql("PRAGMA integrity_check") == [("ok",)], "integrity_check: %r" % m.sql("PRAGMA integrity_check"))
    fk = m.sql("PRAGMA foreign_key_check")
    check(fk == [], f"foreign_key_check: {fk}")
    hashes = {h: size for (size, h) in [(s, h) for s, h in m.sql("SELECT size, hash FROM entry WHERE type = 'file'")]}
    for h, size in hashes.items():
        p = m.object_path(h)
        check(os.path.isfile(p), f"object {h} of a record is missing")
        check(os.path.getsize(p) == size, f"object {h} has {os.path.getsize(p)} bytes, the record says {size}")
    got = xxh128_many(m.object_path(h) for h in hashes)
    for h in hashes:
        check(got[m.object_path(h)] == h, f"object {h} hashes to {got[m.object_path(h)]}")
    return len(hashes)


def fsck(m):
    m.settle()  # closed files are committed in the background
    r = run([SAMPLECTL, "--config", m.config, "fsck"], check_rc=False)
    problems = [line for line in r.stdout.splitlines() if line.startswith("PROBLEM")]
    check(r.returncode == 0 and not problems, f"samplectl fsck exited {r.returncode}:\n{r.stdout}{r.stderr}")
    mo = re.search(r"(\d+) unreferenced object", r.stdout)
    check(mo, f"fsck summary not understood:\n{r.stdout}")
    return int(mo.group(1))


def fsck_and_gc(m):
    """fsck clean, gc --grace 0 (the mount is idle: --ignore-live-mounts) removes the unreferenced objects, fsck again."""
    unreferenced = fsck(m)
    run([SAMPLECTL, "--config", m.config, "gc", "--grace", "0", "--ignore-live-mounts"])
    left = fsck(m)
    check(left == 0, f"{left} unreferenced objects left after gc --grace 0")
    return unreferenced


def check_alive(m, tag):
    """The remounted daemon still writes and reads, also an empty file
    created after gc removed the empty object (regression: its record
    pointed at the missing object, and reading it failed with EIO)."""
    p = m.path(*IMAGE, f"alive-{tag}.txt")
    data = f"alive {tag}\n".encode() * 100
    with open(p, "wb") as f:
        f.write(data)
    with open(p, "rb") as f:
        check(f.read() == data, "the remounted daemon read back different bytes")
    empty = m.path(*IMAGE, f"alive-{tag}.empty")
    open(empty, "wb").close()
    with open(empty, "rb") as f:
        check(f.read() == b"", "a new empty file is not empty")
    check_catalog_and_objects(m)
    fsck(m)
    os.unlink(p)
    os.unlink(empty)


def stop(m):
    rc = m.stop()
    check(rc == 0, f"daemon exited {rc} at unmount:\n{m.read_log()[-3000:]}")


# ---------------------------------------------------------------------------
# Part 1: crash points

SLIDE_OLD_NOTES = "old notes"
SLIDE_NEW_NOTES = "new notes, edited through slide.json"


def baseline_files():
    return {
        "old.bin": blob(1, 96 * 1024),
        "keep.txt": b"keep me\n" * 100,
        "sub/a.bin": blob(2, 20 * 1024),
    }


def workload_steps():
    """The steps of the crash-point workload: (kind, path, bytes)."""
    return [
        ("copy", "new1.bin", blob(11, 300 * 1024)),
        ("copy", "sub/new2.bin", blob(12, 5000)),
        ("overwrite-fsync", "old.bin", blob(13, 200 * 1024)),
        ("copy-fsync", "new3.bin", blob(14, 70 * 1024)),
        ("sidecar", "slide.json", None),
        ("copy", "new4.bin", blob(15, 1234)),
        ("copy", "sub/new5.bin", blob(16, 64 * 1024 + 7)),
    ]


def make_template(root):
    """A stopped catalog with one slide/image, three files and slide notes."""
    m = Mount(root)
    m.start()
    os.mkdir(m.path("species", "HeLa"))
    os.mkdir(m.path("species", "HeLa", "slides", "S1"))
    os.mkdir(m.path("slides", "S1", "images", "cell01"))
    os.mkdir(m.path("dyes", "A647"))
    os.mkdir(m.path(*IMAGE, "sub"))
    for rel, data in baseline_files().items():
        with open(m.path(*IMAGE, rel), "wb") as f:
            f.write(data)
    os.setxattr(m.path("slides", "S1"), "user.xdg.comment", SLIDE_OLD_NOTES.encode())
    stop(m)


def clone_template(template, root):
    shutil.copytree(template, root, symlinks=True)
    os.unlink(os.path.join(root, "samplefs.conf"))  # absolute paths of the template
    shutil.rmtree(os.path.join(root, "mnt"))
    for name in os.listdir(os.path.join(root, "store", "staging")):
        os.unlink(os.path.join(root, "store", "staging", name))
    return Mount(root)


def workload_main(mnt, log_path):
    """Runs in a child process so that a dying daemon cannot wedge the test.
    Logs each step's outcome as one JSON line, flushed, as it happens."""
    files = os.path.join(mnt, *IMAGE)
    with open(log_path, "w") as log:
        def note(i, what, ok, err=None):
            log.write(json.dumps({"step": i, "what": what, "ok": ok, "err": err}) + "\n")
            log.flush()

        for i, (kind, rel, data) in enumerate(workload_steps()):
            note(i, "start", True)
            try:
                if kind == "sidecar":
                    p = os.path.join(mnt, "slides", "S1", "slide.json")
                    with open(p) as f:
                        doc = json.load(f)
                    doc["notes"] = SLIDE_NEW_NOTES
                    doc["labellings"] = [{"structure": "tubulin", "isotype": "", "antibody": "", "dye": "A647"}]
                    with open(p, "w") as f:
                        f.write(json.dumps(doc, indent=2))
                    note(i, "close", True)
                    continue
                with open(os.path.join(files, rel), "wb") as f:
                    f.write(data)
                    if kind.endswith("fsync"):
                        f.flush()
                        os.fsync(f.fileno())
                        note(i, "fsync", True)
                note(i, "close", True)
            except OSError as e:
                note(i, "error", False, e.errno)
                # The daemon is gone: every later step would fail the same way.
                if not os.path.isdir(files):
                    break


def read_log(log_path):
    with open(log_path) as f:
        return [json.loads(line) for line in f]


def check_crash_point_case(m, point, committed, events, sync_close):
    """Old-or-new for every step, new for every step that reported success,
    and the crashing step's outcome fixed by which side of the commit the
    point is on. By default a closed file is committed in the background
    (fs/committer.h), so only fsync (and a sidecar's close, applied at
    close) promise the new version, and the daemon may die after the
    workload ended; with -o sync_close, close() promises it too."""
    steps = workload_steps()
    done = {e["step"] for e in events if e["ok"] and (e["what"] == "fsync" or (
        e["what"] == "close" and (sync_close or steps[e["step"]][0] == "sidecar")))}
    started = [e["step"] for e in events if e["what"] == "start"]
    failed = [e["step"] for e in events if e["what"] == "error"]
    if sync_close:
        check(failed, f"{point}: no workload step failed, yet the daemon died")
    crashed = failed[0] if failed and sync_close else None
    base = baseline_files()
    records = file_records(m)
    for i, (kind, rel, data) in enumerate(steps):
        if kind == "sidecar":
            notes = m.sql("SELECT notes FROM slide WHERE reference = 'S1'")[0][0]
            labs = m.sql("SELECT count(*) FROM labelling")[0][0]
            state = {(SLIDE_OLD_NOTES, 0): "old", (SLIDE_NEW_NOTES, 1): "new"}.get((notes, labs))
            check(state, f"{point}: slide S1 is a mix of two versions: notes={notes!r}, {labs} labellings")
            new_ok = i in done
        else:
            p = m.path(*IMAGE, rel)
            exists = os.path.lexists(p)
            check(exists == (rel in records), f"{point}: {rel}: listed={exists} but recorded={rel in records}")
            content = None
            if exists:
                with open(p, "rb") as f:
                    content = f.read()
                check(records[rel][0] == len(content), f"{point}: {rel}: record size {records[rel][0]} "
                      f"but {len(content)} bytes read")
            old = base.get(rel)
            if content is None:
                state = "old" if old is None else None
            elif content == data:
                state = "new"
            elif content == old or (old is None and content == b""):
                state = "old"
            else:
                state = None
            check(state, f"{point}: {rel} is neither its old version nor its new one "
                         f"({0 if content is None else len(content)} bytes)")
            new_ok = i in done
        if new_ok:
            check(state == "new", f"{point}: step {i} ({kind} {rel}) reported success but the file is old")
        if i == crashed:
            # A file's close() seals its version before anything is
            # published (catalog/recovery.h): wherever the daemon dies in
            # the publish path, the remount verifies and records the new
            # version. A sidecar is applied in one transaction at close:
            # before its commit old, after it new.
            want = "new" if committed or kind != "sidecar" else "old"
            check(state == want, f"{point}: the step the daemon died in ({kind} {rel}) left the {state} "
                                 f"version; it must leave the {want} one")
        if crashed is not None and i > crashed:
            check(i not in started or state == "old" or kind == "sidecar",
                  f"{point}: step {i} after the crash changed something")
    for rel, data in base.items():
        if rel not in {s[1] for s in steps}:
            with open(m.path(*IMAGE, rel), "rb") as f:
                check(f.read() == data, f"{point}: untouched file {rel} changed")
    return crashed


def run_crash_point(template, root, point, after, committed, stats, sync_close):
    m = clone_template(template, root)
    m.start(options=["sync_close"] if sync_close else None,
            env={"SAMPLEFS_CRASH_AT": point, "SAMPLEFS_CRASH_AFTER": str(after)})
    log_path = os.path.join(root, "workload.log")
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--workload", m.mnt, log_path])
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        raise Failure(f"{point}: the workload hung")
    try:
        rc = m.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    m.kill()
    check(rc == CRASH_RC, f"{point} (after {after}): the daemon did not die at the point "
                          f"(exit {rc}); the point is never reached")
    m.start()  # without the crash environment
    check_catalog_and_objects(m)
    crashed = check_crash_point_case(m, point, committed, read_log(log_path), sync_close)
    unreferenced = fsck_and_gc(m)
    check_catalog_and_objects(m)
    check_alive(m, point)
    stop(m)
    stats["points"].add(point)
    stats["crashes"] += 1
    mode = "sync_close" if sync_close else "default   "
    where = f"died in step {crashed}" if crashed is not None else "died committing in the background"
    print(f"  {mode} {point:22s} after {after}: {where}, nothing lost "
          f"({unreferenced} unreferenced objects collected)")


def run_gc_crash(template, root, stats):
    """samplectl gc dies after its first removal while the catalog is mounted."""
    m = clone_template(template, root)
    m.start()
    files = m.path(*IMAGE)
    for v in range(4):  # old versions of a file become unreferenced objects
        with open(os.path.join(files, "old.bin"), "wb") as f:
            f.write(blob(100 + v, 30000))
    for v in range(3):
        p = os.path.join(files, f"gone{v}.bin")
        with open(p, "wb") as f:
            f.write(blob(200 + v, 9000))
        os.unlink(p)
    before = fsck(m)
    check(before >= 6, f"expected at least 6 unreferenced objects, fsck counts {before}")
    r = run([SAMPLECTL, "--config", m.config, "gc", "--grace", "0", "--ignore-live-mounts"], check_rc=False,
            env=dict(os.environ, SAMPLEFS_CRASH_AT="during-gc"))
    check(r.returncode == CRASH_RC, f"during-gc: samplectl gc exited {r.returncode}, not at the point:\n"
                                    f"{r.stdout}{r.stderr}")
    check_catalog_and_objects(m)
    middle = fsck(m)
    check(middle == before - 1, f"during-gc: {before} unreferenced before, {middle} after one removal")
    with open(os.path.join(files, "old.bin"), "rb") as f:
        check(f.read() == blob(103, 30000), "during-gc: the current version of old.bin changed")
    fsck_and_gc(m)
    check_catalog_and_objects(m)
    check_alive(m, "gc")
    stop(m)
    stats["points"].add("during-gc")
    stats["crashes"] += 1
    print(f"  {'during-gc':22s} after 0: samplectl died after 1 of {before} removals, nothing lost")


def crash_points(base, stats):
    template = os.path.join(base, "template")
    make_template(template)
    n = 0

    def case():
        nonlocal n
        n += 1
        return os.path.join(base, f"case{n:02d}")

    for point, committed in PUBLISH_POINTS:
        # -o sync_close (close() commits): after 0: the first copy; after 2:
        # the fsync'ed overwrite of old.bin (flush-only before-reply: the
        # next closed copy). Default (commits in the background, in
        # batches): the first time the point is reached.
        for after in (0, 2):
            run_crash_point(template, case(), point, after, committed, stats, True)
        run_crash_point(template, case(), point, 0, committed, stats, False)
    run_crash_point(template, case(), "during-sidecar-apply", 0, False, stats, True)
    run_gc_crash(template, case(), stats)


# ---------------------------------------------------------------------------
# Part 2: random kills during cp -r, rsync -a, tar -x


def make_source_tree(src, rng):
    """300 files: mostly small, some medium (up to 1.5 MiB), a few empty and
    duplicated, in nested folders; returns {relpath: sha256}."""
    want = {}
    dup = blob(999, 40000)
    for i in range(300):
        d = rng.choice(["", "a", "a/b", "c", "c/d/e", "frames"])
        rel = os.path.join(d, f"f{i:03d}.{rng.choice(['tif', 'csv', 'json', 'bin'])}")
        r = rng.random()
        size = 0 if r < 0.04 else rng.randint(1, 64 * 1024) if r < 0.85 else rng.randint(256 * 1024, 1536 * 1024)
        data = dup if r > 0.97 else blob(rng.random(), size)
        p = os.path.join(src, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        want[rel] = sha(data)
    return want


def fsync_writer_main(mnt, prefix, log_path, seed):
    """Writes files and fsyncs them, logging each success (flushed) only
    after fsync returned 0; also rewrites one journal file in versions."""
    files = os.path.join(mnt, *IMAGE)
    rng = random.Random(seed)
    with open(log_path, "w") as log:
        try:
            for k in range(1000):
                rel = f"{prefix}-sync{k:03d}.bin"
                data = blob(f"{seed}-{k}", rng.randint(1, 200 * 1024))
                with open(os.path.join(files, rel), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                    log.write(json.dumps({"path": rel, "sha": sha(data)}) + "\n")
                    log.flush()
                jdata = blob(f"{seed}-journal-{k}", 10000 + k)
                with open(os.path.join(files, "journal.bin"), "r+b" if k else "wb") as f:
                    f.truncate(0)
                    f.write(jdata)
                    f.flush()
                    os.fsync(f.fileno())
                    log.write(json.dumps({"journal": sha(jdata)}) + "\n")
                    log.flush()
        except OSError:
            pass


def closed_writer_main(mnt, prefix, log_path, seed):
    """Writes files (no fsync) and logs each one only after its close()
    returned 0: a daemon killed at any moment must lose none of them (SPEC
    section 3: the bytes are sealed by the close and survive the daemon)."""
    files = os.path.join(mnt, *IMAGE)
    rng = random.Random(seed)
    with open(log_path, "w") as log:
        try:
            for k in range(100000):
                rel = f"{prefix}-closed{k:04d}.dat"
                data = blob(f"{seed}-closed-{k}", rng.randint(0, 300 * 1024))
                f = open(os.path.join(files, rel), "wb")
                try:
                    f.write(data)
                finally:
                    f.close()  # raises if close() failed: then not logged
                log.write(json.dumps({"path": rel, "sha": sha(data)}) + "\n")
                log.flush()
        except OSError:
            pass


RSYNC_TEMP = re.compile(r"^\.(.+)\.[A-Za-z0-9]{6}$")


def check_copy(m, dest_rel, want, tool_ok, label):
    """Every record under dest is complete: its source's bytes (or empty, the
    state between create and the first close). If the tool exited 0, every
    source file is there."""
    records = file_records(m)
    prefix = dest_rel + "/"
    seen = set()
    for path, (size, h) in records.items():
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix):]
        d, name = os.path.split(rel)
        mo = RSYNC_TEMP.match(name)
        src_rel = rel if rel in want else os.path.join(d, mo.group(1)) if mo else None
        check(src_rel in want, f"{label}: unexpected file {path}")
        got = sha_file(m.path(*IMAGE, path))
        check(got == want[src_rel] or size == 0,
              f"{label}: {path} ({size} bytes) is neither empty nor its source: a half-recorded file")
        if got == want[src_rel] and rel == src_rel:
            seen.add(rel)
    if tool_ok:
        missing = sorted(set(want) - seen)
        check(not missing, f"{label}: the tool exited 0 but {missing[:5]} are missing or incomplete")
    return len(seen)


def random_kills(base, iterations, seed, stats):
    rng = random.Random(seed)
    src = os.path.join(base, "src")
    want = make_source_tree(src, rng)
    tarball = os.path.join(base, "src.tar")
    run(["tar", "-cf", tarball, "-C", src, "."])
    root = os.path.join(base, "kills")
    m = Mount(root)
    m.start()
    os.mkdir(m.path("species", "HeLa"))
    os.mkdir(m.path("species", "HeLa", "slides", "S1"))
    os.mkdir(m.path("slides", "S1", "images", "cell01"))
    # How long one copy takes here and now, so that most kills land inside it.
    t = time.time()
    run(["cp", "-r", src, m.path(*IMAGE, "calibration")])
    copy_s = time.time() - t
    shutil.rmtree(m.path(*IMAGE, "calibration"))
    stop(m)
    print(f"  one copy of the tree ({len(want)} files) takes {copy_s:.2f} s")
    verified = {}  # path -> sha256 of records checked in earlier iterations
    for it in range(iterations):
        tool = rng.choice(["cp", "rsync", "tar"])
        # Up to twice the copy: some kills land after the tool and its sync
        # returned, which must then have left the whole tree.
        delay = rng.uniform(0.02, 2.0 * copy_s)
        dest_rel = f"it{it:03d}-{tool}"
        m.start()
        dest = m.path(*IMAGE, dest_rel)
        if tool == "cp":
            cmd = ["cp", "-r", src, dest]
        elif tool == "rsync":
            cmd = ["rsync", "-a", src + "/", dest + "/"]
        else:
            os.mkdir(dest)
            cmd = ["tar", "-xf", tarball, "-C", dest, "--no-same-owner"]
        # `sync DIR` (fsyncdir) returns once everything closed so far is
        # recorded: the commits after close() run in the background.
        cmd = ["sh", "-c", 'dest=$1; shift; "$@" && sync "$dest"', "sh", dest] + cmd
        sync_log = os.path.join(base, f"sync{it:03d}.log")
        writer = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--fsync-writer", m.mnt,
                                   f"it{it:03d}", sync_log, str(seed * 1000 + it)])
        closed_log = os.path.join(base, f"closed{it:03d}.log")
        closer = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--closed-writer", m.mnt,
                                   f"it{it:03d}", closed_log, str(seed * 1000 + it)])
        # The kill lands while the writers write (they have each logged a
        # file: Python takes a while to start) and the tool copies (up to
        # twice a copy after it started).
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                os.path.exists(p) and os.path.getsize(p) > 0 for p in (sync_log, closed_log)):
            time.sleep(0.01)
        tool_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        tool_rc_before_kill = tool_proc.poll()
        m.kill()
        for p in (tool_proc, writer, closer):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                raise Failure(f"iteration {it}: {p.args[0]} hung after the daemon was killed")
        label = f"iteration {it} ({tool}, kill after {delay:.2f} s, seed {seed})"
        m.start()
        check_catalog_and_objects(m)
        complete = check_copy(m, dest_rel, want, tool_rc_before_kill == 0, label)
        synced = journal = 0
        with open(sync_log) as f:
            for line in f:
                e = json.loads(line)
                if "path" in e:
                    p = m.path(*IMAGE, e["path"])
                    check(os.path.exists(p) and sha_file(p) == e["sha"],
                          f"{label}: {e['path']} was fsync'ed but is missing or different")
                    synced += 1
                else:
                    journal = e["journal"]
        closed = 0
        with open(closed_log) as f:
            for line in f:
                e = json.loads(line)
                p = m.path(*IMAGE, e["path"])
                got = sha_file(p) if os.path.exists(p) else None
                if got is None:
                    stats["lost"] += 1
                elif got != e["sha"]:
                    stats["partial"] += 1
                check(got == e["sha"], f"{label}: {e['path']} was closed (close() returned 0) before the "
                                       f"kill but is {'missing' if got is None else 'different'} after it")
                closed += 1
        stats["closed_checked"] += closed
        if journal:
            # The journal may be newer than the last fsync the log saw (the
            # log line is written after fsync returned), never older or mixed.
            got = sha_file(m.path(*IMAGE, "journal.bin"))
            versions = [sha(blob(f"{seed * 1000 + it}-journal-{k}", 10000 + k)) for k in range(1000)]
            check(got in versions[versions.index(journal):],
                  f"{label}: journal.bin is not its last fsync'ed version or a later one")
        # Records verified in earlier iterations are unchanged.
        records = file_records(m)
        for path, digest in verified.items():
            check(path in records and sha_file(m.path(*IMAGE, path)) == digest,
                  f"{label}: {path}, verified after an earlier crash, changed")
        unreferenced = fsck_and_gc(m)
        check_catalog_and_objects(m)
        check_alive(m, f"it{it}")
        records = file_records(m)
        for path in records:
            if path.startswith(dest_rel + "/") and not path.startswith("journal"):
                verified[path] = sha_file(m.path(*IMAGE, path))
        stop(m)
        stats["kills"] += 1
        stats["files_checked"] = len(records)
        print(f"  {label}: tool {'done' if tool_rc_before_kill == 0 else 'interrupted'}, "
              f"{complete}/{len(want)} files complete, {synced} fsync'ed and {closed} closed files present, "
              f"{unreferenced} unreferenced objects collected")


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SAMPLEFS_STRESS_SEED", "6")))
    ap.add_argument("--iterations", type=int, default=int(os.environ.get("SAMPLEFS_STRESS_ITERATIONS", "20")),
                    help="random kills (default 20, or $SAMPLEFS_STRESS_ITERATIONS)")
    ap.add_argument("--skip-points", action="store_true", help="only the random kills")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--workload", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--fsync-writer", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--closed-writer", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.closed_writer:
        mnt, prefix, log, seed = args.closed_writer
        return closed_writer_main(mnt, prefix, log, int(seed))
    if args.workload:
        return workload_main(*args.workload)
    if args.fsync_writer:
        mnt, prefix, log, seed = args.fsync_writer
        return fsync_writer_main(mnt, prefix, log, int(seed))
    if not fuse_available():
        print("SKIP: /dev/fuse or fusermount3 is missing: the crash test needs FUSE")
        return 77
    base = tempfile.mkdtemp(prefix="samplefs-crash-")
    stats = {"points": set(), "crashes": 0, "kills": 0, "files_checked": 0, "closed_checked": 0,
             "lost": 0, "partial": 0}
    t0 = time.time()
    ok = False
    try:
        if not args.skip_points:
            print("crash points:")
            crash_points(base, stats)
        print(f"random kills (seed {args.seed}, {args.iterations} iterations):")
        random_kills(base, args.iterations, args.seed, stats)
        ok = True
    except Failure as e:
        print(f"FAIL: {e}")
    finally:
        for mnt in [os.path.join(d, "mnt") for d, _, _ in os.walk(base) if os.path.basename(d) != "mnt"]:
            if os.path.isdir(mnt) and is_mounted(mnt):
                subprocess.run(["fusermount3", "-uz", mnt], check=False)
        if args.keep or not ok:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'ok' if ok else 'FAILED'}: {len(stats['points'])} crash points walked in {stats['crashes']} crashes, "
          f"{stats['kills']} random kills; {stats['closed_checked']} files closed before a kill checked: "
          f"{stats['lost']} lost, {stats['partial']} partial; in {time.time() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
