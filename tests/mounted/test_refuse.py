"""Issue 4: operations that have no meaning in the catalog are refused.

Each refusal is checked three ways (SPEC section 4, "anything that has no
meaning ... a clear errno, a reason in .samplefs/errors, nothing changed"):
the errno; a full SQL dump of the catalog (and the object store's listing)
identical before and after; and a new line in .samplefs/errors naming the
operation. Refusals the kernel answers itself, without asking the daemon
(an existing name for mkdir, every write on a `-o ro` mount), cannot leave
a line there: those assert the errno and the unchanged catalog only.
"""
import errno
import os
import socket
import sqlite3
import stat
import unittest

from mountlib import Mount, MountedTestCase

# Sidecar JSON files are edited by writing them: the document is validated
# at close and applied in one transaction or rejected whole with EINVAL
# (SPEC section 4). Before sidecar editing landed they were refused at open
# with EPERM (EACCES if the kernel answered from the file mode); if that
# ever comes back, add those errnos here. Every document below is bad, so
# it must be refused either way and change nothing.
SIDECAR_REFUSED_ERRNOS = (errno.EINVAL,)
BAD_SIDECAR_EDITS = [
    # (what, bytes written, open flags)
    ("invalid JSON", b'{"notes": \n', os.O_WRONLY | os.O_TRUNC),
    ("unknown field", b'{"no_such_field": 1}\n', os.O_WRONLY | os.O_TRUNC),
    ("not an object", b'[1, 2, 3]\n', os.O_WRONLY | os.O_TRUNC),
    ("overwrites the start", b'{"notes": "x"}\n', os.O_RDWR),
    ("appends a second document", b'{"notes": "x"}\n', os.O_WRONLY | os.O_APPEND),
]


