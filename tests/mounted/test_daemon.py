"""Issue 13: the daemon detached, as users run it (`samplefs --config CFG MNT`,
no -f), next to other processes that open the same catalog.

SQLite in WAL mode coordinates processes with POSIX (fcntl) locks on the
catalog and its -shm file; an open connection keeps a read lock on a byte
of -shm for as long as it is open, and the last connection to close deletes
-wal and -shm. POSIX locks belong to a process and are not inherited by
fork(): a daemon that opened the catalog before fuse_daemonize() forked
holds no lock at all, so the first other process that opens and closes the
catalog (sqlite3, samplectl, pandas) believes it is the last one, deletes
the daemon's live -wal and -shm, and what the daemon writes afterwards goes
to deleted files that no other process ever reads.

1. Detached: the daemon's stdin/stdout/stderr are /dev/null, nothing of it
   is on a terminal (no controlling tty, its own session, no descriptor on
   a tty), its cwd is / and it logs to the config's log_file.
2. Locks held: after another process opened the catalog with Python's
   sqlite3, read a row and closed it, the daemon's -wal and -shm are not
   deleted (/proc/PID/fd), /proc/locks lists the daemon's lock on the -shm
   inode, and what the mount records afterwards is in the catalog that
   other processes read.
3. Other writers while mounted: for 30 s (at least 3 `samplectl import`s
   of 1,000 small files each), sqlite3 (SQL reads, annotation and tag
   inserts, an update), `samplectl tag add`, and through the mount cp,
   setfattr user.xdg.tags and slide.json edits run at the same time, round
   after round. Afterwards the catalog passes integrity_check and
   foreign_key_check, every change of every side is in it (exact records,
   tags, annotations, file sizes and hashes), the mount shows all of it
   (getfattr, slide.json, ls, bytes), and `samplectl fsck --verify` is
   clean. A command that fails saying the catalog is busy/locked is retried
   and reported on stderr (a finding, not hidden); any other failure fails.
"""
import contextlib
import filecmp
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
import unittest

from mountlib import SAMPLECTL, MountedTestCase, is_mounted, write_random

BUSY = re.compile(r"busy|locked", re.I)


