"""Issue 5, "Editing metadata": acceptance tests of changing records through
a mount with the tools a lab uses.

Every scenario drives the real daemon with real tools (setfattr/getfattr,
python3, an editor's save: vim, sed -i, ed, a temp file renamed over the
sidecar; ls, cp -a, rsync -aX, samplectl, sqlite3) and checks the result
three ways: what the mount shows afterwards (views such as tags/<t>/ and
dyes/<d>/slides/, getfattr, the sidecar), the catalog's rows (SQL), and,
for every refusal, that the catalog is unchanged (`samplectl dump` and an
SQL iterdump before and after are identical) and the reason is in
.samplefs/errors (SPEC section 4: sidecars, extended attributes, query/).
"""
import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from mountlib import SAMPLECTL, MountedTestCase

# Names that would break SQL built by string pasting. None contains ',' (the
# tag separator of user.xdg.tags) or '/' (not a file name).
NASTY = ["x'); DROP TABLE slide;--", 'say "cheese"', "semi;colon;", "it's", "Robert'); --"]


def setfattr(path, name, value):
    """setfattr(1) of a text value; returns the CompletedProcess."""
    return subprocess.run(["setfattr", "-n", name, "-v", value, path],
                          capture_output=True, text=True)


def getfattr(path, name):
    """getfattr(1) --only-values, or None when the attribute is absent."""
    r = subprocess.run(["getfattr", "--only-values", "--absolute-names", "-n", name, path],
                       capture_output=True)
    if r.returncode != 0:
        return None
    return r.stdout.decode()


