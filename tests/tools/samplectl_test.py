#!/usr/bin/env python3
"""Tests of the real samplectl binary (issue 7, docs/SAMPLECTL.md).

Usage: samplectl_test.py PATH/TO/samplectl [unittest arguments...]
(or SAMPLECTL_BIN=... python3 -m unittest samplectl_test)

Every test runs samplectl with its own temporary HOME and configuration
file, so nothing touches the real user's files. Standard library only.
"""
import csv
import datetime
import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import unittest

SAMPLECTL = os.environ.get("SAMPLECTL_BIN", "")
LAYOUT = "{species}/{sample}/{slide}/{image}/"
BASE_MTIME = 1_700_000_000  # 2023-11-14T22:13:20Z

# 3 species, 5 samples, 10 slides, 5 images per slide, 100 files per image.
SPECIES = {"HeLa": ["P01", "P02"], "U2OS": ["P03", "P04"], "Rat-Wistar": ["R01"]}
SAMPLES = [s for group in SPECIES.values() for s in group]
SPECIES_OF = {s: sp for sp, group in SPECIES.items() for s in group}
SLIDES = ["S%02d" % i for i in range(1, 11)]
SAMPLE_OF = {ref: SAMPLES[i % len(SAMPLES)] for i, ref in enumerate(SLIDES)}
IMAGES = ["cell%02d" % i for i in range(1, 6)]


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write(path, data, mtime_ns):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def image_files(slide, image, kind):
    """The 100 files of one image, as (relative path, bytes); some contents
    repeat across images so deduplication has something to do."""
    uniq = lambda rel, n: (("%s/%s/%s\n" % (slide, image, rel)) * n).encode()
    files = []
    if kind == 0:  # PYME: one raw series plus analysis results
        files.append(("raw_series.h5", b"\x89HDF\r\n\x1a\n" + uniq("raw", 40)))
        for i in range(97):
            files.append(("analysis/fits_%04d.csv" % i, b"x,y,A\n" + uniq("fit%d" % i, 3)))
        files.append(("analysis/summary.json", b'{"version": 1, "fitter": "LatGaussFitFR"}\n'))  # dup
        files.append(("analysis/localisations.h5r", uniq("h5r", 10)))
    elif kind == 1:  # Micro-Manager: Pos0/img_*.tif + metadata.txt
        for i in range(98):
            files.append(("Pos0/img_000000000_Default_%03d.tif" % i, b"II*\x00" + uniq("frame%d" % i, 4)))
        files.append(("Pos0/metadata.txt", b'{"Summary": {"MicroManagerVersion": "2.0.0"}}\n'))  # dup
        files.append(("DisplaySettings.json", b'{"Channels": []}\n'))  # dup
    else:  # OME-Zarr with nested chunks
        files.append(("cell.ome.zarr/.zgroup", b'{"zarr_format": 2}\n'))  # dup
        files.append(("cell.ome.zarr/.zattrs", b'{"multiscales": []}\n'))  # dup
        files.append(("cell.ome.zarr/0/.zarray", b'{"chunks": [1, 64, 64]}\n'))  # dup
        for i in range(96):
            y, x = divmod(i, 12)
            data = b"\x00" * 256 if i % 4 == 0 else uniq("chunk%d" % i, 5)  # zero chunks dedup
            files.append(("cell.ome.zarr/0/0/%d/%d" % (y, x), data))
        files.append(("results.csv", b"cell,area\n" + uniq("res", 2)))
    assert len(files) == 100, len(files)
    return files


def generate_tree(root):
    """3 species / 5 samples / 10 slides / 50 images / 5,000 files, with
    fixed mtimes (so the records' dates are predictable)."""
    n = 0
    for si, slide in enumerate(SLIDES):
        sample = SAMPLE_OF[slide]
        slide_dir = os.path.join(root, SPECIES_OF[sample], sample, slide)
        for ii, image in enumerate(IMAGES):
            image_dir = os.path.join(slide_dir, image)
            kind = (si * len(IMAGES) + ii) % 3
            for rel, data in image_files(slide, image, kind):
                n += 1
                write(os.path.join(image_dir, rel), data, (BASE_MTIME + n) * 10**9 + 123)
            if kind == 1:
                os.symlink("Pos0/img_000000000_Default_000.tif", os.path.join(image_dir, "first.tif"))
    # Folder mtimes last, deepest first, so creating children does not move them.
    for dirpath, dirnames, _ in sorted(os.walk(root), key=lambda t: -t[0].count(os.sep)):
        os.utime(dirpath, ns=(BASE_MTIME * 10**9, BASE_MTIME * 10**9))
    return n


def small_tree(root, extra=True):
    """A few images for the fault-injection tests."""
    files = {
        "HeLa/P01/S1/cell01/raw.h5": b"raw series one\n" * 10,
        "HeLa/P01/S1/cell01/Pos0/img_000.tif": b"frame zero\n",
        "HeLa/P01/S1/cell01/Pos0/img_001.tif": b"frame one\n",
        "HeLa/P01/S1/cell02/raw.h5": b"raw series two\n" * 10,
        "HeLa/P01/S1/cell02/analysis.csv": b"a,b\n1,2\n",
        "U2OS/P02/S2/cell01/cell.ome.zarr/0/0/0": b"\x00" * 64,
        "U2OS/P02/S2/cell01/cell.ome.zarr/0/0/1": b"\x00" * 64,  # dedup
        "U2OS/P02/S2/cell01/orphan-to-be.h5": b"this one will lose its record\n",
    }
    for i, (rel, data) in enumerate(sorted(files.items())):
        write(os.path.join(root, rel), data, (BASE_MTIME + i) * 10**9)
    return files


