"""Issue 18, "Files and folders that behave like a local filesystem's":
each scenario runs the same sequence of calls in a folder of a mount
(files/ of an image) and in a plain local folder, and compares what stat
answers in both: whether a time moved, link counts, modes. Values that
depend on the moment (the times themselves) are compared as relations
("changed", "equals the mtime"), so that the two runs need not be
simultaneous.
"""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from mountlib import MountedTestCase, SAMPLECTL

NOBODY = 65534
DAY_NS = 86400 * 10**9


def as_user(uid, *cmd, groups=None, cwd=None):
    """Runs cmd as uid (gid = uid, supplementary `groups` or none)."""
    g = ["--groups=" + ",".join(str(x) for x in groups)] if groups else ["--clear-groups"]
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", *g, *cmd],
                          capture_output=True, text=True, cwd=cwd)


def needs_root(test):
    return unittest.skipUnless(os.getuid() == 0, "needs root to act as other users")(test)

# Long enough for any clock (the mount records nanoseconds, a local
# filesystem's coarse clock ticks every few milliseconds).
TICK = 0.05


def ns(st, what):
    return getattr(st, f"st_{what}_ns")


def moved(path, change, *times):
    """For each of `times` ("atime", "mtime", "ctime"): whether change(path)
    made it later (change may return the path's new name)."""
    before = os.stat(path)
    time.sleep(TICK)
    path = change(path) or path
    after = os.stat(path)
    return tuple(ns(after, t) > ns(before, t) for t in times)


def read_old_file(root, flags):
    """Writes `n` in root, dates it 10**18 ns (atime; mtime 1 ns later),
    reads it through a descriptor opened O_RDONLY | flags: its atime after."""
    p = os.path.join(root, "n")
    with open(p, "w") as f:
        f.write("data")
    os.utime(p, ns=(10**18, 10**18 + 1))
    fd = os.open(p, os.O_RDONLY | flags)
    os.read(fd, 10)
    os.close(fd)
    return os.stat(p).st_atime_ns


def touched(root, name, *args):
    """`touch NAME`, then `touch ARGS NAME`, in root: NAME's stat after."""
    p = os.path.join(root, name)
    subprocess.run(["touch", p], check=True)
    subprocess.run(["touch", *args, p], check=True)
    return os.stat(p)


class PosixTestCase(MountedTestCase):
    def setUp(self):
        super().setUp()
        self.files = self.make_image()
        self.local = tempfile.mkdtemp(prefix="samplefs-local-")
        self.addCleanup(shutil.rmtree, self.local, True)

    def assertSameAsLocal(self, scenario):
        """Runs scenario(root) in the mount's files/ and in a local folder,
        checks that both answer the same and returns the answer."""
        mount, local = scenario(self.files), scenario(self.local)
        self.assertEqual(mount, local, "the mount answers differently from a local folder")
        return mount


