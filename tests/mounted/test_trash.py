"""Issue 17 point 2: the desktop trash (freedesktop.org Trash spec) at the
mount's root, kept in the catalog (docs/DECISIONS.md "Trash").

`gio trash` (GLib, what Nautilus uses; Dolphin's KIO does the same steps)
writes .Trash-<uid>/info/NAME.trashinfo and renames the file to
.Trash-<uid>/files/NAME: the record moves to the catalog's trash and no
byte is copied, neither into the mount's store nor into ~/.local/share/Trash.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from mountlib import MountedTestCase, SAMPLECTL, write_random

GIO = shutil.which("gio")


def tree_bytes(root):
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


@unittest.skipIf(GIO is None, "gio (libglib2.0-bin) is not installed")
class TrashTest(MountedTestCase):
    def setUp(self):
        super().setUp()
        self.files = self.make_image()
        self.home = tempfile.mkdtemp(prefix="samplefs-home-")
        self.env = dict(os.environ, HOME=self.home, XDG_DATA_HOME=os.path.join(self.home, ".local", "share"))
        self.trash = self.m.path(f".Trash-{os.getuid()}")

    def tearDown(self):
        shutil.rmtree(self.home, ignore_errors=True)
        super().tearDown()

    def gio(self, *args, check=True):
        return self.run_tool(GIO, *args, check=check, env=self.env)

    def samplectl(self, *args, check=True):
        self.m.settle()
        return self.run_tool(SAMPLECTL, "--config", self.m.config, *args, check=check)

    def store_bytes(self):
        self.m.settle()
        return tree_bytes(os.path.join(self.m.store, "objects"))

    def assertHomeTrashEmpty(self):
        home_trash = os.path.join(self.home, ".local", "share", "Trash")
        for sub in ("files", "info"):
            p = os.path.join(home_trash, sub)
            self.assertEqual(os.listdir(p) if os.path.isdir(p) else [], [], p)

    def test_gio_trash_file_and_restore(self):
        src = os.path.join(self.files, "raw.tif")
        write_random(src, 3 * 1024 * 1024 + 17)
        with open(src, "rb") as f:
            data = f.read()
        before = self.store_bytes()
        self.gio("trash", src)
        self.assertFalse(os.path.exists(src))
        self.assertNotIn("raw.tif", os.listdir(self.files))
        self.assertEqual(os.listdir(os.path.join(self.trash, "files")), ["raw.tif"])
        with open(os.path.join(self.trash, "files", "raw.tif"), "rb") as f:
            self.assertEqual(f.read(), data)
        with open(os.path.join(self.trash, "info", "raw.tif.trashinfo")) as f:
            info = f.read()
        self.assertTrue(info.startswith("[Trash Info]\nPath=slides/S1/images/cell01/files/raw.tif\n"), info)
        self.assertIn("\nDeletionDate=", info)
        self.assertEqual(self.store_bytes(), before)  # not a byte copied
        self.assertHomeTrashEmpty()
        # Out of every view and file_info; in trash_info.
        self.assertEqual(self.m.sql("SELECT count(*) FROM file_info WHERE path = 'raw.tif'"), [(0,)])
        self.assertEqual(self.m.sql("SELECT trash_name, original_path FROM trash_info"),
                         [("raw.tif", "slides/S1/images/cell01/files/raw.tif")])
        listed = self.samplectl("trash", "list").stdout
        self.assertIn("slides/S1/images/cell01/files/raw.tif", listed)
        # The name is free again while it is in the trash.
        write_random(src, 10)
        os.unlink(src)

        # Restore through .Trash-<uid> as a file manager does: move back, drop the info.
        os.rename(os.path.join(self.trash, "files", "raw.tif"), src)
        self.assertFalse(os.path.exists(os.path.join(self.trash, "info", "raw.tif.trashinfo")))
        with open(src, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(os.listdir(os.path.join(self.trash, "files")), [])
        self.assertEqual(self.samplectl("trash", "list").stdout, "")
        self.assertEqual(self.m.sql("SELECT count(*) FROM file_info WHERE path = 'raw.tif'"), [(1,)])

    def test_gio_trash_folder_and_samplectl_restore(self):
        os.makedirs(os.path.join(self.files, "run1", "Pos0"))
        for i in range(3):
            write_random(os.path.join(self.files, "run1", "Pos0", f"img_{i}.tif"), 100000 + i)
        before = self.store_bytes()
        self.gio("trash", os.path.join(self.files, "run1"))
        self.assertFalse(os.path.exists(os.path.join(self.files, "run1")))
        self.assertEqual(sorted(os.listdir(os.path.join(self.trash, "files", "run1", "Pos0"))),
                         ["img_0.tif", "img_1.tif", "img_2.tif"])
        self.assertEqual(os.listdir(os.path.join(self.trash, "info")), ["run1.trashinfo"])
        self.assertEqual(self.store_bytes(), before)
        self.assertHomeTrashEmpty()
        self.assertEqual(self.m.sql("SELECT count(*) FROM file_info"), [(0,)])

        # Something else takes the name: restore says why not.
        os.mkdir(os.path.join(self.files, "run1"))
        r = self.samplectl("trash", "restore", "run1", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("exists again", r.stderr)
        os.rmdir(os.path.join(self.files, "run1"))
        self.samplectl("trash", "restore", "run1")
        self.assertEqual(sorted(os.listdir(os.path.join(self.files, "run1", "Pos0"))),
                         ["img_0.tif", "img_1.tif", "img_2.tif"])
        self.assertEqual(os.listdir(os.path.join(self.trash, "files")), [])
        self.assertEqual(self.m.sql("SELECT count(*) FROM file_info"), [(3,)])

    def test_empty_then_gc_frees(self):
        a = os.path.join(self.files, "a.bin")
        write_random(a, 2 * 1024 * 1024)
        os.makedirs(os.path.join(self.files, "d"))
        write_random(os.path.join(self.files, "d", "b.bin"), 500000)
        self.gio("trash", a, os.path.join(self.files, "d"))
        before = self.store_bytes()
        # gc keeps what is in the trash.
        self.samplectl("gc", "--grace", "0", "--ignore-live-mounts")
        self.assertEqual(self.store_bytes(), before)
        # --older-than keeps what is newer.
        self.samplectl("trash", "empty", "--older-than", "1")
        self.assertEqual(sorted(os.listdir(os.path.join(self.trash, "files"))), ["a.bin", "d"])
        # Emptying as a file manager does: rm -r of files/* and info/*.
        shutil.rmtree(os.path.join(self.trash, "files", "d"))
        for n in os.listdir(os.path.join(self.trash, "info")):
            os.unlink(os.path.join(self.trash, "info", n))
        self.assertEqual(os.listdir(os.path.join(self.trash, "files")), [])
        self.assertEqual(self.store_bytes(), before)  # until gc
        self.samplectl("gc", "--grace", "0", "--ignore-live-mounts")
        self.assertLess(self.store_bytes(), before - 2 * 1024 * 1024)

    def test_samplectl_empty(self):
        a = os.path.join(self.files, "a.bin")
        write_random(a, 1000)
        self.gio("trash", a)
        self.samplectl("trash", "empty")
        self.assertEqual(os.listdir(os.path.join(self.trash, "files")), [])
        self.assertEqual(os.listdir(os.path.join(self.trash, "info")), [])
        self.assertEqual(self.m.sql("SELECT count(*) FROM entry WHERE type = 'file'"), [(0,)])

    def test_rm_still_deletes(self):
        a = os.path.join(self.files, "a.bin")
        write_random(a, 1000)
        os.unlink(a)
        self.assertEqual(self.m.sql("SELECT count(*) FROM trash"), [(0,)])
        self.assertEqual(self.m.sql("SELECT count(*) FROM entry WHERE type = 'file'"), [(0,)])

    def gvfs(self, *args):
        """gio with trash:/// (GVfs's trash backend) in a D-Bus session of its own."""
        return subprocess.run(["dbus-run-session", "--", GIO, *args], capture_output=True, text=True,
                              env=self.env)

    def test_gio_trash_list_restore_empty(self):
        """--list/--restore/--empty go through trash:///, GVfs's trash backend."""
        a, b = os.path.join(self.files, "a.bin"), os.path.join(self.files, "b.bin")
        write_random(a, 300000, seed=1)
        write_random(b, 200000, seed=2)
        with open(a, "rb") as f:
            data = f.read()
        self.gio("trash", a, b)
        r = self.gvfs("trash", "--list")
        if r.returncode != 0 or "not supported" in r.stderr.lower():
            self.skipTest("gio trash --list needs GVfs (gvfs-daemons) and a D-Bus session: " + r.stderr.strip())
        listed = dict(line.split("\t", 1) for line in r.stdout.splitlines() if "\t" in line)
        self.assertEqual(sorted(listed.values()), [a, b])
        before = self.store_bytes()
        uri_a = next(u for u, p in listed.items() if p == a)
        r = self.gvfs("trash", "--restore", uri_a)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(a, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(os.listdir(os.path.join(self.trash, "files")), ["b.bin"])
        r = self.gvfs("trash", "--empty")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.listdir(os.path.join(self.trash, "files")), [])
        self.assertEqual(os.listdir(os.path.join(self.trash, "info")), [])
        self.assertEqual(self.samplectl("trash", "list").stdout, "")
        self.assertEqual(self.store_bytes(), before)  # until gc
        self.samplectl("gc", "--grace", "0", "--ignore-live-mounts")
        self.assertLess(self.store_bytes(), before)
        self.assertHomeTrashEmpty()

if __name__ == "__main__":
    unittest.main()
