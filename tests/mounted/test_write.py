"""Issue 4, "Copying data in": acceptance tests of writing into a mount.

Every scenario drives the real daemon with the tool a lab would use (cp,
rsync, tar, mv, shutil, the shell, dd, truncate, an editor's save pattern)
and checks three things: the bytes read back through the mount equal the
source byte for byte; the catalog's record says the same (size, hash =
`xxhsum -H2` of the source, mode, mtime where the tool preserves it) and
its object holds those bytes; and after a remount the records are still
there (SPEC sections 3 and 4, "Creating and changing records with file
tools").
"""
import ctypes
import errno
import json
import mmap
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

from mountlib import SAMPLECTL, MountedTestCase, write_random

# A fixed, odd modification time (ns precision) for tools that preserve times.
OLD_MTIME_NS = 1_600_000_000_123_456_789


def xxh128(path):
    """XXH3-128 hex of a file, computed by xxhsum -H2 (the reference tool)."""
    with open(path, "rb") as f:
        out = subprocess.run(["xxhsum", "-H2", "-"], stdin=f, capture_output=True,
                             text=True, check=True).stdout
    return out.split()[0]


def same_bytes(a, b):
    """Whether two files hold exactly the same bytes."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def make_tree(root, files=(), dirs=(), links=()):
    """Creates files {relpath: bytes}, dirs [relpath], links {relpath: target}."""
    os.makedirs(root, exist_ok=True)
    for d in dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for rel, data in dict(files).items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    for rel, target in dict(links).items():
        os.symlink(target, os.path.join(root, rel))


def age_tree(root, mtime_ns=OLD_MTIME_NS + 3333):
    """Gives every folder and symlink under root (and root) a fixed old mtime."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                os.utime(p, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        os.utime(dirpath, ns=(mtime_ns, mtime_ns))