def write_doc(path, text):
    """Writes `text` over `path` as one open/write/close; returns the errno
    of the first failing call (0 when everything succeeded)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as e:
        return e.errno
    try:
        data = text.encode() if isinstance(text, str) else text
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except OSError as e:
        os.close(fd)
        return e.errno
    try:
        os.close(fd)
    except OSError as e:
        return e.errno
    return 0



def _gone_within_a_second(testcase, path):
    deadline = time.monotonic() + 1.0
    while True:
        try:
            os.stat(path)
        except FileNotFoundError:
            return
        if time.monotonic() > deadline:
            testcase.fail(f"{path} still exists a second after its record went away")
        time.sleep(0.01)

class MetadataTestCase(MountedTestCase):
    """A mount with helpers to build records and snapshot the catalog."""

    def assertGoneWithinASecond(self, path):
        _gone_within_a_second(self, path)

    def setUp(self):
        super().setUp()
        self.src = tempfile.mkdtemp(prefix="samplefs-meta-src-")
        self.addCleanup(shutil.rmtree, self.src, True)

    # -- building ----------------------------------------------------------
    def slide(self, ref, species="HeLa", sample=None):
        """Creates a slide (and its species/sample) through the mount."""
        m = self.m
        if not os.path.isdir(m.path("species", species)):
            os.mkdir(m.path("species", species))
        if sample is None:
            os.mkdir(m.path("species", species, "slides", ref))
        else:
            if not os.path.isdir(m.path("samples", sample)):
                os.mkdir(m.path("species", species, "slides", sample))
                # mkdir species/<sp>/slides/<x> made a sample called <x> and
                # a slide <x>: keep the sample, drop the slide.
                os.rmdir(m.path("slides", sample))
            os.mkdir(m.path("samples", sample, "slides", ref))
        return m.path("slides", ref)

    def image(self, ref, name):
        os.mkdir(self.m.path("slides", ref, "images", name))
        return self.m.path("slides", ref, "images", name)

    def dye(self, name):
        if not os.path.isdir(self.m.path("dyes", name)):
            os.mkdir(self.m.path("dyes", name))

    def put_file(self, ref, image, rel, data=b"pixels\n"):
        p = self.m.path("slides", ref, "images", image, "files", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def setx(self, path, name, value):
        r = setfattr(path, name, value)
        self.assertEqual(r.returncode, 0, f"setfattr -n {name} -v {value!r} {path}: {r.stderr}")

    # -- reading -------------------------------------------------------------
    def ls(self, *parts):
        r = self.run_tool("ls", "-1A", "--quoting-style=literal", self.m.path(*parts))
        return sorted(r.stdout.splitlines())

    def sidecar(self, *parts):
        with open(self.m.path(*parts)) as f:
            return json.load(f)

    def snapshot(self):
        """The whole catalog: samplectl dump output and an SQL iterdump."""
        self.m.settle()
        r = self.run_tool(SAMPLECTL, "--config", self.m.config, "dump")
        with contextlib.closing(self.m.db()) as con:
            # Not the mount's own session row: its heartbeat ticks every 10 s.
            rows = [row for row in con.iterdump()
                    if "mount_session" not in row[:40] or row.startswith("CREATE")]
        return r.stdout, rows

    def assertUnchanged(self, before, what):
        after = self.snapshot()
        self.assertEqual(after[0], before[0], f"{what}: samplectl dump changed")
        self.assertEqual(after[1], before[1], f"{what}: the catalog's rows changed")

    def assertErrorLogged(self, *needles):
        log = self.m.errors()
        for n in needles:
            self.assertIn(n, log, f".samplefs/errors lacks {n!r}:\n{log}")

    def slide_row(self, ref):
        rows = self.m.sql("SELECT id, notes, creator, created, modified, sample_id FROM slide "
                          "WHERE reference = ?", (ref,))
        self.assertEqual(len(rows), 1, f"slide {ref}")
        return rows[0]

    def labellings(self, ref):
        return self.m.sql(
            "SELECT l.structure, l.isotype, l.antibody, d.short_name FROM labelling l "
            "JOIN dye d ON d.id = l.dye_id JOIN slide s ON s.id = l.slide_id "
            "WHERE s.reference = ? ORDER BY l.id", (ref,))

    def tags_sql(self, entity, record_id):
        return sorted(r[0] for r in self.m.sql(
            "SELECT t.name FROM tagging g JOIN tag t ON t.id = g.tag_id "
            "WHERE g.entity = ? AND g.record_id = ?", (entity, record_id)))


# ---------------------------------------------------------------------------
class TagsAndAttributes(MetadataTestCase):
    """user.xdg.tags, tags/<t>/ directories, read-only fields."""

    def test_xdg_tags_on_a_slide(self):
        m = self.m
        s1 = self.slide("S1")
        self.slide("S2")
        # Look at the views first, so that stale kernel caches would show.
        self.assertEqual(self.ls("tags"), [])
        self.assertEqual(getfattr(m.path("species", "HeLa", "slides", "S1"), "user.xdg.tags"), None)
        self.setx(s1, "user.xdg.tags", "good,confocal")
        self.assertEqual(self.ls("tags"), ["confocal", "good"])
        self.assertEqual(self.ls("tags", "good", "slides"), ["S1"])
        self.assertEqual(self.ls("tags", "confocal", "slides"), ["S1"])
        self.assertEqual(self.ls("tags", "good", "images"), [])
        # getfattr reads it back, through the canonical path and another view.
        for p in (s1, m.path("species", "HeLa", "slides", "S1"), m.path("tags", "good", "slides", "S1")):
            self.assertEqual(sorted(getfattr(p, "user.xdg.tags").split(",")), ["confocal", "good"], p)
        r = self.run_tool("getfattr", "-d", "--absolute-names", s1)
        self.assertIn('user.xdg.tags="confocal,good"', r.stdout)
        sid = self.slide_row("S1")[0]
        self.assertEqual(self.tags_sql("slide", sid), ["confocal", "good"])
        # The slide's tags in slide.json and in the query view.
        self.assertEqual(sorted(self.sidecar("slides", "S1", "slide.json")["tags"]), ["confocal", "good"])
        self.assertEqual(self.ls("query", "tag=good", "slides"), ["S1"])
        # A tag that cannot be a directory name is refused, and changes nothing.
        before = self.snapshot()
        r = setfattr(s1, "user.xdg.tags", "good,a/b")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Invalid argument", r.stderr)
        self.assertUnchanged(before, "a tag with '/'")
        self.assertErrorLogged("setxattr /slides/S1: tag name contains '/'")
        # XATTR_CREATE of present tags is EEXIST; XATTR_REPLACE replaces them.
        self.assertErrno(errno.EEXIST, os.setxattr, s1, "user.xdg.tags", b"x", os.XATTR_CREATE)
        self.assertErrno(errno.ENODATA, os.setxattr, m.path("slides", "S2"), "user.xdg.tags", b"x",
                         os.XATTR_REPLACE)
        self.assertUnchanged(before, "setxattr with XATTR_CREATE/XATTR_REPLACE refused")
        # setfattr replaces the set.
        self.setx(s1, "user.xdg.tags", " good , ")
        self.assertEqual(getfattr(s1, "user.xdg.tags"), "good")
        self.assertEqual(self.ls("tags", "confocal", "slides"), [])
        # setfattr -x removes them all.
        self.run_tool("setfattr", "-x", "user.xdg.tags", s1)
        self.assertEqual(self.ls("tags", "good", "slides"), [])
        self.assertIsNone(getfattr(s1, "user.xdg.tags"))
        self.assertErrno(errno.ENODATA, os.getxattr, s1, "user.xdg.tags")
        self.assertErrno(errno.ENOENT, os.stat, m.path("tags", "good", "slides", "S1"))
        self.assertEqual(self.tags_sql("slide", sid), [])
        # Removing what is not there is ENODATA.
        r = self.run_tool("setfattr", "-x", "user.xdg.tags", s1, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertErrno(errno.ENODATA, os.removexattr, s1, "user.xdg.tags")

    def test_tags_on_images_files_and_folders(self):
        m = self.m
        self.slide("S1")
        img = self.image("S1", "cell01")
        f = self.put_file("S1", "cell01", "a.tif")
        nested = self.put_file("S1", "cell01", "Pos0/img_000.tif")
        folder = m.path("slides", "S1", "images", "cell01", "files", "Pos0")
        self.setx(img, "user.xdg.tags", "todo")
        self.setx(f, "user.xdg.tags", "todo,raw")
        self.setx(nested, "user.xdg.tags", "raw")
        self.setx(folder, "user.xdg.tags", "raw")
        self.assertEqual(self.ls("tags", "todo", "images"), ["S1:cell01"])
        self.assertEqual(self.ls("tags", "todo", "slides"), [])
        self.assertEqual(self.ls("tags", "todo", "files"), ["S1:cell01:a.tif"])
        self.assertEqual(self.ls("tags", "raw", "files"),
                         ["S1:cell01:Pos0", "S1:cell01:Pos0:img_000.tif", "S1:cell01:a.tif"])
        self.assertEqual(self.ls("tags", "raw", "images"), [])
        # The listed names are the records themselves.
        with open(m.path("tags", "raw", "files", "S1:cell01:Pos0:img_000.tif"), "rb") as fh:
            self.assertEqual(fh.read(), b"pixels\n")
        self.assertEqual(self.ls("tags", "todo", "images", "S1:cell01", "files"), ["Pos0", "a.tif"])
        self.assertEqual(getfattr(m.path("tags", "todo", "images", "S1:cell01"), "user.xdg.tags"), "todo")
        self.assertEqual(getfattr(f, "user.xdg.tags"), "raw,todo")
        (fid,), = m.sql("SELECT id FROM entry WHERE name = 'a.tif'")
        self.assertEqual(self.tags_sql("entry", fid), ["raw", "todo"])
        # image.json shows the image's tags.
        self.assertEqual(self.sidecar("slides", "S1", "images", "cell01", "image.json")["tags"], ["todo"])
        # Removing the attribute takes the file out of the view.
        self.run_tool("setfattr", "-x", "user.xdg.tags", f)
        self.assertEqual(self.ls("tags", "todo", "files"), [])
        self.assertEqual(self.ls("tags", "raw", "files"), ["S1:cell01:Pos0", "S1:cell01:Pos0:img_000.tif"])
        # rm of a tagged file drops its tags with it.
        os.unlink(nested)
        self.assertEqual(self.ls("tags", "raw", "files"), ["S1:cell01:Pos0"])

    def test_tag_edits_keep_the_inode(self):
        """setfattr of tags and annotations renames nothing: the kernel keeps
        the inode of the path it came through (no FORGET and LOOKUP per
        edit, issue 16), tags/<t>/ shows the change at once, a name that
        left a tag goes (a slide's before setfattr returns), and getfattr
        right after setfattr reads the new value (the daemon's xattr memo
        is dropped by the edit)."""
        m = self.m
        self.slide("S1")
        self.image("S1", "cell01")
        f = self.put_file("S1", "cell01", "a.tif")
        s1 = m.path("species", "HeLa", "slides", "S1")
        ino = {p: os.stat(p).st_ino for p in (f, s1)}
        for i in range(3):
            tag = f"t{i}"
            if i:
                # The old tag's names, cached by the kernel before the edit.
                old_s = m.path("tags", f"t{i - 1}", "slides", "S1")
                old_f = m.path("tags", f"t{i - 1}", "files", "S1:cell01:a.tif")
                os.stat(old_s)
                os.stat(old_f)
            ctime = os.stat(f).st_ctime_ns
            r = self.run_tool("getfattr", "-d", "--absolute-names", f)  # answered, then memoized
            for p in (f, s1):
                self.setx(p, "user.xdg.tags", tag)
                self.setx(p, "user.note", f"n{i}")
            r = self.run_tool("getfattr", "-d", "--absolute-names", f)
            self.assertIn(f'user.xdg.tags="{tag}"', r.stdout)
            self.assertIn(f'user.note="n{i}"', r.stdout)
            self.assertEqual(getfattr(s1, "user.xdg.tags"), tag)
            self.assertGreater(os.stat(f).st_ctime_ns, ctime, "setfattr changes the file's ctime")
            self.assertEqual(self.ls("tags", tag, "files"), ["S1:cell01:a.tif"])
            self.assertEqual(self.ls("tags", tag, "slides"), ["S1"])
            if i:
                self.assertErrno(errno.ENOENT, os.stat, old_s)
                self.assertGoneWithinASecond(old_f)  # a file's notices are queued
                self.assertEqual(self.ls("tags", f"t{i - 1}", "files"), [])
            time.sleep(0.3)  # the queued notices are out
            for p in (f, s1):
                self.assertEqual(os.stat(p).st_ino, ino[p], f"{p}: the kernel forgot its inode after setfattr")

    def test_mkdir_and_rmdir_of_tags(self):
        m = self.m
        s1 = self.slide("S1")
        os.mkdir(m.path("tags", "review"))
        self.assertEqual(m.sql("SELECT name FROM tag"), [("review",)])
        self.assertEqual(self.ls("tags"), ["review"])
        self.assertEqual(self.ls("tags", "review"), ["files", "images", "slides"])
        self.assertEqual(self.ls("tags", "review", "slides"), [])
        self.assertErrno(errno.EEXIST, os.mkdir, m.path("tags", "review"))
        # An unused tag goes with rmdir.
        os.rmdir(m.path("tags", "review"))
        self.assertEqual(m.sql("SELECT name FROM tag"), [])
        self.assertEqual(self.ls("tags"), [])
        self.assertErrno(errno.ENOENT, os.stat, m.path("tags", "review"))
        # A used one is ENOTEMPTY and stays, with its taggings.
        os.mkdir(m.path("tags", "keep"))
        self.setx(s1, "user.xdg.tags", "keep")
        before = self.snapshot()
        r = self.run_tool("rmdir", m.path("tags", "keep"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not empty", r.stderr.lower())
        self.assertErrno(errno.ENOTEMPTY, os.rmdir, m.path("tags", "keep"))
        self.assertUnchanged(before, "rmdir of a used tag")
        self.assertEqual(self.ls("tags", "keep", "slides"), ["S1"])
        self.assertErrorLogged("tags/keep")
        # Nothing can be created inside a tag's views.
        self.assertErrno(errno.EPERM, os.mkdir, m.path("tags", "keep", "slides", "S9"))
        # Once untagged, it can go.
        self.run_tool("setfattr", "-x", "user.xdg.tags", s1)
        os.rmdir(m.path("tags", "keep"))
        self.assertEqual(m.sql("SELECT count(*) FROM tag"), [(0,)])

    def test_read_only_fields_are_eperm_and_change_nothing(self):
        m = self.m
        s1 = self.slide("S1")
        self.image("S1", "cell01")
        f = self.put_file("S1", "cell01", "a.tif")
        before = self.snapshot()
        cases = [
            (s1, "user.samplefs.id", "999"),
            (s1, "user.samplefs.modified", "2001-01-01T00:00:00Z"),
            (s1, "user.samplefs.species", "Mouse"),
            (f, "user.samplefs.hash", "xxh3-128:" + "0" * 32),
            (f, "user.samplefs.id", "1"),
            (f, "user.samplefs.size", "1"),
            (m.path("slides", "S1", "images", "cell01"), "user.samplefs.slide", "S1"),
            (m.path("species", "HeLa"), "user.samplefs.id", "5"),
        ]
        for path, name, value in cases:
            old = getfattr(path, name)
            r = setfattr(path, name, value)
            self.assertNotEqual(r.returncode, 0, f"setfattr {name} on {path} succeeded")
            self.assertIn("Operation not permitted", r.stderr, name)
            self.assertErrno(errno.EPERM, os.setxattr, path, name, value.encode())
            self.assertEqual(getfattr(path, name), old, name)
            # Removing a read-only field is refused too.
            self.assertErrno(errno.EPERM, os.removexattr, path, name)
        self.assertUnchanged(before, "setfattr of read-only fields")
        self.assertErrorLogged("read-only")

    def test_fields_comment_and_annotations(self):
        m = self.m
        s1 = self.slide("S1")
        img = self.image("S1", "cell01")
        self.setx(s1, "user.xdg.comment", "fixed in PFA")
        self.setx(s1, "user.samplefs.creator", "ana")
        self.setx(img, "user.xdg.comment", "z-stack, 40 planes")
        self.setx(img, "user.samplefs.user", "bob")
        self.setx(s1, "user.lot", "L-42")
        _, notes, creator, *_ = self.slide_row("S1")
        self.assertEqual((notes, creator), ("fixed in PFA", "ana"))
        self.assertEqual(m.sql("SELECT user, comments FROM image"), [("bob", "z-stack, 40 planes")])
        self.assertEqual(m.sql("SELECT entity, key, value FROM annotation"), [("slide", "lot", "L-42")])
        doc = self.sidecar("slides", "S1", "slide.json")
        self.assertEqual((doc["notes"], doc["creator"], doc["annotations"]),
                         ("fixed in PFA", "ana", {"lot": "L-42"}))
        r = self.run_tool("getfattr", "-d", "--absolute-names", s1)
        self.assertIn('user.lot="L-42"', r.stdout)
        self.assertIn('user.xdg.comment="fixed in PFA"', r.stdout)
        self.run_tool("setfattr", "-x", "user.lot", s1)
        self.assertEqual(m.sql("SELECT count(*) FROM annotation"), [(0,)])
        self.run_tool("setfattr", "-x", "user.xdg.comment", s1)
        self.assertEqual(self.slide_row("S1")[1], "")


# ---------------------------------------------------------------------------
EDIT_SCRIPT = r"""
import json, sys
path = sys.argv[1]
with open(path) as f:
    doc = json.load(f)
doc["notes"] = "imaged twice; see lab book p. 12"
doc["labellings"].append({"structure": "tubulin", "isotype": "IgG", "antibody": "DM1A", "dye": "A647"})
with open(path, "w") as f:
    json.dump(doc, f, indent=2)
"""


class SidecarEdits(MetadataTestCase):
    """slide.json and the other sidecars, edited in place and by editors."""

    def setUp(self):
        super().setUp()
        self.slide("S1")
        self.dye("A647")
        self.dye("A488")

    def check_labelled(self, ref, structure, dye, notes):
        """The catalog and the views show `ref` labelled `structure`:`dye`."""
        self.assertEqual(self.slide_row(ref)[1], notes)
        self.assertIn(structure, [l[0] for l in self.labellings(ref)])
        self.assertIn(ref, self.ls("dyes", dye, "slides"))
        self.assertIn(structure, self.ls("structures"))
        self.assertIn(ref, self.ls("structures", structure, "slides"))
        doc = self.sidecar("dyes", dye, "slides", ref, "slide.json")
        self.assertEqual(doc["notes"], notes)
        # Every path of the sidecar has the new document's size (ls -l, and
        # tools that read st_size bytes).
        for p in (("slides", ref), ("dyes", dye, "slides", ref), ("structures", structure, "slides", ref)):
            path = self.m.path(*p, "slide.json")
            with open(path, "rb") as f:
                self.assertEqual(os.stat(path).st_size, len(f.read()), path)

    def test_python_edit(self):
        m = self.m
        # The views before: nothing labelled yet.
        self.assertEqual(self.ls("dyes", "A647", "slides"), [])
        self.assertEqual(self.ls("structures"), [])
        modified_before = self.slide_row("S1")[4]
        self.run_tool("python3", "-c", EDIT_SCRIPT, m.path("slides", "S1", "slide.json"))
        self.assertEqual(self.labellings("S1"), [("tubulin", "IgG", "DM1A", "A647")])
        self.check_labelled("S1", "tubulin", "A647", "imaged twice; see lab book p. 12")
        # `modified` has whole seconds (ISO-8601 text): it may not have moved yet.
        self.assertGreaterEqual(self.slide_row("S1")[4], modified_before)
        self.assertEqual(self.ls("dyes", "A488", "slides"), [])
        # A second edit through another path of the same slide: the document
        # it loads is the new one (modified included), so it applies.
        other = m.path("species", "HeLa", "slides", "S1", "slide.json")
        self.run_tool("python3", "-c", EDIT_SCRIPT, other)
        self.assertEqual(len(self.labellings("S1")), 2)
        # A partial document changes only what it names.
        self.assertEqual(write_doc(m.path("slides", "S1", "slide.json"), '{"creator": "ana"}'), 0)
        row = self.slide_row("S1")
        self.assertEqual((row[1], row[2]), ("imaged twice; see lab book p. 12", "ana"))
        self.assertEqual(len(self.labellings("S1")), 2)
        # Replacing the labellings moves the slide between dye views.
        doc = self.sidecar("slides", "S1", "slide.json")
        doc["labellings"] = [{"structure": "actin", "isotype": "", "antibody": "", "dye": "A488"}]
        self.assertEqual(write_doc(m.path("slides", "S1", "slide.json"), json.dumps(doc)), 0)
        self.assertEqual(self.ls("dyes", "A647", "slides"), [])
        self.assertEqual(self.ls("dyes", "A488", "slides"), ["S1"])
        self.assertEqual(self.ls("structures"), ["actin"])
        # Invalidations reach the kernel from a thread of their own, after
        # the reply (SPEC: "within a second").
        self.assertGoneWithinASecond(m.path("structures", "tubulin"))
        # rmdir of a slide takes its labellings, and a structure only it had.
        self.slide("S2")
        self.assertEqual(write_doc(m.path("slides", "S2", "slide.json"),
                                   '{"labellings": [{"structure": "vimentin", "dye": "A647"}]}'), 0)
        self.assertEqual(self.ls("structures", "vimentin", "slides"), ["S2"])
        self.assertEqual(self.ls("dyes", "A647", "slides"), ["S2"])
        os.rmdir(m.path("slides", "S2"))
        # Invalidations reach the kernel from a thread of their own, after
        # the reply (SPEC: "within a second").
        self.assertGoneWithinASecond(m.path("structures", "vimentin"))
        # Invalidations reach the kernel from a thread of their own, after
        # the reply (SPEC: "within a second").
        self.assertGoneWithinASecond(m.path("dyes", "A647", "slides", "S2"))
        self.assertEqual(self.ls("structures"), ["actin"])

    def test_temp_file_fsync_rename(self):
        """What vim (backupcopy=no), gedit, Python's atomic writers do."""
        m = self.m
        d = m.path("slides", "S1")
        doc = self.sidecar("slides", "S1", "slide.json")
        doc["notes"] = "saved by rename"
        doc["labellings"] = [{"structure": "tubulin", "isotype": "", "antibody": "", "dye": "A647"}]
        tmp = os.path.join(d, ".slide.json.swx")
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        # The temp file reads back and is not a record.
        with open(tmp) as f:
            self.assertEqual(json.load(f)["notes"], "saved by rename")
        self.assertNotIn(".slide.json.swx", os.listdir(d))
        os.rename(tmp, os.path.join(d, "slide.json"))
        self.assertFalse(os.path.exists(tmp))
        self.assertIn("slide.json", os.listdir(d))
        self.check_labelled("S1", "tubulin", "A647", "saved by rename")
        # A bad document renamed over the sidecar is EINVAL and changes nothing.
        before = self.snapshot()
        with open(tmp, "w") as f:
            f.write('{"notes": 7}')
        self.assertErrno(errno.EINVAL, os.rename, tmp, os.path.join(d, "slide.json"))
        self.assertUnchanged(before, "rename of a bad document over slide.json")
        self.assertErrorLogged('"notes" must be a string')
        os.unlink(tmp)
        self.assertFalse(os.path.exists(tmp))

    def test_vim(self):
        if not shutil.which("vim"):
            self.skipTest("vim is not installed")
        m = self.m
        p = m.path("slides", "S1", "slide.json")
        script = ['%s/"notes": ""/"notes": "edited with vim"/',
                  '%s/"labellings": \\[\\]/"labellings": [{"structure": "actin", "dye": "A488"}]/',
                  "wq"]
        cmd = ["vim", "-u", "NONE", "-i", "NONE", "-N", "-es"]
        for c in script:
            cmd += ["-c", c]
        r = subprocess.run(cmd + [p], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=30, cwd=m.path("slides", "S1"))
        self.assertEqual(r.returncode, 0, f"vim: {r.stdout}{r.stderr}\n{m.errors()}")
        self.check_labelled("S1", "actin", "A488", "edited with vim")
        # vim fchmods the file it saved to the mode it had: a successful save
        # leaves nothing in the error log.
        self.assertEqual(m.errors(), "")
        # vim's other save: write a backup, then overwrite the file in place.
        cmd = ["vim", "-u", "NONE", "-i", "NONE", "-N", "-es", "-c", "set backupcopy=yes backup",
               "-c", '%s/edited with vim/vim again/', "-c", "wq", p]
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=30, cwd=m.path("slides", "S1"))
        self.assertEqual(r.returncode, 0, f"vim (backupcopy=yes): {r.stdout}{r.stderr}\n{m.errors()}")
        self.assertEqual(self.slide_row("S1")[1], "vim again")
        self.assertEqual(m.errors(), "")
        # A save vim cannot complete (close() fails) is an error in vim too.
        before = self.snapshot()
        r = subprocess.run(["vim", "-u", "NONE", "-i", "NONE", "-N", "-es", "-c", '%s/"creator"/"author"/',
                            "-c", "wq", p], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=30, cwd=m.path("slides", "S1"))
        self.assertNotEqual(r.returncode, 0, "vim saved a document with an unknown field")
        self.assertUnchanged(before, "vim save of a bad document")
        self.assertErrorLogged('close /slides/S1/slide.json: unknown field "author"')
        # chmod to the sidecar's own mode is accepted, any other mode is not.
        mode = os.stat(p).st_mode & 0o7777
        self.run_tool("chmod", oct(mode)[2:], p)
        r = self.run_tool("chmod", "600", p, check=False)
        self.assertIn("Operation not permitted", r.stderr)
        self.assertEqual(os.stat(p).st_mode & 0o7777, mode)
        # Its swap, backup and probe files were temporary: none is left.
        self.assertEqual(sorted(os.listdir(m.path("slides", "S1"))), ["images", "slide.json"])

    def test_sed_i(self):
        """sed -i writes ./sedXXXXXX next to the file and renames it over."""
        m = self.m
        p = m.path("slides", "S1", "slide.json")
        r = self.run_tool("sed", "-i", 's/"notes": ""/"notes": "sed; it\'s done"/', p, check=False)
        self.assertEqual(r.returncode, 0, f"sed -i: {r.stderr}\n{m.errors()}")
        self.assertEqual(self.slide_row("S1")[1], "sed; it's done")
        self.assertEqual(m.errors(), "")
        self.assertEqual(sorted(os.listdir(m.path("slides", "S1"))), ["images", "slide.json"])
        # sed -i with a bad result: sed reports the failed rename, nothing changes.
        before = self.snapshot()
        r = self.run_tool("sed", "-i", 's/"creator"/"author"/', p, check=False)
        self.assertNotEqual(r.returncode, 0, "sed -i of an unknown field succeeded")
        self.assertIn("Invalid argument", r.stderr)
        self.assertUnchanged(before, "sed -i with an unknown field")
        self.assertErrorLogged('unknown field "author"')

    def test_ed(self):
        if not shutil.which("ed"):
            self.skipTest("ed is not installed")
        m = self.m
        p = m.path("slides", "S1", "slide.json")
        r = subprocess.run(["ed", "-s", p], input=',s/"notes": ""/"notes": "ed was here"/\nw\nq\n',
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, f"ed: {r.stdout}{r.stderr}")
        self.assertEqual(self.slide_row("S1")[1], "ed was here")
        self.assertEqual(self.m.errors(), "")

    def test_bad_documents_change_nothing(self):
        m = self.m
        p = m.path("slides", "S1", "slide.json")
        doc = self.sidecar("slides", "S1", "slide.json")

        def with_(**kw):
            d = dict(doc)
            d.update(kw)
            return json.dumps(d)

        big = with_(notes="x" * (1024 * 1024 + 10))
        cases = [
            ("invalid JSON", '{"notes": "unterminated', "invalid JSON"),
            ("not an object", '["notes"]', "must be a JSON object"),
            ("unknown field", with_(colour="red"), 'unknown field "colour"'),
            ("missing dye", with_(labellings=[{"structure": "actin", "dye": "NoSuchDye"}]),
             'dye "NoSuchDye" does not exist'),
            ("labelling without structure", with_(labellings=[{"dye": "A647"}]), '"structure" is required'),
            ("wrong type", with_(notes=["a", "list"]), '"notes" must be a string'),
            ("wrong type of tags", with_(tags="good"), '"tags" must be a list'),
            ("changed id", with_(id=doc["id"] + 1), '"id" is read-only'),
            ("changed modified", with_(modified="2001-01-01T00:00:00Z"), '"modified" is read-only'),
            ("changed species", with_(species="Mouse"), '"species" is read-only'),
            ("missing sample", with_(sample="NoSuchSample"), 'sample "NoSuchSample" does not exist'),
            ("bad created", with_(created="yesterday"), "created"),
            ("oversize", big, "1 MiB"),
        ]
        for what, text, reason in cases:
            with self.subTest(what):
                before = self.snapshot()
                self.assertEqual(write_doc(p, text), errno.EINVAL, what)
                self.assertUnchanged(before, what)
                self.assertErrorLogged(reason)
                # The sidecar still shows the catalog's document.
                self.assertEqual(self.sidecar("slides", "S1", "slide.json"), doc)
        # A document loaded before someone else changed the slide is refused
        # ("modified" is an optimistic lock), once `modified` has moved on.
        stale = self.sidecar("slides", "S1", "slide.json")
        while self.slide_row("S1")[4] == stale["modified"]:
            self.setx(m.path("slides", "S1"), "user.samplefs.creator", "someone else")
            time.sleep(0.05)
        before = self.snapshot()
        stale["notes"] = "my stale edit"
        self.assertEqual(write_doc(p, json.dumps(stale)), errno.EINVAL)
        self.assertUnchanged(before, "a stale document")
        self.assertErrorLogged('"modified" is read-only')
        doc = self.sidecar("slides", "S1", "slide.json")
        # python3's own json.dump to the file reports it at close too.
        r = self.run_tool("python3", "-c",
                          "import json, sys\nwith open(sys.argv[1], 'w') as f: json.dump({'id': 0}, f)", p,
                          check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Invalid argument", r.stderr)
        self.assertEqual(self.sidecar("slides", "S1", "slide.json"), doc)

    def test_other_sidecars(self):
        m = self.m
        os.mkdir(m.path("species", "Mouse"))
        self.image("S1", "cell01")
        self.dye("A555")
        # species.json
        p = m.path("species", "HeLa", "species.json")
        doc = self.sidecar("species", "HeLa", "species.json")
        doc.update(species="Human", strain="HeLa CCL-2", notes="cervical carcinoma")
        self.assertEqual(write_doc(p, json.dumps(doc)), 0)
        self.assertEqual(m.sql("SELECT species, strain, notes FROM species WHERE name = 'HeLa'"),
                         [("Human", "HeLa CCL-2", "cervical carcinoma")])
        self.assertEqual(getfattr(m.path("species", "HeLa"), "user.samplefs.strain"), "HeLa CCL-2")
        # sample.json: moving the sample to another species moves its slides.
        (sample,) = [n for n in self.ls("samples")]
        self.assertEqual(self.ls("species", "Mouse", "slides"), [])
        p = m.path("samples", sample, "sample.json")
        doc = self.sidecar("samples", sample, "sample.json")
        doc.update(species="Mouse", sample_type="Tissue Section", patient_id="M-7")
        self.assertEqual(write_doc(p, json.dumps(doc)), 0)
        self.assertEqual(m.sql("SELECT sp.name, sa.sample_type, sa.patient_id FROM sample sa "
                               "JOIN species sp ON sp.id = sa.species_id"),
                         [("Mouse", "Tissue Section", "M-7")])
        self.assertEqual(self.ls("species", "Mouse", "slides"), ["S1"])
        self.assertEqual(self.ls("species", "HeLa", "slides"), [])
        self.assertEqual(self.sidecar("slides", "S1", "slide.json")["species"], "Mouse")
        self.assertEqual(self.ls("query", "species=Mouse", "slides"), ["S1"])
        # A species that does not exist is refused.
        before = self.snapshot()
        self.assertEqual(write_doc(p, json.dumps(dict(doc, species="Zebrafish"))), errno.EINVAL)
        self.assertUnchanged(before, "sample.json with a missing species")
        self.assertErrorLogged('species "Zebrafish" does not exist')
        # image.json
        p = m.path("slides", "S1", "images", "cell01", "image.json")
        doc = self.sidecar("slides", "S1", "images", "cell01", "image.json")
        doc.update(user="bob", comments="40 planes", acquired="2024-05-06T07:08:09Z",
                   annotations={"objective": "60x/1.4 oil"}, tags=["todo"])
        self.assertEqual(write_doc(p, json.dumps(doc)), 0)
        self.assertEqual(m.sql("SELECT user, comments, acquired FROM image"),
                         [("bob", "40 planes", "2024-05-06T07:08:09Z")])
        self.assertEqual(m.sql("SELECT entity, key, value FROM annotation"),
                         [("image", "objective", "60x/1.4 oil")])
        self.assertEqual(self.ls("tags", "todo", "images"), ["S1:cell01"])
        self.assertEqual(self.ls("query", "user=bob", "images"), ["S1:cell01"])
        before = self.snapshot()
        self.assertEqual(write_doc(p, json.dumps(dict(doc, slide="S2"))), errno.EINVAL)
        self.assertUnchanged(before, "image.json with another slide")
        self.assertErrorLogged('"slide" is read-only')
        # dye.json
        p = m.path("dyes", "A555", "dye.json")
        doc = self.sidecar("dyes", "A555", "dye.json")
        doc.update(long_name="Alexa Fluor 555", spectra_db_name="Alexa Fluor 555")
        self.assertEqual(write_doc(p, json.dumps(doc)), 0)
        self.assertEqual(m.sql("SELECT long_name, spectra_db_name FROM dye WHERE short_name = 'A555'"),
                         [("Alexa Fluor 555", "Alexa Fluor 555")])
        self.assertEqual(getfattr(m.path("dyes", "A555"), "user.samplefs.long_name"), "Alexa Fluor 555")
        # Renaming a dye through dye.json renames its directory.
        doc = self.sidecar("dyes", "A555", "dye.json")
        self.assertEqual(write_doc(p, json.dumps(dict(doc, short_name="AF555"))), 0)
        self.assertIn("AF555", self.ls("dyes"))
        self.assertNotIn("A555", self.ls("dyes"))
        # A taken name is refused.
        before = self.snapshot()
        p = m.path("dyes", "AF555", "dye.json")
        self.assertEqual(write_doc(p, json.dumps(dict(doc, short_name="A647"))), errno.EINVAL)
        self.assertUnchanged(before, "dye.json with a taken name")
        self.assertErrorLogged("dyes/AF555/dye.json")
        # Renaming a species through species.json: the old name is gone at
        # once, the slides follow.
        os.stat(m.path("species", "Mouse", "slides", "S1"))
        doc = self.sidecar("species", "Mouse", "species.json")
        self.assertEqual(write_doc(m.path("species", "Mouse", "species.json"),
                                   json.dumps(dict(doc, name="Mouse-C57BL6"))), 0)
        self.assertErrno(errno.ENOENT, os.stat, m.path("species", "Mouse"))
        self.assertEqual(self.ls("species", "Mouse-C57BL6", "slides"), ["S1"])
        self.assertEqual(self.sidecar("slides", "S1", "slide.json")["species"], "Mouse-C57BL6")


# ---------------------------------------------------------------------------
class CopiesKeepAttributes(MetadataTestCase):
    """cp -a and rsync -aX keep users' own user.* attributes."""

    def check_copy(self, dst, rel):
        """dst (rel inside files/ of S1/cell01) carries both attributes, in
        getfattr and as annotation rows of its entry."""
        m = self.m
        self.assertEqual(getfattr(dst, "user.origin"), "microscope3")
        self.assertEqual(getfattr(dst, "user.operator"), "ana; it's \"mine\"")
        rows = m.sql("SELECT a.key, a.value FROM annotation a JOIN entry_path p ON p.id = a.record_id "
                     "WHERE a.entity = 'entry' AND p.path = ? ORDER BY a.key", (rel,))
        self.assertEqual(rows, [("operator", "ana; it's \"mine\""), ("origin", "microscope3")])
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), b"raw frames\n")

    def make_source(self, name):
        src = os.path.join(self.src, name)
        with open(src, "wb") as f:
            f.write(b"raw frames\n")
        r = setfattr(src, "user.origin", "microscope3")
        if r.returncode != 0:
            self.skipTest(f"{self.src} has no user xattrs: {r.stderr}")
        self.assertEqual(setfattr(src, "user.operator", "ana; it's \"mine\"").returncode, 0)
        return src

    def test_cp_a(self):
        self.slide("S1")
        files = self.image("S1", "cell01") + "/files"
        src = self.make_source("frame.tif")
        self.run_tool("cp", "-a", src, files + "/")
        self.check_copy(os.path.join(files, "frame.tif"), "frame.tif")
        # A folder too, and a copy back out keeps them.
        os.makedirs(os.path.join(self.src, "run1"))
        shutil.move(src, os.path.join(self.src, "run1", "frame.tif"))
        self.run_tool("cp", "-a", os.path.join(self.src, "run1"), files + "/")
        self.check_copy(os.path.join(files, "run1", "frame.tif"), "run1/frame.tif")
        out = os.path.join(self.src, "out.tif")
        self.run_tool("cp", "-a", os.path.join(files, "frame.tif"), out)
        self.assertEqual(getfattr(out, "user.origin"), "microscope3")
        # A source carrying user.xdg.tags (as Dolphin writes it) arrives tagged.
        self.assertEqual(setfattr(out, "user.xdg.tags", "from-dolphin").returncode, 0)
        self.run_tool("cp", "-a", out, files + "/")
        self.assertEqual(self.ls("tags", "from-dolphin", "files"), ["S1:cell01:out.tif"])

    def test_rsync_aX(self):
        if not shutil.which("rsync"):
            self.skipTest("rsync is not installed")
        self.slide("S1")
        files = self.image("S1", "cell01") + "/files"
        src = self.make_source("frame.tif")
        self.run_tool("rsync", "-aX", src, files + "/")
        self.check_copy(os.path.join(files, "frame.tif"), "frame.tif")
        # A second rsync -aX with a changed attribute updates it.
        self.assertEqual(setfattr(src, "user.origin", "microscope4").returncode, 0)
        self.run_tool("rsync", "-aX", src, files + "/")
        self.assertEqual(getfattr(os.path.join(files, "frame.tif"), "user.origin"), "microscope4")
        self.assertEqual(self.m.sql("SELECT value FROM annotation WHERE key = 'origin'"),
                         [("microscope4",)])
        # An attribute removed at the source is removed by the next rsync -aX.
        self.run_tool("setfattr", "-x", "user.operator", src)
        self.run_tool("rsync", "-aX", src, files + "/")
        self.assertIsNone(getfattr(os.path.join(files, "frame.tif"), "user.operator"))
        self.assertEqual(self.m.sql("SELECT key FROM annotation"), [("origin",)])


