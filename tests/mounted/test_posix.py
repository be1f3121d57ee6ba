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

from mountlib import MountedTestCase

# Long enough for any clock (the mount records nanoseconds, a local
# filesystem's coarse clock ticks every few milliseconds).
TICK = 0.05


def ns(st, what):
    return getattr(st, f"st_{what}_ns")


class PosixTestCase(MountedTestCase):
    def setUp(self):
        super().setUp()
        self.files = self.make_image()
        self.local = tempfile.mkdtemp(prefix="samplefs-local-")
        self.addCleanup(shutil.rmtree, self.local, True)

    def both(self, scenario):
        """Runs scenario(root) in the mount's files/ and in a local folder;
        returns (mount's answer, local answer)."""
        return scenario(self.files), scenario(self.local)

    def assertSameAsLocal(self, scenario):
        mount, local = self.both(scenario)
        self.assertEqual(mount, local, "the mount answers differently from a local folder")
        return mount


class Ctime(PosixTestCase):
    """Point 2: ctime is its own time: chmod, chown, rename, utimens and
    extended attributes move it to now; an old mtime does not take it back."""

    def change_moves_ctime(self, root, change):
        p = os.path.join(root, "c")
        with open(p, "w") as f:
            f.write("x")
        before = os.stat(p)
        time.sleep(TICK)
        p = change(p) or p
        after = os.stat(p)
        return ns(after, "ctime") > ns(before, "ctime")

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
        before = os.stat(d)
        time.sleep(TICK)
        change(d)
        after = os.stat(d)
        return (ns(after, "mtime") > ns(before, "mtime"), ns(after, "ctime") > ns(before, "ctime"))

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
            before = os.stat(root)
            time.sleep(TICK)
            open(os.path.join(root, "top"), "w").close()
            return ns(os.stat(root), "mtime") > ns(before, "mtime")
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

if __name__ == "__main__":
    unittest.main()