class RefuseTestCase(MountedTestCase):
    def setUp(self):
        super().setUp()
        self.files = self.make_image()  # species HeLa, slide S1, image cell01
        with open(os.path.join(self.files, "data.tif"), "wb") as f:
            f.write(b"data")
        os.mkdir(os.path.join(self.files, "folder"))
        with open(os.path.join(self.files, "folder", "inner.txt"), "wb") as f:
            f.write(b"inner")

    def dump(self):
        """The whole catalog as SQL text, plus every object in the store."""
        self.m.settle()
        con = sqlite3.connect(f"file:{self.m.catalog}?mode=ro", uri=True, timeout=10)
        try:
            # Not the mount's own session row: its heartbeat ticks every 10 s.
            sql = "\n".join(row for row in con.iterdump()
                             if "mount_session" not in row[:40] or row.startswith("CREATE"))
        finally:
            con.close()
        objects = sorted(os.path.relpath(os.path.join(d, f), self.m.store)
                         for d, _, fs in os.walk(os.path.join(self.m.store, "objects")) for f in fs)
        return sql, objects

    def error_lines(self):
        return self.m.errors().splitlines()

    def assertRefused(self, err, fn, *args, logged=None, **kw):
        """fn(*args) fails with `err`, changes nothing, and (unless logged is
        False) adds a line to .samplefs/errors containing `logged` (or just a
        line if logged is None)."""
        before, lines = self.dump(), self.error_lines()
        self.assertErrno(err, fn, *args, **kw)
        self.assertEqual(self.dump(), before, f"{fn.__name__}{args} changed the catalog")
        if logged is False:
            return
        new = self.error_lines()[len(lines):]
        self.assertTrue(new, f"{fn.__name__}{args}: no line in .samplefs/errors")
        if logged:
            self.assertTrue(any(logged in l for l in new), f"{logged!r} not in {new}")

    # Small wrappers so the refused operation reads as one call.
    @staticmethod
    def create(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    @staticmethod
    def open_write(path, flags=os.O_WRONLY):
        os.close(os.open(path, flags))


class Refusals(RefuseTestCase):
    def test_files_outside_files_dir(self):
        m = self.m
        # (Record directories such as slides/S1/ take editors' scratch files
        # next to their sidecars, see fs/scratch.h: not refused there.)
        for parent in (m.path("slides"), m.path("species"), m.path("samples"), m.path(),
                       m.path("slides", "S1", "images"), m.path("species", "HeLa", "slides"),
                       m.path("dyes"), m.path("tags"), m.path("structures"),
                       m.path(".samplefs")):
            self.assertRefused(errno.EPERM, self.create, os.path.join(parent, "x.tif"),
                               logged="create")
            self.assertFalse(os.path.exists(os.path.join(parent, "x.tif")))
        # A file moved out of files/ into a view is refused the same way.
        self.assertRefused(errno.EPERM, os.rename, os.path.join(self.files, "data.tif"),
                           m.path("slides", "data.tif"), logged="rename")
        self.assertRefused(errno.EPERM, os.symlink, "x", m.path("slides", "S1", "link"),
                           logged="symlink")
        self.assertRefused(errno.EPERM, os.mkdir, os.path.join(m.path("slides", "S1"), "sub"),
                           logged="mkdir")
        # A slide needs a sample: not in slides/ itself.
        self.assertRefused(errno.EPERM, os.mkdir, m.path("slides", "S9"), logged="mkdir")

    def test_hard_link(self):
        self.assertRefused(errno.EPERM, os.link, os.path.join(self.files, "data.tif"),
                           os.path.join(self.files, "hard.tif"), logged="link")
        self.assertRefused(errno.EPERM, os.link, os.path.join(self.files, "data.tif"),
                           os.path.join(self.files, "folder", "hard.tif"), logged="link")

    def test_fifo_device_socket(self):
        fifo = os.path.join(self.files, "fifo")
        self.assertRefused(errno.EPERM, os.mkfifo, fifo, logged="mknod")
        self.assertRefused(errno.EPERM, os.mknod, os.path.join(self.files, "null"),
                           0o600 | stat.S_IFCHR, os.makedev(1, 3))
        self.assertRefused(errno.EPERM, os.mknod, os.path.join(self.files, "blk"),
                           0o600 | stat.S_IFBLK, os.makedev(7, 0))
        sock = socket.socket(socket.AF_UNIX)
        try:
            self.assertRefused(errno.EPERM, sock.bind, os.path.join(self.files, "sock"),
                               logged="mknod")
        finally:
            sock.close()
        self.assertEqual(sorted(os.listdir(self.files)), ["data.tif", "folder"])

    def test_mkdir_where_it_means_nothing(self):
        m = self.m
        os.mkdir(m.path("dyes", "A647"))
        os.mkdir(m.path("tags", "good"))
        for parent in (m.path("dyes", "A647", "slides"), m.path("tags", "good", "slides"),
                       m.path("tags", "good", "images"), m.path("structures"),
                       m.path(".samplefs"), m.path("slides", "S1", "images", "cell01"),
                       m.path("slides", "S1"), m.path()):
            self.assertRefused(errno.EPERM, os.mkdir, os.path.join(parent, "S9"), logged="mkdir")

    def test_names_over_255_bytes(self):
        m = self.m
        long = "n" * 256
        long_utf8 = "é" * 128  # 256 bytes in 128 characters
        for name in (long, long_utf8):
            # The kernel looks the new name up first: the line may say lookup.
            self.assertRefused(errno.ENAMETOOLONG, self.create, os.path.join(self.files, name),
                               logged="256 bytes")
            self.assertRefused(errno.ENAMETOOLONG, os.mkdir, os.path.join(self.files, name))
            self.assertRefused(errno.ENAMETOOLONG, os.symlink, "t", os.path.join(self.files, name))
            self.assertRefused(errno.ENAMETOOLONG, os.rename, os.path.join(self.files, "data.tif"),
                               os.path.join(self.files, name), logged="256 bytes")
            for view in ("species", "samples", "dyes", "tags"):
                self.assertRefused(errno.ENAMETOOLONG, os.mkdir, m.path(view, name))
            self.assertRefused(errno.ENAMETOOLONG, os.mkdir, m.path("slides", "S1", "images", name))
            self.assertRefused(errno.ENAMETOOLONG, os.mkdir,
                               m.path("species", "HeLa", "slides", name))
        # 255 bytes is allowed.
        ok = "é" * 127 + "x"
        with open(os.path.join(self.files, ok), "wb") as f:
            f.write(b"ok")
        self.assertIn(ok, os.listdir(self.files))

    def test_names_not_utf8(self):
        m = self.m
        files = os.fsencode(self.files)
        for name in (b"bad\xff.tif", b"\xc3\x28", b"over\xc0\xaflong", b"sur\xed\xa0\x80"):
            self.assertRefused(errno.EINVAL, self.create, os.path.join(files, name),
                               logged="UTF-8")
            self.assertRefused(errno.EINVAL, os.mkdir, os.path.join(files, name))
            self.assertRefused(errno.EINVAL, os.symlink, b"t", os.path.join(files, name))
            self.assertRefused(errno.EINVAL, os.rename, os.path.join(files, b"data.tif"),
                               os.path.join(files, name))
            self.assertRefused(errno.EINVAL, os.mkdir, os.path.join(os.fsencode(m.path("species")),
                                                                    name))
            self.assertRefused(errno.EINVAL, os.mkdir,
                               os.path.join(os.fsencode(m.path("slides", "S1", "images")), name))
        self.assertEqual(sorted(os.listdir(self.files)), ["data.tif", "folder"])
        # The errors file stays UTF-8 text: the bad bytes are shown escaped.
        self.assertIn("bad\\xff.tif", self.m.errors())

    def test_rmdir_not_empty(self):
        m = self.m
        for path in (os.path.join(self.files, "folder"),              # a folder with a file
                     m.path("slides", "S1", "images", "cell01"),      # an image with files
                     m.path("slides", "S1"),                          # a slide with an image
                     m.path("samples", "S1"),                         # a sample with a slide
                     m.path("species", "HeLa")):                      # a species with a sample
            self.assertRefused(errno.ENOTEMPTY, os.rmdir, path, logged="rmdir")
            self.assertTrue(os.path.isdir(path))
        # rename over a non-empty folder is refused the same way.
        os.mkdir(os.path.join(self.files, "other"))
        self.assertRefused(errno.ENOTEMPTY, os.rename, os.path.join(self.files, "other"),
                           os.path.join(self.files, "folder"), logged="rename")
        with open(os.path.join(self.files, "folder", "inner.txt"), "rb") as f:
            self.assertEqual(f.read(), b"inner")

    def test_mkdir_existing(self):
        m = self.m
        os.mkdir(m.path("samples", "P2"))
        # A name the kernel already sees: it answers EEXIST without asking.
        for path in (m.path("species", "HeLa"), m.path("slides", "S1", "images", "cell01"),
                     os.path.join(self.files, "folder"), os.path.join(self.files, "data.tif"),
                     m.path("samples", "P2")):
            self.assertRefused(errno.EEXIST, os.mkdir, path, logged=False)
        # A key taken by a record this directory does not show: slide
        # references are unique in the whole catalog.
        self.assertRefused(errno.EEXIST, os.mkdir, m.path("samples", "P2", "slides", "S1"),
                           logged="mkdir")
        os.mkdir(m.path("species", "Rat"))
        self.assertRefused(errno.EEXIST, os.mkdir, m.path("species", "Rat", "slides", "S1"),
                           logged="mkdir")
        # O_EXCL on an existing file.
        self.assertRefused(errno.EEXIST, self.create, os.path.join(self.files, "data.tif"),
                           logged=False)

    def test_other_refusals(self):
        m = self.m
        data = os.path.join(self.files, "data.tif")
        # Another owner: everything belongs to the mounting user.
        self.assertRefused(errno.EPERM, os.chown, data, 12345, -1, logged="chown")
        # The content hash is derived, never written.
        self.assertRefused(errno.EPERM, os.setxattr, data, "user.samplefs.hash", b"xxh3-128:00",
                           logged="setxattr")
        # RENAME_EXCHANGE has no meaning for records.
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)

        def exchange(a, b):
            if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        self.assertRefused(errno.EINVAL, exchange, data, os.path.join(self.files, "folder"),
                           logged="rename")
        # An image moves between slides' images/, not into files/.
        os.mkdir(m.path("slides", "S1", "images", "cell02"))
        self.assertRefused(errno.EPERM, os.rename, m.path("slides", "S1", "images", "cell01"),
                           m.path("slides", "S1", "images", "cell02", "files", "cell01"),
                           logged="rename")