class Ctime(PosixTestCase):
    """Point 2: ctime is its own time: chmod, chown, rename, utimens and
    extended attributes move it to now; an old mtime does not take it back."""

    def change_moves_ctime(self, root, change):
        p = os.path.join(root, "c")
        with open(p, "w") as f:
            f.write("x")
        return moved(p, change, "ctime")[0]

    def test_chmod_moves_ctime(self):
        self.assertTrue(self.assertSameAsLocal(
            lambda root: self.change_moves_ctime(root, lambda p: os.chmod(p, 0o600))))

    def test_chown_to_self_moves_ctime(self):
        self.assertTrue(self.assertSameAsLocal(
            lambda root: self.change_moves_ctime(root, lambda p: os.chown(p, os.getuid(), os.getgid()))))

    def test_rename_moves_ctime_not_mtime(self):
        def scenario(root):
            p = os.path.join(root, "r")
            with open(p, "w") as f:
                f.write("x")
            os.utime(p, ns=(10**18, 10**18))
            before = os.stat(p)
            time.sleep(TICK)
            q = os.path.join(root, "r2")
            os.rename(p, q)
            after = os.stat(q)
            return (ns(after, "ctime") > ns(before, "ctime"), ns(after, "mtime") == 10**18)
        self.assertEqual(self.assertSameAsLocal(scenario), (True, True))

    def test_old_mtime_leaves_ctime_at_now(self):
        def scenario(root):
            p = os.path.join(root, "c")
            open(p, "w").close()
            t0 = time.time_ns()
            subprocess.run(["touch", "-m", "-d", "@1000000000", p], check=True)
            st = os.stat(p)
            return (st.st_mtime, ns(st, "ctime") >= t0 - 10**9 // 100)
        self.assertEqual(self.assertSameAsLocal(scenario), (1000000000.0, True))

    def test_old_mtime_on_a_committed_file(self):
        # The same after the file's version is recorded (a fresh mount reads
        # the catalog's record, nothing pending).
        p = os.path.join(self.files, "c")
        with open(p, "w") as f:
            f.write("x")
        deadline = time.time() + 10
        while self.m.sql("SELECT size FROM entry WHERE name = 'c'")[0][0] != 1 and time.time() < deadline:
            time.sleep(0.05)
        t0 = time.time_ns()
        os.utime(p, ns=(10**18, 10**18))
        st = os.stat(p)
        self.assertEqual(ns(st, "mtime"), 10**18)
        self.assertGreaterEqual(ns(st, "ctime"), t0)

    def test_xattr_moves_ctime(self):
        p = os.path.join(self.files, "x")
        with open(p, "w") as f:
            f.write("x")
        for change in (lambda: os.setxattr(p, "user.stain", b"fresh"),
                       lambda: os.removexattr(p, "user.stain")):
            before = os.stat(p)
            time.sleep(TICK)
            change()
            self.assertGreater(ns(os.stat(p), "ctime"), ns(before, "ctime"))

    def test_ctime_and_mtime_agree_through_the_catalog(self):
        p = os.path.join(self.files, "c")
        with open(p, "w") as f:
            f.write("x")
        os.utime(p, ns=(1000000000 * 10**9, 1000000000 * 10**9))
        os.chmod(p, 0o640)
        deadline = time.time() + 10
        while True:
            row = self.m.sql("SELECT mtime_ns, ctime_ns, mode FROM entry WHERE name = 'c'")[0]
            if row[2] == 0o640 or time.time() > deadline:
                break
            time.sleep(0.05)
        st = os.stat(p)
        self.assertEqual(tuple(row), (ns(st, "mtime"), ns(st, "ctime"), 0o640))


class FolderTimes(PosixTestCase):
    """Point 3: a folder's mtime and ctime move when entries are created,
    removed or renamed in it."""

    def moves_times(self, root, change):
        d = os.path.join(root, "p")
        os.makedirs(d, exist_ok=True)
        os.makedirs(os.path.join(root, "q"), exist_ok=True)
        return moved(d, change, "mtime", "ctime")

    def scenario(self, change):
        self.assertEqual(self.assertSameAsLocal(lambda root: self.moves_times(root, change)), (True, True))

    def test_create_file(self):
        self.scenario(lambda d: open(os.path.join(d, "x"), "w").close())

    def test_mkdir_and_symlink(self):
        self.scenario(lambda d: os.mkdir(os.path.join(d, "sub")))
        self.scenario(lambda d: os.symlink("x", os.path.join(d, "l")))

    def test_unlink_and_rmdir(self):
        self.scenario(lambda d: os.unlink(os.path.join(d, "l")) if os.path.lexists(os.path.join(d, "l"))
                      else open(os.path.join(d, "y"), "w").close())
        open(os.path.join(self.files, "p", "gone"), "w").close()
        open(os.path.join(self.local, "p", "gone"), "w").close()
        self.scenario(lambda d: os.unlink(os.path.join(d, "gone")))
        os.mkdir(os.path.join(self.files, "p", "gonedir"))
        os.mkdir(os.path.join(self.local, "p", "gonedir"))
        self.scenario(lambda d: os.rmdir(os.path.join(d, "gonedir")))

    def test_rename_in_out_and_within(self):
        for root in (self.files, self.local):
            os.makedirs(os.path.join(root, "p"))
            open(os.path.join(root, "p", "a"), "w").close()
        self.scenario(lambda d: os.rename(os.path.join(d, "a"), os.path.join(d, "b")))
        self.scenario(lambda d: os.rename(os.path.join(d, "b"), os.path.join(d, "..", "q", "b")))
        self.scenario(lambda d: os.rename(os.path.join(d, "..", "q", "b"), os.path.join(d, "b")))

    def test_files_root_moves_too(self):
        def scenario(root):
            return moved(root, lambda r: open(os.path.join(r, "top"), "w").close(), "mtime")[0]
        self.assertTrue(self.assertSameAsLocal(scenario))

    def test_mkdir_then_touch_keeps_no_old_time(self):
        # The example: `mkdir p; stat -c %Y p; sleep 1; touch p/x;
        # stat -c %Y p` prints two different values, as on ext4.
        p = os.path.join(self.files, "p")
        os.mkdir(p)
        before = os.stat(p).st_mtime_ns
        time.sleep(TICK)
        subprocess.run(["touch", os.path.join(p, "x")], check=True)
        self.assertGreater(os.stat(p).st_mtime_ns, before)

    def test_cp_a_keeps_folder_times(self):
        src = tempfile.mkdtemp(prefix="samplefs-src-")
        self.addCleanup(shutil.rmtree, src, True)
        os.makedirs(os.path.join(src, "t", "u"))
        with open(os.path.join(src, "t", "u", "f"), "w") as f:
            f.write("data")
        for d in ("t/u", "t"):
            os.utime(os.path.join(src, d), ns=(1500000000 * 10**9, 1500000000 * 10**9))
        self.run_tool("cp", "-a", os.path.join(src, "t"), self.files)
        for d in ("t", "t/u"):
            self.assertEqual(os.stat(os.path.join(self.files, d)).st_mtime_ns, 1500000000 * 10**9, d)


class FolderLinks(PosixTestCase):
    """Point 4: a folder has 2 + subfolders links, as on a local filesystem."""

    def test_nlink_follows_subfolders(self):
        def scenario(root):
            out = []
            n = os.path.join(root, "n")
            os.makedirs(os.path.join(n, "a"))
            os.makedirs(os.path.join(n, "b"))
            open(os.path.join(n, "f"), "w").close()
            out.append(os.stat(n).st_nlink)
            os.rmdir(os.path.join(n, "a"))
            out.append(os.stat(n).st_nlink)
            os.mkdir(os.path.join(root, "o"))
            os.rename(os.path.join(n, "b"), os.path.join(root, "o", "b"))
            out.append((os.stat(n).st_nlink, os.stat(os.path.join(root, "o")).st_nlink))
            os.rename(os.path.join(root, "o"), os.path.join(n, "o"))
            out.append((os.stat(n).st_nlink, os.stat(os.path.join(n, "o")).st_nlink,
                        os.stat(os.path.join(n, "o", "b")).st_nlink, os.stat(os.path.join(n, "f")).st_nlink))
            return out
        self.assertEqual(self.assertSameAsLocal(scenario), [4, 3, (2, 3), (3, 3, 2, 1)])

    def test_files_root_counts_its_folders(self):
        os.mkdir(os.path.join(self.files, "a"))
        os.mkdir(os.path.join(self.files, "b"))
        self.assertEqual(os.stat(self.files).st_nlink, 4)

    def test_find_visits_every_folder(self):
        # find(1) trusts nlink to skip leaf folders: wrong counts lose files.
        for root in (self.files, self.local):
            for d in ("a/b/c", "a/d", "e"):
                os.makedirs(os.path.join(root, d))
                open(os.path.join(root, d, "f"), "w").close()
        def scenario(root):
            r = subprocess.run(["find", ".", "-name", "f"], cwd=root, capture_output=True, text=True, check=True)
            return sorted(r.stdout.split())
        self.assertEqual(len(self.assertSameAsLocal(scenario)), 3)



class SetgidFolders(PosixTestCase):
    """Point 7: a folder made in a setgid folder is setgid too."""

    def test_new_folder_inherits_setgid(self):
        def scenario(root):
            g = os.path.join(root, "g")
            os.mkdir(g)
            os.chmod(g, 0o2775)
            os.mkdir(os.path.join(g, "sub"), 0o755)
            open(os.path.join(g, "f"), "w").close()
            return (oct(os.stat(os.path.join(g, "sub")).st_mode & 0o7777),
                    bool(os.stat(os.path.join(g, "f")).st_mode & 0o2000))
        self.assertEqual(self.assertSameAsLocal(scenario), (oct(0o2755), False))


class Atime(PosixTestCase):
    """Point 1: atime is stored: utimensat sets it, a read moves it as
    relatime does (not newer than mtime/ctime, or a day old), all paths of
    a file agree, and it reaches the catalog in batches."""

    def test_touch_a_sets_atime(self):
        # The example: touch -a -d @1900000000 a; stat -c '%X %Y'.
        def scenario(root):
            st = touched(root, "a", "-a", "-d", "@1900000000")
            return (st.st_atime_ns, st.st_atime_ns != st.st_mtime_ns)
        self.assertEqual(self.assertSameAsLocal(scenario), (1900000000 * 10**9, True))

    def test_utime_sets_both_exactly(self):
        def scenario(root):
            a = os.path.join(root, "a")
            with open(a, "w") as f:
                f.write("x")
            os.utime(a, ns=(1234567890123456789, 1000000000000000001))
            st = os.stat(a)
            return (st.st_atime_ns, st.st_mtime_ns)
        self.assertEqual(self.assertSameAsLocal(scenario), (1234567890123456789, 1000000000000000001))

    def read(self, p):
        with open(p, "rb") as f:
            f.read()

    def relatime(self, root):
        p = os.path.join(root, "r")
        with open(p, "w") as f:
            f.write("data")
        out = []
        now = time.time_ns()
        # An atime older than the mtime moves on a read.
        os.utime(p, ns=(now - 2 * 3600 * 10**9, now - 3600 * 10**9))
        before = os.stat(p).st_atime_ns
        # Later than the utime's ctime, even for a coarse clock.
        time.sleep(TICK)
        self.read(p)
        moved = os.stat(p).st_atime_ns
        out.append(moved > before)
        # Just moved: newer than mtime and ctime, so the next read leaves it.
        time.sleep(TICK)
        self.read(p)
        out.append(os.stat(p).st_atime_ns == moved)
        # A write (new mtime) makes it due again.
        time.sleep(TICK)
        with open(p, "a") as f:
            f.write("more")
        self.read(p)
        out.append(os.stat(p).st_atime_ns > moved)
        # An atime in the future is never due.
        os.utime(p, ns=(now + DAY_NS, now - 3600 * 10**9))
        self.read(p)
        out.append(os.stat(p).st_atime_ns == now + DAY_NS)
        return out

    def test_read_moves_atime_as_relatime(self):
        self.assertEqual(self.assertSameAsLocal(self.relatime), [True, True, True, True])

    def test_o_noatime_leaves_it(self):
        self.assertEqual(self.assertSameAsLocal(lambda root: read_old_file(root, os.O_NOATIME)), 10**18)

    def test_all_paths_agree_and_the_catalog_gets_it_in_batches(self):
        p = os.path.join(self.files, "r")
        with open(p, "w") as f:
            f.write("data")
        os.utime(p, ns=(10**18, 10**18 + 1))
        deadline = time.time() + 10
        while self.m.sql("SELECT size FROM entry WHERE name = 'r'")[0][0] != 4 and time.time() < deadline:
            time.sleep(0.05)
        species_path = self.m.path("species", "HeLa", "slides", "S1", "images", "cell01", "files", "r")
        self.read(species_path)
        a = os.stat(p).st_atime_ns
        self.assertGreater(a, 10**18 + 1)
        self.assertEqual(os.stat(species_path).st_atime_ns, a)
        self.assertEqual(os.lstat(p).st_atime_ns, a)
        # A listing with attributes agrees too.
        self.run_tool("ls", "-l", self.files)
        self.assertEqual(os.stat(p).st_atime_ns, a)
        # Written by the next batch (a few seconds), not by the read.
        deadline = time.time() + 15
        while self.m.sql("SELECT atime_ns FROM entry WHERE name = 'r'")[0][0] != a and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.m.sql("SELECT atime_ns FROM entry WHERE name = 'r'")[0][0], a)
        # Another read soon after changes nothing, in memory or in the catalog.
        self.read(p)
        self.assertEqual(os.stat(p).st_atime_ns, a)

    def test_unmount_writes_pending_atimes(self):
        p = os.path.join(self.files, "u")
        with open(p, "w") as f:
            f.write("data")
        os.utime(p, ns=(10**18, 10**18 + 1))
        self.read(p)
        a = os.stat(p).st_atime_ns
        self.m.stop()
        self.assertEqual(self.m.sql("SELECT atime_ns FROM entry WHERE name = 'u'")[0][0], a)
        self.m.start()
        self.assertEqual(os.stat(p).st_atime_ns, a)


