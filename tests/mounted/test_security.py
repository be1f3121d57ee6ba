"""Security and bad-input tests through a real mount (issue 6, points 4-5).

- a mount without allow_other refuses another user; with allow_other the
  kernel enforces permissions (default_permissions);
- no name, hash or query makes the daemon touch a path outside the store;
- a corpus of nasty names gets the expected errno and is stored literally;
- catalog and store are created 0600/0700.
"""
import errno
import os
import stat
import subprocess
import unittest

from mountlib import MountedTestCase, Mount, fuse_available

NOBODY = 65534


def as_nobody(*cmd):
    """Runs cmd as uid/gid 65534 (nobody) and returns the CompletedProcess."""
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           *cmd], capture_output=True, text=True)


class PrivacyTest(MountedTestCase):
    def test_other_user_is_refused_without_allow_other(self):
        if os.getuid() != 0:
            self.skipTest("needs root to switch to another user")
        files = self.make_image()
        with open(os.path.join(files, "a.txt"), "w") as f:
            f.write("secret")
        r = as_nobody("ls", self.m.mnt)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Permission denied", r.stderr)
        r = as_nobody("cat", os.path.join(files, "a.txt"))
        self.assertNotEqual(r.returncode, 0)


class AllowOtherTest(MountedTestCase):
    mount_options = ("allow_other",)

    def test_default_permissions_are_enforced_by_the_kernel(self):
        if os.getuid() != 0:
            self.skipTest("needs root to switch to another user")
        files = self.make_image()
        private = os.path.join(files, "private.txt")
        public = os.path.join(files, "public.txt")
        for p, mode in ((private, 0o600), (public, 0o644)):
            with open(p, "w") as f:
                f.write("data")
            os.chmod(p, mode)
        # The mount point's parents must be traversable for nobody.
        os.chmod(self.tmp, 0o755)
        self.assertEqual(as_nobody("cat", public).stdout, "data")
        r = as_nobody("cat", private)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Permission denied", r.stderr)
        # Directories are the mounting user's and 0755: nobody cannot create.
        r = as_nobody("mkdir", self.m.path("species", "Mouse"))
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(self.m.sql("SELECT 1 FROM species WHERE name = 'Mouse'"))
        r = as_nobody("setfattr", "-n", "user.xdg.tags", "-v", "x", public)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(self.m.sql("SELECT 1 FROM tag"))


class OutsideTheStoreTest(MountedTestCase):
    def test_a_hash_that_is_a_path_is_never_opened(self):
        files = self.make_image()
        with open(os.path.join(files, "a.bin"), "wb") as f:
            f.write(b"x" * 100)
        # Plant a record whose hash is a path (32 characters, so the schema's
        # length check passes) and a decoy where it would lead.
        evil = "../../../../../../../etc/passwd."[:32]
        self.assertEqual(len(evil), 32)
        self.m.stop()
        import sqlite3
        con = sqlite3.connect(self.m.catalog)
        con.execute("UPDATE entry SET hash = ? WHERE name = 'a.bin'", (evil,))
        con.commit()
        con.close()
        self.m.start()
        with self.assertRaises(OSError) as cm:
            with open(os.path.join(files, "a.bin"), "rb") as f:
                f.read()
        self.assertEqual(cm.exception.errno, errno.EIO)
        self.assertIn("a.bin", self.m.errors())

    def test_queries_and_names_are_data(self):
        self.make_image()
        attack = "x'); DROP TABLE slide;--"
        os.mkdir(self.m.path("species", attack))
        self.assertIn(attack, os.listdir(self.m.path("species")))
        q = self.m.path("query", f"species={attack}", "slides")
        self.assertEqual(os.listdir(q), [])
        # Keys are identifiers: SQL in a key is a malformed query, refused.
        self.assertErrno(errno.EINVAL, os.listdir, self.m.path("query", f"{attack}=1"))
        self.assertIn("may only contain", self.m.errors())
        self.assertTrue(self.m.sql("SELECT count(*) FROM slide")[0][0] >= 1)
        for name in ("..", "."):
            # The kernel resolves these itself; they never reach the catalog.
            self.assertTrue(os.path.isdir(self.m.path("species", name)))