# ---------------------------------------------------------------------------
# The query catalog: slide -> (species, sample, creator, created, labellings
# (structure, dye), tags, annotations, images {name: user}).
QSLIDES = {
    "H1": ("HeLa", "P1", "ana", "2024-01-10T09:00:00Z", [("tubulin", "A647")], ["good"],
           {"fixation": "PFA", "mag": "100"}, {"c1": "bob", "c2": "eve"}),
    "H2": ("HeLa", "P1", "bob", "2024-03-15T09:00:00Z", [("actin", "A488")], ["good", "redo"],
           {"fixation": "MeOH", "protocol": "PFA 4%, 10 min"}, {"c1": "bob"}),
    "H3": ("HeLa", "P2", "ana", "2024-06-01T12:30:00Z",
           [("tubulin", "A647"), ("actin", "A647")], [], {}, {}),
    "H4": ("HeLa", "P2", "eve", "2024-09-20T00:00:00Z",
           [("RyR", "A488"), ("actin", "A555")], ["redo"], {"fixation": "PFA"}, {"c1": "ana"}),
    "R1": ("Rat-Wistar", "RW7", "ana", "2023-12-31T23:59:59Z", [("RyR", "A647")], ["good"],
           {"fixation": "PFA", "mag": "60"}, {"c1": "eve"}),
    "R2": ("Rat-Wistar", "RW7", "bob", "2024-02-02T10:00:00Z", [("tubulin", "A647")], [],
           {}, {"c1": "bob"}),
    "M1": ("Mouse", "MC3", "ana", "2024-04-04T04:04:04Z", [], ["good"],
           {"fixation": "PFA", "mag": "20"}, {}),
}
# expression -> slides (computed by hand from QSLIDES; each is a strict,
# non-empty subset of its species'/dye's/... slides unless noted).
QCASES = {
    "species=HeLa,dye=A647": ["H1", "H3"],  # not H2/H4 (no A647), not R1/R2 (Rat)
    "dye=A647": ["H1", "H3", "R1", "R2"],  # H3 has A647 on two labellings: listed once
    "species=HeLa": ["H1", "H2", "H3", "H4"],
    "sample=P2": ["H3", "H4"],
    "sample=RW7,dye=A647,structure=tubulin": ["R2"],
    "structure=actin": ["H2", "H3", "H4"],
    "structure=RyR,species=Rat-Wistar": ["R1"],
    "structure=tubulin,dye=A488": [],  # both exist, never on one labelling... nor one slide
    "tag=good": ["H1", "H2", "R1", "M1"],
    "tag=good,tag=redo": ["H2"],
    "creator=ana": ["H1", "H3", "R1", "M1"],
    "creator=bob,species=Rat-Wistar": ["R2"],
    "user=bob": ["H1", "H2", "R2"],
    "user=eve": ["H1", "R1"],
    "after=2024-03-15": ["H2", "H3", "H4", "M1"],  # inclusive bound
    "before=2024-01-10T09:00:00Z": ["R1"],  # exclusive bound
    "after=2024-01-01,before=2024-04-01": ["H1", "H2", "R2"],
    "fixation=PFA": ["H1", "H4", "R1", "M1"],  # an annotation key
    "fixation=PFA,species=HeLa,tag=redo": ["H4"],
    "fixation=Glutaraldehyde": [],
    "protocol=PFA 4%\\, 10 min": ["H2"],  # "\," is a literal comma in a value
    "protocol=PFA 4%": [],
    "species=Zebrafish": [],
    # Names ignore case where only one name matches that way.
    "species=hela": ["H1", "H2", "H3", "H4"],
    "structure=ryr,dye=a647": ["R1"],
    # | is or, ! is not, * matches any text.
    "species=Mouse|Rat-Wistar": ["R1", "R2", "M1"],
    "dye=A555|A488,species=HeLa": ["H2", "H4"],
    "!tag=good": ["H3", "H4", "R2"],
    "tag!=redo,species=HeLa": ["H1", "H3"],
    "!fixation=PFA": ["H2", "H3", "R2"],
    "!dye=A647|A488": ["M1"],
    "dye=A6*": ["H1", "H3", "R1", "R2"],
    "creator=a*,species=*a|rat*": ["H1", "H3", "R1"],
    "protocol=*10 min": ["H2"],
    # < and > on dates and on numeric annotations ("100" > "60" as numbers).
    "created>2024-06-01": ["H3", "H4"],
    "created<2024-01-10T09:00:00Z": ["R1"],
    "created=2024-06": ["H3"],
    "acquired>2000-01-01,creator=bob": ["H2", "R2"],
    "mag>50": ["H1", "R1"],
    "mag<50": ["M1"],
    "!mag>50": ["H2", "H3", "H4", "R2", "M1"],
}