class NoatimeMount(PosixTestCase):
    """Point 1: a noatime mount never moves an atime on a read (as a local
    read with O_NOATIME), but utimensat still sets it."""
    mount_options = ("noatime",)

    def test_reads_leave_atime(self):
        self.assertEqual(self.assertSameAsLocal(
            lambda root: read_old_file(root, os.O_NOATIME if root == self.local else 0)), 10**18)
        time.sleep(AtimeWait)
        self.assertEqual(self.m.sql("SELECT atime_ns FROM entry WHERE name = 'n'")[0][0], 10**18)


# Longer than the atime batches' interval (fs/atimes.h, 5 s).
AtimeWait = 6


class SetuidAfterWrite(PosixTestCase):
    """Point 5: a write by another user clears setuid (and setgid with
    group execute), through any descriptor, as on a local filesystem."""
    mount_options = ("allow_other",)

    @needs_root
    def test_write_by_another_user_clears_setuid_setgid(self):
        os.chmod(self.tmp, 0o755)
        os.chmod(self.local, 0o755)
        writes = ["printf x >> s", "printf x > s", "exec 3<> s; printf x >&3", ": > s"]
        def scenario(root):
            out = []
            for mode in (0o4777, 0o2777, 0o2767, 0o6777):
                for w in writes:
                    s = os.path.join(root, "s")
                    with open(s, "w") as f:
                        f.write("data")
                    os.chmod(s, mode)
                    r = as_user(NOBODY, "sh", "-c", w, cwd=root)
                    out.append((oct(mode), w, r.returncode, oct(os.stat(s).st_mode & 0o7777)))
                    os.unlink(s)
            return out
        result = self.assertSameAsLocal(scenario)
        self.assertIn(("0o4777", "printf x >> s", 0, "0o777"), result)

    @needs_root
    def test_root_keeps_them(self):
        def scenario(root):
            s = os.path.join(root, "s")
            with open(s, "w") as f:
                f.write("data")
            os.chmod(s, 0o6777)
            subprocess.run(["sh", "-c", "printf x >> s"], cwd=root, check=True)
            return oct(os.stat(s).st_mode & 0o7777)
        self.assertEqual(self.assertSameAsLocal(scenario), "0o6777")


