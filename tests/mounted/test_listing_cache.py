"""Issue 3, listing speed: the kernel keeps the listings of folders inside
files/ (FOPEN_CACHE_DIR at opendir) and caches names and attributes for a
minute, so every change must reach every path that shows it.

The same folder is three inodes here: /slides/S1/images/cell01/files/d,
/species/HeLa/slides/S1/images/cell01/files/d and /dyes/A647/slides/S1/….
Each test lists the folder (twice, so the second listing comes from the
kernel's cache) through the paths that did not make the change, changes it
through another path, and checks that the cached paths show the change at
once: the very next listing (the daemon drops the other paths' listings
before it answers the change). Attributes of the other paths (a size after
close) are pushed by the daemon's invalidation thread and are polled for
within DEADLINE, as are changes made by another process (an SQL
connection, samplectl), which show after the catalog poll (250 ms); the
delays are printed.
"""
import ctypes
import json
import os
import sqlite3
import subprocess
import time
import unittest

from mountlib import SAMPLECTL, MountedTestCase

DEADLINE = 1.0


class ListingCache(MountedTestCase):
    def setUp(self):
        super().setUp()
        m = self.m
        os.mkdir(m.path("species", "HeLa"))
        os.mkdir(m.path("species", "HeLa", "slides", "S1"))
        os.mkdir(m.path("dyes", "A647"))
        os.mkdir(m.path("slides", "S1", "images", "cell01"))
        # A labelling makes the slide reachable under /dyes/A647 too.
        with open(m.path("slides", "S1", "slide.json")) as f:
            d = json.load(f)
        d["labellings"] = [{"structure": "tubulin", "isotype": "", "antibody": "", "dye": "A647"}]
        with open(m.path("slides", "S1", "slide.json"), "w") as f:
            json.dump(d, f)
        self.via = {
            "slides": m.path("slides", "S1", "images", "cell01", "files"),
            "species": m.path("species", "HeLa", "slides", "S1", "images", "cell01", "files"),
            "dyes": m.path("dyes", "A647", "slides", "S1", "images", "cell01", "files"),
        }
        for p in self.via.values():
            self.assertTrue(os.path.isdir(p), p)
        os.mkdir(os.path.join(self.via["slides"], "d"))
        os.mkdir(os.path.join(self.via["slides"], "e"))
        for n in ("a", "b"):
            with open(os.path.join(self.via["slides"], "d", n), "w") as f:
                f.write(n)

    def ls(self, path):
        return sorted(os.listdir(path))

    def warm(self, *views, sub="d"):
        """Lists (and stats) the folder through `views` until cached."""
        for v in views:
            p = os.path.join(self.via[v], sub)
            for _ in range(2):
                for n in os.listdir(p):
                    os.lstat(os.path.join(p, n))

    def poll(self, what, check, deadline=DEADLINE):
        t0 = time.monotonic()
        while True:
            if check():
                print(f"\n  [{what}] seen after {(time.monotonic() - t0) * 1000:.1f} ms", end="",
                      flush=True)
                return
            if time.monotonic() - t0 > deadline:
                self.fail(f"{what}: not seen within {deadline} s")
            time.sleep(0.002)

    def expect(self, what, sub, names, views=("species", "dyes"), deadline=0):
        """The listing of `sub` through `views` is `names`: at the first
        look (deadline 0), or within `deadline` seconds."""
        for v in views:
            p = os.path.join(self.via[v], sub)
            self.poll(f"{what} via /{v}", lambda: self.ls(p) == sorted(names), deadline)

    # -- changes through the mount -----------------------------------------
    def test_create_shows_in_the_other_paths(self):
        self.warm("species", "dyes")
        with open(os.path.join(self.via["slides"], "d", "new.csv"), "w") as f:
            f.write("x,y\n1,2\n")
        self.expect("create", "d", ["a", "b", "new.csv"])
        # Its size too (published at close), through a path never stat'ed.
        p = os.path.join(self.via["species"], "d", "new.csv")
        self.poll("size via /species", lambda: os.stat(p).st_size == 8)

    def test_mkdir_symlink_and_mknod(self):
        self.warm("species", "dyes")
        os.mkdir(os.path.join(self.via["slides"], "d", "sub"))
        self.expect("mkdir", "d", ["a", "b", "sub"])
        os.symlink("a", os.path.join(self.via["species"], "d", "link"))
        self.expect("symlink", "d", ["a", "b", "link", "sub"], views=("slides", "dyes"))
        os.mknod(os.path.join(self.via["dyes"], "d", "empty"))
        self.expect("mknod", "d", ["a", "b", "empty", "link", "sub"], views=("slides", "species"))

    def test_unlink_and_rmdir(self):
        os.mkdir(os.path.join(self.via["slides"], "d", "sub"))
        self.warm("species", "dyes")
        os.unlink(os.path.join(self.via["slides"], "d", "a"))
        self.expect("unlink", "d", ["b", "sub"])
        self.assertFalse(os.path.exists(os.path.join(self.via["species"], "d", "a")))
        os.rmdir(os.path.join(self.via["slides"], "d", "sub"))
        self.expect("rmdir", "d", ["b"])
        self.assertFalse(os.path.exists(os.path.join(self.via["dyes"], "d", "sub")))

    def test_rename_within_and_between_folders(self):
        self.warm("species", "dyes", sub="d")
        self.warm("species", "dyes", sub="e")
        os.rename(os.path.join(self.via["slides"], "d", "a"), os.path.join(self.via["slides"], "d", "a2"))
        self.expect("rename in d", "d", ["a2", "b"])
        os.rename(os.path.join(self.via["slides"], "d", "b"), os.path.join(self.via["slides"], "e", "b"))
        self.expect("rename d -> e: source", "d", ["a2"])
        self.expect("rename d -> e: target", "e", ["b"])
        with open(os.path.join(self.via["dyes"], "e", "b")) as f:
            self.assertEqual(f.read(), "b")
        # A folder moved into another one, and the files/ root's own listing.
        self.warm("species", "dyes", sub="")
        os.rename(os.path.join(self.via["slides"], "e"), os.path.join(self.via["slides"], "d", "e"))
        self.expect("rename of a folder: files/", "", ["d"])
        self.expect("rename of a folder: d", "d", ["a2", "e"])

    def test_names_looked_up_as_absent_follow_changes(self):
        # Inside files/ the kernel remembers for a second that a name does
        # not exist (rsync looks its target up twice). Each path below has
        # just been told "absent"; a change through another path must be
        # found by name through them at once, like the listing.
        def absent_everywhere(sub, name):
            for v in self.via:
                self.assertFalse(os.path.lexists(os.path.join(self.via[v], sub, name)), (v, name))

        def present(views, sub, name):
            for v in views:
                self.assertTrue(os.path.lexists(os.path.join(self.via[v], sub, name)), (v, name))

        absent_everywhere("d", "new.csv")
        with open(os.path.join(self.via["slides"], "d", "new.csv"), "w") as f:
            f.write("x")
        present(("species", "dyes"), "d", "new.csv")
        absent_everywhere("d", "sub")
        os.mkdir(os.path.join(self.via["species"], "d", "sub"))
        present(("slides", "dyes"), "d", "sub")
        absent_everywhere("d", "link")
        os.symlink("a", os.path.join(self.via["dyes"], "d", "link"))
        present(("slides", "species"), "d", "link")
        absent_everywhere("d", "node")
        os.mknod(os.path.join(self.via["slides"], "d", "node"))
        present(("species", "dyes"), "d", "node")
        # Renames: within a folder, then into another one.
        absent_everywhere("d", "a2")
        os.rename(os.path.join(self.via["slides"], "d", "a"), os.path.join(self.via["slides"], "d", "a2"))
        present(("species", "dyes"), "d", "a2")
        absent_everywhere("d", "a")
        absent_everywhere("e", "b2")
        os.rename(os.path.join(self.via["species"], "d", "b"), os.path.join(self.via["species"], "e", "b2"))
        present(("slides", "dyes"), "e", "b2")
        absent_everywhere("d", "b")
        with open(os.path.join(self.via["dyes"], "e", "b2")) as f:
            self.assertEqual(f.read(), "b")

    def test_copy_file_range_and_overwrite(self):
        src = os.path.join(self.via["slides"], "d", "a")
        dst = os.path.join(self.via["slides"], "d", "copy")
        self.warm("species", "dyes")
        # cp uses copy_file_range (the catalog records the same object).
        subprocess.run(["cp", "--reflink=auto", src, dst], check=True)
        self.expect("cp", "d", ["a", "b", "copy"])
        with open(dst, "w") as f:
            f.write("longer content")
        p = os.path.join(self.via["species"], "d", "copy")
        self.poll("new size via /species", lambda: os.stat(p).st_size == 14)
        with open(p) as f:
            self.assertEqual(f.read(), "longer content")
        os.truncate(dst, 3)
        self.poll("truncate via /dyes",
                  lambda: os.stat(os.path.join(self.via["dyes"], "d", "copy")).st_size == 3)
        os.chmod(dst, 0o600)
        self.poll("chmod via /species", lambda: os.stat(p).st_mode & 0o777 == 0o600)

    def test_copy_file_range_syscall(self):
        """copy_file_range(2) into an empty new file (recorded as the same object)."""
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "copy_file_range"):
            self.skipTest("libc has no copy_file_range")
        src = os.path.join(self.via["slides"], "d", "a")
        dst = os.path.join(self.via["slides"], "d", "cfr")
        self.warm("species", "dyes")
        fi = os.open(src, os.O_RDONLY)
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            p = os.path.join(self.via["species"], "d", "cfr")
            self.poll("created via /species", lambda: os.path.exists(p))
            self.assertEqual(os.stat(p).st_size, 0)
            n = os.copy_file_range(fi, fo, 1)
            self.assertEqual(n, 1)
        finally:
            os.close(fi)
            os.close(fo)
        self.poll("copy_file_range size via /species", lambda: os.stat(p).st_size == 1)
        with open(p) as f:
            self.assertEqual(f.read(), "a")

    def test_cached_listing_survives_unrelated_changes(self):
        """A change elsewhere (another folder, a tag) keeps the listing right."""
        self.warm("species", "dyes")
        with open(os.path.join(self.via["slides"], "e", "other"), "w") as f:
            f.write("o")
        os.setxattr(os.path.join(self.via["slides"], "d", "a"), "user.xdg.tags", b"good")
        for v in self.via:
            self.assertEqual(self.ls(os.path.join(self.via[v], "d")), ["a", "b"])
            self.assertEqual(self.ls(os.path.join(self.via[v], "e")), ["other"])

    # -- generated directories (views, records, tags, queries) -------------
    # The kernel opens directories itself (no OPENDIR) and then keeps every
    # directory's listing, generated ones too; a write to the catalog
    # through the mount drops those before it replies.

    def status(self):
        with open(self.m.path(".samplefs", "status.json")) as f:
            return json.load(f)["mount"]

    def test_a_warm_listing_asks_the_daemon_nothing(self):
        st = self.status()
        if not st["kernel_opens_directories"]:
            self.skipTest("this kernel sends OPENDIR for every directory")
        # The set-up's files committed first: a commit is a write, which
        # drops the listings of generated directories (the test below).
        self.m.settle()
        dirs = [os.path.join(self.via["species"], "d"), self.m.path("species"),
                self.m.path("species", "HeLa", "slides"), self.m.path("dyes", "A647", "slides", "S1", "images")]
        for p in dirs:
            os.listdir(p)
        before = self.status()
        for _ in range(20):
            for p in dirs:
                os.listdir(p)
        after = self.status()
        self.assertEqual(after["listings_answered"], before["listings_answered"],
                         "80 listings of cached directories reached the daemon")
        self.assertLessEqual(after["opendirs"], 1)

    def test_views_follow_changes_through_other_paths_at_once(self):
        m = self.m
        views = {
            "images via /species": m.path("species", "HeLa", "slides", "S1", "images"),
            "images via /dyes": m.path("dyes", "A647", "slides", "S1", "images"),
            "slides of HeLa": m.path("species", "HeLa", "slides"),
            "tags": m.path("tags"),
            "query tag=hot": m.path("query", "tag=hot", "slides"),
        }
        for _ in range(2):
            for p in views.values():
                os.listdir(p)
        self.assertEqual(self.ls(views["query tag=hot"]), [])
        # An image made through /slides shows through the other paths.
        os.mkdir(m.path("slides", "S1", "images", "cell02"))
        self.assertEqual(self.ls(views["images via /species"]), ["cell01", "cell02"])
        self.assertEqual(self.ls(views["images via /dyes"]), ["cell01", "cell02"])
        # A renamed one too.
        os.rename(m.path("slides", "S1", "images", "cell02"), m.path("slides", "S1", "images", "cell03"))
        self.assertEqual(self.ls(views["images via /dyes"]), ["cell01", "cell03"])
        # A tag set with setxattr shows in tags/ and in a query at once.
        subprocess.run(["setfattr", "-n", "user.xdg.tags", "-v", "hot", m.path("slides", "S1")], check=True)
        self.assertEqual(self.ls(views["tags"]), ["hot"])
        self.assertEqual(self.ls(views["query tag=hot"]), ["S1"])
        # A slide made through /slides shows in its species' slides.
        os.mkdir(m.path("species", "HeLa", "slides", "S2"))
        os.rmdir(m.path("slides", "S2"))
        self.assertEqual(self.ls(views["slides of HeLa"]), ["S1"])
        # Untagged: gone from the query again.
        subprocess.run(["setfattr", "-x", "user.xdg.tags", m.path("slides", "S1")], check=True)
        self.assertEqual(self.ls(views["query tag=hot"]), [])

    def test_views_follow_changes_by_another_process(self):
        species = self.m.path("species")
        for _ in range(2):
            os.listdir(species)
        self.assertEqual(self.ls(species), ["HeLa"])
        self.run_tool(SAMPLECTL, "--config", self.m.config, "tag", "add", "S1", "cold")
        con = sqlite3.connect(self.m.catalog, timeout=10)
        with con:
            con.execute("INSERT INTO species(name, species, strain, notes) VALUES ('Mouse', '', '', '')")
        con.close()
        self.poll("species made by sqlite3", lambda: self.ls(species) == ["HeLa", "Mouse"])
        self.poll("tag made by samplectl", lambda: self.ls(self.m.path("tags")) == ["cold"])

    # -- changes by other processes ----------------------------------------
    def test_sql_changes_show_after_the_poll(self):
        self.warm("slides", "species", "dyes")
        # The new name was looked up first: the kernel remembers it as
        # absent for a second (negative_timeout), which another process's
        # change cannot cut short.
        for v in self.via:
            self.assertFalse(os.path.exists(os.path.join(self.via[v], "d", "renamed")))
        con = sqlite3.connect(self.m.catalog, timeout=10)
        with con:
            con.execute("UPDATE entry SET name = 'renamed' WHERE name = 'a' AND type = 'file'")
        self.expect("sqlite3 rename", "d", ["b", "renamed"], views=("slides", "species", "dyes"),
                    deadline=DEADLINE)
        for v in self.via:
            self.poll(f"new name found via /{v}",
                      lambda: os.path.exists(os.path.join(self.via[v], "d", "renamed")), DEADLINE + 1.0)
        # The old name no longer resolves (names are cached for a minute).
        for v in self.via:
            self.poll(f"old name gone via /{v}",
                      lambda: not os.path.exists(os.path.join(self.via[v], "d", "a")))
        with con:
            con.execute("DELETE FROM entry WHERE name = 'b' AND type = 'file'")
        self.expect("sqlite3 delete", "d", ["renamed"], views=("slides", "species", "dyes"),
                    deadline=DEADLINE)
        con.close()

    def test_samplectl_tag_shows_in_getfattr(self):
        f = os.path.join(self.via["slides"], "d", "a")
        g = os.path.join(self.via["species"], "d", "a")
        self.assertEqual(os.listxattr(g), [])
        self.run_tool(SAMPLECTL, "--config", self.m.config, "tag", "add", "S1/cell01/d/a", "hot")
        self.poll("tag via /species", lambda: os.listxattr(g) == ["user.xdg.tags"])
        self.assertEqual(os.getxattr(f, "user.xdg.tags"), b"hot")


if __name__ == "__main__":
    unittest.main()
