"""Facility mode (issue 15): three samplefs daemons on one PostgreSQL
catalog and one store.

Random operations from all three mounts plus psql updates: every mount
converges to the same listing, contents and tags within 1 s of the last
change (pushed by LISTEN/NOTIFY); a name created by two mounts at once is
created once (the other gets EEXIST); a kill -9 of one daemon loses
nothing the others did. Runs only with SAMPLEFS_TEST_CATALOG=postgres
(ctest mounted_postgres).
"""
import errno
import hashlib
import os
import random
import shutil
import threading
import time
import unittest

from mountlib import ENGINE, Mount, MountedTestCase

DEADLINE = 1.0  # seconds from the last change until every mount shows it


def snapshot(files_dir):
    """name -> (sha256 of the content, tags) of every file in files_dir."""
    out = {}
    try:
        names = os.listdir(files_dir)
    except FileNotFoundError:
        return None
    for name in names:
        p = os.path.join(files_dir, name)
        try:
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            try:
                tags = os.getxattr(p, "user.xdg.tags").decode()
            except OSError:
                tags = ""
        except FileNotFoundError:
            return None  # changed under us: look again
        out[name] = (digest, tags)
    return out


class FacilityMounts(MountedTestCase):

    def setUp(self):
        if ENGINE != "postgresql":
            self.skipTest("facility mode needs SAMPLEFS_TEST_CATALOG=postgres")
        super().setUp()
        self.mounts = [self.m]
        for i in (2, 3):
            root = os.path.join(self.tmp, f"m{i}")
            os.makedirs(root)
            # The same schema (catalog) and the same store as the first.
            with open(os.path.join(root, "pg_schema"), "w") as f:
                f.write(self.m.schema)
            with open(os.path.join(root, "samplefs.conf"), "w") as f:
                f.write(f"catalog = {self.m.catalog}\nstore = {self.m.store}\nlog_level = info\n"
                        f"log_file = {root}/samplefs.log\n")
            m = Mount(root)
            m.start()
            self.addCleanup(m.stop)
            self.mounts.append(m)

    def files(self, m):
        return m.path("slides", "S1", "images", "cell01", "files")

    def converge(self, what, expected=None, mounts=None):
        """Polls until every mount shows the same files (and `expected`, if
        given); returns the delay. Fails after DEADLINE."""
        mounts = mounts or self.mounts
        t0 = time.monotonic()
        while True:
            snaps = [snapshot(self.files(m)) for m in mounts]
            same = snaps[0] is not None and all(s == snaps[0] for s in snaps)
            if same and (expected is None or snaps[0] == expected):
                return time.monotonic() - t0
            if time.monotonic() - t0 > DEADLINE:
                self.fail(f"{what}: mounts differ after {DEADLINE} s:\n" +
                          "\n".join(f"  mount {i + 1}: {sorted((s or {}).items())}"
                                    for i, s in enumerate(snaps)) +
                          (f"\n  expected: {sorted(expected.items())}" if expected else ""))
            time.sleep(0.01)

    def test_random_operations_converge(self):
        self.make_image("HeLa", "S1", "cell01")
        rng = random.Random(15)
        model = {}  # name -> (content, tags)
        delays = []
        for step in range(60):
            m = rng.choice(self.mounts)
            d = self.files(m)
            op = rng.choice(["write", "write", "rewrite", "rm", "mv", "tag", "psql"])
            names = sorted(model)
            if op in ("rewrite", "rm", "mv", "tag", "psql") and not names:
                op = "write"
            if op in ("write", "rewrite"):
                name = f"f{rng.randrange(1000)}.tif" if op == "write" else rng.choice(names)
                data = os.urandom(rng.choice([0, 100, 5000, 70000]))
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
                model[name] = (data, model.get(name, (b"", ""))[1])
            elif op == "rm":
                name = rng.choice(names)
                os.unlink(os.path.join(d, name))
                del model[name]
            elif op == "mv":
                name = rng.choice(names)
                new = f"m{rng.randrange(1000)}.tif"
                os.rename(os.path.join(d, name), os.path.join(d, new))
                model[new] = model.pop(name)
            elif op == "tag":
                name = rng.choice(names)
                tag = rng.choice(["good", "bad", "check"])
                os.setxattr(os.path.join(d, name), "user.xdg.tags", tag.encode())
                model[name] = (model[name][0], tag)
            else:  # psql renames a file
                name = rng.choice(names)
                new = f"sql{rng.randrange(1000)}.tif"
                if new in model:
                    continue
                self.m.cli_sql(f"UPDATE entry SET name = '{new}' WHERE name = '{name}'")
                model[new] = model.pop(name)
            m.settle()
            if step % 10 == 9:
                expected = {n: (hashlib.sha256(c).hexdigest(), t) for n, (c, t) in model.items()}
                delays.append(self.converge(f"after step {step} ({op})", expected))
        print(f"\n  convergence after the last change: max {max(delays) * 1000:.0f} ms", end="")

        # kill -9 of one daemon loses nothing the others did (nor what it
        # had recorded itself), and the other two keep converging.
        self.mounts[2].kill()
        survivors = self.mounts[:2]
        with open(os.path.join(self.files(self.mounts[0]), "after-kill.tif"), "wb") as f:
            f.write(b"written after the kill")
        self.mounts[0].settle()
        model["after-kill.tif"] = (b"written after the kill", "")
        expected = {n: (hashlib.sha256(c).hexdigest(), t) for n, (c, t) in model.items()}
        self.converge("after a kill -9 of mount 3", expected, survivors)

    def test_same_name_at_once_one_wins(self):
        self.make_image("HeLa", "S1", "cell01")
        a, b = self.mounts[0], self.mounts[1]
        for round_ in range(5):
            results = [None, None]
            barrier = threading.Barrier(2)

            def create(i, m, kind):
                barrier.wait()
                try:
                    if kind == "slide":
                        os.mkdir(m.path("species", "HeLa", "slides", f"race{round_}"))
                    else:
                        fd = os.open(os.path.join(self.files(m), f"race{round_}.tif"),
                                     os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                        os.write(fd, b"mount %d" % i)
                        os.close(fd)
                    results[i] = 0
                except OSError as e:
                    results[i] = e.errno

            for kind in ("slide", "file"):
                barrier.reset()
                ts = [threading.Thread(target=create, args=(i, m, kind)) for i, m in enumerate((a, b))]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                self.assertEqual(sorted(results), [0, errno.EEXIST], f"{kind} round {round_}")

    def test_last_close_wins_whole(self):
        # Found by this test: B's open(O_TRUNC) of the (still empty) record
        # started no version, so B's bytes, which Python's buffer (st_blksize,
        # 1 MiB) sends only at close, went over a copy of A's recorded 200 kB:
        # a mix, B's 150 kB then A's last 50 kB.
        self.make_image("HeLa", "S1", "cell01")
        a, b = self.mounts[0], self.mounts[1]
        ca, cb = b"A" * 200_000, b"B" * 150_000
        digest = hashlib.sha256(cb).hexdigest()
        # B's bytes reach its mount only at close, after A's commit.
        name = "shared.tif"
        fa = open(os.path.join(self.files(a), name), "wb")
        fa.write(ca)
        fb = open(os.path.join(self.files(b), name), "wb")
        fb.write(cb)
        fa.close()
        a.settle()
        fb.close()
        b.settle()
        self.converge("two writers", {name: (digest, "")})
        # B's bytes reach its mount before A's close.
        name2 = "shared2.tif"
        fa = os.open(os.path.join(self.files(a), name2), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fa, ca)
        fb = os.open(os.path.join(self.files(b), name2), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fb, cb)
        os.close(fa)
        a.settle()
        os.close(fb)
        b.settle()
        self.converge("two writers, written before the first close", {name: (digest, ""), name2: (digest, "")})
        # And the other order of closes: A's close is the last one.
        fb = os.open(os.path.join(self.files(b), name2), os.O_WRONLY | os.O_TRUNC)
        os.write(fb, cb)
        fa = os.open(os.path.join(self.files(a), name2), os.O_WRONLY | os.O_TRUNC)
        os.close(fb)
        b.settle()
        os.write(fa, ca)
        os.close(fa)
        a.settle()
        self.converge("A closes last", {name: (digest, ""), name2: (hashlib.sha256(ca).hexdigest(), "")})
        # Both publish the same content: one object in the shared store.
        with open(os.path.join(self.files(a), "same1.tif"), "wb") as f:
            f.write(b"identical" * 1000)
        with open(os.path.join(self.files(b), "same2.tif"), "wb") as f:
            f.write(b"identical" * 1000)
        a.settle()
        b.settle()
        rows = self.m.sql("SELECT DISTINCT hash FROM entry WHERE name IN ('same1.tif', 'same2.tif')")
        self.assertEqual(len(rows), 1)
        self.assertTrue(os.path.exists(self.m.object_path(rows[0][0])))

    def test_writer_starts_from_the_content_it_opened(self):
        # A writer opened without O_TRUNC in mount A, the file replaced
        # through mount B before A's first write: A's close records what A
        # opened plus A's writes (docs/DECISIONS.md, "A writer starts from
        # what it opened"), never B's content under A's bytes.
        self.make_image("HeLa", "S1", "cell01")
        a, b = self.mounts[0], self.mounts[1]
        old, new = b"o" * 120_000, b"n" * 70_000
        with open(os.path.join(self.files(a), "f.tif"), "wb") as f:
            f.write(old)
        a.settle()
        self.converge("the first version", {"f.tif": (hashlib.sha256(old).hexdigest(), "")})
        fa = os.open(os.path.join(self.files(a), "f.tif"), os.O_RDWR)
        try:
            with open(os.path.join(self.files(b), "f.tif"), "wb") as f:
                f.write(new)
            b.settle()
            self.converge("B's version", {"f.tif": (hashlib.sha256(new).hexdigest(), "")})
            os.pwrite(fa, b"AAAA", 100)
        finally:
            os.close(fa)
        a.settle()
        expected = old[:100] + b"AAAA" + old[104:]
        self.converge("A's close", {"f.tif": (hashlib.sha256(expected).hexdigest(), "")})


class DatabaseOutage(MountedTestCase):
    """PostgreSQL stopped and started again while mounted (SPEC section 6,
    docs/DECISIONS.md "Faults"): operations that need the catalog fail
    with ECONNREFUSED, data already open keeps being read, a file closed
    during the outage closes OK and is recorded once the server is back;
    the mount reconnects by itself; the log and .samplefs/errors say it
    once when the database went away and once when it came back."""

    SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "pg-test-cluster.sh")

    def setUp(self):
        if ENGINE != "postgresql" or not os.environ.get("SAMPLEFS_TEST_PG_DIR"):
            self.skipTest("needs SAMPLEFS_TEST_CATALOG=postgres and the cluster of tools/pg-test-cluster.sh "
                          "(SAMPLEFS_TEST_PG_DIR)")
        super().setUp()

    def server(self, cmd):
        import subprocess
        subprocess.run(["bash", self.SCRIPT, cmd, os.environ["SAMPLEFS_TEST_PG_DIR"]], check=True)

    def test_database_restart_while_mounted(self):
        files = self.make_image("HeLa", "S1", "cell01")
        with open(os.path.join(files, "old.tif"), "wb") as f:
            f.write(b"recorded before" * 1000)
        self.m.settle()
        # Closed before tearDown unmounts, even when an assertion fails
        # (an open descriptor would keep the unmount waiting).
        with open(os.path.join(files, "old.tif"), "rb") as reader, \
                open(os.path.join(files, "old.tif"), "rb") as tagged_file, \
                open(os.path.join(files, "during.tif"), "wb") as writer:
            tagged = tagged_file.fileno()
            writer.write(b"begun before the outage;")
            writer.flush()

            self.server("pause")
            paused = True

            def resume():
                if paused:
                    self.server("resume")
            self.addCleanup(resume)

            # Needs the catalog: a clear "try again later" errno, not EIO.
            self.assertErrno(errno.ECONNREFUSED, os.mkdir, os.path.join(files, "newdir"))
            # Open data keeps working.
            self.assertEqual(reader.read(), b"recorded before" * 1000)
            reader.close()
            # A file being written is finished and closed during the outage:
            # close() succeeds (the version is sealed), the commit waits.
            writer.write(b" finished during it" * 5000)
            writer.close()
            time.sleep(1)
            content = b"begun before the outage;" + b" finished during it" * 5000
            # A lookup (the catalog's readers) fails just before the server
            # comes back: that reader then waits before trying again...
            self.assertErrno(errno.ECONNREFUSED, os.stat, os.path.join(files, "probe"))

            self.server("resume")
            paused = False
            # Reconnects by itself: no remount. A tag edit on an open file (no
            # lookup: the writer's session) until the first success.
            deadline = time.monotonic() + 30
            while True:
                try:
                    os.setxattr(tagged, "user.xdg.tags", b"after-outage")
                    break
                except OSError as e:
                    if e.errno != errno.ECONNREFUSED or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            # ...but not once another session has reached the server: lookups
            # and a mkdir right after the first success work at once.
            for i in range(20):
                with self.assertRaises(FileNotFoundError):
                    os.stat(os.path.join(files, f"never-{i}"))
            os.mkdir(os.path.join(files, "after"))
            self.assertEqual(os.getxattr(os.path.join(files, "old.tif"), "user.xdg.tags"), b"after-outage")
        # The version closed during the outage is recorded (the committer's
        # retries: at most ~30 s apart).
        deadline = time.monotonic() + 60
        while True:
            rows = self.m.sql("SELECT size FROM entry WHERE name = 'during.tif'")
            if rows and rows[0][0] == len(content):
                break
            self.assertLess(time.monotonic(), deadline, f"during.tif not recorded: {rows}")
            time.sleep(0.5)
        with open(os.path.join(files, "during.tif"), "rb") as f:
            self.assertEqual(f.read(), content)
        # Once when it went away, once when it came back.
        log = self.m.read_log()
        self.assertEqual(log.count("the catalog database is unreachable"), 1, log[-3000:])
        self.assertEqual(log.count("the catalog database is reachable again"), 1, log[-3000:])
        with open(self.m.path(".samplefs", "errors")) as f:
            errors = f.read()
        self.assertIn("unreachable", errors)
        self.assertIn("reachable again", errors)