class Env:
    """A temporary HOME with a config file naming a catalog and store."""

    def __init__(self, tmp, name="main"):
        self.dir = os.path.join(tmp, name)
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home, exist_ok=True)
        self.catalog = os.path.join(self.dir, "data", "catalog.db")
        self.store = os.path.join(self.dir, "data", "store")
        self.config = os.path.join(self.dir, "samplefs.conf")
        with open(self.config, "w") as f:
            f.write("# test configuration\n[samplefs]\ncatalog = data/catalog.db\n"
                    "store = data/store   # relative to this file\nlog_level = info\n")

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SAMPLEFS_", "XDG_"))}
        env["HOME"] = self.home
        env.update(extra)
        return env

    def run(self, *args, config=True, env=None, check=None, **kw):
        cmd = [SAMPLECTL] + (["--config", self.config] if config else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env or self.env(), timeout=300, **kw)
        if check is not None and p.returncode != check:
            raise AssertionError("%s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s"
                                 % (" ".join(cmd), p.returncode, check, p.stdout[-3000:], p.stderr[-3000:]))
        return p

    def sql(self, query, params=()):
        con = sqlite3.connect(self.catalog, timeout=10)
        try:
            rows = con.execute(query, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def objects(self):
        """{hash: (size, mtime_ns)} of every object in the store."""
        out = {}
        for dirpath, _, files in os.walk(os.path.join(self.store, "objects")):
            for f in files:
                st = os.stat(os.path.join(dirpath, f))
                out[f] = (st.st_size, st.st_mtime_ns)
        return out

    def object_path(self, h):
        return os.path.join(self.store, "objects", h[:2], h[2:4], h)

    def referenced(self):
        return {h for (h,) in self.sql("SELECT DISTINCT hash FROM entry WHERE hash IS NOT NULL")}


def temp_base():
    """Where tests put their trees, catalogs and stores: $SAMPLECTL_TEST_TMPDIR,
    else /dev/shm when it is a roomy tmpfs, else the default temp dir. On a
    busy disk, creating and deleting ~20,000 small files and fsyncing each
    object can take minutes; nothing here depends on the disk (a kill -9
    tests the process dying, not the power)."""
    base = os.environ.get("SAMPLECTL_TEST_TMPDIR")
    if base:
        return base
    try:
        st = os.statvfs("/dev/shm")
        if os.access("/dev/shm", os.W_OK) and st.f_bavail * st.f_frsize > (1 << 30):
            return "/dev/shm"
    except OSError:
        pass
    return None


def setUpModule():
    if not SAMPLECTL or not os.access(SAMPLECTL, os.X_OK):
        raise unittest.SkipTest("samplectl binary not given (argument or $SAMPLECTL_BIN)")


class BigTreeTest(unittest.TestCase):
    """The issue's acceptance on a 5,000-file tree: import, interrupted
    import, query, export, dump/load."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="samplectl-big-", dir=temp_base())
        cls.src = os.path.join(cls.tmp.name, "src")
        cls.nfiles = generate_tree(cls.src)
        cls.a = Env(cls.tmp.name, "a")
        cls.a.run("init", check=0)
        t = time.time()
        p = cls.a.run("import", cls.src, "--layout", LAYOUT, check=0)
        cls.import_seconds = time.time() - t
        cls.import_stdout, cls.import_stderr = p.stdout, p.stderr
        cls.clean_dump = cls.a.run("dump", check=0).stdout

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_clean_import_records_everything(self):
        self.assertEqual(self.nfiles, 5000)
        a = self.a
        self.assertEqual(a.sql("SELECT count(*) FROM species")[0][0], 3)
        self.assertEqual(a.sql("SELECT count(*) FROM sample")[0][0], 5)
        self.assertEqual(a.sql("SELECT count(*) FROM slide")[0][0], 10)
        self.assertEqual(a.sql("SELECT count(*) FROM image")[0][0], 50)
        self.assertEqual(a.sql("SELECT count(*) FROM entry WHERE type = 'file'")[0][0], 5000)
        self.assertGreater(a.sql("SELECT count(*) FROM entry WHERE type = 'symlink'")[0][0], 0)
        # Mode and mtime (ns) kept; contents in the store under their hash.
        path = os.path.join(self.src, "HeLa/P01/S01/cell01/raw_series.h5")
        st = os.stat(path)
        (mtime, mode, size, h), = a.sql(
            "SELECT mtime_ns, mode, size, hash FROM file_info WHERE slide = 'S01' AND image = 'cell01' "
            "AND path = 'raw_series.h5'")
        self.assertEqual(mtime, st.st_mtime_ns)
        self.assertEqual(mode, stat.S_IMODE(st.st_mode))
        self.assertEqual(size, st.st_size)
        with open(a.object_path(h), "rb") as f, open(path, "rb") as g:
            self.assertEqual(f.read(), g.read())
        (target,), = a.sql("SELECT target FROM entry WHERE type = 'symlink' LIMIT 1")
        self.assertEqual(target, "Pos0/img_000000000_Default_000.tif")
        # Dates come from the tree, so a re-import anywhere gives the same.
        self.assertEqual(a.sql("SELECT DISTINCT created FROM slide"), [(iso(BASE_MTIME),)])
        # Deduplication: fewer objects than files, and stats says so.
        self.assertLess(len(a.objects()), 5000)
        stats = json.loads(a.run("stats", "--json", check=0).stdout)
        self.assertEqual(stats["files"], 5000)
        self.assertEqual(stats["slides"], 10)
        self.assertGreater(stats["bytes_saved_by_dedup"], 0)
        self.assertEqual(stats["bytes_recorded"] - stats["bytes_stored"], stats["bytes_saved_by_dedup"])
        # In a pipe: no progress bar.
        self.assertNotIn("\r", self.import_stderr)
        self.assertIn("5000 files", self.import_stdout)

    def test_fsck_clean_store(self):
        p = self.a.run("fsck", "--verify", check=0)
        self.assertIn("0 problems", p.stdout)

    def test_reimport_changes_nothing(self):
        p = self.a.run("import", self.src, "--layout", LAYOUT, check=0)
        self.assertRegex(p.stdout, r"created 0 species, 0 samples, 0 slides, 0 images; 0 files .* 0 updated; "
                                   r"5\d\d\d unchanged and skipped")
        self.assertEqual(self.a.run("dump", check=0).stdout, self.clean_dump)

    def test_killed_import_resumes_to_the_same_catalog(self):
        b = Env(self.tmp.name, "b")
        b.run("init", check=0)
        # One writer (slower, and a different schedule than the clean run's
        # eight): the result must not depend on it.
        proc = subprocess.Popen([SAMPLECTL, "--config", b.config, "import", self.src, "--layout", LAYOUT,
                                 "--jobs", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=b.env())
        seen = 0
        deadline = time.time() + 120
        try:
            while time.time() < deadline and proc.poll() is None:
                try:
                    con = sqlite3.connect("file:%s?mode=ro" % b.catalog, uri=True, timeout=1)
                    seen = con.execute("SELECT count(*) FROM entry WHERE type = 'file'").fetchone()[0]
                    con.close()
                except sqlite3.Error:
                    pass
                if seen >= 1000:  # a few batches are committed: kill it mid-way
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.005)
        finally:
            proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL, "the import finished before it could be killed")
        committed = b.sql("SELECT count(*) FROM entry WHERE type = 'file'")[0][0]
        self.assertGreaterEqual(committed, 1000)
        self.assertLess(committed, 5000)
        p = b.run("import", self.src, "--layout", LAYOUT, check=0)
        self.assertRegex(p.stdout, r"[1-9]\d* unchanged and skipped")  # it resumed
        self.assertEqual(b.run("dump", check=0).stdout, self.clean_dump)
        # The killed run's uncommitted objects are at worst unreferenced.
        self.assertEqual(b.run("fsck", check=0).returncode, 0)

    def test_query_csv(self):
        a = self.a
        a.run("tag", "add", "S03", "good", check=0)
        a.run("tag", "add", "S07", "good", "reviewed", check=0)
        a.sql("INSERT INTO dye(short_name, long_name) VALUES ('A647', 'Alexa Fluor 647')")
        a.sql("INSERT INTO labelling(slide_id, structure, dye_id) SELECT s.id, 'tubulin', d.id "
              "FROM slide s, dye d WHERE s.reference IN ('S03', 'S08') AND d.short_name = 'A647'")
        try:
            rows = list(csv.DictReader(io.StringIO(a.run("query", "species=HeLa", "--csv", check=0).stdout)))
            expected = sorted(ref for ref in SLIDES if SPECIES_OF[SAMPLE_OF[ref]] == "HeLa")
            self.assertEqual(sorted(r["reference"] for r in rows), expected)
            for r in rows:
                self.assertEqual(r["sample"], SAMPLE_OF[r["reference"]])
                self.assertEqual(r["species"], "HeLa")
                self.assertEqual(r["created"], iso(BASE_MTIME))
            self.assertEqual(list(rows[0].keys()),
                             ["reference", "sample", "species", "creator", "created", "labellings", "tags"])
            rows = list(csv.DictReader(io.StringIO(a.run("query", "tag=good", "--csv", check=0).stdout)))
            self.assertEqual(sorted((r["reference"], r["tags"]) for r in rows),
                             [("S03", "good"), ("S07", "good,reviewed")])
            rows = list(csv.DictReader(io.StringIO(a.run("query", "dye=A647", "--csv", check=0).stdout)))
            self.assertEqual(sorted((r["reference"], r["labellings"]) for r in rows),
                             [("S03", "tubulin:A647"), ("S08", "tubulin:A647")])
            js = json.loads(a.run("query", "dye=A647,tag=good", "--json", check=0).stdout)
            self.assertEqual([j["reference"] for j in js], ["S03"])
            self.assertEqual(js[0]["labellings"][0]["dye"], "A647")
            table = a.run("query", "species=U2OS", check=0).stdout.splitlines()
            self.assertTrue(table[0].startswith("reference"))
            self.assertEqual(len(table), 1 + sum(1 for r in SLIDES if SPECIES_OF[SAMPLE_OF[r]] == "U2OS"))
            self.assertEqual(a.run("query", "species=Nope", "--csv", check=0).stdout.splitlines(),
                             ["reference,sample,species,creator,created,labellings,tags"])
            # The operators: case-insensitive names, | or, ! not, * wildcards, < > on dates.
            def refs(expr):
                return sorted(r["reference"] for r in csv.DictReader(io.StringIO(
                    a.run("query", expr, "--csv", check=0).stdout)))
            hela = sorted(ref for ref in SLIDES if SPECIES_OF[SAMPLE_OF[ref]] == "HeLa")
            u2os = sorted(ref for ref in SLIDES if SPECIES_OF[SAMPLE_OF[ref]] == "U2OS")
            self.assertEqual(refs("species=hela"), hela)
            self.assertEqual(refs("species=HELA|u2os"), sorted(hela + u2os))
            self.assertEqual(refs("!species=HeLa"), sorted(set(SLIDES) - set(hela)))
            self.assertEqual(refs("tag=goo*"), ["S03", "S07"])
            self.assertEqual(refs("tag=good,!tag=reviewed"), ["S03"])
            self.assertEqual(refs("tag!=good,dye=A647"), ["S08"])
            self.assertEqual(refs("created>" + iso(BASE_MTIME - 86400)), sorted(SLIDES))
            self.assertEqual(refs("created<" + iso(BASE_MTIME)), [])
            self.assertEqual(refs("created=" + iso(BASE_MTIME)[:7]), sorted(SLIDES))
            a.sql("INSERT INTO annotation(entity, record_id, key, value) "
                  "SELECT 'slide', id, 'mag', CASE reference WHEN 'S01' THEN '100' WHEN 'S02' THEN '60' "
                  "ELSE 'n/a' END FROM slide WHERE reference IN ('S01', 'S02', 'S04')")
            self.assertEqual(refs("mag>80"), ["S01"])
            self.assertEqual(refs("mag>50"), ["S01", "S02"])
            self.assertEqual(refs("mag<80"), ["S02"])
        finally:
            a.sql("DELETE FROM annotation WHERE key = 'mag'")
            a.sql("DELETE FROM labelling")
            a.sql("DELETE FROM dye")
            a.sql("DELETE FROM tagging")
            a.sql("DELETE FROM tag")

    def test_export(self):
        a = self.a
        rows = json.loads(a.run("export", "file_info", "--json", check=0).stdout)
        self.assertEqual(len(rows), 5000)
        self.assertIsInstance(rows[0]["size"], int)
        self.assertIsInstance(rows[0]["mtime_ns"], int)
        self.assertEqual({r["slide"] for r in rows}, set(SLIDES))
        rows = list(csv.DictReader(io.StringIO(a.run("export", "file_info", "--csv", check=0).stdout)))
        self.assertEqual(len(rows), 5000)
        out = os.path.join(self.tmp.name, "slides.csv")
        a.run("export", "slide_info", "-o", out, check=0)
        with open(out, newline="") as f:
            self.assertEqual(sorted(r["slide"] for r in csv.DictReader(f)), SLIDES)
        # RFC 4180 quoting survives commas, quotes and newlines.
        note = 'line one, with "quotes"\nline two'
        a.sql("UPDATE slide SET notes = ? WHERE reference = 'S01'", (note,))
        try:
            rows = list(csv.DictReader(io.StringIO(a.run("export", "slide", check=0).stdout, newline="")))
            self.assertEqual([r["notes"] for r in rows if r["reference"] == "S01"], [note])
            js = json.loads(a.run("export", "slide", "--json", check=0).stdout)
            self.assertEqual([r["notes"] for r in js if r["reference"] == "S01"], [note])
        finally:
            a.sql("UPDATE slide SET notes = '' WHERE reference = 'S01'")

    def test_tag_targets(self):
        a = self.a
        a.run("tag", "add", "/mnt/x/slides/S02/images/cell03/files/Pos0/metadata.txt", "meta", check=0)
        a.run("tag", "add", "/mnt/x/species/HeLa/slides/S02/images/cell03", "nice", check=0)
        a.run("tag", "add", "S02/cell03/Pos0", "folder-tag", check=0)
        try:
            self.assertEqual(a.run("tag", "ls", "S02/cell03/Pos0/metadata.txt", check=0).stdout.split(), ["meta"])
            self.assertEqual(a.run("tag", "ls", "S02/cell03", check=0).stdout.split(), ["nice"])
            self.assertEqual(a.run("tag", "ls", "slides/S02/images/cell03/files/Pos0", check=0).stdout.split(),
                             ["folder-tag"])
            listing = json.loads(a.run("tag", "ls", "--json", check=0).stdout)
            self.assertEqual({t["tag"]: (t["images"], t["files"]) for t in listing},
                             {"meta": (0, 1), "nice": (1, 0), "folder-tag": (0, 1)})
            p = a.run("tag", "add", "S02/cell03/no/such/file", "x", check=2)
            self.assertIn("no file", p.stderr)
        finally:
            a.sql("DELETE FROM tagging")
            a.sql("DELETE FROM tag")

    def test_dump_load_dump_is_identical(self):
        a = self.a
        # Give the document everything it can hold: tags on every kind of
        # record, annotations, labellings, an unused tag.
        a.run("tag", "add", "S01", "good", check=0)
        a.run("tag", "add", "S01/cell02", "best", check=0)
        a.run("tag", "add", "S01/cell01/analysis/summary.json", "checked", check=0)
        a.sql("INSERT INTO tag(name) VALUES ('unused')")
        a.sql("INSERT INTO dye(short_name, long_name, spectra_db_name) VALUES "
              "('A488', 'Alexa Fluor 488', 'Alexa Fluor 488'), ('A647', 'Alexa Fluor 647', 'x')")
        a.sql("INSERT INTO labelling(slide_id, structure, antibody, dye_id) SELECT s.id, 'tubulin', "
              "'anti-alpha', d.id FROM slide s, dye d WHERE s.reference = 'S01' AND d.short_name = 'A647'")
        a.sql("INSERT INTO labelling(slide_id, structure, dye_id) SELECT s.id, 'actin', d.id "
              "FROM slide s, dye d WHERE s.reference = 'S01' AND d.short_name = 'A488'")
        a.sql("INSERT INTO annotation(entity, record_id, key, value) SELECT 'slide', id, 'user.lab', "
              "'Bäuerle \"west\"' FROM slide WHERE reference = 'S01'")
        a.sql("UPDATE species SET species = 'Human', strain = 'HeLa', notes = 'ATCC CCL-2' WHERE name = 'HeLa'")
        try:
            dump1 = os.path.join(self.tmp.name, "dump1.json")
            a.run("dump", "-o", dump1, check=0)
            doc = json.load(open(dump1))
            self.assertEqual(doc["format"], "samplefs-dump")
            self.assertEqual(len(doc["slides"]), 10)
            c = Env(self.tmp.name, "c")
            c.run("init", check=0)
            c.run("load", dump1, check=0)
            dump2 = c.run("dump", check=0).stdout
            with open(dump1) as f:
                self.assertEqual(dump2, f.read())
            # Loading again is refused: the catalog is no longer empty.
            p = c.run("load", dump1, check=2)
            self.assertIn("not empty", p.stderr)
        finally:
            a.sql("DELETE FROM tagging")
            a.sql("DELETE FROM tag")
            a.sql("DELETE FROM labelling")
            a.sql("DELETE FROM dye")
            a.sql("DELETE FROM annotation")
            a.sql("UPDATE species SET species = '', strain = '', notes = '' WHERE name = 'HeLa'")


class SmallStoreTest(unittest.TestCase):
    """fsck, gc, init, dry runs, misfit paths, bad arguments and configs."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="samplectl-small-", dir=temp_base())
        self.src = os.path.join(self.tmp.name, "src")
        self.files = small_tree(self.src)
        self.e = Env(self.tmp.name)
        self.e.run("init", check=0)
        self.e.run("import", self.src, "--layout", LAYOUT, check=0)

    def tearDown(self):
        self.tmp.cleanup()

    def hash_of(self, slide, image, path):
        return self.e.sql("SELECT hash FROM file_info WHERE slide = ? AND image = ? AND path = ?",
                          (slide, image, path))[0][0]

    def make_orphan(self):
        """Deletes a record (as `rm` in the mount would): its object stays."""
        h = self.hash_of("S2", "cell01", "orphan-to-be.h5")
        self.e.sql("DELETE FROM entry WHERE name = 'orphan-to-be.h5'")
        return h

    # --- fsck ------------------------------------------------------------------

    def test_fsck_clean(self):
        p = self.e.run("fsck", "--verify", check=0)
        self.assertIn("0 problems", p.stdout)

    def test_fsck_deleted_object(self):
        h = self.hash_of("S1", "cell01", "raw.h5")
        os.unlink(self.e.object_path(h))
        p = self.e.run("fsck", check=1)
        self.assertIn("S1/cell01/raw.h5", p.stdout)
        self.assertIn("missing", p.stdout)

    def test_fsck_flipped_byte(self):
        h = self.hash_of("S1", "cell02", "raw.h5")
        path = self.e.object_path(h)
        os.chmod(path, 0o600)
        with open(path, "r+b") as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 0xFF]))
        self.e.run("fsck", check=0)  # same size: only re-hashing sees it
        p = self.e.run("fsck", "--verify", check=1)
        self.assertIn("corrupt", p.stdout)
        self.assertIn("S1/cell02/raw.h5", p.stdout)

    def test_fsck_truncated_object(self):
        h = self.hash_of("S1", "cell01", "raw.h5")
        path = self.e.object_path(h)
        os.chmod(path, 0o600)
        os.truncate(path, 3)
        p = self.e.run("fsck", check=1)
        self.assertIn("bytes, the record says", p.stdout)

    def test_fsck_orphan_object_is_info(self):
        h = self.make_orphan()
        p = self.e.run("fsck", check=0)
        self.assertIn(h, p.stdout)
        self.assertIn("1 unreferenced object", p.stdout)

    def test_fsck_record_of_missing_object(self):
        self.e.sql("INSERT INTO entry(image_id, parent_id, name, type, size, hash, mode, mtime_ns) "
                   "SELECT image_id, id, 'ghost.tif', 'file', 10, ?, 420, 0 FROM entry "
                   "WHERE parent_id IS NULL LIMIT 1", ("0" * 32,))
        p = self.e.run("fsck", check=1)
        self.assertIn("ghost.tif", p.stdout)
        self.assertIn("0" * 32, p.stdout)

    def test_fsck_dangling_tag(self):
        self.e.sql("INSERT INTO tag(name) VALUES ('t')")
        self.e.sql("INSERT INTO tagging(tag_id, entity, record_id) SELECT id, 'slide', 9999 FROM tag")
        p = self.e.run("fsck", check=1)
        self.assertIn("slide 9999", p.stdout)

    def test_fsck_repair_removes_stale_staging_only(self):
        staging = os.path.join(self.e.store, "staging")
        old = os.path.join(staging, "0123456789abcdef.tmp")
        new = os.path.join(staging, "fedcba9876543210.tmp")
        for p in (old, new):
            with open(p, "wb") as f:
                f.write(b"partial")
        os.utime(old, (time.time() - 2 * 86400,) * 2)
        before = self.e.run("dump", check=0).stdout
        p = self.e.run("fsck", check=0)
        self.assertIn("1 stale staging file", p.stdout)
        self.assertTrue(os.path.exists(old))
        self.e.run("fsck", "--repair", check=0)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(new))  # may belong to a running writer
        self.assertEqual(self.e.run("dump", check=0).stdout, before)

    # --- gc --------------------------------------------------------------------

    def test_gc(self):
        orphan = self.make_orphan()
        referenced = self.e.referenced()
        before = self.e.objects()
        self.assertIn(orphan, before)
        # --dry-run lists exactly the unreferenced objects and changes nothing.
        p = self.e.run("gc", "--dry-run", "--grace", "0", check=0)
        listed = [l.split() for l in p.stdout.splitlines() if l.startswith("would remove ")]
        self.assertEqual([(l[2], int(l[3])) for l in listed], [(orphan, before[orphan][0])])
        self.assertEqual(self.e.objects(), before)
        # The default grace (1h) spares a fresh object.
        self.e.run("gc", check=0)
        self.assertEqual(self.e.objects(), before)
        # --grace 0 removes exactly the unreferenced objects.
        self.e.run("gc", "--grace", "0", check=0)
        after = self.e.objects()
        self.assertEqual(set(after), set(before) - {orphan})
        self.assertTrue(referenced <= set(after))
        self.assertIn("0 problems", self.e.run("fsck", "--verify", check=0).stdout)

    def test_gc_grace_spares_young_objects(self):
        orphan = self.make_orphan()
        old = time.time() - 3 * 3600
        os.utime(self.e.object_path(orphan), (old, old))
        self.e.run("gc", "--grace", "1d", check=0)
        self.assertIn(orphan, self.e.objects())
        self.e.run("gc", "--grace", "2h", check=0)
        self.assertNotIn(orphan, self.e.objects())

    def add_session(self, started, heartbeat):
        self.e.sql("INSERT INTO mount_session(host, pid, mountpoint, started, heartbeat) "
                   "VALUES ('lab-pc', 4242, '/mnt/samplefs', ?, ?)", (int(started), int(heartbeat)))

    def test_gc_spares_what_a_live_mount_may_still_commit(self):
        # An unreferenced object an hour old: gc --grace 10m removes it,
        # unless a live mount (heartbeat 5 s ago) started before it was
        # published: its record may be a commit that mount still makes.
        orphan = self.make_orphan()
        now = time.time()
        os.utime(self.e.object_path(orphan), (now - 3600, now - 3600))
        self.add_session(started=now - 7200, heartbeat=now - 5)
        p = self.e.run("gc", "--grace", "10m", check=0)
        self.assertIn(orphan, self.e.objects())
        self.assertIn("1 live mount", p.stdout)
        # --dry-run agrees.
        p = self.e.run("gc", "--dry-run", "--grace", "10m", check=0)
        self.assertNotIn(orphan, p.stdout)
        # A stale session (no heartbeat for 10 min: a dead mount) is ignored
        # by gc, reported by fsck, and removed by fsck --repair.
        self.e.sql("UPDATE mount_session SET heartbeat = ?", (int(now - 600),))
        p = self.e.run("fsck", check=0)
        self.assertIn("mount session 1 (lab-pc pid 4242 on /mnt/samplefs) has no heartbeat", p.stdout)
        self.e.run("gc", "--grace", "10m", check=0)
        self.assertNotIn(orphan, self.e.objects())
        self.e.run("fsck", "--repair", check=0)
        self.assertEqual(self.e.sql("SELECT count(*) FROM mount_session"), [(0,)])

    def test_gc_live_mount_started_after_the_object(self):
        # A mount that started after the object was published cannot
        # commit it (it was published by someone else): removed.
        orphan = self.make_orphan()
        now = time.time()
        os.utime(self.e.object_path(orphan), (now - 3600, now - 3600))
        self.add_session(started=now - 60, heartbeat=now - 1)
        self.e.run("gc", "--grace", "10m", check=0)
        self.assertNotIn(orphan, self.e.objects())

    def test_gc_ignore_live_mounts(self):
        orphan = self.make_orphan()
        now = time.time()
        self.add_session(started=now - 7200, heartbeat=now)
        self.e.run("gc", "--grace", "0", check=0)
        self.assertIn(orphan, self.e.objects())
        self.e.run("gc", "--grace", "0", "--ignore-live-mounts", check=0)
        self.assertNotIn(orphan, self.e.objects())

    # --- init ------------------------------------------------------------------

    def test_init_twice_keeps_data_and_modes(self):
        before = self.e.run("dump", check=0).stdout
        p = self.e.run("init", check=0)
        self.assertIn("already exists", p.stdout)
        self.assertEqual(self.e.run("dump", check=0).stdout, before)
        self.assertEqual(stat.S_IMODE(os.stat(self.e.catalog).st_mode), 0o600)
        for d in (os.path.dirname(self.e.catalog), self.e.store, os.path.join(self.e.store, "objects"),
                  os.path.join(self.e.store, "staging")):
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700, d)

    def test_init_explicit_paths_and_defaults(self):
        old = os.umask(0o022)
        try:
            base = os.path.join(self.tmp.name, "elsewhere", "deep")
            self.e.run("init", "--catalog", os.path.join(base, "cat", "c.db"),
                       "--store", os.path.join(base, "st"), config=False, check=0)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(base, "cat", "c.db")).st_mode), 0o600)
            for d in (base, os.path.join(base, "cat"), os.path.join(base, "st")):
                self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700, d)
            # No configuration anywhere: the embedded default under ~/.local/share.
            self.e.run("init", config=False, check=0)
            share = os.path.join(self.e.home, ".local", "share", "samplefs")
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(share, "catalog.db")).st_mode), 0o600)
            self.assertEqual(stat.S_IMODE(os.stat(share).st_mode), 0o700)
            self.assertTrue(os.path.isdir(os.path.join(share, "store", "objects")))
            # ~/.config/samplefs/samplefs.conf is found without --config.
            conf_dir = os.path.join(self.e.home, ".config", "samplefs")
            os.makedirs(conf_dir)
            with open(os.path.join(conf_dir, "samplefs.conf"), "w") as f:
                f.write("catalog = %s\nstore = %s\n" % (self.e.catalog, self.e.store))
            stats = json.loads(self.e.run("stats", "--json", config=False, check=0).stdout)
            self.assertEqual(stats["catalog"], self.e.catalog)
            self.assertEqual(stats["slides"], 2)
            # $SAMPLEFS_CONFIG, and $SAMPLEFS_CATALOG over any source.
            stats = json.loads(self.e.run("stats", "--json", config=False,
                                          env=self.e.env(SAMPLEFS_CONFIG=self.e.config), check=0).stdout)
            self.assertEqual(stats["store"], self.e.store)
            other = os.path.join(base, "cat", "c.db")
            stats = json.loads(self.e.run("stats", "--json",
                                          env=self.e.env(SAMPLEFS_CATALOG=other), check=0).stdout)
            self.assertEqual((stats["catalog"], stats["slides"]), (other, 0))
        finally:
            os.umask(old)

    # --- import ----------------------------------------------------------------

    def test_dry_run_changes_nothing(self):
        e2 = Env(self.tmp.name, "fresh")
        e2.run("init", check=0)
        before_dump, before_objects = e2.run("dump", check=0).stdout, e2.objects()
        p = e2.run("import", self.src, "--layout", LAYOUT, "--dry-run", check=0)
        self.assertIn("would create slide S1", p.stdout)
        self.assertIn("would create file S1/cell01/Pos0/img_000.tif", p.stdout)
        self.assertIn("would create image S2/cell01", p.stdout)
        self.assertEqual(e2.run("dump", check=0).stdout, before_dump)
        self.assertEqual(e2.objects(), before_objects)

    def test_misfit_paths_are_reported_not_guessed(self):
        src = os.path.join(self.tmp.name, "messy")
        write(os.path.join(src, "README.txt"), b"top-level file\n", 0)
        write(os.path.join(src, "HeLa/P01/S5/notes.txt"), b"file at the image level\n", 0)
        write(os.path.join(src, "HeLa/P01/S5/cell01/ok.tif"), b"fits\n", 0)
        write(os.path.join(src, "HeLa/P01/S5/cell01/sub/deep.tif"), b"fits too\n", 0)
        write(os.path.join(src, "HeLa/P03/S5/cell02/conflict.tif"), b"S5 is in P01\n", 0)
        os.makedirs(os.path.join(src, "HeLa/P01/S5/cell03"))
        os.mkfifo(os.path.join(src, "HeLa/P01/S5/cell03/pipe"))
        p = self.e.run("import", src, "--layout", LAYOUT, check=1)
        for path in ("README.txt", "HeLa/P01/S5/notes.txt", "HeLa/P03/S5/cell02", "HeLa/P01/S5/cell03/pipe"):
            self.assertIn(path, p.stderr)
        self.assertIn("slide 'S5' belongs to sample 'P01'", p.stderr)
        self.assertEqual(self.e.sql("SELECT count(*) FROM sample WHERE name = 'P03'"), [(0,)])
        self.assertEqual(sorted(r[0] for r in self.e.sql(
            "SELECT path FROM file_info WHERE slide = 'S5'")), ["ok.tif", "sub/deep.tif"])
        # Literal folders in the template; excluded names are not problems.
        src2 = os.path.join(self.tmp.name, "literal")
        write(os.path.join(src2, "HeLa/P01/S6/images/cellA/a.tif"), b"a\n", 0)
        write(os.path.join(src2, "HeLa/P01/S6/other/cellB/b.tif"), b"b\n", 0)
        write(os.path.join(src2, "HeLa/P01/S6/.DS_Store"), b"x", 0)
        p = self.e.run("import", src2, "--layout", "{species}/{sample}/{slide}/images/{image}",
                       "--exclude", ".*", check=1)
        self.assertIn("HeLa/P01/S6/other", p.stderr)
        self.assertNotIn(".DS_Store", p.stderr)
        self.assertEqual(self.e.sql("SELECT image, path FROM file_info WHERE slide = 'S6'"), [("cellA", "a.tif")])

    def test_import_picks_up_changed_files(self):
        path = os.path.join(self.src, "HeLa/P01/S1/cell02/analysis.csv")
        write(path, b"a,b\n1,2\n3,4\n", (BASE_MTIME + 100) * 10**9)
        p = self.e.run("import", self.src, "--layout", LAYOUT, check=0)
        self.assertIn("1 updated", p.stdout)
        h = self.hash_of("S1", "cell02", "analysis.csv")
        with open(self.e.object_path(h), "rb") as f:
            self.assertEqual(f.read(), b"a,b\n1,2\n3,4\n")

    # --- bad arguments and configurations ---------------------------------------

    def test_bad_arguments_exit_2(self):
        e = self.e
        cases = [
            ((), "no command"),
            (("frobnicate",), "frobnicate"),
            (("import", self.src), "--layout"),
            (("import", self.src, "--layout", "{species}/{slide}"), "{image}"),
            (("import", self.src, "--layout", "{foo}/{slide}/{image}"), "unknown placeholder {foo}"),
            (("import", self.src, "--layout", "{slide}{image}"), "more than one placeholder"),
            (("import", self.src, "--layout", "{image}/{slide}"), "must come before"),
            (("import", "/nonexistent/src", "--layout", LAYOUT), "not a readable folder"),
            (("query", "species"), "not key=value"),
            (("query", "after=yesterday"), "expected a date"),
            (("query", "speceis=HeLa"), "query key 'speceis' is neither a field nor an annotation key"),
            (("query", "species=HeLa,Species=x"), "known keys: species, sample, dye"),
            (("query", "species<HeLa"), "compare dates and numbers"),
            (("query", "species=HeLa|"), "empty alternative"),
            (("query", "--csv", "--json", "species=HeLa"), "excludes"),
            (("export",), "TABLE_OR_VIEW"),
            (("export", "nosuch"), "no table or view named 'nosuch'"),
            (("export", "species; DROP TABLE species"), "no table or view"),
            (("gc", "--grace", "5x"), "invalid duration"),
            (("gc", "--grace", "-1h"), ""),
            (("tag", "add", "NOSLIDE", "good"), "NOSLIDE"),
            (("tag", "add", "S1"), "TAG"),
            (("tag", "add", "S1", "bad,name"), "contains ','"),
            (("tag", "frob",), ""),
            (("load", "/nonexistent.json"), "cannot read"),
            (("fsck", "--bogus"), "--bogus"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                p = e.run(*args)
                self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
                self.assertIn(needle, p.stderr)
        self.assertEqual(e.sql("SELECT count(*) FROM species")[0][0], 2)  # nothing dropped
        bad = os.path.join(self.tmp.name, "bad.json")
        for text, needle in [("{not json", "not valid JSON"), ('{"format": "other"}', "not a samplefs dump"),
                             ("[]", "not a JSON object")]:
            with open(bad, "w") as f:
                f.write(text)
            fresh = Env(self.tmp.name, "fresh-load")
            fresh.run("init", check=0)
            p = fresh.run("load", bad)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(needle, p.stderr)

    def test_help_for_every_command(self):
        for cmd in ([], ["init"], ["import"], ["query"], ["export"], ["tag"], ["tag", "add"], ["tag", "rm"],
                    ["tag", "ls"], ["fsck"], ["gc"], ["stats"], ["dump"], ["load"]):
            with self.subTest(cmd=cmd):
                p = self.e.run(*cmd, "--help", check=0)
                self.assertIn("Usage", p.stdout)

    def test_bad_config_exit_2(self):
        e = self.e
        conf = os.path.join(self.tmp.name, "bad.conf")
        cases = [
            ("catalog = /x\nbogus = 1\n", ":2: unknown key 'bogus'"),
            ("catalog /x\n", ":1: expected 'key = value'"),
            ("# comment\n\n; other comment\nlog_level = loud\n", ":4: unknown log_level 'loud'"),
            ("[other]\ncatalog = /x\n", ":1: unknown section [other]"),
            ("store =\n", ":1: empty value for 'store'"),
        ]
        for text, needle in cases:
            with self.subTest(text=text):
                with open(conf, "w") as f:
                    f.write(text)
                p = subprocess.run([SAMPLECTL, "--config", conf, "stats"], capture_output=True, text=True,
                                   env=e.env())
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(conf + needle, p.stderr)
        missing = os.path.join(self.tmp.name, "missing.conf")
        p = subprocess.run([SAMPLECTL, "--config", missing, "stats"], capture_output=True, text=True, env=e.env())
        self.assertEqual(p.returncode, 2)
        self.assertIn(missing, p.stderr)
        p = subprocess.run([SAMPLECTL, "stats"], capture_output=True, text=True,
                           env=e.env(SAMPLEFS_CONFIG=missing))
        self.assertEqual(p.returncode, 2)
        self.assertIn(missing, p.stderr)
        # A PostgreSQL catalog that cannot be reached (a socket directory
        # that does not exist: no network needed): exit 2, the reason, and
        # never the password.
        url = "postgresql://lab:s3cret-pw@/samplefs?host=/nonexistent-samplefs-socket"
        p = e.run("stats", env=e.env(SAMPLEFS_CATALOG=url))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("catalog database unreachable", p.stderr)
        self.assertNotIn("s3cret-pw", p.stderr)
        # No catalog yet: say so and point at init.
        with open(conf, "w") as f:
            f.write("catalog = nothing/here.db\nstore = nothing/store\n")
        p = subprocess.run([SAMPLECTL, "--config", conf, "query"], capture_output=True, text=True, env=e.env())
        self.assertEqual(p.returncode, 2)
        self.assertIn("samplectl init", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "nothing")))


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-") and os.path.isfile(sys.argv[1]):
        SAMPLECTL = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