class WriteTestCase(MountedTestCase):
    """Helpers shared by the scenarios: records by path, full verification."""

    def setUp(self):
        super().setUp()
        self.src = tempfile.mkdtemp(prefix="samplefs-src-")
        self.addCleanup(shutil.rmtree, self.src, True)

    # -- catalog lookups ------------------------------------------------
    def image_id(self, slide="S1", image="cell01"):
        rows = self.m.sql("SELECT i.id FROM image i JOIN slide s ON s.id = i.slide_id "
                          "WHERE s.reference = ? AND i.name = ?", (slide, image))
        self.assertEqual(len(rows), 1, f"image {slide}/{image} not in the catalog")
        return rows[0][0]

    def record(self, rel, slide="S1", image="cell01"):
        """The entry row (dict) at `rel` inside the image's files/, or None."""
        con = self.m.db()
        try:
            row = con.execute("SELECT * FROM entry WHERE image_id = ? AND parent_id IS NULL",
                              (self.image_id(slide, image),)).fetchone()
            for part in [p for p in rel.split("/") if p]:
                if row is None:
                    return None
                row = con.execute("SELECT * FROM entry WHERE parent_id = ? AND name = ?",
                                  (row["id"], part)).fetchone()
            return dict(row) if row is not None else None
        finally:
            con.close()

    def names_in(self, rel="", slide="S1", image="cell01"):
        folder = self.record(rel, slide, image)
        return sorted(r[0] for r in self.m.sql("SELECT name FROM entry WHERE parent_id = ?",
                                                (folder["id"],)))

    # -- verification ------------------------------------------------------
    def assertRecorded(self, src, rel, slide="S1", image="cell01", mode=None, mtime_ns=None):
        """The file `rel` of the image holds exactly the bytes of `src`, in the
        mount, in its record (size, hash, mode, mtime) and in its object."""
        mnt = os.path.join(self.m.path("slides", slide, "images", image, "files"), rel)
        self.assertTrue(same_bytes(mnt, src), f"{rel}: content read through the mount differs")
        rec = self.record(rel, slide, image)
        self.assertIsNotNone(rec, f"{rel}: no record")
        self.assertEqual(rec["type"], "file")
        size = os.path.getsize(src)
        self.assertEqual(rec["size"], size, f"{rel}: recorded size")
        self.assertEqual(rec["hash"], xxh128(src), f"{rel}: recorded hash")
        obj = self.m.object_path(rec["hash"])
        self.assertTrue(os.path.isfile(obj), f"{rel}: object {rec['hash']} missing")
        self.assertTrue(same_bytes(obj, src), f"{rel}: object bytes differ")
        st = os.stat(mnt)
        self.assertEqual(st.st_size, size)
        self.assertEqual(stat.S_IMODE(st.st_mode), rec["mode"], f"{rel}: stat mode vs record")
        self.assertEqual(st.st_mtime_ns, rec["mtime_ns"], f"{rel}: stat mtime vs record")
        if mode is not None:
            self.assertEqual(rec["mode"], mode, f"{rel}: recorded mode {oct(rec['mode'])}")
        if mtime_ns is not None:
            self.assertEqual(rec["mtime_ns"], mtime_ns, f"{rel}: recorded mtime")
        return rec

    def assertTreeRecorded(self, src_root, dst_rel, slide="S1", image="cell01", times=False,
                           times_s=False):
        """Every file, folder and symlink under src_root is recorded under
        dst_rel (modes always; mtimes exactly with `times`, to the second
        with `times_s`)."""
        files = self.files_dir(slide, image)

        def check_time(rec, src_st, rel):
            mnt_st = os.lstat(os.path.join(files, rel))
            self.assertEqual(mnt_st.st_mtime_ns, rec["mtime_ns"], f"{rel}: stat mtime vs record")
            if times:
                self.assertEqual(rec["mtime_ns"], src_st.st_mtime_ns, f"{rel}: mtime")
            if times_s:
                self.assertEqual(rec["mtime_ns"] // 10**9, src_st.st_mtime_ns // 10**9, rel)

        count = 0
        for dirpath, dirnames, filenames in os.walk(src_root):
            relroot = os.path.relpath(dirpath, src_root)
            base = dst_rel if relroot == "." else f"{dst_rel}/{relroot}"
            rec = self.record(base, slide, image)
            self.assertIsNotNone(rec, f"{base}: folder not recorded")
            self.assertEqual(rec["type"], "folder", base)
            self.assertEqual(rec["mode"], stat.S_IMODE(os.stat(dirpath).st_mode), f"{base}: mode")
            check_time(rec, os.stat(dirpath), base)
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                rel = f"{base}/{name}"
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    rec = self.record(rel, slide, image)
                    self.assertIsNotNone(rec, f"{rel}: symlink not recorded")
                    self.assertEqual(rec["type"], "symlink")
                    self.assertEqual(rec["target"], os.readlink(p))
                    self.assertEqual(os.readlink(os.path.join(files, rel)), os.readlink(p))
                    check_time(rec, st, rel)
                elif stat.S_ISREG(st.st_mode):
                    rec = self.assertRecorded(p, rel, slide, image, mode=stat.S_IMODE(st.st_mode),
                                              mtime_ns=st.st_mtime_ns if times else None)
                    if times_s:
                        self.assertEqual(rec["mtime_ns"] // 10**9, st.st_mtime_ns // 10**9, rel)
                    count += 1
        return count

    def assertNoTempFiles(self, slide="S1", image="cell01"):
        # rsync writes .<name>.XXXXXX and renames it: no such record may stay.
        names = [r[0] for r in self.m.sql("SELECT name FROM entry WHERE image_id = ?",
                                          (self.image_id(slide, image),))]
        self.assertEqual([n for n in names if n.startswith(".")], [])

    def objects(self):
        """Every object file in the store."""
        return sorted(f for _, _, fs in os.walk(os.path.join(self.m.store, "objects")) for f in fs)

    def files_dir(self, slide="S1", image="cell01"):
        return self.m.path("slides", slide, "images", image, "files")

    def source_tree(self, name, contents):
        """A source folder `name` holding `contents` (file name -> bytes)."""
        tree = os.path.join(self.src, name)
        os.mkdir(tree)
        for n, data in contents.items():
            with open(os.path.join(tree, n), "wb") as f:
                f.write(data)
        return tree

    def assertFolderHashes(self, got, tree, contents):
        """`got` (name -> (hash, size) from the catalog) is the xxhsum and
        size of every file in `contents`, as one xxhsum run over `tree` says."""
        out = self.run_tool("xxhsum", "-H2", *sorted(contents), cwd=tree).stdout
        want = {line.split()[1]: line.split()[0] for line in out.splitlines()}
        self.assertEqual(sorted(got), sorted(contents))
        for name, data in contents.items():
            self.assertEqual(got[name], (want[name], len(data)), name)


class CopyTools(WriteTestCase):
    def test_cp(self):
        files = self.make_image()
        big, small, empty = (os.path.join(self.src, n) for n in ("big.tif", "small.txt", "empty"))
        write_random(big, 5 * 1024 * 1024 + 123, seed=1)  # several max_write chunks
        with open(small, "wb") as f:
            f.write(b"hello samplefs\n")
        open(empty, "wb").close()
        os.chmod(small, 0o640)
        self.run_tool("cp", big, small, empty, files)
        self.assertRecorded(big, "big.tif")
        self.assertRecorded(small, "small.txt", mode=0o640)  # cp keeps permission bits
        self.assertRecorded(empty, "empty")
        self.assertEqual(self.record("big.tif")["kind"], "raw")
        # Overwriting with cp writes a new version into the same record.
        write_random(big, 70000, seed=2)
        rid = self.record("big.tif")["id"]
        self.run_tool("cp", big, os.path.join(files, "big.tif"))
        self.assertEqual(self.assertRecorded(big, "big.tif")["id"], rid)
        self.m.restart()
        self.assertRecorded(big, "big.tif")
        self.assertRecorded(small, "small.txt", mode=0o640)
        self.assertRecorded(empty, "empty")

    def _preserving_source(self):
        src = os.path.join(self.src, "frame.tif")
        write_random(src, 300_000, seed=3)
        os.chmod(src, 0o604)
        subprocess.run(["setfattr", "-n", "user.origin", "-v", "microscope3", src], check=True)
        os.utime(src, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        return src

    def assertPreserved(self, src, rel):
        rec = self.assertRecorded(src, rel, mode=0o604, mtime_ns=OLD_MTIME_NS)
        out = self.run_tool("getfattr", "--only-values", "-n", "user.origin",
                            os.path.join(self.files_dir(), rel)).stdout
        self.assertEqual(out, "microscope3")
        self.assertEqual(self.m.sql("SELECT value FROM annotation WHERE entity = 'entry' AND "
                                    "record_id = ? AND key = 'origin'", (rec["id"],)),
                         [("microscope3",)])

    def test_cp_a_and_preserve_all(self):
        files = self.make_image()
        src = self._preserving_source()
        self.run_tool("cp", "-a", src, os.path.join(files, "a.tif"))
        self.run_tool("cp", "--preserve=all", src, os.path.join(files, "all.tif"))
        # A whole tree with cp -a: folders, times, modes, a symlink.
        tree = os.path.join(self.src, "acq")
        make_tree(tree, files={"pos0/img_000.tif": b"A" * 5000, "pos0/img_001.tif": b"B" * 7,
                               "meta.txt": b"x"}, links={"latest": "pos0/img_001.tif"})
        os.chmod(os.path.join(tree, "meta.txt"), 0o600)
        for p in ("pos0/img_000.tif", "pos0/img_001.tif", "meta.txt"):
            os.utime(os.path.join(tree, p), ns=(OLD_MTIME_NS, OLD_MTIME_NS + 1000))
        age_tree(tree)
        self.run_tool("cp", "-a", tree, files)
        for _ in range(2):
            self.assertPreserved(src, "a.tif")
            self.assertPreserved(src, "all.tif")
            self.assertEqual(self.assertTreeRecorded(tree, "acq", times=True), 3)
            self.m.restart()

    def test_cp_r_2000_small_files(self):
        files = self.make_image()
        expected = {f"f{i:05d}.txt": f"frame {i}\n".encode() * (1 + i % 7) for i in range(2000)}
        tree = self.source_tree("frames", expected)
        self.run_tool("cp", "-r", tree, files)
        for _ in range(2):
            self.assertEqual(sorted(os.listdir(os.path.join(files, "frames"))), sorted(expected))
            self.assertEqual(self.names_in("frames"), sorted(expected))
            # Every record's hash is the xxhsum of its source.
            folder = self.record("frames")["id"]
            got = {n: (h, s) for n, h, s in
                   self.m.sql("SELECT name, hash, size FROM entry WHERE parent_id = ?", (folder,))}
            self.assertFolderHashes(got, tree, expected)
            for name in ("f00000.txt", "f01234.txt", "f01999.txt"):
                self.assertRecorded(os.path.join(tree, name), f"frames/{name}")
            for name in list(expected)[::97]:
                with open(os.path.join(files, "frames", name), "rb") as f:
                    self.assertEqual(f.read(), expected[name])
            self.m.restart()

    def test_copying_content_already_in_the_store_writes_no_data(self):
        # A file whose content is already an object is deduplicated before
        # any of its data is synced: its staging file is dropped unsynced
        # (status.json counts it in mount.early_dedups) and nothing is
        # synced for it (mount.data_syncs). The daemon's
        # cancelled_write_bytes (/proc/PID/io: dirty pages truncated before
        # writeback) shows the data never reached the disk, but only while
        # nobody else syncs the disk (other tests do, under ctest -j2), so
        # it is reported, not asserted.
        files = self.make_image()
        expected = {f"c{i:04d}.raw": random.Random(7000 + i).randbytes(64 << 10) for i in range(300)}
        tree = self.source_tree("chunks", expected)
        total = sum(len(v) for v in expected.values())

        def cancelled():
            with open(f"/proc/{self.m.pid}/io") as f:
                return int(dict(line.split(": ") for line in f.read().splitlines())["cancelled_write_bytes"])

        def counters():
            with open(self.m.path(".samplefs", "status.json")) as f:
                mount = json.load(f)["mount"]
            return mount["data_syncs"], mount["early_dedups"]

        self.run_tool("cp", "-r", tree, files)
        self.m.settle()
        syncs0, early0 = counters()
        self.assertGreater(syncs0, 0, "new content was published without syncing its data")
        before = cancelled()
        os.mkdir(os.path.join(files, "again"))
        self.run_tool("cp", "-r", tree, os.path.join(files, "again"))
        self.m.settle()
        dropped = cancelled() - before
        syncs1, early1 = counters()
        note = f"({dropped} of {total} bytes of duplicates dropped while still dirty)"
        self.assertEqual(early1 - early0, len(expected), f"duplicates not dropped before syncing {note}")
        self.assertEqual(syncs1, syncs0, f"duplicates had their data synced {note}")
        for folder in ("chunks", "again/chunks"):
            fid = self.record(folder)["id"]
            got = {n: (h, s) for n, h, s in
                   self.m.sql("SELECT name, hash, size FROM entry WHERE parent_id = ?", (fid,))}
            self.assertFolderHashes(got, tree, expected)
        hashes = {h for h, _ in got.values()}
        self.assertEqual(hashes - set(self.objects()), set())
        self.assertLessEqual(len(set(self.objects()) - hashes), 1)  # the empty object, at most
        for name in list(expected)[::37]:
            self.assertRecorded(os.path.join(tree, name), f"again/chunks/{name}")

    def test_unmount_right_after_a_copy_records_every_file(self):
        # Closed files are committed in the background (fs/committer.h);
        # an unmount straight after the copy, with no sync, must still
        # leave every one recorded with its content.
        files = self.make_image()
        expected = {f"b{i:04d}.raw": random.Random(i).randbytes(1000 + i * 37) for i in range(1500)}
        tree = self.source_tree("burst", expected)
        self.run_tool("cp", "-r", tree, files)
        self.m.stop()  # no settle(): fusermount3 -u at once
        con = self.m.db()  # not mounted: settle() does nothing
        try:
            folder = con.execute("SELECT id FROM entry WHERE name = 'burst' AND type = 'folder'").fetchone()[0]
            got = {r[0]: (r[1], r[2]) for r in
                   con.execute("SELECT name, hash, size FROM entry WHERE parent_id = ?", (folder,))}
        finally:
            con.close()
        self.assertFolderHashes(got, tree, expected)
        self.m.start()
        for name in list(expected)[::101]:
            with open(os.path.join(files, "burst", name), "rb") as f:
                self.assertEqual(f.read(), expected[name])

    def _rsync_tree(self):
        tree = os.path.join(self.src, "run")
        make_tree(tree, files={"a.tif": os.urandom(200_000), "sub/b.csv": b"1,2,3\n",
                               "sub/deeper/c.bin": os.urandom(70_000)},
                  links={"sub/link": "../a.tif"})
        for p in ("a.tif", "sub/b.csv", "sub/deeper/c.bin"):
            os.utime(os.path.join(tree, p), ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        os.chmod(os.path.join(tree, "sub/b.csv"), 0o600)
        age_tree(tree)
        return tree

    def test_rsync_a(self):
        files = self.make_image()
        tree = self._rsync_tree()
        self.run_tool("rsync", "-a", tree, files)
        for _ in range(2):
            self.assertEqual(self.assertTreeRecorded(tree, "run", times=True), 3)
            self.assertNoTempFiles()
            self.m.restart()
        # A second rsync finds nothing to transfer and changes nothing.
        before = self.m.sql("SELECT * FROM entry ORDER BY id")
        r = self.run_tool("rsync", "-ai", tree, files)
        self.assertEqual([l for l in r.stdout.splitlines() if l.startswith(">f")], [], r.stdout)
        self.assertEqual(self.m.sql("SELECT * FROM entry ORDER BY id"), before)

    def test_rsync_aX(self):
        files = self.make_image()
        tree = self._rsync_tree()
        subprocess.run(["setfattr", "-n", "user.origin", "-v", "microscope3",
                        os.path.join(tree, "a.tif")], check=True)
        self.run_tool("rsync", "-aX", tree, files)
        for _ in range(2):
            self.assertEqual(self.assertTreeRecorded(tree, "run", times=True), 3)
            self.assertNoTempFiles()
            out = self.run_tool("getfattr", "--only-values", "-n", "user.origin",
                                os.path.join(files, "run", "a.tif")).stdout
            self.assertEqual(out, "microscope3")
            self.m.restart()

    def test_rsync_inplace(self):
        files = self.make_image()
        src = os.path.join(self.src, "stack.tif")
        write_random(src, 1_000_000, seed=4)
        self.run_tool("cp", src, files)
        rid = self.record("stack.tif")["id"]
        old_hash = self.record("stack.tif")["hash"]
        # Change the middle and grow the file, then update in place.
        with open(src, "r+b") as f:
            f.seek(400_000)
            f.write(b"\xff" * 10_000)
            f.seek(0, os.SEEK_END)
            f.write(os.urandom(123_456))
        os.utime(src, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        self.run_tool("rsync", "-a", "--inplace", "--no-whole-file", src, files)
        for _ in range(2):
            rec = self.assertRecorded(src, "stack.tif", mtime_ns=OLD_MTIME_NS)
            self.assertEqual(rec["id"], rid, "--inplace keeps the record")
            self.assertNotEqual(rec["hash"], old_hash)
            self.m.restart()
        # And shrinking in place.
        with open(src, "r+b") as f:
            f.truncate(5000)
        self.run_tool("rsync", "-a", "--inplace", src, files)
        self.assertEqual(self.assertRecorded(src, "stack.tif")["id"], rid)

    def test_tar_x(self):
        files = self.make_image()
        tree = os.path.join(self.src, "zarr")
        make_tree(tree, files={".zattrs": b"{}", "0/0/0": os.urandom(40_000),
                               "0/0/1": os.urandom(33), "0/1/0": b"", "labels/a/b/c.txt": b"deep"},
                  dirs=["empty/dir"], links={"0/current": "0/1", "abs": "/tmp/nowhere",
                                             "labels/up": "../0/0/1"})
        os.chmod(os.path.join(tree, "0/0/1"), 0o751)
        age_tree(tree)
        archive = os.path.join(self.src, "zarr.tar")
        self.run_tool("tar", "-cf", archive, "-C", self.src, "zarr")
        self.run_tool("tar", "-xf", archive, "-C", files)
        for _ in range(2):
            self.assertEqual(self.assertTreeRecorded(tree, "zarr", times_s=True), 5)
            self.assertEqual(self.record("zarr/empty/dir")["type"], "folder")
            self.m.restart()

    def test_tar_xattrs(self):
        files = self.make_image()
        tree = os.path.join(self.src, "t")
        make_tree(tree, files={"a.tif": os.urandom(10_000), "d/b.tif": b"bbb"})
        for p, v in (("a.tif", "microscope3"), ("d/b.tif", "microscope4")):
            subprocess.run(["setfattr", "-n", "user.origin", "-v", v, os.path.join(tree, p)],
                           check=True)
        archive = os.path.join(self.src, "t.tar")
        self.run_tool("tar", "--xattrs", "--xattrs-include=user.*", "-cf", archive, "-C",
                      self.src, "t")
        self.run_tool("tar", "--xattrs", "--xattrs-include=user.*", "-xf", archive, "-C", files)
        for _ in range(2):
            self.assertEqual(self.assertTreeRecorded(tree, "t", times_s=True), 2)
            for p, v in (("a.tif", "microscope3"), ("d/b.tif", "microscope4")):
                out = self.run_tool("getfattr", "--only-values", "-n", "user.origin",
                                    os.path.join(files, "t", p)).stdout
                self.assertEqual(out, v)
            self.m.restart()

    def test_shutil_copy2_and_copytree(self):
        files = self.make_image()
        src = os.path.join(self.src, "one.tif")
        write_random(src, 2_500_000, seed=5)
        os.chmod(src, 0o644)
        os.utime(src, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        shutil.copy2(src, os.path.join(files, "one.tif"))
        tree = os.path.join(self.src, "tree")
        make_tree(tree, files={"x/1.tif": os.urandom(1000), "x/y/2.tif": os.urandom(3000),
                               "3.csv": b"a,b\n"}, links={"x/l": "1.tif"})
        for p in ("x/1.tif", "x/y/2.tif", "3.csv"):
            os.utime(os.path.join(tree, p), ns=(OLD_MTIME_NS, OLD_MTIME_NS + 7))
        age_tree(tree)
        shutil.copytree(tree, os.path.join(files, "tree"), symlinks=True)
        for _ in range(2):
            self.assertRecorded(src, "one.tif", mode=0o644, mtime_ns=OLD_MTIME_NS)
            self.assertEqual(self.assertTreeRecorded(tree, "tree", times=True), 3)
            self.m.restart()


class MoveAndRename(WriteTestCase):
    def test_mv_in_inside_between_images_and_out(self):
        files = self.make_image()
        files2 = self.make_image(image="cell02")
        src = os.path.join(self.src, "raw.tif")
        write_random(src, 600_000, seed=6)
        os.utime(src, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        keep = os.path.join(self.src, "raw.keep")
        shutil.copy2(src, keep)
        # Into the mount from another filesystem: copy, then unlink the source.
        self.run_tool("mv", src, files)
        self.assertFalse(os.path.exists(src))
        rec = self.assertRecorded(keep, "raw.tif", mtime_ns=OLD_MTIME_NS)
        # Inside: a rename between folders keeps the record (same id).
        os.mkdir(os.path.join(files, "sorted"))
        self.run_tool("mv", os.path.join(files, "raw.tif"), os.path.join(files, "sorted", "r.tif"))
        self.assertIsNone(self.record("raw.tif"))
        moved = self.assertRecorded(keep, "sorted/r.tif", mtime_ns=OLD_MTIME_NS)
        self.assertEqual(moved["id"], rec["id"])
        # A folder moves with its contents.
        self.run_tool("mv", os.path.join(files, "sorted"), os.path.join(files, "done"))
        self.assertEqual(self.assertRecorded(keep, "done/r.tif")["id"], rec["id"])
        # Between images: the record now belongs to the other image.
        self.run_tool("mv", os.path.join(files, "done", "r.tif"), os.path.join(files2, "r.tif"))
        self.assertIsNone(self.record("done/r.tif"))
        other = self.assertRecorded(keep, "r.tif", image="cell02", mtime_ns=OLD_MTIME_NS)
        self.assertEqual(other["id"], rec["id"])
        self.assertEqual(other["image_id"], self.image_id(image="cell02"))
        # A folder tree between images: every record below it moves too.
        os.makedirs(os.path.join(files, "tree", "sub"))
        shutil.copy2(keep, os.path.join(files, "tree", "sub", "deep.tif"))
        self.run_tool("mv", os.path.join(files, "tree"), os.path.join(files2, "tree"))
        self.assertIsNone(self.record("tree"))
        deep = self.assertRecorded(keep, "tree/sub/deep.tif", image="cell02", mtime_ns=OLD_MTIME_NS)
        self.assertEqual(deep["image_id"], self.image_id(image="cell02"))
        self.assertEqual(self.record("tree/sub", image="cell02")["image_id"],
                         self.image_id(image="cell02"))
        self.m.restart()
        self.assertRecorded(keep, "r.tif", image="cell02", mtime_ns=OLD_MTIME_NS)
        self.assertRecorded(keep, "tree/sub/deep.tif", image="cell02", mtime_ns=OLD_MTIME_NS)
        self.assertEqual(self.names_in("done"), [])
        # Out of the mount: copy out, then the record is deleted.
        out = os.path.join(self.src, "out.tif")
        self.run_tool("mv", os.path.join(files2, "r.tif"), out)
        self.assertTrue(same_bytes(out, keep))
        self.assertEqual(os.stat(out).st_mtime_ns, OLD_MTIME_NS)
        self.assertIsNone(self.record("r.tif", image="cell02"))
        self.assertFalse(os.path.exists(os.path.join(files2, "r.tif")))
        self.assertTrue(os.path.isfile(self.m.object_path(rec["hash"])), "objects stay until gc")
        self.m.restart()
        self.assertIsNone(self.record("r.tif", image="cell02"))

    def test_vim_style_save(self):
        files = self.make_image()
        path = os.path.join(files, "notes.txt")
        with open(path, "w") as f:
            f.write("first version\n")
        os.chmod(path, 0o640)
        old = self.record("notes.txt")
        # Write a temporary file, fsync it, rename it over the original.
        tmp = os.path.join(files, ".notes.txt.swp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, b"second version, longer than the first\n")
            os.fsync(fd)
            # fsync of a file still open makes it durable where it is (a
            # sealed staging file), without publishing an object: the record
            # keeps the empty version until the close; the derived fields
            # already describe what readers see.
            synced = self.record(".notes.txt.swp")
            want = os.path.join(self.src, "want")
            with open(want, "wb") as f:
                f.write(b"second version, longer than the first\n")
            self.assertEqual(synced["size"], 0)
            self.assertEqual(os.getxattr(tmp, "user.samplefs.hash").decode(), "xxh3-128:" + xxh128(want))
            self.assertEqual(os.getxattr(tmp, "user.samplefs.size").decode(), "38")
        finally:
            os.close(fd)
        os.rename(tmp, path)
        for _ in range(2):
            rec = self.assertRecorded(want, "notes.txt", mode=0o640)
            self.assertNotEqual(rec["id"], old["id"])
            self.assertEqual(self.names_in(), ["notes.txt"])
            self.m.restart()
        # The real editor, with its default backup/swap behaviour.
        if shutil.which("vim"):
            self.run_tool("vim", "-u", "NONE", "-i", "NONE", "-N", "-n", "-es",
                          "-c", "normal Gothird line", "-c", "wq", path, input="")
            with open(want, "ab") as f:
                f.write(b"third line\n")
            self.assertRecorded(want, "notes.txt")
            self.assertEqual(self.names_in(), ["notes.txt"])

    def test_unlink_while_open(self):
        files = self.make_image()
        path = os.path.join(files, "gone.tif")
        with open(path, "wb") as f:
            f.write(b"old content")
        # A reader keeps reading an unlinked file; a writer's close succeeds.
        with open(path, "rb") as reader, open(os.path.join(files, "w.tif"), "wb") as writer:
            writer.write(b"partial")
            os.unlink(path)
            os.unlink(os.path.join(files, "w.tif"))
            writer.write(b" more")
            self.assertEqual(reader.read(), b"old content")
        self.assertEqual(self.names_in(), [])
        self.m.restart()
        self.assertEqual(os.listdir(files), [])

    def test_rename_noreplace(self):
        files = self.make_image()
        a, b = os.path.join(files, "a"), os.path.join(files, "b")
        for p, data in ((a, b"aaa"), (b, b"bbbb")):
            with open(p, "wb") as f:
                f.write(data)
        before = self.m.sql("SELECT * FROM entry ORDER BY id")
        libc = ctypes.CDLL(None, use_errno=True)
        AT_FDCWD = -100
        rc = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), 1)  # RENAME_NOREPLACE
        self.assertEqual(rc, -1)
        self.assertEqual(ctypes.get_errno(), errno.EEXIST)
        self.assertEqual(self.m.sql("SELECT * FROM entry ORDER BY id"), before)
        with open(b, "rb") as f:
            self.assertEqual(f.read(), b"bbbb")
        # Without the flag rename replaces; with it onto a free name it moves.
        rc = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, os.path.join(files, "c").encode(), 1)
        self.assertEqual(rc, 0, os.strerror(ctypes.get_errno()))
        self.assertEqual(self.names_in(), ["b", "c"])
        os.rename(os.path.join(files, "c"), b)
        want = os.path.join(self.src, "want")
        with open(want, "wb") as f:
            f.write(b"aaa")
        for _ in range(2):
            self.assertEqual(self.names_in(), ["b"])
            self.assertRecorded(want, "b")
            self.m.restart()

    def test_mkdir_rmdir_at_depth(self):
        files = self.make_image()
        deep = os.path.join(files, "a", "b", "c", "d", "e", "f")
        os.makedirs(deep)
        with open(os.path.join(deep, "x.txt"), "wb") as f:
            f.write(b"deep")
        self.m.restart()
        parts = ["a", "b", "c", "d", "e", "f"]
        for i in range(1, 7):
            rec = self.record("/".join(parts[:i]))
            self.assertEqual(rec["type"], "folder")
            self.assertEqual(rec["parent_id"], self.record("/".join(parts[:i - 1]))["id"])
        self.assertEqual(self.record("a/b/c/d/e/f/x.txt")["size"], 4)
        self.assertErrno(errno.ENOTEMPTY, os.rmdir, os.path.join(files, "a"))
        os.unlink(os.path.join(deep, "x.txt"))
        for i in range(6, 0, -1):
            os.rmdir(os.path.join(files, *parts[:i]))
            self.assertIsNone(self.record("/".join(parts[:i])))
        self.m.restart()
        self.assertEqual(os.listdir(files), [])
        self.assertEqual(self.names_in(), [])

    def test_rm_rf_3000_files(self):
        files = self.make_image()
        d = os.path.join(files, "many")
        os.makedirs(os.path.join(d, "sub"))
        for i in range(3000):
            with open(os.path.join(d, "sub" if i % 3 == 0 else "", f"f{i:05d}"), "wb") as f:
                if i % 10 == 0:
                    f.write(b"x")
        self.assertEqual(self.m.sql("SELECT count(*) FROM entry WHERE image_id = ? AND "
                                    "type = 'file'", (self.image_id(),)), [(3000,)])
        r = self.run_tool("rm", "-rf", d, check=False)
        self.assertNotIn("Directory not empty", r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(d))
        self.assertEqual(self.m.sql("SELECT count(*) FROM entry WHERE image_id = ? AND "
                                    "parent_id IS NOT NULL", (self.image_id(),)), [(0,)])
        self.m.restart()
        self.assertEqual(os.listdir(files), [])


class ShellAndSyscalls(WriteTestCase):
    def want(self, data):
        p = os.path.join(self.src, "want")
        with open(p, "wb") as f:
            f.write(data)
        return p

    def test_echo_redirect_and_append(self):
        files = self.make_image()
        path = os.path.join(files, "log.txt")
        subprocess.run(["sh", "-c", f"echo first > '{path}'"], check=True)
        self.assertRecorded(self.want(b"first\n"), "log.txt")
        subprocess.run(["sh", "-c", f"echo second >> '{path}'"], check=True)
        self.assertRecorded(self.want(b"first\nsecond\n"), "log.txt")
        subprocess.run(["sh", "-c", f"echo third > '{path}'"], check=True)
        self.m.restart()
        self.assertRecorded(self.want(b"third\n"), "log.txt")

    def test_truncate_grow_and_shrink(self):
        files = self.make_image()
        path = os.path.join(files, "t.bin")
        data = os.urandom(5000)
        with open(path, "wb") as f:
            f.write(data)
        self.run_tool("truncate", "-s", "12000", path)
        self.assertRecorded(self.want(data + b"\0" * 7000), "t.bin")
        self.run_tool("truncate", "-s", "100", path)
        self.assertRecorded(self.want(data[:100]), "t.bin")
        os.truncate(path, 0)  # truncate(2) with no open file publishes at once
        self.assertRecorded(self.want(b""), "t.bin")
        os.truncate(path, 3)
        self.m.restart()
        self.assertRecorded(self.want(b"\0\0\0"), "t.bin")

    def test_dd_notrunc_seek(self):
        files = self.make_image()
        path = os.path.join(files, "d.bin")
        base = os.urandom(3 * 4096 + 10)
        with open(path, "wb") as f:
            f.write(base)
        patch = os.path.join(self.src, "patch")
        with open(patch, "wb") as f:
            f.write(b"P" * 4096 * 2)
        self.run_tool("dd", f"if={patch}", f"of={path}", "bs=4096", "seek=1", "conv=notrunc",
                      "status=none")
        want = base[:4096] + b"P" * 8192 + base[3 * 4096:]
        self.assertRecorded(self.want(want), "d.bin")
        # Past the end: a hole of zeros, then the data.
        self.run_tool("dd", f"if={patch}", f"of={path}", "bs=4096", "seek=5", "count=1",
                      "conv=notrunc", "status=none")
        want = want + b"\0" * (5 * 4096 - len(want)) + b"P" * 4096
        self.m.restart()
        self.assertRecorded(self.want(want), "d.bin")

    def test_o_append(self):
        files = self.make_image()
        path = os.path.join(files, "a.log")
        with open(path, "wb") as f:
            f.write(b"start\n")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"one\n")
        os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND ignores the position
        os.write(fd, b"two\n")
        os.close(fd)
        self.m.restart()
        self.assertRecorded(self.want(b"start\none\ntwo\n"), "a.log")

    def test_fallocate(self):
        files = self.make_image()
        path = os.path.join(files, "f.bin")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.posix_fallocate(fd, 0, 100_000)
        os.pwrite(fd, b"head", 0)
        os.close(fd)
        self.assertRecorded(self.want(b"head" + b"\0" * 99_996), "f.bin")
        fd = os.open(path, os.O_RDWR)
        os.posix_fallocate(fd, 50_000, 100_000)  # grows to 150,000
        os.posix_fallocate(fd, 0, 10)            # inside: changes nothing
        os.close(fd)
        self.m.restart()
        self.assertRecorded(self.want(b"head" + b"\0" * 149_996), "f.bin")

    def test_symlink_readlink(self):
        files = self.make_image()
        os.symlink("target/does/not/exist", os.path.join(files, "dangling"))
        os.mkdir(os.path.join(files, "d"))
        os.symlink("../dangling", os.path.join(files, "d", "up"))
        with open(os.path.join(files, "real"), "wb") as f:
            f.write(b"real")
        os.symlink("real", os.path.join(files, "to-real"))
        for _ in range(2):
            self.assertEqual(os.readlink(os.path.join(files, "dangling")), "target/does/not/exist")
            self.assertEqual(os.readlink(os.path.join(files, "d", "up")), "../dangling")
            with open(os.path.join(files, "to-real"), "rb") as f:
                self.assertEqual(f.read(), b"real")
            self.assertTrue(os.path.islink(os.path.join(files, "to-real")))
            rec = self.record("d/up")
            self.assertEqual((rec["type"], rec["target"]), ("symlink", "../dangling"))
            self.m.restart()
        os.unlink(os.path.join(files, "dangling"))
        self.assertIsNone(self.record("dangling"))

    def test_chmod_and_utimens_stored(self):
        files = self.make_image()
        path = os.path.join(files, "c.tif")
        with open(path, "wb") as f:
            f.write(b"content")
        os.mkdir(os.path.join(files, "dir"))
        os.chmod(path, 0o600)
        os.chmod(os.path.join(files, "dir"), 0o750)
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS + 42))
        os.utime(os.path.join(files, "dir"), ns=(OLD_MTIME_NS, OLD_MTIME_NS + 5))
        for _ in range(2):
            rec = self.assertRecorded(self.want(b"content"), "c.tif", mode=0o600,
                                      mtime_ns=OLD_MTIME_NS + 42)
            d = self.record("dir")
            self.assertEqual((d["mode"], d["mtime_ns"]), (0o750, OLD_MTIME_NS + 5))
            st = os.stat(os.path.join(files, "dir"))
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_mtime_ns), (0o750, OLD_MTIME_NS + 5))
            self.m.restart()
        # touch (UTIME_NOW) records a current time without a new version.
        before = time.time_ns()
        os.utime(path)
        rec2 = self.record("c.tif")
        self.assertGreaterEqual(rec2["mtime_ns"], before - 2 * 10**9)
        self.assertEqual(rec2["hash"], rec["hash"])

    def test_open_for_write_without_writes(self):
        files = self.make_image()
        path = os.path.join(files, "same.tif")
        with open(path, "wb") as f:
            f.write(os.urandom(10_000))
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        # The atime of a version still pending is written with the next
        # batch of atimes (fs/atimes.h, a few seconds): wait for it.
        deadline = time.time() + 15
        while self.record("same.tif")["atime_ns"] != OLD_MTIME_NS and time.time() < deadline:
            time.sleep(0.2)
        before = self.record("same.tif")
        objects = self.objects()
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_CREAT):
            os.close(os.open(path, flags))
        with open(path, "r+b") as f:
            f.flush()
            os.fsync(f.fileno())
        # An empty file truncated on open stays the same version too.
        open(os.path.join(files, "empty"), "wb").close()
        empty = self.record("empty")
        open(os.path.join(files, "empty"), "wb").close()
        for _ in range(2):
            self.assertEqual(self.record("same.tif"), before)
            self.assertEqual(self.record("empty"), empty)
            self.assertEqual(os.stat(path).st_mtime_ns, OLD_MTIME_NS)
            self.m.restart()
        self.assertEqual(self.objects(), objects, "a new object was stored")

    def test_copy_file_range(self):
        files = self.make_image()
        src = os.path.join(self.src, "s.tif")
        write_random(src, 3_000_000, seed=7)
        self.run_tool("cp", src, files)
        with open(os.path.join(files, "s.tif"), "rb") as fin, \
                open(os.path.join(files, "copy.tif"), "wb") as fout:
            left = os.fstat(fin.fileno()).st_size
            while left > 0:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), left)
                self.assertGreater(n, 0)
                left -= n
        for _ in range(2):
            a = self.assertRecorded(src, "s.tif")
            b = self.assertRecorded(src, "copy.tif")
            self.assertEqual(a["hash"], b["hash"])
            self.assertNotEqual(a["id"], b["id"])
            self.m.restart()
        # A partial copy (at an offset) falls back and is still right.
        with open(os.path.join(files, "s.tif"), "rb") as fin, \
                open(os.path.join(files, "part.tif"), "wb") as fout:
            n = os.copy_file_range(fin.fileno(), fout.fileno(), 1000, 500, 0)
            self.assertEqual(n, 1000)
        with open(src, "rb") as f:
            self.assertRecorded(self.want(f.read()[500:1500]), "part.tif")