class Queries(MetadataTestCase):
    """query/<expr>/slides and images for every key, with non-trivial answers."""

    def build(self):
        m = self.m
        for dye in ("A647", "A488", "A555"):
            self.dye(dye)
        for ref, (species, sample, creator, created, labs, tags, ann, images) in QSLIDES.items():
            self.slide(ref, species, sample)
            d = m.path("slides", ref)
            doc = self.sidecar("slides", ref, "slide.json")
            doc.update(creator=creator, created=created, tags=tags, annotations=ann,
                       labellings=[{"structure": s, "dye": dy} for s, dy in labs])
            self.assertEqual(write_doc(os.path.join(d, "slide.json"), json.dumps(doc)), 0, m.errors())
            for name, user in images.items():
                self.setx(self.image(ref, name), "user.samplefs.user", user)

    def test_every_key(self):
        m = self.m
        self.build()
        # The catalog holds what was built.
        self.assertEqual(m.sql("SELECT count(*) FROM slide"), [(len(QSLIDES),)])
        self.assertEqual(m.sql("SELECT count(*) FROM labelling"), [(8,)])
        for expr, slides in QCASES.items():
            with self.subTest(expr):
                self.assertEqual(self.ls("query", expr, "slides"), sorted(slides), f"query/{expr}/slides")
                images = sorted(f"{r}:{i}" for r in slides for i in QSLIDES[r][7])
                self.assertEqual(self.ls("query", expr, "images"), images, f"query/{expr}/images")
                # samplectl query agrees with the mount.
                r = self.run_tool(SAMPLECTL, "--config", m.config, "query", expr, "--json")
                self.assertEqual(sorted(s["reference"] for s in json.loads(r.stdout)), sorted(slides),
                                 f"samplectl query {expr}")
        # A listed slide is the slide itself, with its images' files.
        self.assertEqual(self.sidecar("query", "species=HeLa,dye=A647", "slides", "H3",
                                      "slide.json")["reference"], "H3")
        self.assertEqual(self.ls("query", "species=HeLa,dye=A647", "slides", "H1", "images"), ["c1", "c2"])
        self.assertEqual(self.ls("query", "user=eve", "images", "R1:c1"), ["files", "image.json"])
        # Names that are not in the answer are ENOENT, not found elsewhere.
        self.assertErrno(errno.ENOENT, os.stat, m.path("query", "species=HeLa,dye=A647", "slides", "H2"))
        self.assertErrno(errno.ENOENT, os.stat, m.path("query", "species=HeLa,dye=A647", "slides", "R2"))
        self.assertErrno(errno.ENOENT, os.stat, m.path("query", "user=eve", "images", "H2:c1"))
        # query/ itself lists nothing.
        self.assertEqual(self.ls("query"), [])
        # Answers follow changes made through the mount.
        self.setx(m.path("slides", "H2"), "user.xdg.tags", "good,redo,A647-check")
        self.assertEqual(self.ls("query", "tag=A647-check", "slides"), ["H2"])
        doc = self.sidecar("slides", "H4", "slide.json")
        doc["labellings"].append({"structure": "tubulin", "dye": "A647"})
        self.assertEqual(write_doc(m.path("slides", "H4", "slide.json"), json.dumps(doc)), 0)
        self.assertEqual(self.ls("query", "species=HeLa,dye=A647", "slides"), ["H1", "H3", "H4"])

    def test_malformed_expressions(self):
        m = self.m
        self.slide("S1")
        for expr, reason in [("species", "not key=value"), ("species=", "has no value"),
                             ("=HeLa", "has no key"), ("species=HeLa,,dye=A647", "empty term"),
                             ("after=yesterday", "expected a date"), ("before=2024-02-30", "expected a date"),
                             ("spe cies=HeLa", "may only contain"),
                             ("species<HeLa", "compare dates and numbers"),
                             ("created>soon", "expected a date"),
                             ("species=HeLa|", "empty alternative")]:
            with self.subTest(expr):
                self.assertErrno(errno.EINVAL, os.listdir, m.path("query", expr, "slides"))
                r = self.run_tool("ls", m.path("query", expr), check=False)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("Invalid argument", r.stderr)
                self.assertErrorLogged("query/" + expr, reason)
                r = self.run_tool(SAMPLECTL, "--config", m.config, "query", expr, check=False)
                self.assertEqual(r.returncode, 2, f"samplectl query {expr}: {r.stdout}{r.stderr}")

    def test_misspelt_key_fails_and_says_why(self):
        """A key that is neither a field nor an annotation key of a slide is
        ENOENT (not an empty answer), with the known keys in .samplefs/errors."""
        m = self.m
        self.slide("S1")
        self.setx(m.path("slides", "S1"), "user.fixation", "PFA")
        self.assertEqual(self.ls("query", "fixation=PFA", "slides"), ["S1"])
        for expr in ("speceis=HeLa", "species=HeLa,fixaton=PFA"):
            with self.subTest(expr):
                self.assertErrno(errno.ENOENT, os.listdir, m.path("query", expr, "slides"))
                r = self.run_tool("ls", m.path("query", expr, "slides"), check=False)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("No such file or directory", r.stderr)
                bad = expr.split(",")[-1].split("=")[0]
                self.assertErrorLogged("query/" + expr, f"query key '{bad}' is neither a field nor an annotation key",
                                       "known keys: species, sample, dye, structure, tag, creator, user",
                                       "annotation keys: fixation")
                r = self.run_tool(SAMPLECTL, "--config", m.config, "query", expr, check=False)
                self.assertEqual(r.returncode, 2, f"samplectl query {expr}: {r.stdout}{r.stderr}")
                self.assertIn("known keys: species", r.stderr)