class TimesBefore1970(PosixTestCase):
    """Point 6: times before 1970 are kept exactly: stat, catalog, dump."""

    def test_touch_minus_one(self):
        def scenario(root):
            st = touched(root, "t", "-m", "-d", "@-1")
            return (st.st_mtime_ns, st.st_mtime)
        self.assertEqual(self.assertSameAsLocal(scenario), (-10**9, -1.0))
        self.assertEqual(self.m.sql("SELECT mtime_ns FROM entry WHERE name = 't'")[0][0], -10**9)

    def test_cp_a_of_a_file_from_1965(self):
        src = tempfile.mkdtemp(prefix="samplefs-src-")
        self.addCleanup(shutil.rmtree, src, True)
        old = os.path.join(src, "old.tif")
        with open(old, "w") as f:
            f.write("1965")
        t1965 = -157766400 * 10**9 + 123456789  # 1965-01-01 + 0.123456789 s
        os.mkdir(os.path.join(src, "d"))
        def scenario(root):
            # Again for each run: cp's read moves the source's atime.
            os.utime(old, ns=(t1965 - 10**9, t1965))
            os.utime(os.path.join(src, "d"), ns=(t1965, t1965 - 1))
            subprocess.run(["cp", "-a", old, os.path.join(src, "d"), root], check=True)
            st, sd = os.stat(os.path.join(root, "old.tif")), os.stat(os.path.join(root, "d"))
            return (st.st_mtime_ns, st.st_atime_ns, sd.st_mtime_ns, sd.st_atime_ns)
        self.assertEqual(self.assertSameAsLocal(scenario), (t1965, t1965 - 10**9, t1965 - 1, t1965))
        deadline = time.time() + 10
        while self.m.sql("SELECT size FROM entry WHERE name = 'old.tif'")[0][0] != 4 and time.time() < deadline:
            time.sleep(0.05)
        deadline = time.time() + 15
        while (self.m.sql("SELECT mtime_ns, atime_ns FROM entry WHERE name = 'old.tif'")[0] != (t1965, t1965 - 10**9)
               and time.time() < deadline):
            time.sleep(0.2)
        self.assertEqual(self.m.sql("SELECT mtime_ns, atime_ns FROM entry WHERE name = 'old.tif'")[0],
                         (t1965, t1965 - 10**9))
        # dump keeps them, load brings them back to a new catalog.
        self.m.stop()
        dump = subprocess.run([SAMPLECTL, "--config", self.m.config, "dump"], capture_output=True,
                              text=True, check=True).stdout
        self.assertIn(f'"mtime_ns": {t1965}', dump)
        self.assertIn(f'"atime_ns": {t1965 - 10**9}', dump)
        self.m.start()
        self.assertEqual(os.stat(os.path.join(self.files, "old.tif")).st_mtime_ns, t1965)