class Concurrency(WriteTestCase):
    WRITER = r"""
import os, sys, time
src, dst, chunk, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with open(src, "rb") as fin, open(dst, "wb") as fout:
    while True:
        b = fin.read(chunk)
        if not b:
            break
        fout.write(b)
        fout.flush()
        if pause:
            time.sleep(pause)
"""

    def writer(self, src, dst, chunk=65536, pause=0.0):
        return subprocess.Popen([sys.executable, "-c", self.WRITER, src, dst, str(chunk),
                                 str(pause)])

    def test_two_processes_write_different_files(self):
        files = self.make_image()
        srcs = [os.path.join(self.src, f"s{i}") for i in range(2)]
        for i, s in enumerate(srcs):
            write_random(s, 4 * 1024 * 1024 + i * 999, seed=10 + i)
        procs = [self.writer(s, os.path.join(files, f"out{i}.tif"), 32768)
                 for i, s in enumerate(srcs)]
        self.assertEqual([p.wait(timeout=120) for p in procs], [0, 0])
        for _ in range(2):
            for i, s in enumerate(srcs):
                self.assertRecorded(s, f"out{i}.tif")
            self.m.restart()

    def test_reader_sees_prefix_of_growing_file(self):
        files = self.make_image()
        src = os.path.join(self.src, "grow")
        write_random(src, 2 * 1024 * 1024, seed=12)
        with open(src, "rb") as f:
            final = f.read()
        dst = os.path.join(files, "grow.tif")
        p = self.writer(src, dst, 65536, 0.01)
        snapshots = 0
        grew = set()
        try:
            while p.poll() is None:
                try:
                    with open(dst, "rb") as f:
                        got = f.read()
                except FileNotFoundError:
                    continue
                self.assertEqual(got, final[:len(got)], f"not a prefix at {len(got)} bytes")
                grew.add(len(got))
                snapshots += 1
        finally:
            self.assertEqual(p.wait(timeout=60), 0)
        # Right after the writer's close, stat and read show the whole file
        # (no attribute cached from a reply that raced the publish).
        self.assertEqual(os.stat(dst).st_size, len(final))
        self.assertGreater(snapshots, 3)
        self.assertGreater(len(grew), 1, "the reader never saw the file grow")
        self.assertRecorded(src, "grow.tif")
        self.m.restart()
        self.assertRecorded(src, "grow.tif")

    def test_large_writes_answered_first_are_seen_at_once(self):
        # Write-behind (OpWrite): past a file's first 8 MiB a large write is
        # answered before it reaches the staging file (forced here whatever
        # the free space: the default keeps 1 GiB of room). Whatever follows
        # the answer must see it: a read through another descriptor and
        # another path, stat, and the record after close.
        self.m.stop()
        self.m.options = ["write_behind_min_free=0"]
        self.m.start()
        files = self.make_image()
        src = os.path.join(self.src, "behind")
        write_random(src, 24 * 1024 * 1024 + 12345, seed=21)
        with open(src, "rb") as f:
            data = f.read()
        alias = self.m.path("species", "HeLa", "slides", "S1", "images", "cell01", "files", "behind.raw")

        def writes_behind():
            with open(self.m.path(".samplefs", "status.json")) as f:
                return json.load(f)["mount"]["writes_behind"]

        before = writes_behind()
        fd = os.open(os.path.join(files, "behind.raw"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            off = 0
            while off < len(data):
                off += os.write(fd, data[off:off + 1024 * 1024])
                self.assertEqual(os.stat(alias).st_size, off)
                with open(alias, "rb") as r:
                    r.seek(max(0, off - 1024 * 1024))
                    self.assertEqual(r.read(), data[max(0, off - 1024 * 1024):off],
                                     f"the bytes written up to {off} were not read back")
        finally:
            os.close(fd)
        self.assertGreaterEqual(writes_behind() - before, 15, "no write was answered first")
        self.assertRecorded(src, "behind.raw")
        self.m.restart()
        self.assertRecorded(src, "behind.raw")
        # -o write_behind_min_free=off: every write is in the staging file
        # before its answer.
        self.m.stop()
        self.m.options = ["write_behind_min_free=off"]
        self.m.start()
        with open(os.path.join(files, "sync.raw"), "wb") as f:
            for off in range(0, len(data), 1024 * 1024):
                f.write(data[off:off + 1024 * 1024])
        self.assertEqual(writes_behind(), 0, "a write was answered first with write-behind off")
        self.assertRecorded(src, "sync.raw")

    def test_open_reader_sees_the_current_version_after_an_overwrite(self):
        # POSIX semantics (docs/DECISIONS.md, "Readers during an overwrite"):
        # a descriptor reads the file's current version. A snapshot per
        # descriptor is impossible with one page cache per inode: the old
        # reader would refill it with old pages that later readers get.
        files = self.make_image()
        old_src, new_src = os.path.join(self.src, "old"), os.path.join(self.src, "new")
        write_random(old_src, 3 * 1024 * 1024, seed=13)
        write_random(new_src, 3 * 1024 * 1024, seed=14)
        with open(old_src, "rb") as f:
            old = f.read()
        with open(new_src, "rb") as f:
            new = f.read()
        path = os.path.join(files, "v.tif")
        self.run_tool("cp", old_src, path)
        with open(path, "rb") as reader:
            head = reader.read(1024 * 1024)
            self.assertEqual(head, old[:1024 * 1024])
            self.run_tool("cp", new_src, path)           # overwrite (O_TRUNC) and publish
            self.assertEqual(self.record("v.tif")["hash"], xxh128(new_src))
            rest = reader.read()
            reader.seek(0)
            again = reader.read()
        self.assertEqual(rest, new[1024 * 1024:], "the open reader got stale bytes")
        self.assertEqual(again, new)
        with open(path, "rb") as fresh:
            self.assertEqual(fresh.read(), new, "a reader opened after close got stale pages")
        self.assertRecorded(new_src, "v.tif")
        # Replaced by rename (rsync, editors): the old record is deleted, and
        # the open reader can still fstat and read the old content.
        with open(path, "rb") as reader:
            head = reader.read(1024 * 1024)
            # A temporary file renamed over v.tif (-I: sizes are equal and
            # the times may fall in the same second).
            self.run_tool("rsync", "-I", old_src, path)
            self.assertEqual(self.record("v.tif")["hash"], xxh128(old_src))
            self.assertEqual(os.fstat(reader.fileno()).st_size, os.path.getsize(new_src))
            rest = reader.read()                       # read() starts with fstat
        with open(new_src, "rb") as f:
            self.assertEqual(head + rest, f.read())
        self.assertRecorded(old_src, "v.tif")
        self.assertNoTempFiles()
        self.m.restart()
        self.assertRecorded(old_src, "v.tif")


    def test_writer_starts_from_the_content_it_opened(self):
        # docs/DECISIONS.md, "A writer starts from what it opened": a handle
        # opened without O_TRUNC copies the content it opened at its first
        # write, not a version samplectl (or another mount) recorded in
        # between; with "last close wins whole" its close then records a
        # whole file of what it opened plus its own writes.
        files = self.make_image()
        path = os.path.join(files, "f.tif")
        old = b"o" * 100_000
        with open(path, "wb") as f:
            f.write(old)
        self.m.settle()
        fd = os.open(path, os.O_WRONLY)
        try:
            # samplectl import records a new version of f.tif (another size).
            src = os.path.join(self.src, "imp", "HeLa", "S1", "cell01")
            os.makedirs(src)
            with open(os.path.join(src, "f.tif"), "wb") as f:
                f.write(b"n" * 50_000)
            self.run_tool(SAMPLECTL, "--config", self.m.config, "import", os.path.join(self.src, "imp"),
                          "--layout", "{species}/{slide}/{image}/")
            self.assertEqual(self.record("f.tif")["size"], 50_000, "the import did not replace the record")
            os.pwrite(fd, b"ZZZZ", 10)
        finally:
            os.close(fd)
        self.m.settle()
        expected = old[:10] + b"ZZZZ" + old[14:]
        self.assertEqual(self.record("f.tif")["size"], len(expected))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), expected, "the writer started from the version recorded after its open")
        # A handle opened after the import starts from the import's content
        # in the same way: here the new version is what it opened.
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b"Y", 0)
        os.close(fd)
        self.m.settle()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"Y" + expected[1:])

    def test_write_only_descriptor_overwrites_pages_a_reader_cached(self):
        # Write-only descriptors bypass the page cache (fs/filesystem.cc,
        # WriteOnlyDirect): what they write must replace the pages another
        # descriptor has already read, through the same path and another.
        files = self.make_image()
        path = os.path.join(files, "pages.bin")
        other = os.path.join(self.m.path("species", "HeLa", "slides", "S1", "images", "cell01", "files"),
                             "pages.bin")
        w = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(w, b"A" * 65536, 0)
            r = os.open(path, os.O_RDONLY)
            r2 = os.open(other, os.O_RDONLY)
            try:
                self.assertEqual(os.pread(r, 65536, 0), b"A" * 65536)     # now in the page cache
                self.assertEqual(os.pread(r2, 65536, 0), b"A" * 65536)
                os.pwrite(w, b"B" * 4096, 8192)
                mm = mmap.mmap(r, 0, prot=mmap.PROT_READ)
                try:
                    want = b"A" * 8192 + b"B" * 4096 + b"A" * (65536 - 12288)
                    self.assertEqual(os.pread(r, 65536, 0), want)
                    self.assertEqual(os.pread(r2, 65536, 0), want)
                    self.assertEqual(mm[:], want)
                    os.pwrite(w, b"C" * 100, 65536 - 50)                 # grows the file
                    self.assertEqual(os.fstat(r2).st_size, 65536 + 50)
                    self.assertEqual(os.pread(r2, 200, 65536 - 100), b"A" * 50 + b"C" * 100)
                finally:
                    mm.close()
            finally:
                os.close(r)
                os.close(r2)
        finally:
            os.close(w)
        self.m.settle()
        rec = self.record("pages.bin")
        self.assertEqual(rec["size"], 65536 + 50)
        self.m.restart()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"A" * 8192 + b"B" * 4096 + b"A" * (65536 - 12288 - 50) + b"C" * 100)

    def test_a_file_is_one_inode_in_every_view(self):
        # A file reached by two paths (slides/… and species/…/slides/…) is
        # one inode, like a hard link: a descriptor opened through one path
        # sees what is written through the other at once, size and bytes,
        # with no attribute timeout to wait for. (The concurrent difftest
        # read a file as empty through an open descriptor after the kernel
        # had re-created its directory's inode: the same file had two.)
        files = self.make_image()
        other = self.m.path("species", "HeLa", "slides", "S1", "images", "cell01", "files")
        os.mkdir(os.path.join(files, "d"))
        a, b = os.path.join(files, "d", "f.raw"), os.path.join(other, "d", "f.raw")
        with open(a, "wb") as f:
            f.write(b"first\n")
        self.assertEqual(os.stat(a).st_ino, os.stat(b).st_ino)
        fd = os.open(b, os.O_RDONLY)
        try:
            self.assertEqual(os.fstat(fd).st_size, 6)
            data = random.Random(21).randbytes(300 * 1024 + 5)
            with open(a, "ab") as f:
                f.write(data)
            self.assertEqual(os.fstat(fd).st_size, 6 + len(data))
            self.assertEqual(os.pread(fd, len(data) + 100, 0), b"first\n" + data)
            # Renamed through one view: still the same inode under the new name.
            os.rename(b, os.path.join(other, "d", "g.raw"))
            self.assertEqual(os.stat(os.path.join(files, "d", "g.raw")).st_ino, os.fstat(fd).st_ino)
            # The other view's name goes when the invalidator's note reaches
            # the kernel (its own thread: a few ms).
            deadline = time.monotonic() + 2
            while os.path.exists(a) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertFalse(os.path.exists(a))
        finally:
            os.close(fd)
        self.assertEqual(self.record("d/g.raw")["size"], 6 + len(data))