class MovingACatalog(unittest.TestCase):
    """samplectl dump of an SQLite catalog, load into PostgreSQL, dump, load
    into SQLite again: the three documents are byte for byte the same,
    desktop trash included."""

    def test_dump_load_round_trip(self):
        from mountlib import PG_URL, SAMPLECTL, pg_url_with_schema, psql
        import subprocess
        import tempfile
        if ENGINE != "postgresql" or not PG_URL:
            self.skipTest("needs SAMPLEFS_TEST_CATALOG=postgres")
        tmp = tempfile.mkdtemp(prefix="samplefs-move-")
        self.addCleanup(shutil.rmtree, tmp, True)
        schema = f"move_{os.getpid()}"
        psql(PG_URL, f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        self.addCleanup(psql, PG_URL, f"DROP SCHEMA IF EXISTS {schema} CASCADE", False)
        confs = {}
        for name, catalog in (("a", f"{tmp}/a.db"), ("b", pg_url_with_schema(schema)), ("c", f"{tmp}/c.db")):
            confs[name] = f"{tmp}/{name}.conf"
            with open(confs[name], "w") as f:
                f.write(f"catalog = {catalog}\nstore = {tmp}/store\n")
            subprocess.run([SAMPLECTL, "--config", confs[name], "init"], check=True, capture_output=True)
        src = os.path.join(tmp, "src")
        for rel, data in (("HeLa/P1/S1/img1/a.tif", b"a"), ("HeLa/P1/S1/img1/sub/b.csv", b"b,c"),
                          ("Mouse/P2/S2/img2/c.nd2", b"c" * 5000)):
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            with open(os.path.join(src, rel), "wb") as f:
                f.write(data)
        ctl = lambda name, *args: subprocess.run([SAMPLECTL, "--config", confs[name], *args],
                                                 check=True, capture_output=True)
        ctl("a", "import", "--layout", "{species}/{sample}/{slide}/{image}/", src)
        ctl("a", "tag", "add", "slides/S1", "good")
        # A trash (as a mount's rename into .Trash-<uid>/files/ leaves it:
        # the entry under its image's files/ root as '/<trash id>'): a
        # folder of one image, a file of the other, two uids.
        import sqlite3
        with sqlite3.connect(f"{tmp}/a.db") as db:
            for name, uid, path in (("sub", 1000, "slides/S1/images/img1/files/sub"),
                                    ("c.nd2", 0, "slides/S2/images/img2/files/c.nd2")):
                db.execute("INSERT INTO trash(entry_id, uid, name, original_parent_id, original_name, "
                           "original_path, deleted_at) SELECT id, ?, name, parent_id, name, ?, "
                           "'2026-01-02T03:04:05' FROM entry WHERE name = ?", (uid, path, name))
            db.execute("UPDATE entry SET parent_id = (SELECT r.id FROM entry r WHERE r.image_id = entry.image_id "
                       "AND r.parent_id IS NULL), name = '/' || (SELECT t.id FROM trash t WHERE t.entry_id = "
                       "entry.id) WHERE id IN (SELECT entry_id FROM trash)")
        ctl("a", "dump", "-o", f"{tmp}/a.json")
        ctl("b", "load", f"{tmp}/a.json")
        ctl("b", "dump", "-o", f"{tmp}/b.json")
        ctl("c", "load", f"{tmp}/b.json")
        ctl("c", "dump", "-o", f"{tmp}/c.json")
        docs = [open(f"{tmp}/{n}.json", "rb").read() for n in "abc"]
        self.assertIn(b'"good"', docs[0])
        self.assertIn(b'"original_path": "slides/S1/images/img1/files/sub"', docs[0])
        self.assertIn(b'"path": "b.csv"', docs[0])  # the trashed folder's file
        self.assertIn(b'"original_path": "slides/S2/images/img2/files/c.nd2"', docs[0])
        self.assertEqual(docs[0], docs[1], "SQLite -> PostgreSQL")
        self.assertEqual(docs[0], docs[2], "PostgreSQL -> SQLite")


if __name__ == "__main__":
    unittest.main()