class Sidecars(RefuseTestCase):
    @staticmethod
    def write_doc(path, data, flags):
        fd = os.open(path, flags)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)  # a rejected document fails here

    def test_bad_sidecar_edits_change_nothing(self):
        m = self.m
        os.mkdir(m.path("dyes", "A647"))
        docs = [m.path("species", "HeLa", "species.json"), m.path("samples", "S1", "sample.json"),
                m.path("slides", "S1", "slide.json"),
                m.path("slides", "S1", "images", "cell01", "image.json"),
                m.path("dyes", "A647", "dye.json")]
        for doc in docs:
            with open(doc, "rb") as f:
                before = f.read()
            for what, data, flags in BAD_SIDECAR_EDITS:
                with self.subTest(doc=doc, edit=what):
                    dump, lines = self.dump(), self.error_lines()
                    with self.assertRaises(OSError) as cm:
                        self.write_doc(doc, data, flags)
                    self.assertIn(cm.exception.errno, SIDECAR_REFUSED_ERRNOS, str(cm.exception))
                    self.assertEqual(self.dump(), dump, "a rejected document changed the catalog")
                    self.assertGreater(len(self.error_lines()), len(lines), "no line in errors")
                    with open(doc, "rb") as f:
                        self.assertEqual(f.read(), before, doc)
            # truncate(2) with no open handle has no document to validate.
            self.assertRefused(errno.EPERM, os.truncate, doc, 0, logged="")
        # An editor's save (temporary file renamed over the sidecar) with a
        # bad document is refused at the rename.
        slide_json = m.path("slides", "S1", "slide.json")
        tmp = m.path("slides", "S1", ".slide.json.tmp")
        with open(tmp, "wb") as f:
            f.write(b'{"notes": ')
        self.assertRefused(errno.EINVAL, os.rename, tmp, slide_json, logged="rename")
        # Sidecars cannot be removed or replaced by a data file.
        self.assertRefused(errno.EPERM, os.unlink, slide_json, logged="unlink")
        self.assertRefused(errno.EPERM, os.rename, os.path.join(self.files, "data.tif"), slide_json,
                           logged="rename")

    def test_generated_files_are_read_only(self):
        m = self.m
        for doc in (m.path(".samplefs", "status.json"), m.path(".samplefs", "errors")):
            for flags in (os.O_WRONLY | os.O_TRUNC, os.O_RDWR, os.O_WRONLY | os.O_APPEND):
                with self.subTest(doc=doc, flags=flags):
                    self.assertRefused(errno.EPERM, self.write_doc, doc, b"{}", flags,
                                       logged="open")
            self.assertRefused(errno.EPERM, os.truncate, doc, 0, logged="")
            self.assertRefused(errno.EPERM, os.unlink, doc, logged="unlink")