class NamespaceAndRecords(WriteTestCase):
    def test_readdir_ino_matches_stat(self):
        files = self.make_image()
        os.mkdir(os.path.join(files, "d"))
        for n in ("a", "b", "d/c"):
            with open(os.path.join(files, n), "wb") as f:
                f.write(n.encode())
        os.symlink("a", os.path.join(files, "l"))
        for d in (files, os.path.join(files, "d"), self.m.path("slides"),
                  self.m.path("slides", "S1"), self.m.path("species"), self.m.path()):
            for e in os.scandir(d):
                self.assertEqual(e.inode(), os.lstat(e.path).st_ino, e.path)

    def test_statfs_reports_store_space(self):
        self.make_image()
        mine = os.statvfs(self.m.mnt)
        store = os.statvfs(self.m.store)
        free_m, free_s = mine.f_bavail * mine.f_frsize, store.f_bavail * store.f_frsize
        self.assertAlmostEqual(free_m / free_s, 1.0, delta=0.03)
        # The size is not the disk's: what the catalog holds plus what is
        # free (docs/DECISIONS.md, "df and stat -f"; test_read.DiskSpace).
        used_m = (mine.f_blocks - mine.f_bfree) * mine.f_frsize
        self.assertLess(used_m, 1 << 20)  # an empty image holds nothing
        self.assertEqual(mine.f_namemax, 255)

    def test_mkdir_records(self):
        m = self.m
        for view, name in (("species", "HeLa"), ("samples", "P12"), ("samples", "P13"),
                           ("dyes", "A647"), ("tags", "good")):
            os.mkdir(m.path(view, name))
        os.mkdir(m.path("samples", "P12", "slides", "S7"))
        os.mkdir(m.path("species", "HeLa", "slides", "S8"))
        os.mkdir(m.path("slides", "S7", "images", "cell01"))
        # samples/P12 has no species yet: it belongs to "Unspecified".
        self.assertEqual(m.sql("SELECT name FROM species ORDER BY name"),
                         [("HeLa",), ("Unspecified",)])
        self.assertEqual(m.sql("SELECT name FROM sample ORDER BY name"),
                         [("P12",), ("P13",), ("S8",)])
        self.assertEqual(m.sql("SELECT short_name FROM dye"), [("A647",)])
        self.assertEqual(m.sql("SELECT name FROM tag"), [("good",)])
        self.assertEqual(m.sql("SELECT sa.name FROM slide s JOIN sample sa ON sa.id = s.sample_id "
                               "WHERE s.reference = 'S7'"), [("P12",)])
        self.assertEqual(m.sql("SELECT sp.name FROM slide s JOIN sample sa ON sa.id = s.sample_id "
                               "JOIN species sp ON sp.id = sa.species_id WHERE s.reference = 'S8'"),
                         [("HeLa",)])
        self.assertEqual(m.sql("SELECT i.name FROM image i JOIN slide s ON s.id = i.slide_id "
                               "WHERE s.reference = 'S7'"), [("cell01",)])
        self.assertTrue(os.path.isdir(m.path("samples", "P12", "slides", "S7", "images", "cell01")))
        # rmdir refuses records that still have children, and changes nothing.
        for p in (("samples", "P12"), ("slides", "S7"), ("species", "HeLa")):
            self.assertErrno(errno.ENOTEMPTY, os.rmdir, m.path(*p))
        self.assertEqual(m.sql("SELECT count(*) FROM slide"), [(2,)])
        # mv slides/S7 samples/P13/slides/ re-parents the slide.
        s7 = m.sql("SELECT id FROM slide WHERE reference = 'S7'")[0][0]
        self.run_tool("mv", m.path("slides", "S7"), m.path("samples", "P13", "slides") + "/")
        self.assertEqual(m.sql("SELECT sa.name FROM slide s JOIN sample sa ON sa.id = s.sample_id "
                               "WHERE s.id = ?", (s7,)), [("P13",)])
        self.assertTrue(os.path.isdir(m.path("samples", "P13", "slides", "S7", "images", "cell01")))
        self.assertFalse(os.path.exists(m.path("samples", "P12", "slides", "S7")))
        # Renaming a directory renames the record's key (ids stay).
        ids = {t: m.sql(f"SELECT id FROM {t} WHERE {k} = ?", (v,))[0][0] for t, k, v in
               (("slide", "reference", "S7"), ("image", "name", "cell01"), ("sample", "name", "P13"),
                ("species", "name", "HeLa"), ("dye", "short_name", "A647"))}
        os.rename(m.path("slides", "S7"), m.path("slides", "S7b"))
        os.rename(m.path("slides", "S7b", "images", "cell01"), m.path("slides", "S7b", "images", "c1"))
        os.rename(m.path("samples", "P13"), m.path("samples", "P13b"))
        os.rename(m.path("species", "HeLa"), m.path("species", "HeLa-Kyoto"))
        os.rename(m.path("dyes", "A647"), m.path("dyes", "AF647"))
        m.restart()
        self.assertEqual(m.sql("SELECT reference FROM slide WHERE id = ?", (ids["slide"],)), [("S7b",)])
        self.assertEqual(m.sql("SELECT name FROM image WHERE id = ?", (ids["image"],)), [("c1",)])
        self.assertEqual(m.sql("SELECT name FROM sample WHERE id = ?", (ids["sample"],)), [("P13b",)])
        self.assertEqual(m.sql("SELECT name FROM species WHERE id = ?", (ids["species"],)),
                         [("HeLa-Kyoto",)])
        self.assertEqual(m.sql("SELECT short_name FROM dye WHERE id = ?", (ids["dye"],)), [("AF647",)])
        self.assertTrue(os.path.isdir(m.path("samples", "P13b", "slides", "S7b", "images", "c1")))
        self.assertTrue(os.path.isdir(m.path("species", "HeLa-Kyoto", "slides", "S8")))
        # rmdir of empty records deletes them, deepest first.
        os.rmdir(m.path("slides", "S7b", "images", "c1"))
        os.rmdir(m.path("slides", "S7b"))
        os.rmdir(m.path("samples", "P13b"))
        os.rmdir(m.path("samples", "P12"))
        os.rmdir(m.path("dyes", "AF647"))
        os.rmdir(m.path("tags", "good"))
        os.rmdir(m.path("slides", "S8"))
        for table in ("image", "slide", "dye", "tag"):
            self.assertEqual(m.sql(f"SELECT count(*) FROM {table}"), [(0,)], table)
        self.assertEqual(m.sql("SELECT name FROM sample"), [("S8",)])
        m.restart()
        self.assertEqual(sorted(os.listdir(m.path("samples"))), ["S8"])
        self.assertEqual(os.listdir(m.path("slides")), [])

    def test_moved_slide_is_gone_from_its_old_sample_when_rename_returns(self):
        # The rename awaits the notices that drop the slide's other paths
        # (Invalidator::PostRenamedRecord): the old path through the old
        # sample, cached by the kernel just before, must not resolve right
        # after rename() returns (it did under load while they were queued).
        m = self.m
        for name in ("P12", "P13"):
            os.mkdir(m.path("samples", name))
        os.mkdir(m.path("samples", "P12", "slides", "S7"))
        os.mkdir(m.path("slides", "S7", "images", "cell01"))
        src, dst = "P12", "P13"
        for i in range(50):
            # Cached through the old sample (and its image below it).
            self.assertTrue(os.path.isdir(m.path("samples", src, "slides", "S7", "images", "cell01")), i)
            os.rename(m.path("slides", "S7"), m.path("samples", dst, "slides", "S7"))
            self.assertFalse(os.path.exists(m.path("samples", src, "slides", "S7")), (i, src))
            self.assertTrue(os.path.isdir(m.path("samples", dst, "slides", "S7", "images", "cell01")), i)
            src, dst = dst, src
        self.assertEqual(m.sql("SELECT sa.name FROM slide s JOIN sample sa ON sa.id = s.sample_id "
                               "WHERE s.reference = 'S7'"), [(src,)])