# ---------------------------------------------------------------------------
class ExternalChanges(MetadataTestCase):
    """Changes made by other processes on a live mount's catalog show in ls
    within a second (the data_version poll)."""

    DEADLINE = 1.5

    def poll(self, what, check):
        t0 = time.monotonic()
        while True:
            if check():
                delay = time.monotonic() - t0
                print(f"\n  [{what}] seen after {delay * 1000:.0f} ms", end="", flush=True)
                return delay
            if time.monotonic() - t0 > self.DEADLINE:
                self.fail(f"{what}: not seen within {self.DEADLINE} s")
            time.sleep(0.01)

    def sqlite3(self, sql):
        """The engine's own client: sqlite3, or psql on PostgreSQL."""
        return self.m.cli_sql(sql)

    def test_sqlite3_update(self):
        if not shutil.which("sqlite3"):
            self.skipTest("sqlite3 is not installed")
        m = self.m
        self.slide("S1")
        self.image("S1", "cell01")
        # Warm every cache the kernel has: listings, entries, attributes.
        self.assertEqual(self.ls("slides"), ["S1"])
        os.stat(m.path("slides", "S1"))
        os.stat(m.path("species", "HeLa", "slides", "S1", "slide.json"))
        self.sqlite3("UPDATE slide SET reference = 'S1-renamed' WHERE reference = 'S1'")
        self.poll("sqlite3 rename: ls slides/", lambda: self.ls("slides") == ["S1-renamed"])
        self.poll("sqlite3 rename: stat of the old name",
                  lambda: not os.path.exists(m.path("slides", "S1")))
        self.assertTrue(os.path.isdir(m.path("slides", "S1-renamed", "images", "cell01")))
        # A field read through the sidecar and getfattr (its size cached first).
        sidecar = m.path("slides", "S1-renamed", "slide.json")
        os.stat(sidecar)
        self.sqlite3("UPDATE slide SET notes = 'set by sqlite3' WHERE reference = 'S1-renamed'")
        self.poll("sqlite3 notes: slide.json",
                  lambda: self.sidecar("slides", "S1-renamed", "slide.json")["notes"] == "set by sqlite3")
        self.assertEqual(getfattr(m.path("slides", "S1-renamed"), "user.xdg.comment"), "set by sqlite3")

        def size_matches():
            with open(sidecar, "rb") as f:
                return os.stat(sidecar).st_size == len(f.read())
        self.poll("sqlite3 notes: stat size of slide.json", size_matches)
        # A new record made with SQL.
        self.sqlite3("INSERT INTO dye(short_name, long_name) VALUES ('Cy5', 'Cyanine 5')")
        self.poll("sqlite3 insert: ls dyes/", lambda: self.ls("dyes") == ["Cy5"])

    def test_save_waits_for_another_writer(self):
        """A sidecar saved while another process holds the catalog's write
        lock (a pandas to_sql, a long samplectl load) waits and applies."""
        m = self.m
        if m.engine != "sqlite":
            self.skipTest("SQLite's write lock; PostgreSQL has row locks (lock_timeout)")
        self.slide("S1")
        con = sqlite3.connect(m.catalog, isolation_level=None, timeout=10, check_same_thread=False)
        self.addCleanup(con.close)
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE slide SET notes = 'by the other writer' WHERE reference = 'S1'")
        timer = threading.Timer(0.5, lambda: con.execute("COMMIT"))
        timer.start()
        self.addCleanup(timer.join)
        t0 = time.monotonic()
        self.assertEqual(write_doc(m.path("slides", "S1", "slide.json"), '{"creator": "ana"}'), 0,
                         m.errors())
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        row = self.slide_row("S1")
        self.assertEqual((row[1], row[2]), ("by the other writer", "ana"))

    def test_samplectl_tag_add(self):
        m = self.m
        self.slide("S1")
        self.slide("S2")
        self.image("S1", "cell01")
        f = self.put_file("S1", "cell01", "Pos0/a.tif")
        os.mkdir(m.path("tags", "hot"))
        self.assertEqual(self.ls("tags", "hot", "slides"), [])
        self.assertIsNone(getfattr(m.path("slides", "S2"), "user.xdg.tags"))
        self.run_tool(SAMPLECTL, "--config", m.config, "tag", "add", "S2", "hot", "fresh")
        self.poll("samplectl tag add: ls tags/hot/slides/",
                  lambda: self.ls("tags", "hot", "slides") == ["S2"])
        self.poll("samplectl tag add: ls tags/", lambda: self.ls("tags") == ["fresh", "hot"])
        self.assertEqual(getfattr(m.path("slides", "S2"), "user.xdg.tags"), "fresh,hot")
        self.run_tool(SAMPLECTL, "--config", m.config, "tag", "rm", m.path("slides", "S2"), "hot")
        self.poll("samplectl tag rm: ls tags/hot/slides/",
                  lambda: self.ls("tags", "hot", "slides") == [])
        # An image and a file (named by a path through the mount).
        self.assertEqual(self.ls("tags", "hot", "images"), [])
        self.assertEqual(self.ls("tags", "hot", "files"), [])
        self.run_tool(SAMPLECTL, "--config", m.config, "tag", "add", "S1/cell01", "hot")
        self.run_tool(SAMPLECTL, "--config", m.config, "tag", "add", f, "hot")
        self.poll("samplectl tag add: ls tags/hot/images/",
                  lambda: self.ls("tags", "hot", "images") == ["S1:cell01"])
        self.poll("samplectl tag add: ls tags/hot/files/",
                  lambda: self.ls("tags", "hot", "files") == ["S1:cell01:Pos0:a.tif"])
        self.assertEqual(getfattr(f, "user.xdg.tags"), "hot")