class Owners(PosixTestCase):
    """Point 8: with allow_other, entries record and show their creator;
    sticky folders, chown by root and chgrp by the owner work as locally."""
    mount_options = ("allow_other",)

    def setUp(self):
        super().setUp()
        if os.getuid() != 0:
            self.skipTest("needs root to act as other users")
        os.chmod(self.tmp, 0o755)
        os.chmod(self.local, 0o755)
        os.chmod(self.files, 0o777)
        os.chmod(self.local, 0o777)

    def test_creator_owns_files_and_folders(self):
        def scenario(root):
            for cmd in (["touch", "f"], ["mkdir", "d"], ["ln", "-s", "f", "l"], ["sh", "-c", "echo x > g"]):
                self.assertEqual(as_user(NOBODY, *cmd, cwd=root).returncode, 0, cmd)
            return [(n, os.lstat(os.path.join(root, n)).st_uid, os.lstat(os.path.join(root, n)).st_gid)
                    for n in ("f", "d", "l", "g")]
        self.assertEqual(self.assertSameAsLocal(scenario), [(n, NOBODY, NOBODY) for n in ("f", "d", "l", "g")])
        rows = self.m.sql("SELECT name, uid, gid FROM entry WHERE name IN ('f', 'd', 'l', 'g') ORDER BY name")
        self.assertEqual(rows, [(n, NOBODY, NOBODY) for n in ("d", "f", "g", "l")])

    def test_own_folder_in_a_sticky_folder(self):
        def scenario(root):
            st = os.path.join(root, "shared")
            os.mkdir(st)
            os.chmod(st, 0o1777)
            out = [as_user(NOBODY, "mkdir", "shared/mine", cwd=root).returncode,
                   as_user(NOBODY, "touch", "shared/theirs", cwd=root).returncode]
            # Another user may not remove them; their owner may.
            out.append(as_user(1000, "rmdir", "shared/mine", cwd=root).returncode)
            out.append(as_user(1000, "rm", "-f", "shared/theirs", cwd=root).returncode)
            out.append(as_user(NOBODY, "rmdir", "shared/mine", cwd=root).returncode)
            out.append(as_user(NOBODY, "rm", "shared/theirs", cwd=root).returncode)
            out.append(sorted(os.listdir(st)))
            return out
        self.assertEqual(self.assertSameAsLocal(scenario), [0, 0, 1, 1, 0, 0, []])

    def test_chown_by_root_and_chgrp_by_the_owner(self):
        def scenario(root):
            f = os.path.join(root, "f")
            open(f, "w").close()
            os.chmod(f, 0o6755)
            out = []
            os.chown(f, NOBODY, NOBODY)
            st = os.stat(f)
            # chown of a setuid file clears setuid/setgid (as a local one).
            out.append((st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)))
            # The owner: to a group of theirs yes, to another no; never chown.
            out.append(as_user(NOBODY, "chgrp", "100", "f", groups=[NOBODY, 100], cwd=root).returncode)
            out.append(as_user(NOBODY, "chgrp", "1000", "f", groups=[NOBODY, 100], cwd=root).returncode)
            out.append(as_user(NOBODY, "chown", "1000", "f", cwd=root).returncode)
            out.append(as_user(1000, "chgrp", "1000", "f", groups=[1000], cwd=root).returncode)
            st = os.stat(f)
            out.append((st.st_uid, st.st_gid))
            d = os.path.join(root, "d")
            os.mkdir(d)
            os.chown(d, 1000, 100)
            out.append((os.stat(d).st_uid, os.stat(d).st_gid))
            return out
        self.assertEqual(self.assertSameAsLocal(scenario),
                         [(NOBODY, NOBODY, "0o755"), 0, 1, 1, 1, (NOBODY, 100), (1000, 100)])
        self.assertEqual(self.m.sql("SELECT uid, gid FROM entry WHERE name = 'f'"), [(NOBODY, 100)])

    def test_setgid_folder_gives_its_group(self):
        def scenario(root):
            g = os.path.join(root, "g")
            os.mkdir(g)
            os.chown(g, 0, 100)
            os.chmod(g, 0o2777)
            as_user(NOBODY, "touch", "g/f", cwd=root)
            as_user(NOBODY, "mkdir", "g/sub", cwd=root)
            return [(os.stat(os.path.join(g, n)).st_uid, os.stat(os.path.join(g, n)).st_gid)
                    for n in ("f", "sub")]
        self.assertEqual(self.assertSameAsLocal(scenario), [(NOBODY, 100), (NOBODY, 100)])

    def test_owners_survive_a_remount(self):
        as_user(NOBODY, "touch", "f", cwd=self.files)
        self.m.stop()
        self.m.start()
        self.assertEqual(os.stat(os.path.join(self.files, "f")).st_uid, NOBODY)


if __name__ == "__main__":
    unittest.main()