class ReadOnlyMount(RefuseTestCase):
    def test_ro_mount_refuses_every_write(self):
        self.m.stop()
        self.m = Mount(self.tmp, ["ro"])
        self.m.start()
        m, files = self.m, self.files
        data = os.path.join(files, "data.tif")
        with open(data, "rb") as f:
            self.assertEqual(f.read(), b"data")
        ops = [
            (self.create, os.path.join(files, "new.tif")),
            (self.open_write, data),
            (self.open_write, data, os.O_WRONLY | os.O_TRUNC),
            (self.open_write, data, os.O_RDWR | os.O_APPEND),
            (os.truncate, data, 0),
            (os.mkdir, os.path.join(files, "d")),
            (os.mkdir, m.path("species", "Mouse")),
            (os.mkdir, m.path("samples", "P1")),
            (os.mkdir, m.path("dyes", "A488")),
            (os.mkdir, m.path("tags", "good")),
            (os.mkdir, m.path("species", "HeLa", "slides", "S2")),
            (os.mkdir, m.path("slides", "S1", "images", "cell02")),
            (os.rmdir, os.path.join(files, "folder")),
            (os.rmdir, m.path("slides", "S1", "images", "cell01")),
            (os.unlink, data),
            (os.rename, data, os.path.join(files, "renamed.tif")),
            (os.rename, m.path("slides", "S1"), m.path("slides", "S2")),
            (os.symlink, "data.tif", os.path.join(files, "link")),
            (os.link, data, os.path.join(files, "hard")),
            (os.mkfifo, os.path.join(files, "fifo")),
            (os.chmod, data, 0o600),
            (os.utime, data, None),
            (os.setxattr, data, "user.origin", b"x"),
            (os.setxattr, m.path("slides", "S1"), "user.xdg.tags", b"good"),
            (os.removexattr, data, "user.xdg.comment"),
            (self.open_write, m.path("slides", "S1", "slide.json")),
        ]
        for fn, *args in ops:
            with self.subTest(op=fn.__name__, args=args):
                self.assertRefused(errno.EROFS, fn, *args, logged=False)
        self.assertEqual(sorted(os.listdir(files)), ["data.tif", "folder"])
        # The same catalog mounted read-write again works as before.
        self.m.stop()
        self.m = Mount(self.tmp)
        self.m.start()
        with open(os.path.join(files, "new.tif"), "wb") as f:
            f.write(b"new")
        self.assertEqual(sorted(os.listdir(files)), ["data.tif", "folder", "new.tif"])


if __name__ == "__main__":
    unittest.main()