class KindAfterRename(WriteTestCase):
    """Issue 13 point 7: a file written under a temporary name and renamed
    (rsync, editors, tempfile + os.replace) takes the kind of its final
    name, so `WHERE kind = 'raw'` finds what rsync -a copied."""

    def kinds(self, rel):
        folder = self.record(rel)
        return dict(self.m.sql("SELECT name, kind FROM entry WHERE parent_id = ? AND type = 'file'",
                               (folder["id"],)))

    def test_rsync_a_files_take_the_kind_of_their_names(self):
        files = self.make_image()
        tree = os.path.join(self.src, "run")
        make_tree(tree, files={"raw_0001.h5": os.urandom(100_000), "stack.ome.tif": os.urandom(50_000),
                               "localisations.csv": b"x,y\n1,2\n", "notes.txt": b"ok\n",
                               "Pos0/img_000000000_Cy5_000.tif": os.urandom(20_000)})
        self.run_tool("rsync", "-a", tree, files)
        self.run_tool("sync", files)  # waits for the background commits
        self.assertNoTempFiles()
        self.assertEqual(self.kinds("run"), {"raw_0001.h5": "raw", "stack.ome.tif": "raw",
                                             "localisations.csv": "analysis", "notes.txt": "other"})
        self.assertEqual(self.kinds("run/Pos0"), {"img_000000000_Cy5_000.tif": "raw"})
        self.assertEqual(sorted(r[0] for r in self.m.sql("SELECT path FROM file_info WHERE kind = 'raw'")),
                         ["run/Pos0/img_000000000_Cy5_000.tif", "run/raw_0001.h5", "run/stack.ome.tif"])
        out = self.run_tool("getfattr", "--absolute-names", "--only-values", "-n", "user.samplefs.kind",
                            os.path.join(files, "run", "raw_0001.h5")).stdout
        self.assertEqual(out, "raw")
        self.m.restart()
        self.assertEqual(self.kinds("run")["raw_0001.h5"], "raw")

    def test_tempfile_os_replace_and_mv(self):
        files = self.make_image()
        os.mkdir(os.path.join(files, "other"))
        # New name, and over an existing file (the record renamed wins).
        with open(os.path.join(files, "fit.h5r"), "wb") as f:
            f.write(b"old")
        for final in ("table.csv", "fit.h5r"):
            with tempfile.NamedTemporaryFile(dir=files, delete=False) as t:
                t.write(b"new " + final.encode())
            os.replace(t.name, os.path.join(files, final))
        # mv into another folder, and a plain rename.
        with open(os.path.join(files, "a.tmp"), "wb") as f:
            f.write(b"frame")
        self.run_tool("mv", os.path.join(files, "a.tmp"), os.path.join(files, "other", "a.tif"))
        self.run_tool("sync", files)
        self.assertEqual(self.kinds(""), {"table.csv": "analysis", "fit.h5r": "analysis"})
        self.assertEqual(self.kinds("other"), {"a.tif": "raw"})
        self.run_tool("mv", os.path.join(files, "other", "a.tif"), os.path.join(files, "other", "a.bak"))
        self.assertEqual(self.kinds("other"), {"a.bak": "other"})


if __name__ == "__main__":
    unittest.main()
