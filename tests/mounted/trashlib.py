"""What the trash tests share (test_trash.py: gio and GVfs; test_desktop.py:
KDE's Dolphin and kioclient5): a mount with one image, a throwaway HOME
whose XDG data folder holds the home trash, and the checks that a move to a
trash copied no byte (docs/DECISIONS.md "Trash")."""
import os
import shutil
import tempfile

from mountlib import MountedTestCase, SAMPLECTL


def tree_bytes(root):
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


class TrashTestCase(MountedTestCase):
    """self.files: files/ of slides/S1/images/cell01; self.trash: the
    mount's .Trash-<uid>; self.desk: a throwaway folder holding self.home;
    self.env: the environment of a desktop tool with that HOME."""

    def setUp(self):
        super().setUp()
        self.files = self.make_image()
        self.trash = self.m.path(f".Trash-{os.getuid()}")
        self.desk = tempfile.mkdtemp(prefix="samplefs-desktop-")
        self.home = os.path.join(self.desk, "home")
        os.makedirs(self.home)
        self.env = dict(os.environ, HOME=self.home, XDG_DATA_HOME=os.path.join(self.home, ".local", "share"))

    def tearDown(self):
        shutil.rmtree(self.desk, ignore_errors=True)
        super().tearDown()

    def samplectl(self, *args, check=True):
        self.m.settle()
        return self.run_tool(SAMPLECTL, "--config", self.m.config, *args, check=check)

    def store_bytes(self):
        self.m.settle()
        return tree_bytes(os.path.join(self.m.store, "objects"))

    def home_trash(self):
        """{"files": [...], "info": [...]}: what the home trash holds."""
        out = {}
        for sub in ("files", "info"):
            p = os.path.join(self.home, ".local", "share", "Trash", sub)
            out[sub] = sorted(os.listdir(p)) if os.path.isdir(p) else []
        return out

    def assertHomeTrashEmpty(self):
        self.assertEqual(self.home_trash(), {"files": [], "info": []})