def readlinks(pid):
    """{fd: target} of /proc/PID/fd."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def posix_locks():
    """[(pid, 'maj:min', inode, READ/WRITE, start, end)] of granted POSIX locks."""
    locks = []
    with open("/proc/locks") as f:
        for line in f:
            p = line.split()
            if len(p) < 8 or p[1] == "->" or p[1] != "POSIX":
                continue
            maj, mnr, ino = p[5].split(":")
            locks.append((int(p[4]), f"{int(maj, 16)}:{int(mnr, 16)}", int(ino), p[3], p[6], p[7]))
    return locks


def dev_ino(st):
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", st.st_ino


def xxh128_files(paths):
    """{path: XXH3-128 hex} by xxhsum -H2 (the reference tool)."""
    out = {}
    paths = list(paths)
    for i in range(0, len(paths), 500):
        r = subprocess.run(["xxhsum", "-H2", *paths[i:i + 500]], capture_output=True, text=True, check=True)
        for line in r.stdout.splitlines():
            h, p = line.split(None, 1)
            out[p] = h
    return out


class DaemonTestCase(MountedTestCase):
    daemonize = True

    def catalog_problems(self, when):
        """What is wrong with the daemon's hold on catalog.db, -wal and -shm:
        a descriptor on a deleted file or on another file than the one on
        disk, no descriptor, or no POSIX lock on -shm (or on any catalog
        file). Empty when all is well."""
        m, pid = self.m, self.m.pid
        problems = []
        fds = readlinks(pid)
        for suffix in ("", "-wal", "-shm"):
            path = os.path.realpath(m.catalog) + suffix
            held = {fd: t for fd, t in fds.items() if t in (path, path + " (deleted)")}
            if not held:
                problems.append(f"{when}: the daemon (pid {pid}) has no descriptor on {path}"
                                f"{'' if os.path.exists(path) else ' (and it is not on disk)'}")
            for fd, t in sorted(held.items()):
                if t.endswith(" (deleted)"):
                    problems.append(f"{when}: /proc/{pid}/fd/{fd} -> {t}")
                elif not os.path.exists(path) or dev_ino(os.stat(f"/proc/{pid}/fd/{fd}")) != dev_ino(os.stat(path)):
                    problems.append(f"{when}: /proc/{pid}/fd/{fd} is not the {path} on disk")
        mine = [l for l in posix_locks() if l[0] == pid]
        files = {}
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                files[dev_ino(os.stat(m.catalog + suffix))] = "catalog.db" + suffix
        on_catalog = [(files[(l[1], l[2])], l[3], l[4], l[5]) for l in mine if (l[1], l[2]) in files]
        if not any(f == "catalog.db-shm" for f, *_ in on_catalog):
            problems.append(f"{when}: /proc/locks has no lock of the daemon (pid {pid}) on catalog.db-shm "
                            f"(its locks on catalog files: {on_catalog}; all its POSIX locks: {mine})")
        return problems


class Detached(DaemonTestCase):
    def test_detached_from_the_terminal(self):
        m = self.m
        pid = m.pid
        self.assertNotEqual(pid, m.launcher.pid, "the daemon is the process we started: it did not fork")
        fds = readlinks(pid)
        for fd in (0, 1, 2):
            self.assertIn(fds.get(fd), ("/dev/null", os.path.realpath(m.log)), f"fd {fd} of the daemon: {fds}")
        ttys = {fd: t for fd, t in fds.items()
                if re.match(r"/dev/(pts/|tty|console)", t) or t == "/dev/ptmx"}
        self.assertEqual(ttys, {}, "the daemon has descriptors on a terminal")
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        session, tty_nr = int(fields[3]), int(fields[4])
        self.assertEqual(tty_nr, 0, "the daemon has a controlling terminal")
        self.assertEqual(session, pid, "the daemon is not the leader of its own session (setsid)")
        self.assertEqual(os.readlink(f"/proc/{pid}/cwd"), "/", "the daemon's cwd would keep a directory busy")
        # Its threads are named, and the committer's background rounds run
        # nicer than the requests (Committer::kBackgroundNice).
        def threads():
            nice = {}
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:  # libfuse's idle workers come and go
                    with open(f"/proc/{pid}/task/{tid}/comm") as f:
                        comm = f.read().strip()
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        st = f.read()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                nice.setdefault(comm, set()).add(int(st[st.rindex(")") + 2:].split()[16]))
            return nice

        base = os.getpriority(os.PRIO_PROCESS, 0)  # the daemon inherited ours
        # The threads name and renice themselves once started, which may be
        # a moment after the mount is ready.
        expected = {"sfs-committer": {min(base + 10, 19)}, "sfs-atimes": {base}, "sfs-invalidate": {base},
                    "samplefs": {base}}
        deadline = time.monotonic() + 10
        while True:
            nice = threads()
            if all(nice.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for name, value in expected.items():
            self.assertEqual(nice.get(name), value, f"{name}: threads and their nice values: {nice}")
        # It works, and logs to log_file once detached: the unmount line is
        # written after the fork.
        os.mkdir(m.path("species", "HeLa"))
        self.assertEqual(m.sql("SELECT name FROM species"), [("HeLa",)])
        self.assertEqual(m.stop(), 0, "exit status of the detached daemon:\n" + m.read_log())
        self.assertFalse(is_mounted(m.mnt))
        self.assertIn(f"unmounted {m.mnt}", m.read_log())


class CatalogLocks(DaemonTestCase):
    def test_other_process_does_not_delete_the_daemons_wal(self):
        m = self.m
        os.mkdir(m.path("species", "HeLa"))
        m.settle()
        problems = self.catalog_problems("mounted, before any other process")
        # Another process opens the catalog as a user would (read-write,
        # like sqlite3 or pandas), reads a row and closes it.
        r = subprocess.run(["python3", "-c",
                            "import sqlite3, sys\n"
                            "con = sqlite3.connect(sys.argv[1])\n"
                            "print(con.execute('SELECT name FROM species').fetchall())\n"
                            "con.close()\n", m.catalog], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "[('HeLa',)]"), r.stderr)
        problems += self.catalog_problems("after python3 sqlite3 opened, read and closed the catalog")
        # What the mount records afterwards reaches the catalog on disk.
        os.mkdir(m.path("species", "Rat"))
        m.settle()
        names = m.sql("SELECT name FROM species ORDER BY name")
        if names != [("HeLa",), ("Rat",)]:
            problems.append(f"mkdir species/Rat after that: the catalog other processes read has species {names}")
        problems += self.catalog_problems("after the mkdir")
        self.assertTrue(m.alive(), "the daemon died:\n" + m.read_log()[-3000:])
        if problems:
            self.fail(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems))


class OtherWriters(DaemonTestCase):
    # Imports run round after round (IMPORT_PAUSE apart) until at least
    # MIN_IMPORTS are done and DURATION seconds have passed (at most
    # MAX_IMPORTS); every other side runs round after round meanwhile.
    DURATION = float(os.environ.get("SAMPLEFS_TEST_DAEMON_SECONDS", "30"))
    MIN_IMPORTS, MAX_IMPORTS = 3, 12
    IMPORT_FILES = 1000  # per round, in 10 folders
    IMPORT_PAUSE = 1.5
    MAX_ROUNDS = 300  # of each other side
    PAUSE = 0.2

    def setUp(self):
        super().setUp()
        for tool in ("sqlite3", "xxhsum", "setfattr", "getfattr"):
            if not shutil.which(tool):
                self.skipTest(f"{tool} is not installed")
        if not (os.path.sep in SAMPLECTL or shutil.which(SAMPLECTL)):
            self.skipTest("samplectl not found: set SAMPLECTL_BIN")
        m = self.m
        os.mkdir(m.path("species", "HeLa"))
        for s in ("S1", "S2", "S3", "S4"):
            os.mkdir(m.path("species", "HeLa", "slides", s))
        os.mkdir(m.path("slides", "S1", "images", "cell01"))
        os.mkdir(m.path("slides", "S3", "images", "cell03"))
        self.src = os.path.join(self.tmp, "src")
        self.make_import_source(1)
        self.busy = []  # (side, round, message) of retried busy/locked failures
        self.lock = threading.Lock()

    def make_import_source(self, r):
        """src/import<r>/HeLa/P1/IMP<r>/cell/d<k>/f<i>.dat"""
        base = os.path.join(self.src, f"import{r}", "HeLa", "P1", f"IMP{r}", "cell")
        for i in range(self.IMPORT_FILES):
            d = os.path.join(base, f"d{i % 10}")
            if i < 10:
                os.makedirs(d)
            with open(os.path.join(d, f"f{i:04d}.dat"), "w") as f:
                f.write(f"import round {r} file {i}\n" * (1 + i % 7))

    # -- running the sides ---------------------------------------------
    def attempt(self, side, rnd, fn):
        """fn() -> (ok, message). Retries while the message says busy/locked
        (and records that); returns the failure message or None."""
        for _ in range(10):
            ok, msg = fn()
            if ok:
                return None
            if not BUSY.search(msg):
                return msg
            with self.lock:
                self.busy.append((side, rnd, msg.strip()[-300:]))
            time.sleep(0.3)
        return f"still busy after 10 attempts: {msg}"

    def tool(self, *cmd):
        def run():
            r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=300)
            return r.returncode == 0, f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout}{r.stderr}"
        return run

    def python_op(self, fn):
        def run():
            try:
                fn()
                return True, ""
            except OSError as e:
                return False, f"{e}"
        return run

    def sqlite3(self, sql):
        return self.tool("sqlite3", "-cmd", ".timeout 5000", self.m.catalog, sql)

    def ctl(self, *args):
        return self.tool(SAMPLECTL, "--config", self.m.config, *args)

    def run_sides(self):
        m = self.m
        done = threading.Event()
        self.rounds = {}
        failures = []
        t0 = time.monotonic()

        def side(name, step, more=None, pause=self.PAUSE):
            """A thread running step(1), step(2), ... while more(rounds
            done) says so, or (more=None) until the imports are done."""
            def loop():
                n = 0
                self.rounds[name] = 0
                try:
                    while more(n) if more else (n < self.MAX_ROUNDS and not done.is_set()):
                        n += 1
                        for op in step(n):
                            err = self.attempt(name, n, op)
                            if err:
                                failures.append(f"{name} round {n}: {err}")
                                return
                        self.rounds[name] = n
                        time.sleep(pause)
                except Exception as e:  # noqa: BLE001 (reported by the test)
                    failures.append(f"{name} round {n}: {type(e).__name__}: {e}")
            return threading.Thread(target=loop, name=name)

        def sql_step(n):
            return [self.sqlite3(
                "SELECT count(*) FROM entry; SELECT count(*) FROM file_info;"
                f"INSERT INTO annotation(entity, record_id, key, value) "
                f"  SELECT 'slide', id, 'sql{n}', 'v{n}' FROM slide WHERE reference = 'S1';"
                f"INSERT OR IGNORE INTO tag(name) VALUES ('sql{n}');"
                f"INSERT INTO tagging(tag_id, entity, record_id) SELECT t.id, 'slide', s.id"
                f"  FROM tag t, slide s WHERE t.name = 'sql{n}' AND s.reference = 'S1';"
                f"UPDATE slide SET notes = 'sql notes {n}' WHERE reference = 'S1';")]

        def tag_step(n):
            return [self.ctl("tag", "add", "S3", f"ctl{n}"),
                    self.ctl("tag", "add", "S3/cell03", f"ctlimg{n}")]

        def cp_step(n):
            src = os.path.join(self.src, f"cp{n}")
            os.makedirs(os.path.join(src, "sub"))
            for i in range(20):
                with open(os.path.join(src, "sub" if i % 2 else "", f"c{i:02d}.txt"), "w") as f:
                    f.write(f"cp round {n} file {i}\n" * (i + 1))
            write_random(os.path.join(src, "big.tif"), (1 << 20) + n, seed=n)
            dest = m.path("slides", "S1", "images", "cell01", "files", f"cp{n}")
            return [self.tool("cp", "-rT", src, dest)]

        def xattr_step(n):
            tags = ",".join(f"fx{i}" for i in range(1, n + 1))
            return [self.tool("setfattr", "-n", "user.xdg.tags", "-v", tags, m.path("slides", "S2"))]

        def sidecar_step(n):
            def edit():
                p = m.path("slides", "S4", "slide.json")
                with open(p) as f:
                    doc = json.load(f)
                doc["notes"] = f"sidecar {n}"
                doc["annotations"][f"side{n}"] = f"v{n}"
                with open(p, "w") as f:
                    json.dump(doc, f)
            return [self.python_op(edit)]

        def import_step(n):
            if n > 1:
                self.make_import_source(n)
            return [self.ctl("import", os.path.join(self.src, f"import{n}"),
                             "--layout", "{species}/{sample}/{slide}/{image}/")]

        def more_imports(n):
            return n < self.MIN_IMPORTS or (n < self.MAX_IMPORTS and time.monotonic() - t0 < self.DURATION)

        imports = side("samplectl import", import_step, more_imports, self.IMPORT_PAUSE)
        others = [side("sqlite3", sql_step), side("samplectl tag", tag_step), side("cp", cp_step),
                  side("setfattr", xattr_step), side("slide.json", sidecar_step)]
        for t in [imports] + others:
            t.start()
        imports.join()
        done.set()
        for t in others:
            t.join()
        self.elapsed = time.monotonic() - t0
        return failures

    # -- the test ---------------------------------------------------------
    def test_sql_samplectl_and_mount_writers_together(self):
        m = self.m
        failures = self.run_sides()
        for side, rnd, msg in self.busy:
            print(f"\n  FINDING: {side} round {rnd} failed busy/locked and was retried: {msg}", end="")
        print(f"\n  [{self.elapsed:.1f} s; rounds: {self.rounds}; busy retries: {len(self.busy)}]", end="",
              flush=True)
        self.assertTrue(m.alive(), "the daemon died:\n" + m.read_log()[-3000:])
        n = self.rounds  # rounds each side completed (a failed side stopped)
        problems = [f"a side failed: {f.strip()}" for f in failures]

        def check(what, got, want):
            if got != want:
                problems.append(f"{what}: got {got!r}, want {want!r}")

        # The catalog: consistent, and every change of every side in it.
        m.settle()
        check("PRAGMA integrity_check", m.sql("PRAGMA integrity_check"), [("ok",)])
        check("PRAGMA foreign_key_check", m.sql("PRAGMA foreign_key_check"), [])

        def tags(entity, where, *params):
            return sorted(r[0] for r in m.sql(
                f"SELECT t.name FROM tagging g JOIN tag t ON t.id = g.tag_id "
                f"WHERE g.entity = '{entity}' AND g.record_id = ({where})", params))

        def annotations(ref):
            return dict(m.sql("SELECT key, value FROM annotation WHERE entity = 'slide' AND record_id = "
                              "(SELECT id FROM slide WHERE reference = ?)", (ref,)))

        slide_id = "SELECT id FROM slide WHERE reference = ?"
        rng = lambda k: range(1, n[k] + 1)  # noqa: E731
        want_s1_tags = sorted(f"sql{i}" for i in rng("sqlite3"))
        want_s1_ann = {f"sql{i}": f"v{i}" for i in rng("sqlite3")}
        want_s2_tags = sorted(f"fx{i}" for i in rng("setfattr"))
        want_s3_tags = sorted(f"ctl{i}" for i in rng("samplectl tag"))
        want_s3_img_tags = sorted(f"ctlimg{i}" for i in rng("samplectl tag"))
        want_s4_ann = {f"side{i}": f"v{i}" for i in rng("slide.json")}
        check("sqlite3: S1 tags", tags("slide", slide_id, "S1"), want_s1_tags)
        check("sqlite3: S1 annotations", annotations("S1"), want_s1_ann)
        check("sqlite3: S1 notes", m.sql("SELECT notes FROM slide WHERE reference = 'S1'"),
              [(f"sql notes {n['sqlite3']}",)])
        check("setfattr: S2 tags", tags("slide", slide_id, "S2"), want_s2_tags)
        check("samplectl tag: S3 tags", tags("slide", slide_id, "S3"), want_s3_tags)
        check("samplectl tag: S3/cell03 tags",
              tags("image", "SELECT i.id FROM image i JOIN slide s ON s.id = i.slide_id "
                            "WHERE s.reference = ? AND i.name = ?", "S3", "cell03"), want_s3_img_tags)
        check("slide.json: S4 annotations", annotations("S4"), want_s4_ann)
        check("slide.json: S4 notes", m.sql("SELECT notes FROM slide WHERE reference = 'S4'"),
              [(f"sidecar {n['slide.json']}",)])
        # Files: cp into S1/cell01, imports as IMP<r>/cell; sizes and hashes.
        want_files = {}  # (slide, image, path) -> (size, hash, source path)
        sources = []
        for i in rng("cp"):
            root = os.path.join(self.src, f"cp{i}")
            for d, _, names in os.walk(root):
                for name in names:
                    p = os.path.join(d, name)
                    sources.append(p)
                    want_files[("S1", "cell01", f"cp{i}/" + os.path.relpath(p, root))] = p
        for r in range(1, n["samplectl import"] + 1):
            root = os.path.join(self.src, f"import{r}", "HeLa", "P1", f"IMP{r}", "cell")
            for d, _, names in os.walk(root):
                for name in names:
                    p = os.path.join(d, name)
                    sources.append(p)
                    want_files[(f"IMP{r}", "cell", os.path.relpath(p, root))] = p
        hashes = xxh128_files(sources)
        want = {k: (os.path.getsize(p), hashes[p]) for k, p in want_files.items()}
        got = {(s, i, p): (size, h) for s, i, p, size, h in m.sql(
            "SELECT slide, image, path, size, hash FROM file_info")}
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        check(f"files in the catalog ({len(want)} expected): missing", missing[:5], [])
        check("files in the catalog: not written by anyone", extra[:5], [])
        check("files in the catalog: wrong size or hash", [(k, got[k], want[k]) for k in wrong[:5]], [])
        check("slides", m.sql("SELECT reference FROM slide ORDER BY reference"),
              [(s,) for s in sorted(["S1", "S2", "S3", "S4"] + [f"IMP{r}" for r in range(1, n["samplectl import"] + 1)])])

        # The mount shows all of it (others' changes after the catalog poll).
        def getfattr_all(path):
            r = subprocess.run(["getfattr", "-d", "-m", "^user\\.", "--absolute-names", path],
                               capture_output=True, text=True)
            out = {}
            for line in r.stdout.splitlines():
                if "=" in line:
                    k, v = line.split("=", 1)
                    out[k] = v.strip('"')
            return out

        def slide_view(ref):
            x = getfattr_all(m.path("slides", ref))
            with open(m.path("slides", ref, "slide.json")) as f:
                doc = json.load(f)
            return x, doc

        def mount_view():
            x1, d1 = slide_view("S1")
            x2, _ = slide_view("S2")
            x3, _ = slide_view("S3")
            x4, d4 = slide_view("S4")
            img3 = getfattr_all(m.path("slides", "S3", "images", "cell03"))
            split = lambda v: sorted(v.split(",")) if v else []  # noqa: E731
            return [
                ("getfattr slides/S1 user.xdg.tags", split(x1.get("user.xdg.tags")), want_s1_tags),
                ("getfattr slides/S1 user.sql*", {k[5:]: v for k, v in x1.items() if k.startswith("user.sql")},
                 want_s1_ann),
                ("slides/S1/slide.json notes", d1["notes"], f"sql notes {n['sqlite3']}"),
                ("slides/S1/slide.json annotations", d1["annotations"], want_s1_ann),
                ("getfattr slides/S2 user.xdg.tags", split(x2.get("user.xdg.tags")), want_s2_tags),
                ("getfattr slides/S3 user.xdg.tags", split(x3.get("user.xdg.tags")), want_s3_tags),
                ("getfattr slides/S3/images/cell03 user.xdg.tags", split(img3.get("user.xdg.tags")),
                 want_s3_img_tags),
                ("getfattr slides/S4 user.side*", {k[5:]: v for k, v in x4.items() if k.startswith("user.side")},
                 want_s4_ann),
                ("slides/S4/slide.json notes", d4["notes"], f"sidecar {n['slide.json']}"),
                ("ls slides", sorted(os.listdir(m.path("slides"))),
                 sorted(["S1", "S2", "S3", "S4"] + [f"IMP{r}" for r in range(1, n["samplectl import"] + 1)])),
            ]

        deadline = time.monotonic() + 3
        while True:
            seen = mount_view()
            if all(g == w for _, g, w in seen) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for what, g, w in seen:
            check(what, g, w)
        differ = []
        for (slide, image, path), src in sorted(want_files.items()):
            p = m.path("slides", slide, "images", image, "files", path)
            try:
                same = filecmp.cmp(src, p, shallow=False)
            except OSError as e:
                same = f"{e}"
            if same is not True:
                differ.append((p, same))
        check(f"bytes read through the mount ({len(want_files)} files) differ", differ[:5], [])

        # fsck --verify re-hashes every object.
        r = subprocess.run([SAMPLECTL, "--config", m.config, "fsck", "--verify"], capture_output=True, text=True)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        if r.returncode != 0 or "PROBLEM" in r.stdout or not last.startswith("fsck: 0 problems"):
            found = [l for l in r.stdout.splitlines() if not l.startswith("info ")]  # info: unreferenced objects
            problems.append(f"samplectl fsck --verify -> {r.returncode}:\n" + "\n".join(found[:20])
                            + r.stderr[-1000:])
        problems += self.catalog_problems("after all sides")
        if problems:
            self.fail(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    unittest.main()