# ---------------------------------------------------------------------------
class NastyNames(MetadataTestCase):
    """Quotes, semicolons and SQL in names and values are only data."""

    def assertTablesIntact(self):
        tables = self.m.tables()
        for t in ("slide", "species", "sample", "tag", "tagging", "annotation", "image", "entry"):
            self.assertIn(t, tables)

    def test_tags_annotations_and_notes(self):
        m = self.m
        s1 = self.slide("S1")
        img = self.image("S1", "cell01")
        f = self.put_file("S1", "cell01", "a.tif")
        # Tags, as directories and through setfattr.
        for i, name in enumerate(NASTY):
            target = (s1, img, f)[i % 3]
            self.setx(target, "user.xdg.tags", name)
            self.assertEqual(getfattr(target, "user.xdg.tags"), name)
            view = ("slides", "images", "files")[i % 3]
            self.assertEqual(len(self.ls("tags", name, view)), 1, f"tags/{name}/{view}")
        self.assertEqual(sorted(r[0] for r in m.sql("SELECT name FROM tag")), sorted(NASTY))
        os.mkdir(m.path("tags", "'; DELETE FROM tag;--"))
        self.assertIn(("'; DELETE FROM tag;--",), m.sql("SELECT name FROM tag"))
        self.setx(s1, "user.xdg.tags", ",".join(NASTY))
        self.assertEqual(sorted(getfattr(s1, "user.xdg.tags").split(",")), sorted(NASTY))
        for name in NASTY:
            self.assertEqual(self.ls("tags", name, "slides"), ["S1"])
        # Annotation keys and values.
        for i, v in enumerate(NASTY):
            key = "user." + v
            self.setx(s1, key, v)
            self.assertEqual(getfattr(s1, key), v)
            os.setxattr(f, key.encode(), (v + " \u00b5m").encode())
            self.assertEqual(os.getxattr(f, key).decode(), v + " \u00b5m")
        (sid,), = m.sql("SELECT id FROM slide WHERE reference = 'S1'")
        rows = m.sql("SELECT key, value FROM annotation WHERE entity = 'slide' AND record_id = ?", (sid,))
        self.assertEqual(sorted(rows), sorted((v, v) for v in NASTY))
        self.assertEqual(self.sidecar("slides", "S1", "slide.json")["annotations"], {v: v for v in NASTY})
        # The query language takes them as values.
        self.assertEqual(self.ls("query", f"tag={NASTY[0]}", "slides"), ["S1"])
        self.assertEqual(self.ls("query", f"tag={NASTY[1]},species=HeLa", "slides"), ["S1"])
        # Notes and labellings via the sidecar.
        self.dye("A647")
        doc = self.sidecar("slides", "S1", "slide.json")
        notes = "\n".join(NASTY) + "\n\\'\"%_*"
        doc.update(notes=notes, labellings=[{"structure": NASTY[0], "isotype": NASTY[1],
                                             "antibody": NASTY[2], "dye": "A647"}])
        self.assertEqual(write_doc(m.path("slides", "S1", "slide.json"), json.dumps(doc)), 0, m.errors())
        self.assertEqual(self.slide_row("S1")[1], notes)
        self.assertEqual(self.labellings("S1"), [(NASTY[0], NASTY[1], NASTY[2], "A647")])
        self.assertEqual(self.ls("structures"), [NASTY[0]])
        self.assertEqual(self.ls("structures", NASTY[0], "slides"), ["S1"])
        self.assertEqual(getfattr(s1, "user.xdg.comment"), notes)
        self.assertEqual(self.sidecar("slides", "S1", "slide.json")["notes"], notes)
        self.assertEqual(self.ls("query", f"structure={NASTY[0]}", "slides"), ["S1"])
        self.assertTablesIntact()

    def test_record_names(self):
        m = self.m
        for name in NASTY:
            os.mkdir(m.path("species", name))
            os.mkdir(m.path("species", name, "slides", "slide " + name))
            os.mkdir(m.path("slides", "slide " + name, "images", "img " + name))
            os.mkdir(m.path("dyes", name.replace(" ", "_")))
        self.assertEqual(self.ls("species"), sorted(NASTY))
        self.assertEqual(self.ls("slides"), sorted("slide " + n for n in NASTY))
        self.assertEqual(sorted(r[0] for r in m.sql("SELECT name FROM species")), sorted(NASTY))
        self.assertEqual(sorted(r[0] for r in m.sql("SELECT reference FROM slide")),
                         sorted("slide " + n for n in NASTY))
        self.assertEqual(sorted(r[0] for r in m.sql("SELECT name FROM image")),
                         sorted("img " + n for n in NASTY))
        for name in NASTY:
            doc = self.sidecar("slides", "slide " + name, "slide.json")
            self.assertEqual((doc["reference"], doc["species"]), ("slide " + name, name))
            self.assertEqual(self.ls("query", f"species={name}", "slides"), ["slide " + name])
            self.assertEqual(self.ls("query", f"species={name}", "images"), [f"slide {name}:img {name}"])
            self.assertEqual(getfattr(m.path("species", name), "user.samplefs.name"), name)
        # A rename through user.samplefs.reference and slide.json.
        ref = "slide " + NASTY[0]
        old_paths = [m.path("slides", ref), m.path("species", NASTY[0], "slides", ref),
                     m.path("slides", ref, "slide.json")]
        for p in old_paths:
            os.stat(p)  # cached by the kernel now
        self.setx(m.path("slides", ref), "user.samplefs.reference", NASTY[1])
        self.assertIn(NASTY[1], self.ls("slides"))
        for p in old_paths:  # other paths of a record changed in the mount go at once
            self.assertErrno(errno.ENOENT, os.stat, p)
        self.assertTrue(os.path.isdir(m.path("species", NASTY[0], "slides", NASTY[1])))
        doc = self.sidecar("slides", NASTY[1], "slide.json")
        self.assertEqual(write_doc(m.path("slides", NASTY[1], "slide.json"),
                                   json.dumps(dict(doc, reference=NASTY[2]))), 0, m.errors())
        self.assertIn(NASTY[2], self.ls("slides"))
        self.assertEqual(m.sql("SELECT count(*) FROM slide WHERE reference = ?", (NASTY[2],)), [(1,)])
        self.assertTablesIntact()
        # samplectl dump carries them literally.
        r = self.run_tool(SAMPLECTL, "--config", m.config, "dump")
        dump = json.loads(r.stdout)
        self.assertEqual(sorted(s["name"] for s in dump["species"]), sorted(NASTY))


if __name__ == "__main__":
    unittest.main()