class NastyNamesTest(MountedTestCase):
    """Every name is tried as a file inside files/ and as a species key."""

    CORPUS = [
        # (name as bytes, expected errno for creation, 0 = accepted)
        (b"x'); DROP TABLE slide;--", 0),
        (b"Robert'); DROP TABLE entry;--.tif", 0),
        (b"quote\"double", 0),
        (b"single'quote", 0),
        (b"semi;colon", 0),
        (b"with space", 0),
        (b" leading-space", 0),
        (b"trailing-space ", 0),
        (b"-starts-with-dash", 0),
        (b"*glob?[x]", 0),
        (b"back\\slash", 0),
        (b"percent%s%n", 0),
        (b"tab\there", 0),
        (b"newline\nhere", 0),
        (b"ctrl\x01\x1f", 0),
        ("caf\u00e9".encode(), 0),              # NFC
        ("cafe\u0301".encode(), 0),             # NFD: a different name
        ("\u65e5\u672c\u8a9e".encode(), 0),
        ("\U0001F52C microscope".encode(), 0),
        (b"a" * 255, 0),
        ("\u00e9".encode() * 127 + b"a", 0),    # 255 bytes of UTF-8
        (b"a" * 256, errno.ENAMETOOLONG),
        (b"\xff\xfe", errno.EINVAL),            # not UTF-8
        (b"\xc3\x28", errno.EINVAL),            # broken sequence
        (b"\xed\xa0\x80", errno.EINVAL),        # UTF-16 surrogate
        (b"\xc0\xaf", errno.EINVAL),            # overlong '/'
        (b"...", 0),
        (b".hidden", 0),
    ]

    def test_corpus_in_files(self):
        files = self.make_image().encode()
        tried = 0
        for name, want in self.CORPUS:
            with self.subTest(name=name):
                path = files + b"/" + name
                tried += 1
                if want:
                    self.assertErrno(want, os.open, path, os.O_CREAT | os.O_WRONLY, 0o644)
                    self.assertErrno(want, os.mkdir, path)
                    continue
                with open(path, "wb") as f:
                    f.write(name)
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), name)
                self.assertIn(name, os.listdir(files))
        rows = {r[0] for r in self.m.sql("SELECT name FROM entry WHERE type = 'file'")}
        accepted = {n.decode() for n, w in self.CORPUS if not w}
        self.assertEqual(rows, accepted)
        # NFC and NFD spellings are two records, as on ext4.
        self.assertIn("caf\u00e9", rows)
        self.assertIn("cafe\u0301", rows)
        self.assertGreater(tried, 25)
        # Every refusal left a reason.
        errors = self.m.errors()
        self.assertIn("255", errors)
        self.assertIn("UTF-8", errors)
        # The corpus survives a remount byte for byte.
        self.m.restart()
        for name, want in self.CORPUS:
            if not want:
                with open(files + b"/" + name, "rb") as f:
                    self.assertEqual(f.read(), name)

    def test_corpus_as_record_keys(self):
        for name, want in self.CORPUS:
            with self.subTest(name=name):
                path = self.m.path("species").encode() + b"/" + name
                if want:
                    self.assertErrno(want, os.mkdir, path)
                else:
                    os.mkdir(path)
                    self.assertTrue(os.path.isdir(path))
        names = {r[0] for r in self.m.sql("SELECT name FROM species")}
        self.assertEqual(names, {n.decode() for n, w in self.CORPUS if not w})

    def test_xattr_values(self):
        files = self.make_image()
        p = os.path.join(files, "a.tif")
        open(p, "w").close()
        values = [b"x'); DROP TABLE annotation;--", b"", b"a" * 65536, "caf\u00e9".encode(),
                  b"line1\nline2"]
        for i, v in enumerate(values):
            os.setxattr(p, f"user.k{i}", v)
            self.assertEqual(os.getxattr(p, f"user.k{i}"), v)
        self.assertErrno(errno.EINVAL, os.setxattr, p, "user.bad", b"\xff\xfe")
        # The kernel caps values at 64 KiB (XATTR_SIZE_MAX) with E2BIG.
        self.assertErrno(errno.E2BIG, os.setxattr, p, "user.big", b"a" * 65537)
        self.assertErrno(errno.EPERM, os.setxattr, p, "user.samplefs.hash", b"xxh3-128:" + b"0" * 32)


class ModesTest(unittest.TestCase):
    def test_catalog_and_store_are_private(self):
        if not fuse_available():
            self.skipTest("/dev/fuse or fusermount3 is missing: mounted tests need FUSE")
        import tempfile
        import shutil
        tmp = tempfile.mkdtemp(prefix="samplefs-test-")
        old = os.umask(0o022)
        try:
            m = Mount(os.path.join(tmp, "deep", "er"))
            m.start()
            try:
                self.assertEqual(stat.S_IMODE(os.stat(m.catalog).st_mode), 0o600)
                for d in (m.store, os.path.join(m.store, "objects"), os.path.join(m.store, "staging")):
                    self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700, d)
            finally:
                m.stop()
        finally:
            os.umask(old)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
