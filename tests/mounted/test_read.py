"""Issue 3, "The mounted catalog": acceptance tests of reading a mount.

A fixture catalog with a lab's realistic names (species and dyes of the
demo vocabulary, labelled structures, PYME .h5 series, OME-TIFF stacks, an
OME-Zarr tree with nested chunks, a Micro-Manager Pos0/ folder, analysis
.h5r/.csv files, a symlink, tags and annotations on every kind of record)
is built through the mount with the tools a lab uses (mkdir, cp -a,
setfattr); labellings, which the mount cannot edit yet, go into the
catalog with sqlite3 while it is unmounted.

The tests then read it with real tools and check what they print against
the model the fixture was built from and against the catalog's rows:
`ls -l` and `find` of every view, stat sizes against the bytes read, `cmp`
of every file in every place it appears, sidecars through
`python3 -m json.tool`, `getfattr -d -m -` and `xxhsum -H2`, the same
slide reached through every view, ENOENT/EINVAL/ENODATA/ERANGE, a
100,000-file directory, status.json, and a read-only mount (SPEC section 4).
"""
import base64
import contextlib
import ctypes
import errno
import hashlib
import json
import mmap
import os
import random
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
import unittest

from mountlib import Mount, MountedTestCase, fuse_available, write_random

# --- the fixture ---------------------------------------------------------
# Rows of tools/demo/species.csv and dyes.csv (the demo vocabulary).
SPECIES = [  # name, species, strain
    ("HeLa", "Human", "HeLa"),
    ("Rat-Wistar", "Rat", "Wistar"),
    ("Mouse-C57BL6", "Mouse", "C57BL/6"),
    ("U2OS", "Human", "U2OS"),  # a species without samples
]
DYES = [  # short_name, long_name, spectra_db_name
    ("A488", "Alexa Fluor 488", "Alexa Fluor 488"),
    ("A555", "Alexa Fluor 555", "Alexa Fluor 555"),
    ("A568", "Alexa Fluor 568", "Alexa Fluor 568"),
    ("A647", "Alexa Fluor 647", "Alexa Fluor 647"),
    ("A680", "Alexa Fluor 680", "Alexa Fluor 680"),
    ("At655", "ATTO 655", "ATTO 655"),
    ("Cy3B", "Cy3B", "Cy3B"),
    ("CF568", "CF568", "CF568"),
    ("DAPI", "DAPI (4',6-diamidino-2-phenylindole)", "DAPI"),
    ("EGFP", "Enhanced green fluorescent protein (EGFP)", "EGFP"),
    ("mEos3.2", "mEos3.2 photoconvertible fluorescent protein", "mEos3.2"),
    ("mCherry", "mCherry red fluorescent protein", "mCherry"),
]
# name -> species, sample_type, patient_id, how it is created: "samples"
# (mkdir samples/<name>, then its species is set with setfattr) or
# "species" (mkdir species/<sp>/slides/<slide> creates a sample named
# after the slide).
SAMPLES = {
    "HeLa-P12": ("HeLa", "Cell Culture", "", "samples"),
    "HeLa-P13": ("HeLa", "Cell Culture", "", "samples"),
    "RW07": ("Rat-Wistar", "Tissue Section", "rat-07", "samples"),
    "MC3-cortex-s01": ("Mouse-C57BL6", "Tissue Section", "mouse-3", "species"),
}
# reference -> sample, labellings (structure, isotype, antibody, dye),
# tags, notes (user.xdg.comment), annotations (user.<key>)
SLIDES = {
    "HeLa-P12-s01": dict(
        sample="HeLa-P12",
        labellings=[("tubulin", "mouse IgG1", "anti-alpha-tubulin (DM1A)", "A647"),
                    ("actin", "", "phalloidin", "A488")],
        tags=["good", "dstorm"], notes="fixed 4% PFA, 10 min; imaged in MEA/GLOX",
        annotations={"objective": "60x/1.49 oil", "mounting_medium": "MEA/GLOX"}),
    "HeLa-P12-s02": dict(
        sample="HeLa-P12",
        labellings=[("Nup96", "", "anti-GFP nanobody", "A647"), ("DNA", "", "", "DAPI")],
        tags=["dstorm"], notes="", annotations={}),
    "HeLa-P13-s01": dict(
        sample="HeLa-P13",
        labellings=[("tubulin", "rabbit IgG", "anti-beta-tubulin", "CF568"),
                    ("TOM20", "rabbit IgG", "anti-TOM20 (FL-145)", "A488")],
        tags=[], notes="no images yet", annotations={}),
    "RW07-LV-s01": dict(
        sample="RW07",
        labellings=[("RyR", "mouse IgG1", "anti-RyR2 (C3-33)", "A647"),
                    ("Cav3", "rabbit IgG", "anti-caveolin-3", "A568")],
        tags=["good"], notes="left ventricle, 10 um cryosection",
        annotations={"objective": "100x/1.4 oil"}),
    "RW07-LV-s02": dict(
        sample="RW07",
        labellings=[("RyR", "mouse IgG1", "anti-RyR2 (C3-33)", "At655")],
        tags=[], notes="", annotations={}),
    "MC3-cortex-s01": dict(
        sample="MC3-cortex-s01",
        labellings=[("clathrin", "rabbit IgG", "anti-clathrin heavy chain", "A555"),
                    ("actin", "", "phalloidin", "Cy3B")],
        tags=[], notes="", annotations={"section_um": "8"}),
}
SLIDE_ORDER = ["HeLa-P12-s01", "HeLa-P12-s02", "HeLa-P13-s01", "RW07-LV-s01", "RW07-LV-s02",
               "MC3-cortex-s01"]
# (slide, image) -> tags, comments, annotations. Two images share a name
# ("cell01") in different slides, as happens in every lab.
IMAGES = {
    ("HeLa-P12-s01", "cell01"): dict(tags=["best"], comments="good blinking, 20k frames",
                                      annotations={"microscope": "STORM-1", "exposure_ms": "20"}),
    ("HeLa-P12-s01", "cell02"): dict(tags=[], comments="", annotations={}),
    ("HeLa-P12-s02", "np01"): dict(tags=[], comments="Micro-Manager acquisition",
                                    annotations={"microscope": "Ti2-E"}),
    ("RW07-LV-s01", "cell01"): dict(tags=["best"], comments="", annotations={}),
    ("RW07-LV-s02", "overview"): dict(tags=[], comments="", annotations={}),
    ("MC3-cortex-s01", "tile_000"): dict(tags=[], comments="", annotations={}),
}
# (slide, image, path in files/) -> tags, annotations
FILE_META = {
    ("HeLa-P12-s01", "cell01", "cell01.h5"): (["good"], {"frames": "20000"}),
    ("HeLa-P12-s01", "cell02", "cell02.zarr"): (["ome-zarr"], {}),
    ("HeLa-P12-s01", "cell02", "cell02.zarr/0/.zarray"): (["checked"], {}),
    ("HeLa-P12-s02", "np01", "np01_1/Pos0/metadata.txt"): (["checked"], {}),
    ("RW07-LV-s01", "cell01", "z-stack 1 (Zelle α).tif"): (["good", "checked"],
                                                           {"z_step_nm": "100"}),
}
QUERY = "species=HeLa,dye=A647"
EMPTY_HASH = "99aa06d3014798d86001c324468d497f"  # XXH3-128 of no bytes
MIB = 1 << 20


def make_sources(root):
    """Writes the raw and analysis files of every image under root/<slide>/<image>/."""
    def path(slide, image, rel):
        p = os.path.join(root, slide, image, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def text(slide, image, rel, s):
        with open(path(slide, image, rel), "w") as f:
            f.write(s)

    seed = iter(range(1, 1000))
    # A PYME raw series, its localisations and analysis, a symlink to the
    # series and an empty acquisition log.
    write_random(path("HeLa-P12-s01", "cell01", "cell01.h5"), 3 * MIB + 123, next(seed))
    write_random(path("HeLa-P12-s01", "cell01", "cell01.h5r"), 200 * 1024 + 1, next(seed))
    text("HeLa-P12-s01", "cell01", "cell01_locs.csv",
         "x_nm,y_nm,sigma_nm,A\n" + "".join(f"{1000 + i * 7.5},{2000 - i * 3.25},{12 + i % 5},{300 + i}\n"
                                            for i in range(500)))
    text("HeLa-P12-s01", "cell01", "acquisition.log", "")
    os.symlink("cell01.h5", path("HeLa-P12-s01", "cell01", "latest.h5"))
    # An OME-TIFF stack and an OME-Zarr tree with nested chunk files.
    write_random(path("HeLa-P12-s01", "cell02", "cell02.ome.tif"), MIB + 17, next(seed))
    z = "cell02.zarr"
    text("HeLa-P12-s01", "cell02", f"{z}/.zgroup", '{"zarr_format": 2}\n')
    text("HeLa-P12-s01", "cell02", f"{z}/.zattrs",
         json.dumps({"multiscales": [{"version": "0.4", "axes": ["t", "c", "z", "y", "x"],
                                      "datasets": [{"path": "0"}, {"path": "1"}]}]}, indent=1))
    for level in ("0", "1"):
        text("HeLa-P12-s01", "cell02", f"{z}/{level}/.zarray",
             json.dumps({"chunks": [1, 1, 1, 64, 64], "dtype": "<u2", "dimension_separator": "/",
                         "shape": [1, 1, 1, 128 >> int(level), 128 >> int(level)]}))
    for c in ("0/0/0/0/0/0", "0/0/0/0/0/1", "0/0/0/0/1/0", "0/0/0/0/1/1", "1/0/0/0/0/0"):
        write_random(path("HeLa-P12-s01", "cell02", f"{z}/{c}"), 8192 - int(c[-1]) * 100, next(seed))
    # A Micro-Manager position folder.
    for t in range(12):
        write_random(path("HeLa-P12-s02", "np01",
                          f"np01_1/Pos0/img_channel000_position000_time{t:09d}_z000.tif"),
                     64 * 1024 + t, next(seed))
    text("HeLa-P12-s02", "np01", "np01_1/Pos0/metadata.txt",
         json.dumps({"Summary": {"Prefix": "np01_1", "Frames": 12, "Channels": 1}}, indent=2))
    text("HeLa-P12-s02", "np01", "np01_1/DisplaySettings.json", '{"map": {}}\n')
    # Another slide's cell01: the same file name, other bytes; a name with
    # spaces, parentheses and non-ASCII letters.
    write_random(path("RW07-LV-s01", "cell01", "cell01.h5"), 2 * MIB, next(seed))
    write_random(path("RW07-LV-s01", "cell01", "z-stack 1 (Zelle α).tif"), 6 * MIB + 7, next(seed))
    # Two files with the same bytes (stored once).
    write_random(path("RW07-LV-s02", "overview", "overview.tif"), 500 * 1024, next(seed))
    shutil.copyfile(path("RW07-LV-s02", "overview", "overview.tif"),
                    path("RW07-LV-s02", "overview", "overview_copy.tif"))
    write_random(path("MC3-cortex-s01", "tile_000", "tile_000.ome.tif"), 300 * 1024 + 3, next(seed))
    text("MC3-cortex-s01", "tile_000", "tile_000.csv", "frame,x,y\n0,1.5,2.5\n")
    # Fixed, distinct times so cp -a has something to keep.
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), ns=(1_700_000_000_000_000_000,) * 2,
                     follow_symlinks=False)


def source_entries(image_dir):
    """{relpath: (type 'f'/'d'/'l', size, source path)} of one image's files."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(image_dir):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, image_dir)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", len(os.readlink(p)), p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", None, p)
            else:
                out[rel] = ("f", st.st_size, p)
    return out


def setfattr(path, name, value):
    subprocess.run(["setfattr", "-n", name, "-v", value, path], check=True, capture_output=True)


class Fixture:
    """The catalog the read tests look at, and what it should show."""

    def __init__(self, mount, src_root):
        self.m = mount
        self.src = src_root
        self.entries = {}  # (slide, image) -> source_entries()

    def build(self):
        m = self.m
        make_sources(self.src)
        for name, species, strain in SPECIES:
            os.mkdir(m.path("species", name))
            setfattr(m.path("species", name), "user.samplefs.species", species)
            setfattr(m.path("species", name), "user.samplefs.strain", strain)
        for short, long_name, spectra in DYES:
            os.mkdir(m.path("dyes", short))
            setfattr(m.path("dyes", short), "user.samplefs.long_name", long_name)
            setfattr(m.path("dyes", short), "user.samplefs.spectra_db_name", spectra)
        for name, (species, stype, patient, how) in SAMPLES.items():
            if how == "samples":
                os.mkdir(m.path("samples", name))
                setfattr(m.path("samples", name), "user.samplefs.species", species)
            else:
                os.mkdir(m.path("species", species, "slides", name))
            setfattr(m.path("samples", name), "user.samplefs.sample_type", stype)
            if patient:
                setfattr(m.path("samples", name), "user.samplefs.patient_id", patient)
        # mkdir samples/<x> filed the samples under "Unspecified" until their
        # species was set; that species is empty now.
        os.rmdir(m.path("species", "Unspecified"))
        for ref in SLIDE_ORDER:
            s = SLIDES[ref]
            slide_dir = m.path("samples", s["sample"], "slides", ref)
            if not os.path.isdir(slide_dir):
                os.mkdir(slide_dir)
            if s["notes"]:
                setfattr(m.path("slides", ref), "user.xdg.comment", s["notes"])
            for k, v in s["annotations"].items():
                setfattr(m.path("slides", ref), "user." + k, v)
            if s["tags"]:
                setfattr(m.path("slides", ref), "user.xdg.tags", ",".join(s["tags"]))
        for (ref, image), meta in IMAGES.items():
            image_dir = m.path("slides", ref, "images", image)
            os.mkdir(image_dir)
            src = os.path.join(self.src, ref, image)
            subprocess.run(["cp", "-a", src + "/.", os.path.join(image_dir, "files") + "/"],
                           check=True, capture_output=True)
            self.entries[(ref, image)] = source_entries(src)
            if meta["comments"]:
                setfattr(image_dir, "user.xdg.comment", meta["comments"])
            for k, v in meta["annotations"].items():
                setfattr(image_dir, "user." + k, v)
            if meta["tags"]:
                setfattr(image_dir, "user.xdg.tags", ",".join(meta["tags"]))
        for (ref, image, rel), (tags, ann) in FILE_META.items():
            p = m.path("slides", ref, "images", image, "files", rel)
            for k, v in ann.items():
                setfattr(p, "user." + k, v)
            if tags:
                setfattr(p, "user.xdg.tags", ",".join(tags))
        # Labellings cannot be edited through the mount yet.
        m.stop()
        with contextlib.closing(m.connect()) as con, con:
            for ref in SLIDE_ORDER:
                for structure, isotype, antibody, dye in SLIDES[ref]["labellings"]:
                    con.execute(
                        "INSERT INTO labelling(slide_id, structure, isotype, antibody, dye_id) "
                        "VALUES ((SELECT id FROM slide WHERE reference = ?), ?, ?, ?, "
                        "(SELECT id FROM dye WHERE short_name = ?))",
                        (ref, structure, isotype, antibody, dye))
        m.start()

    # -- what the mount should show -------------------------------------
    def slides_of(self, pred):
        return [r for r in SLIDE_ORDER if pred(r, SLIDES[r])]

    def species_of_slide(self, ref):
        return SAMPLES[SLIDES[ref]["sample"]][0]

    def images_of(self, ref):
        return [i for (r, i) in IMAGES if r == ref]

    def tag_names(self):
        names = []
        for t in [t for r in SLIDE_ORDER for t in SLIDES[r]["tags"]] + \
                 [t for m in IMAGES.values() for t in m["tags"]] + \
                 [t for tags, _ in FILE_META.values() for t in tags]:
            if t not in names:
                names.append(t)
        return names

    def structures(self):
        return sorted({l[0] for s in SLIDES.values() for l in s["labellings"]})

    def query_slides(self):
        return self.slides_of(lambda r, s: self.species_of_slide(r) == "HeLa" and
                              any(l[3] == "A647" for l in s["labellings"]))

    def tree(self):
        """{path relative to the mount: (type, size or None, source or None)}
        of everything `find` should print (sizes of generated files are
        checked against their bytes elsewhere)."""
        t = {}

        def d(p):
            t[p] = ("d", None, None)

        def gen(p):
            t[p] = ("f", None, None)

        def entries(base, ref, image, under=""):
            for rel, (typ, size, src) in self.entries[(ref, image)].items():
                if under:
                    if not rel.startswith(under + "/"):
                        continue
                    rel = rel[len(under) + 1:]
                t[f"{base}/{rel}"] = (typ, size, src if typ == "f" else None)

        def image_tree(base, ref, image):
            d(base)
            gen(base + "/image.json")
            d(base + "/files")
            entries(base + "/files", ref, image)

        def slide_tree(base, ref):
            d(base)
            gen(base + "/slide.json")
            d(base + "/images")
            for image in self.images_of(ref):
                image_tree(f"{base}/images/{image}", ref, image)

        def slide_list(base, refs):
            d(base)
            for ref in refs:
                slide_tree(f"{base}/{ref}", ref)

        for top in ("species", "samples", "slides", "dyes", "structures", "tags", "query",
                    ".samplefs"):
            d(top)
        gen(".samplefs/status.json")
        gen(".samplefs/errors")
        for name, _, _ in SPECIES:
            d(f"species/{name}")
            gen(f"species/{name}/species.json")
            slide_list(f"species/{name}/slides",
                       self.slides_of(lambda r, s: self.species_of_slide(r) == name))
        for name in SAMPLES:
            d(f"samples/{name}")
            gen(f"samples/{name}/sample.json")
            slide_list(f"samples/{name}/slides", self.slides_of(lambda r, s: s["sample"] == name))
        for ref in SLIDE_ORDER:
            slide_tree(f"slides/{ref}", ref)
        for short, _, _ in DYES:
            d(f"dyes/{short}")
            gen(f"dyes/{short}/dye.json")
            slide_list(f"dyes/{short}/slides",
                       self.slides_of(lambda r, s: any(l[3] == short for l in s["labellings"])))
        for st in self.structures():
            d(f"structures/{st}")
            slide_list(f"structures/{st}/slides",
                       self.slides_of(lambda r, s: any(l[0] == st for l in s["labellings"])))
        for tag in self.tag_names():
            d(f"tags/{tag}")
            slide_list(f"tags/{tag}/slides", self.slides_of(lambda r, s: tag in s["tags"]))
            d(f"tags/{tag}/images")
            for (ref, image), meta in IMAGES.items():
                if tag in meta["tags"]:
                    image_tree(f"tags/{tag}/images/{ref}:{image}", ref, image)
            d(f"tags/{tag}/files")
            for (ref, image, rel), (tags, _) in FILE_META.items():
                if tag in tags:
                    base = f"tags/{tag}/files/{ref}:{image}:{rel.replace('/', ':')}"
                    typ, size, src = self.entries[(ref, image)][rel]
                    t[base] = (typ, size, src if typ == "f" else None)
                    if typ == "d":
                        entries(base, ref, image, under=rel)
        return t

    def query_tree(self):
        """The tree under query/<QUERY>/ (find does not enter query/ itself)."""
        t = {"": ("d", None, None), "slides": ("d", None, None), "images": ("d", None, None)}
        full = self.tree()
        for ref in self.query_slides():
            for p, v in full.items():
                if p == f"slides/{ref}" or p.startswith(f"slides/{ref}/"):
                    t[p] = v
                    if p.startswith(f"slides/{ref}/images/"):
                        rest = p[len(f"slides/{ref}/images/"):]
                        image, _, tail = rest.partition("/")
                        t[f"images/{ref}:{image}" + (f"/{tail}" if tail else "")] = v
        return t


# --- helpers ---------------------------------------------------------------
def xxh128(path):
    """XXH3-128 hex of a file as printed by the reference tool `xxhsum -H2`."""
    out = subprocess.run(["xxhsum", "-H2", path], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[0].lstrip("\\")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def parse_getfattr(out):
    """`getfattr -d` output of one file -> {name: bytes}. Decodes the quoted
    text form (with \\ooo escapes), 0s (base64) and 0x (hex) forms."""
    attrs = {}
    for line in out.splitlines():
        if not line or line.startswith("# file:"):
            continue
        name, _, value = line.partition("=")
        if value.startswith("0s"):
            attrs[name] = base64.b64decode(value[2:])
        elif value.startswith("0x"):
            attrs[name] = bytes.fromhex(value[2:])
        elif value.startswith('"') and value.endswith('"'):
            raw = value[1:-1].encode("utf-8")
            attrs[name] = re.sub(rb"\\([0-7]{3})", lambda mo: bytes([int(mo.group(1), 8)]), raw)
        else:
            attrs[name] = value.encode()
    return attrs


def parse_ls_l(out):
    """`ls -l --time-style=+%s --quoting-style=literal` -> {name: (type, size, link target)}."""
    entries = {}
    for line in out.splitlines():
        if not line or line.startswith("total "):
            continue
        mode, _nlink, _user, _group, size, _time, name = line.split(None, 6)
        target = None
        if mode[0] == "l":
            name, _, target = name.partition(" -> ")
        entries[name] = ({"-": "f", "d": "d", "l": "l"}[mode[0]], int(size), target)
    return entries


_libc = ctypes.CDLL(None, use_errno=True)
_libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.getxattr.restype = ctypes.c_ssize_t
_libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.listxattr.restype = ctypes.c_ssize_t


def c_getxattr(path, name, size):
    """getxattr(2) with a buffer of `size` bytes (NULL for 0): (ret, errno, bytes)."""
    buf = ctypes.create_string_buffer(size) if size else None
    ctypes.set_errno(0)
    r = _libc.getxattr(os.fsencode(path), name.encode(), buf, size)
    return r, ctypes.get_errno() if r < 0 else 0, buf.raw[:r] if (buf is not None and r > 0) else b""


def c_listxattr(path, size):
    buf = ctypes.create_string_buffer(size) if size else None
    ctypes.set_errno(0)
    r = _libc.listxattr(os.fsencode(path), buf, size)
    return r, ctypes.get_errno() if r < 0 else 0, buf.raw[:r] if (buf is not None and r > 0) else b""


class FixtureTestCase(MountedTestCase):
    """One mount with the fixture catalog for all tests of the class (the
    tests only read, so they can share it). With remount_options the
    daemon is restarted with them once the fixture is built."""

    remount_options = None  # restart with these options after building

    @classmethod
    def setUpClass(cls):
        if not fuse_available():
            raise unittest.SkipTest("/dev/fuse or fusermount3 is missing: mounted tests need FUSE")
        cls.tmp = tempfile.mkdtemp(prefix="samplefs-read-")
        cls.m = Mount(cls.tmp)
        cls.m.start()
        try:
            t0 = time.monotonic()
            cls.fx = Fixture(cls.m, os.path.join(cls.tmp, "src"))
            cls.fx.build()
            if cls.remount_options is not None:
                cls.m.stop()
                cls.m.start(options=cls.remount_options)
            print(f"\n[{cls.__name__}] fixture built in {time.monotonic() - t0:.2f} s")
        except BaseException:
            cls.m.stop()
            print(cls.m.read_log())
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.m.stop()
        log = cls.m.read_log()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if rc not in (0, None):
            raise AssertionError(f"daemon did not exit cleanly ({rc}):\n{log}")

    def setUp(self):  # the class owns the mount
        pass

    def tearDown(self):
        pass

    # -- shared checks ------------------------------------------------------
    def find_tree(self, top):
        """`find` of top (relative to the mount): {relpath: (type, size)}."""
        r = self.run_tool("find", ".", "-mindepth", "1", "-printf", r"%y\t%s\t%P\n",
                          cwd=self.m.path(top) if top else self.m.mnt)
        out = {}
        for line in r.stdout.splitlines():
            typ, size, rel = line.split("\t", 2)
            self.assertNotIn(rel, out, f"find printed {rel} twice")
            out[rel] = (typ, int(size))
        return out

    def assertTreeEqual(self, expected, found, where):
        exp = {p for p in expected if p}
        self.assertEqual(sorted(set(found) - exp), [], f"unexpected paths under {where}")
        self.assertEqual(sorted(exp - set(found)), [], f"paths missing under {where}")
        for p, (typ, size, _src) in expected.items():
            if not p:
                continue
            self.assertEqual(found[p][0], typ, f"type of {where}/{p}")
            if size is not None:
                self.assertEqual(found[p][1], size, f"size of {where}/{p}")

    def ls_l(self, rel):
        """`ls -lA` of a directory of the mount, parsed."""
        r = self.run_tool("ls", "-lA", "--time-style=+%s", "--quoting-style=literal",
                          self.m.path(rel) if rel else self.m.mnt)
        return parse_ls_l(r.stdout)

    def check_every_file_cmp(self):
        n = 0
        for rel, (typ, _size, src) in self.fx.tree().items():
            if typ == "f" and src:
                r = self.run_tool("cmp", src, self.m.path(rel), check=False)
                self.assertEqual(r.returncode, 0, f"cmp {rel}: {r.stdout}{r.stderr}")
                n += 1
        return n


class ReadViews(FixtureTestCase):
    """Every view of a read-write mount, read with real tools."""

    def test_find_prints_the_whole_catalog(self):
        t0 = time.monotonic()
        found = self.find_tree("")
        dt = time.monotonic() - t0
        print(f"\nfind over the whole mount: {len(found)} paths in {dt:.2f} s")
        self.assertTreeEqual(self.fx.tree(), found, "/")
        # query/ lists nothing: find does not descend into it.
        self.assertEqual(os.listdir(self.m.path("query")), [])

    def test_find_query(self):
        found = self.find_tree(f"query/{QUERY}")
        self.assertTreeEqual(self.fx.query_tree(), found, f"query/{QUERY}")
        self.assertEqual(sorted(os.listdir(self.m.path("query", QUERY, "slides"))),
                         sorted(["HeLa-P12-s01", "HeLa-P12-s02"]))
        self.assertEqual(sorted(os.listdir(self.m.path("query", QUERY, "images"))),
                         sorted(["HeLa-P12-s01:cell01", "HeLa-P12-s01:cell02", "HeLa-P12-s02:np01"]))

    def test_ls_l_of_every_directory(self):
        """`ls -l` of every directory of every view (and of the query)
        prints exactly the expected names, types, sizes and link targets."""
        tree = self.fx.tree()
        for p, v in self.fx.query_tree().items():
            tree[f"query/{QUERY}/{p}" if p else f"query/{QUERY}"] = v
        dirs = [""] + [p for p, v in tree.items() if v[0] == "d"]
        t0 = time.monotonic()
        for d in dirs:
            got = self.ls_l(d)
            prefix = d + "/" if d else ""
            want = {p[len(prefix):]: v for p, v in tree.items()
                    if p.startswith(prefix) and p != d and "/" not in p[len(prefix):]}
            if d == "query":
                want = {}  # query/ lists nothing; any name looked up is a query
            self.assertEqual(sorted(got), sorted(want), f"ls -l {d or '/'}")
            for name, (typ, size, src) in want.items():
                self.assertEqual(got[name][0], typ, f"type of {prefix}{name}")
                if size is not None:
                    self.assertEqual(got[name][1], size, f"size of {prefix}{name}")
                if typ == "l":
                    self.assertEqual(got[name][2], "cell01.h5", f"target of {prefix}{name}")
        print(f"\nls -l of {len(dirs)} directories in {time.monotonic() - t0:.2f} s")
        # The top-level views by name, as a user sees them.
        self.assertEqual(sorted(self.ls_l("species")),
                         sorted(["HeLa", "Rat-Wistar", "Mouse-C57BL6", "U2OS"]))
        self.assertEqual(sorted(self.ls_l("dyes")),
                         sorted(d[0] for d in DYES))
        self.assertEqual(sorted(os.listdir(self.m.path("structures"))),
                         sorted(["tubulin", "actin", "Nup96", "DNA", "TOM20", "RyR", "Cav3",
                                 "clathrin"]))
        self.assertEqual(sorted(os.listdir(self.m.path("tags"))),
                         sorted(["good", "dstorm", "best", "checked", "ome-zarr"]))
        self.assertEqual(sorted(os.listdir(self.m.path("dyes", "A647", "slides"))),
                         sorted(["HeLa-P12-s01", "HeLa-P12-s02", "RW07-LV-s01"]))
        self.assertEqual(sorted(os.listdir(self.m.path("tags", "good", "files"))),
                         sorted(["HeLa-P12-s01:cell01:cell01.h5",
                                 "RW07-LV-s01:cell01:z-stack 1 (Zelle α).tif"]))
        self.assertEqual(sorted(os.listdir(self.m.path("tags", "checked", "files"))),
                         sorted(["HeLa-P12-s01:cell02:cell02.zarr:0:.zarray",
                                 "HeLa-P12-s02:np01:np01_1:Pos0:metadata.txt",
                                 "RW07-LV-s01:cell01:z-stack 1 (Zelle α).tif"]))

    def test_stat_size_equals_bytes_read(self):
        """For every regular file of the mount (data, sidecars, status.json,
        errors), stat's size is the number of bytes read.

        status.json is live: its `mount` counters (inodes the kernel holds,
        directories opened, listings answered) move with every walk of the
        mount, this test's own included, so its size is checked by
        stat(1), read, stat(1) again until both stats agree (the document
        did not change in between): then the read has that size."""
        live = "./.samplefs/status.json"

        def read_size():
            with open(self.m.path(live), "rb") as f:
                return len(f.read())

        def between_equal_stats(stat_size, measure):
            """stat_size() and measure() of status.json, taken while it did
            not change (two equal stat_size() around the measure)."""
            for _ in range(20):
                before = stat_size()
                value = measure()
                if stat_size() == before:
                    return int(before), int(value)
            self.fail("status.json changed size around every one of 20 reads")

        n = 0
        for dirpath, dirnames, filenames in os.walk(self.m.mnt):
            for name in filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    continue
                n += 1
                if "./" + os.path.relpath(p, self.m.mnt) == live:
                    continue
                with open(p, "rb") as f:
                    data = f.read()
                self.assertEqual(st.st_size, len(data), f"stat size of {p}")
                self.assertEqual(os.stat(p).st_size, len(data), f"stat size of {p} after reading")
        expected = sum(1 for v in self.fx.tree().values() if v[0] == "f")
        self.assertEqual(n, expected)
        size, read = between_equal_stats(lambda: os.stat(self.m.path(live)).st_size, read_size)
        self.assertEqual(size, read, "stat size of status.json")
        # stat(1) and wc -c say the same, for every regular file at once.
        r = self.run_tool("find", ".", "-type", "f", "-exec", "stat", "-c", "%s\t%n", "{}", "+",
                          cwd=self.m.mnt)
        sizes = dict(reversed(line.split("\t", 1)) for line in r.stdout.splitlines())
        self.assertEqual(len(sizes), expected)
        self.assertIn(live, sizes)
        for rel, size in sizes.items():
            if rel == live:
                continue
            with open(self.m.path(rel), "rb") as f:
                self.assertEqual(int(size), len(f.read()), f"stat -c %s {rel}")
        stat_1 = lambda: self.run_tool("stat", "-c", "%s", self.m.path(live)).stdout.strip()  # noqa: E731
        size, read = between_equal_stats(stat_1, read_size)
        self.assertEqual(size, read, "stat -c %s of status.json")
        # (wc -c of a file answers from fstat; through a pipe it counts.)
        def cat_wc(rel):
            return self.run_tool("sh", "-c", 'cat -- "$1" | wc -c', "sh", self.m.path(rel)).stdout.strip()

        for rel in ("slides/HeLa-P12-s01/slide.json", "slides/RW07-LV-s01/images/cell01/files/z-stack 1 (Zelle α).tif"):
            self.assertEqual(int(cat_wc(rel)), int(sizes["./" + rel]), f"cat | wc -c {rel}")
        size, wc = between_equal_stats(stat_1, lambda: cat_wc(live))
        self.assertEqual(wc, size, "cat | wc -c of status.json")

    def test_cmp_every_file_in_every_view(self):
        t0 = time.monotonic()
        n = self.check_every_file_cmp()
        print(f"\ncmp of {n} file paths in {time.monotonic() - t0:.2f} s")
        self.assertGreater(n, 100)
        # Random access (pread) and mmap, as h5py, tifffile and napari read.
        src = os.path.join(self.fx.src, "RW07-LV-s01", "cell01", "z-stack 1 (Zelle α).tif")
        with open(src, "rb") as f:
            want = f.read()
        p = self.m.path("dyes", "A568", "slides", "RW07-LV-s01", "images", "cell01", "files",
                        "z-stack 1 (Zelle α).tif")
        rng = random.Random(11)
        fd = os.open(p, os.O_RDONLY)
        try:
            for _ in range(200):
                off = rng.randrange(0, len(want) + 100)
                n = rng.choice([1, 17, 4096, 65536, 1 << 20])
                self.assertEqual(os.pread(fd, n, off), want[off:off + n], f"pread {n} at {off}")
            with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mm:
                self.assertEqual(len(mm), len(want))
                self.assertEqual(hashlib.sha256(mm).digest(), hashlib.sha256(want).digest())
                self.assertEqual(mm[len(want) - 7:], want[-7:])
        finally:
            os.close(fd)
        # The symlink reads as its target, and readlink shows the target.
        link = self.m.path("slides", "HeLa-P12-s01", "images", "cell01", "files", "latest.h5")
        self.assertEqual(os.readlink(link), "cell01.h5")
        self.run_tool("cmp", os.path.join(self.fx.src, "HeLa-P12-s01", "cell01", "cell01.h5"), link)

    def test_copy_out_with_cp_tar_rsync(self):
        """Backing up from the mount: cp -a, tar and rsync -a copy out the
        same tree, bytes, symlink and times as the sources (diff -r)."""
        out = tempfile.mkdtemp(prefix="samplefs-out-")
        self.addCleanup(shutil.rmtree, out, True)
        for ref, image in (("HeLa-P12-s01", "cell01"), ("HeLa-P12-s01", "cell02"),
                           ("HeLa-P12-s02", "np01")):
            src = os.path.join(self.fx.src, ref, image)
            files = self.m.path("species", self.fx.species_of_slide(ref), "slides", ref, "images",
                                image, "files")
            dst = os.path.join(out, "cp", ref, image)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            r = self.run_tool("cp", "-a", files, dst)
            self.assertEqual(r.stderr, "")
            self.run_tool("diff", "-r", "--no-dereference", src, dst)
            for rel, (typ, _size, _p) in self.fx.entries[(ref, image)].items():
                if typ == "f":
                    self.assertEqual(os.stat(os.path.join(dst, rel)).st_mtime_ns,
                                     1_700_000_000_000_000_000, f"cp -a kept the time of {rel}")
            dst = os.path.join(out, "rsync", ref, image)
            os.makedirs(dst)
            self.run_tool("rsync", "-a", files + "/", dst + "/")
            self.run_tool("diff", "-r", "--no-dereference", src, dst)
        dst = os.path.join(out, "tar")
        os.makedirs(dst)
        r = self.run_tool("sh", "-c", 'tar -C "$1" -cf - . | tar -C "$2" -xf -', "sh",
                          self.m.path("tags", "good", "slides", "RW07-LV-s01"), dst)
        self.assertEqual(r.stderr, "", "tar warns when stat and read disagree")
        self.run_tool("diff", "-r", os.path.join(self.fx.src, "RW07-LV-s01", "cell01"),
                      os.path.join(dst, "images", "cell01", "files"))
        with open(os.path.join(dst, "slide.json")) as f:
            self.assertEqual(json.load(f)["reference"], "RW07-LV-s01")

    def test_sidecars_are_json_with_the_catalogs_values(self):
        m = self.m
        for ref in SLIDE_ORDER:
            for base in (f"slides/{ref}", f"species/{self.fx.species_of_slide(ref)}/slides/{ref}"):
                r = self.run_tool("sh", "-c", 'cat "$1" | python3 -m json.tool', "sh",
                                  m.path(base, "slide.json"))
                j = json.loads(r.stdout)
                row = m.sql("SELECT s.id, s.reference, sa.name, sp.name, s.creator, s.notes, "
                            "s.created, s.modified FROM slide s JOIN sample sa ON sa.id = s.sample_id "
                            "JOIN species sp ON sp.id = sa.species_id WHERE s.reference = ?", (ref,))[0]
                self.assertEqual((j["id"], j["reference"], j["sample"], j["species"], j["creator"],
                                  j["notes"], j["created"], j["modified"]), row, base)
                s = SLIDES[ref]
                self.assertEqual((j["reference"], j["sample"], j["species"], j["notes"]),
                                 (ref, s["sample"], self.fx.species_of_slide(ref), s["notes"]))
                self.assertEqual([(l["structure"], l["isotype"], l["antibody"], l["dye"])
                                  for l in j["labellings"]], s["labellings"], base)
                db_labellings = m.sql(
                    "SELECT l.structure, l.isotype, l.antibody, d.short_name FROM labelling l "
                    "JOIN dye d ON d.id = l.dye_id JOIN slide s ON s.id = l.slide_id "
                    "WHERE s.reference = ? ORDER BY l.id", (ref,))
                self.assertEqual([tuple(x) for x in db_labellings], s["labellings"])
                self.assertEqual(j["tags"], sorted(s["tags"]), base)
                self.assertEqual(j["annotations"], s["annotations"], base)
        for (ref, image), meta in IMAGES.items():
            r = self.run_tool("sh", "-c", 'cat "$1" | python3 -m json.tool', "sh",
                              m.path("slides", ref, "images", image, "image.json"))
            j = json.loads(r.stdout)
            row = m.sql("SELECT i.id, i.name, s.reference, i.user, i.acquired, i.comments FROM image i "
                        "JOIN slide s ON s.id = i.slide_id WHERE s.reference = ? AND i.name = ?",
                        (ref, image))[0]
            self.assertEqual((j["id"], j["name"], j["slide"], j["user"], j["acquired"],
                              j["comments"]), row)
            self.assertEqual(j["comments"], meta["comments"])
            self.assertEqual(j["tags"], sorted(meta["tags"]))
            self.assertEqual(j["annotations"], meta["annotations"])
        for name, species, strain in SPECIES:
            j = json.loads(self.run_tool("python3", "-m", "json.tool",
                                         m.path("species", name, "species.json")).stdout)
            self.assertEqual((j["name"], j["species"], j["strain"]), (name, species, strain))
        for name, (species, stype, patient, _) in SAMPLES.items():
            j = json.loads(self.run_tool("python3", "-m", "json.tool",
                                         m.path("samples", name, "sample.json")).stdout)
            self.assertEqual((j["name"], j["species"], j["sample_type"], j["patient_id"]),
                             (name, species, stype, patient))
        for short, long_name, spectra in DYES:
            j = json.loads(self.run_tool("python3", "-m", "json.tool",
                                         m.path("dyes", short, "dye.json")).stdout)
            self.assertEqual((j["short_name"], j["long_name"], j["spectra_db_name"]),
                             (short, long_name, spectra))

    def getfattr(self, path):
        r = self.run_tool("getfattr", "-d", "-m", "-", "--absolute-names", path)
        return parse_getfattr(r.stdout)

    def test_getfattr_slides_images_files(self):
        m = self.m
        for ref in SLIDE_ORDER:
            s = SLIDES[ref]
            for path in (m.path("slides", ref), m.path("tags", "good", "slides", ref)
                         if "good" in s["tags"] else m.path("samples", s["sample"], "slides", ref)):
                a = self.getfattr(path)
                row = m.sql("SELECT id, creator, created, modified FROM slide WHERE reference = ?",
                            (ref,))[0]
                want = {
                    "user.samplefs.id": str(row[0]), "user.samplefs.reference": ref,
                    "user.samplefs.sample": s["sample"],
                    "user.samplefs.species": self.fx.species_of_slide(ref),
                    "user.samplefs.creator": row[1], "user.samplefs.created": row[2],
                    "user.samplefs.modified": row[3],
                    "user.samplefs.labellings": ";".join(f"{l[0]}:{l[3]}" for l in s["labellings"]),
                }
                if s["notes"]:
                    want["user.xdg.comment"] = want["user.samplefs.notes"] = s["notes"]
                if s["tags"]:
                    want["user.xdg.tags"] = ",".join(sorted(s["tags"]))
                for k, v in s["annotations"].items():
                    want["user." + k] = v
                self.assertEqual({k: v.decode() for k, v in a.items()}, want, path)
        for (ref, image), meta in IMAGES.items():
            path = m.path("slides", ref, "images", image)
            a = {k: v.decode() for k, v in self.getfattr(path).items()}
            row = m.sql("SELECT i.id, i.user, i.acquired FROM image i JOIN slide s ON s.id = i.slide_id "
                        "WHERE s.reference = ? AND i.name = ?", (ref, image))[0]
            want = {"user.samplefs.id": str(row[0]), "user.samplefs.name": image,
                    "user.samplefs.slide": ref, "user.samplefs.user": row[1],
                    "user.samplefs.acquired": row[2]}
            if meta["comments"]:
                want["user.xdg.comment"] = want["user.samplefs.comments"] = meta["comments"]
            if meta["tags"]:
                want["user.xdg.tags"] = ",".join(sorted(meta["tags"]))
            for k, v in meta["annotations"].items():
                want["user." + k] = v
            self.assertEqual(a, want, path)
        # Files: tags and annotations are listed; the hash is answered by
        # name and is `xxhsum -H2` of the source; whatever else is listed
        # must be the record's value.
        n = 0
        for (ref, image), entries in self.fx.entries.items():
            for rel, (typ, size, src) in entries.items():
                if typ == "l":
                    continue  # the kernel allows no user.* xattrs on symlinks
                path = m.path("slides", ref, "images", image, "files", rel)
                a = {k: v.decode() for k, v in self.getfattr(path).items()}
                tags, ann = FILE_META.get((ref, image, rel), ([], {}))
                want = {"user." + k: v for k, v in ann.items()}
                if tags:
                    want["user.xdg.tags"] = ",".join(sorted(tags))
                fields = {k: v for k, v in a.items() if k.startswith("user.samplefs.")}
                self.assertEqual({k: v for k, v in a.items() if k not in fields}, want, path)
                if typ == "f":
                    r = self.run_tool("getfattr", "-n", "user.samplefs.hash", "--absolute-names",
                                      path)
                    h = parse_getfattr(r.stdout)["user.samplefs.hash"].decode()
                    self.assertEqual(h, "xxh3-128:" + xxh128(src), path)
                    (db_hash,) = m.sql("SELECT hash FROM file_info WHERE slide = ? AND image = ? "
                                       "AND path = ?", (ref, image, rel))[0]
                    self.assertEqual(h, "xxh3-128:" + db_hash)
                    self.assertEqual(os.getxattr(path, "user.samplefs.size").decode(), str(size))
                    if "user.samplefs.hash" in fields:
                        self.assertEqual(fields["user.samplefs.hash"], h, path)
                    if "user.samplefs.size" in fields:
                        self.assertEqual(fields["user.samplefs.size"], str(size), path)
                    n += 1
        self.assertGreater(n, 30)
        # The same file through a tag shows the same attributes.
        p1 = m.path("slides", "RW07-LV-s01", "images", "cell01", "files", "z-stack 1 (Zelle α).tif")
        p2 = m.path("tags", "checked", "files", "RW07-LV-s01:cell01:z-stack 1 (Zelle α).tif")
        self.assertEqual(self.getfattr(p1), self.getfattr(p2))
        self.assertEqual(os.getxattr(p1, "user.samplefs.hash"), os.getxattr(p2, "user.samplefs.hash"))
        # The empty file is the empty object.
        empty = m.path("slides", "HeLa-P12-s01", "images", "cell01", "files", "acquisition.log")
        self.assertEqual(os.getxattr(empty, "user.samplefs.hash").decode(), "xxh3-128:" + EMPTY_HASH)
        # Dyes and species carry their fields too.
        a = self.getfattr(m.path("dyes", "DAPI"))
        self.assertEqual(a["user.samplefs.long_name"].decode(), "DAPI (4',6-diamidino-2-phenylindole)")
        a = self.getfattr(m.path("species", "Mouse-C57BL6"))
        self.assertEqual(a["user.samplefs.strain"].decode(), "C57BL/6")

    def test_same_slide_through_every_view(self):
        """`ls -lR` of one slide is the same wherever it is reached."""
        ref = "HeLa-P12-s01"
        places = [f"slides/{ref}", f"species/HeLa/slides/{ref}", f"samples/HeLa-P12/slides/{ref}",
                  f"dyes/A647/slides/{ref}", f"dyes/A488/slides/{ref}",
                  f"structures/tubulin/slides/{ref}", f"tags/good/slides/{ref}",
                  f"tags/dstorm/slides/{ref}", f"query/{QUERY}/slides/{ref}"]
        listings = {}
        for p in places:
            lr = self.run_tool("ls", "-lRA", "--time-style=+%s", "--quoting-style=literal", ".",
                               cwd=self.m.path(p)).stdout
            names = self.run_tool("ls", "-RA", ".", cwd=self.m.path(p)).stdout
            listings[p] = (lr, names)
        first = listings[places[0]]
        self.assertIn("cell01.h5", first[1])
        self.assertIn("img_channel000", self.run_tool(
            "ls", "-R", ".", cwd=self.m.path("slides", "HeLa-P12-s02")).stdout)
        for p in places[1:]:
            self.assertEqual(listings[p][1], first[1], f"ls -R of {p}")
            self.assertEqual(listings[p][0], first[0], f"ls -lR of {p}")
        # An image through tags/<t>/images/ and through the query's images/.
        img = self.run_tool("ls", "-lRA", "--time-style=+%s", ".",
                            cwd=self.m.path("slides", ref, "images", "cell02")).stdout
        self.assertIn(".zarray", img)
        for p in (f"tags/dstorm/slides/{ref}/images/cell02", f"query/{QUERY}/images/{ref}:cell02"):
            self.assertEqual(self.run_tool("ls", "-lRA", "--time-style=+%s", ".",
                                           cwd=self.m.path(p)).stdout, img, p)
        img = self.run_tool("ls", "-lRA", "--time-style=+%s", ".",
                            cwd=self.m.path("slides", ref, "images", "cell01")).stdout
        self.assertIn("latest.h5 -> cell01.h5", img)
        for p in (f"tags/best/images/{ref}:cell01", f"query/{QUERY}/images/{ref}:cell01"):
            self.assertEqual(self.run_tool("ls", "-lRA", "--time-style=+%s", ".",
                                           cwd=self.m.path(p)).stdout, img, p)

    def test_missing_names_are_enoent(self):
        m = self.m
        missing = [
            "nope", "species/Zebrafish", "species/HeLa/nope.json", "species/HeLa/slides/RW07-LV-s01",
            "samples/P99", "samples/HeLa-P13/slides/HeLa-P12-s01", "slides/S-none",
            "slides/HeLa-P12-s01/images/cell99", "slides/HeLa-P12-s01/images/cell01/files/cell01.tif",
            "slides/HeLa-P12-s01/images/cell02/files/cell02.zarr/0/0/0/0/9",
            "slides/HeLa-P12-s01/image.json", "slides/HeLa-P12-s01/images/cell01/slide.json",
            "dyes/A700", "dyes/A647/slides/RW07-LV-s02", "dyes/A680/slides/HeLa-P12-s01",
            "structures/vimentin", "structures/RyR/slides/HeLa-P12-s01",
            "tags/bad", "tags/good/slides/HeLa-P12-s02", "tags/best/images/HeLa-P12-s01:cell02",
            "tags/best/images/cell01", "tags/good/files/HeLa-P12-s01:cell01:cell01.h5r",
            f"query/{QUERY}/slides/RW07-LV-s01", f"query/{QUERY}/images/RW07-LV-s01:cell01",
            "query/species=Zebrafish/slides/HeLa-P12-s01", ".samplefs/nope",
        ]
        for p in missing:
            self.assertErrno(errno.ENOENT, os.stat, m.path(p))
        self.assertErrno(errno.ENOTDIR, os.stat,
                         m.path("slides/HeLa-P12-s01/images/cell01/files/cell01.h5/x"))
        # The error log is for refusals, not for names that are not there.
        self.assertNotIn("Zebrafish", m.errors())

    def test_query_keys(self):
        """Every query key lists the slides the model says, in slides/ and images/."""
        fx = self.fx
        (creator,) = self.m.sql("SELECT DISTINCT creator FROM slide")[0]
        (user,) = self.m.sql("SELECT DISTINCT user FROM image")[0]
        cases = {
            "species=Rat-Wistar": fx.slides_of(lambda r, s: s["sample"] == "RW07"),
            "sample=HeLa-P12": ["HeLa-P12-s01", "HeLa-P12-s02"],
            "dye=A488": ["HeLa-P12-s01", "HeLa-P13-s01"],
            "structure=actin": ["HeLa-P12-s01", "MC3-cortex-s01"],
            "structure=RyR,dye=At655": ["RW07-LV-s02"],
            "tag=good": ["HeLa-P12-s01", "RW07-LV-s01"],
            "tag=good,species=Rat-Wistar": ["RW07-LV-s01"],
            "section_um=8": ["MC3-cortex-s01"],  # an annotation of the slide
            f"creator={creator}": SLIDE_ORDER,
            f"user={user}": [r for r in SLIDE_ORDER if fx.images_of(r)],
            "after=2000-01-01": SLIDE_ORDER,
            "before=2000-01-01": [],
            "species=HeLa,dye=A647,tag=good": ["HeLa-P12-s01"],
            "species=U2OS": [],
            "dye=mEos3.2": [],
        }
        for expr, slides in cases.items():
            got = os.listdir(self.m.path("query", expr, "slides"))
            self.assertEqual(sorted(got), sorted(slides), f"query/{expr}/slides")
            images = os.listdir(self.m.path("query", expr, "images"))
            self.assertEqual(sorted(images), sorted(f"{r}:{i}" for r in slides
                                                    for i in fx.images_of(r)), f"query/{expr}/images")
            self.assertEqual(sorted(self.ls_l(f"query/{expr}")), ["images", "slides"])

    def test_bad_query_is_einval_and_says_why(self):
        self.assertErrno(errno.EINVAL, os.stat, self.m.path("query", "species"))
        self.assertErrno(errno.EINVAL, os.listdir, self.m.path("query", "HeLa,dye=A647"))
        errors = self.m.errors()
        self.assertIn("query/species", errors)
        self.assertIn("query/HeLa,dye=A647", errors)

    def test_status_json(self):
        r = self.run_tool("python3", "-m", "json.tool", self.m.path(".samplefs", "status.json"))
        j = json.loads(r.stdout)
        entries = [v for e in self.fx.entries.values() for v in e.values()]
        files = [v for v in entries if v[0] == "f"]
        contents = {}
        for _, size, src in files:
            with open(src, "rb") as f:
                contents[hashlib.sha256(f.read()).hexdigest()] = size
        want = {"species": len(SPECIES), "samples": len(SAMPLES), "dyes": len(DYES),
                "slides": len(SLIDES), "images": len(IMAGES), "files": len(files),
                "folders": sum(1 for v in entries if v[0] == "d"),
                "tags": len(self.fx.tag_names()),
                "file_bytes": sum(v[1] for v in files), "stored_bytes": sum(contents.values())}
        self.assertEqual({k: j[k] for k in want}, want)
        sql = self.m.sql(
            "SELECT (SELECT count(*) FROM species), (SELECT count(*) FROM sample), "
            "(SELECT count(*) FROM dye), (SELECT count(*) FROM slide), (SELECT count(*) FROM image), "
            "(SELECT count(*) FROM entry WHERE type = 'file'), "
            "(SELECT count(*) FROM entry WHERE type = 'folder' AND parent_id IS NOT NULL), "
            "(SELECT count(*) FROM tag), (SELECT sum(size) FROM entry WHERE type = 'file')")[0]
        self.assertEqual(tuple(want[k] for k in ("species", "samples", "dyes", "slides", "images",
                                                  "files", "folders", "tags", "file_bytes")), sql)
        self.assertEqual(j["schema_version"], 7)
        self.assertEqual(j["engine"], self.m.engine)
        # Where the catalog is, never with a password (there is none here:
        # the redaction itself is a catalog unit test).
        self.assertEqual(j["catalog"], self.m.catalog)
        self.assertLessEqual(abs(j["mounted_at"] - time.time()), 3600)

    def test_xattr_size_probe_and_erange(self):
        """getxattr/listxattr with size 0 report the size; a buffer one byte
        short gives ERANGE; the exact size gives the value."""
        m = self.m
        cases = [(m.path("slides", "HeLa-P12-s01"), "user.xdg.tags", b"dstorm,good"),
                 (m.path("slides", "HeLa-P12-s01"), "user.objective", b"60x/1.49 oil"),
                 (m.path("slides", "HeLa-P12-s01", "images", "cell01"), "user.xdg.comment",
                  b"good blinking, 20k frames"),
                 (m.path("slides", "HeLa-P12-s01", "images", "cell01", "files", "cell01.h5"),
                  "user.samplefs.hash",
                  ("xxh3-128:" + xxh128(os.path.join(self.fx.src, "HeLa-P12-s01", "cell01",
                                                     "cell01.h5"))).encode())]
        for path, name, value in cases:
            r, err, _ = c_getxattr(path, name, 0)
            self.assertEqual((r, err), (len(value), 0), f"size probe of {name}")
            r, err, _ = c_getxattr(path, name, len(value) - 1)
            self.assertEqual((r, err), (-1, errno.ERANGE), f"short buffer for {name}")
            r, err, got = c_getxattr(path, name, len(value))
            self.assertEqual((r, err, got), (len(value), 0, value))
            r, err, got = c_getxattr(path, name, 65536)
            self.assertEqual((r, err, got), (len(value), 0, value))
            # listxattr the same way.
            size, err, _ = c_listxattr(path, 0)
            self.assertEqual(err, 0)
            self.assertGreater(size, 0)
            r, err, _ = c_listxattr(path, size - 1)
            self.assertEqual((r, err), (-1, errno.ERANGE))
            r, err, names = c_listxattr(path, size)
            self.assertEqual(r, size)
            self.assertTrue(names.endswith(b"\0"))
            self.assertEqual(set(names[:-1].split(b"\0")), {n.encode() for n in os.listxattr(path)})
        # An absent user.* name is ENODATA, also for the size probe.
        p = m.path("slides", "HeLa-P12-s02")
        self.assertEqual(c_getxattr(p, "user.no_such_key", 0)[:2], (-1, errno.ENODATA))
        self.assertEqual(c_getxattr(p, "user.xdg.comment", 0)[:2], (-1, errno.ENODATA))

    def test_security_and_system_xattrs_are_enodata(self):
        m = self.m
        paths = [m.mnt, m.path("species"), m.path("slides", "HeLa-P12-s01"),
                 m.path("slides", "HeLa-P12-s01", "slide.json"),
                 m.path("slides", "HeLa-P12-s01", "images", "cell01"),
                 m.path("slides", "HeLa-P12-s01", "images", "cell01", "files", "cell01.h5"),
                 m.path("slides", "HeLa-P12-s01", "images", "cell02", "files", "cell02.zarr"),
                 m.path(".samplefs", "status.json")]
        for p in paths:
            for name in ("security.selinux", "security.capability", "security.ima",
                         "system.posix_acl_access", "system.posix_acl_default", "system.nfs4_acl",
                         "trusted.overlay.opaque"):
                # EOPNOTSUPP (not ENODATA) lets ls -l stop asking for ACLs.
                self.assertErrno(errno.EOPNOTSUPP, os.getxattr, p, name)
                self.assertEqual(c_getxattr(p, name, 0)[:2], (-1, errno.EOPNOTSUPP), f"{p} {name}")
            # Only user.* names are listed.
            self.assertTrue(all(n.startswith("user.") for n in os.listxattr(p)), p)


class BigDirectory(MountedTestCase):
    """100,000 files in one image's files/ list completely and in creation order."""

    N = 100_000

    def test_100k_files_list_completely_in_order(self):
        m = self.m
        if m.engine != "sqlite":
            self.skipTest("fills the catalog with SQLite's executemany (the bench covers PostgreSQL)")
        files = self.make_image("HeLa", "HeLa-big-s01", "timelapse")
        r = self.run_tool("xxhsum", "-H2", "/dev/null")
        self.assertEqual(r.stdout.split()[0], EMPTY_HASH, "the empty object's name")
        (image_id,) = m.sql("SELECT id FROM image WHERE name = 'timelapse'")[0]
        (root_id,) = m.sql("SELECT id FROM entry WHERE image_id = ? AND parent_id IS NULL",
                           (image_id,))[0]
        m.stop()
        # Names in shuffled order, ids increasing: creation (id) order is not
        # name order, so the listing order shows which one the mount uses.
        numbers = list(range(self.N))
        random.Random(3).shuffle(numbers)
        names = [f"img_channel000_position000_time{n:09d}_z000.tif" for n in numbers]
        t0 = time.monotonic()
        with contextlib.closing(sqlite3.connect(m.catalog)) as con, con:
            (first,) = con.execute("SELECT coalesce(max(id), 0) + 1 FROM entry").fetchone()
            con.executemany(
                "INSERT INTO entry(id, image_id, parent_id, name, type, size, hash, mode, mtime_ns, "
                "kind) VALUES (?, ?, ?, ?, 'file', 0, ?, 420, ?, 'raw')",
                ((first + i, image_id, root_id, name, EMPTY_HASH, 1_700_000_000_000_000_000 + i)
                 for i, name in enumerate(names)))
        print(f"\ninserted {self.N} entries in {time.monotonic() - t0:.2f} s")
        m.start()

        t0 = time.monotonic()
        listed = os.listdir(files)
        t_listdir = time.monotonic() - t0
        self.assertEqual(len(listed), self.N)
        self.assertEqual(listed, names, "listing order is creation (id) order")

        t0 = time.monotonic()
        r = self.run_tool("sh", "-c", 'ls -f "$1" | wc -l', "sh", files)
        t_ls = time.monotonic() - t0
        self.assertEqual(int(r.stdout), self.N + 2)  # with . and ..
        r = self.run_tool("ls", "-f", files)
        self.assertEqual([n for n in r.stdout.splitlines() if n not in (".", "..")], names)

        t0 = time.monotonic()
        with os.scandir(files) as it:
            n = sum(1 for e in it if e.is_file(follow_symlinks=False))
        t_scandir = time.monotonic() - t0
        self.assertEqual(n, self.N)

        t0 = time.monotonic()
        r = self.run_tool("sh", "-c", 'find "$1" -type f | wc -l', "sh", files)
        t_find = time.monotonic() - t0
        self.assertEqual(int(r.stdout), self.N)
        print(f"100k listing: os.listdir {t_listdir:.2f} s, ls -f | wc -l {t_ls:.2f} s, "
              f"scandir+d_type {t_scandir:.2f} s, find -type f {t_find:.2f} s")

        for name in (names[0], names[self.N // 2], names[-1]):
            p = os.path.join(files, name)
            st = os.stat(p)
            self.assertEqual((st.st_size, stat.S_IMODE(st.st_mode)), (0, 0o644))
            with open(p, "rb") as f:
                self.assertEqual(f.read(), b"")
            self.assertEqual(os.getxattr(p, "user.samplefs.hash").decode(), "xxh3-128:" + EMPTY_HASH)
        self.assertErrno(errno.ENOENT, os.stat, os.path.join(files, "img_channel000_position000_time"
                                                                    f"{self.N:09d}_z000.tif"))
        status = read_json(m.path(".samplefs", "status.json"))
        self.assertEqual((status["files"], status["images"]), (self.N, 1))


class LeanAndRichListings(MountedTestCase):
    """Folders list their files without attributes, so the kernel makes no
    inode for them (a cold `find`), until files that were listed are
    stat'ed; from then on, for 30 s, with attributes (an `ls -l` then costs
    no LOOKUP per file). Both kinds give the same names, types and inode
    numbers. .samplefs/status.json shows the mode and the kernel's inodes."""

    def status(self):
        return read_json(self.m.path(".samplefs", "status.json"))["mount"]

    def test_lean_until_listed_files_are_statted_then_rich(self):
        m = self.m
        files = self.make_image()
        sizes = {}
        for d in ("a", "b", "c"):
            os.mkdir(os.path.join(files, d))
            for i in range(150):
                name = f"f{i:03d}.tif"
                with open(os.path.join(files, d, name), "wb") as f:
                    f.write(b"x" * i)
                sizes[(d, name)] = i
            os.symlink("f001.tif", os.path.join(files, d, "link"))
        m.restart()  # the kernel holds no inode of any file; listings start lean
        self.assertEqual(self.status()["listings"], "lean")
        before = self.status()["kernel_inodes"]
        a, b, c = (os.path.join(files, d) for d in ("a", "b", "c"))
        r = self.run_tool("find", a, b)
        self.assertEqual(len(r.stdout.splitlines()), 2 * 152)
        r = self.run_tool("find", a, "-type", "l")
        self.assertEqual(r.stdout.split(), [os.path.join(a, "link")])  # d_type, no stat
        st = self.status()
        self.assertEqual(st["listings"], "lean")
        self.assertLess(st["kernel_inodes"] - before, 10, "find made inodes for the files")

        # Stat'ing what was listed: right types, sizes and inode numbers...
        with os.scandir(a) as it:
            entries = sorted(it, key=lambda e: e.name)
        self.assertEqual(len(entries), 151)
        for e in entries:
            lst = os.lstat(e.path)
            self.assertEqual(e.inode(), lst.st_ino, e.path)
            if e.name == "link":
                self.assertTrue(e.is_symlink())
                self.assertEqual(os.readlink(e.path), "f001.tif")
            else:
                self.assertTrue(e.is_file(follow_symlinks=False))
                self.assertEqual(lst.st_size, sizes[("a", e.name)])
        # ... and the next listing carries attributes.
        self.assertEqual(self.status()["listings"], "rich")
        n0 = self.status()["kernel_inodes"]
        with os.scandir(c) as it:
            rich = {e.name: e.inode() for e in it}
        self.assertGreaterEqual(self.status()["kernel_inodes"] - n0, 151, "a rich listing makes inodes")
        for name, ino in rich.items():
            lst = os.lstat(os.path.join(c, name))
            self.assertEqual(ino, lst.st_ino, name)
            if name != "link":
                self.assertEqual(lst.st_size, sizes[("c", name)])
        # The same file has the same inode number in every view, lean or rich.
        other = m.path("species", "HeLa", "slides", "S1", "images", "cell01", "files", "b", "f007.tif")
        self.assertEqual(os.lstat(other).st_ino, os.lstat(os.path.join(b, "f007.tif")).st_ino)
        ls = self.run_tool("ls", "-ln", b).stdout.splitlines()
        self.assertEqual(len(ls), 152)  # "total" and 151 entries
        self.assertEqual(sorted(int(l.split()[4]) for l in ls[1:] if not l.startswith("l")),
                         sorted(v for (d, _), v in sizes.items() if d == "b"))


class LiveSizes(MountedTestCase):
    """Listings report the sizes that stat and read report, also for files
    whose size the catalog does not know yet."""

    def ls_sizes(self, d):
        r = self.run_tool("ls", "-lA", "--time-style=+%s", "--quoting-style=literal", d)
        return {n: v[1] for n, v in parse_ls_l(r.stdout).items()}

    def test_ls_l_of_a_file_being_written(self):
        files = self.make_image("HeLa", "HeLa-live-s01", "cell01")
        p = os.path.join(files, "cell01.h5")
        data = random.Random(5).randbytes(MIB + 5)
        with open(p, "wb") as f:
            f.write(data)
            f.flush()
            # Not closed: the catalog still records 0 bytes.
            self.assertEqual(self.ls_sizes(files), {"cell01.h5": len(data)})
            self.assertEqual(os.stat(p).st_size, len(data))
            with open(p, "rb") as r:
                self.assertEqual(r.read(), data)
            self.assertEqual(self.ls_sizes(files), {"cell01.h5": len(data)})
        self.assertEqual(self.ls_sizes(files), {"cell01.h5": len(data)})
        with open(p, "rb") as r:
            self.assertEqual(r.read(), data)

    def test_ls_l_of_the_error_log(self):
        meta = self.m.path(".samplefs")
        self.assertEqual(self.ls_sizes(meta)["errors"], 0)
        self.assertErrno(errno.EINVAL, os.stat, self.m.path("query", "no-equals-sign"))
        with open(os.path.join(meta, "errors"), "rb") as f:
            text = f.read()
        self.assertIn(b"no-equals-sign", text)
        self.assertEqual(self.ls_sizes(meta)["errors"], len(text))
        self.assertEqual(os.stat(os.path.join(meta, "errors")).st_size, len(text))


class DiskSpace(MountedTestCase):
    """Issue 17 point 4: `df` and `stat -f` of the mount tell the truth.
    Free and available space and free inodes are the store disk's; used is
    the bytes of the objects the catalog references (not the whole disk's
    used space); total inodes are the records plus the free inodes."""

    SLACK = 32 * MIB  # other processes write to the same disk meanwhile

    def df(self, path):
        line = self.run_tool("df", "-B1", "--output=size,used,avail", path).stdout.splitlines()[1]
        return [int(x) for x in line.split()]

    def stat_f(self, path):
        # block size, total, free and available blocks, total and free inodes
        out = self.run_tool("stat", "-f", "-c", "%S %b %f %a %c %d", path).stdout
        return [int(x) for x in out.split()]

    def store_objects(self):
        sizes = [os.path.getsize(os.path.join(d, f))
                 for d, _, fs in os.walk(os.path.join(self.m.store, "objects")) for f in fs]
        return sum(sizes), len(sizes)

    def records(self):
        return sum(self.m.sql(f"SELECT count(*) FROM {t}")[0][0]
                   for t in ("entry", "image", "slide", "sample", "species", "dye", "tag"))

    def test_df_and_stat_f_tell_the_truth(self):
        self.df(self.m.mnt)  # the mount may answer from what it read now
        files = self.make_image()
        for i, size in enumerate((0, 1, 4095, 4097, 3 * MIB + 7)):
            write_random(os.path.join(files, f"f{i}.h5"), size, seed=i)
        write_random(os.path.join(files, "copy.h5"), 3 * MIB + 7, seed=4)  # one object for both
        self.run_tool("sync", files)
        obj_bytes, nobj = self.store_objects()
        self.assertEqual(nobj, 5)  # the empty object included
        # Used: the store's object bytes, rounded up per object at most. The
        # mount recounts every 2 s: a df right after the writes may be older.
        deadline = time.time() + 10
        while True:
            size, used, avail = self.df(self.m.mnt)
            if abs(used - obj_bytes) <= 4096 * nobj or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertLessEqual(abs(used - obj_bytes), 4096 * nobj, f"df used {used}, objects {obj_bytes}")
        self.assertEqual(size, used + avail)
        # Available: the store disk's.
        store_avail = self.df(self.m.store)[2]
        self.assertLessEqual(abs(avail - store_avail), self.SLACK, f"df avail {avail} vs store's {store_avail}")

        bsize, blocks, bfree, bavail, files_total, files_free = self.stat_f(self.m.mnt)
        s_bsize, _, _, s_bavail, _, s_free = self.stat_f(self.m.store)
        self.assertEqual(bfree, bavail)  # nothing is reserved for root here
        self.assertLessEqual(abs(bavail * bsize - s_bavail * s_bsize), self.SLACK)
        self.assertEqual((blocks - bfree) * bsize, used)
        self.assertLessEqual(abs(files_free - s_free), 10_000, f"free inodes {files_free} vs store's {s_free}")
        self.assertEqual(files_total - files_free, self.records())
        self.assertLess(files_total, 1 << 39)  # not the old made-up 2^40


class UnusualRecords(MountedTestCase):
    """Records a lab's data can produce that the fixture does not hold."""

    def test_names_outside_their_parent_fit_name_max(self):
        """tags/<t>/images/<slide>:<image> and tags/<t>/files/<slide>:<image>:<path>
        can be longer than 255 bytes; what the listing shows must still be
        a name that can be looked up once the kernel's dentry has expired."""
        m = self.m
        ref, image = "HeLa-" + "x" * 195, "cell-" + "é" * 60  # 200 + 125 bytes
        files = self.make_image("HeLa", ref, image)
        long_file = "Pos0_" + "a" * 240 + ".ome.tif"  # 253 bytes
        with open(os.path.join(files, long_file), "wb") as f:
            f.write(b"tiff")
        os.mkdir(os.path.join(files, "d" * 200))
        with open(os.path.join(files, "d" * 200, "frame_0001.tif"), "wb") as f:
            f.write(b"frame")
        setfattr(os.path.join(files, long_file), "user.xdg.tags", "long")
        setfattr(os.path.join(files, "d" * 200, "frame_0001.tif"), "user.xdg.tags", "long")
        setfattr(m.path("slides", ref, "images", image), "user.xdg.tags", "long")
        views = {"tags/long/images": 1, "tags/long/files": 2, "query/species=HeLa/images": 1}
        listed = {}
        for d, n in views.items():
            listed[d] = os.listdir(m.path(d))
            self.assertEqual(len(listed[d]), n, d)
        time.sleep(1.5)  # past entry_timeout: stat must look the names up
        for d, names in listed.items():
            for name in names:
                self.assertLessEqual(len(name.encode()), 255, f"{d}/{name}")
                st = os.stat(m.path(d, name))
                if d.endswith("images"):
                    self.assertTrue(stat.S_ISDIR(st.st_mode))
                    self.assertEqual(os.listdir(m.path(d, name, "files")),
                                     [long_file, "d" * 200])
                else:
                    with open(m.path(d, name), "rb") as f:
                        self.assertIn(f.read(), (b"tiff", b"frame"))
        self.assertEqual(sorted(n.rsplit(".", 1)[-1] for n in listed["tags/long/files"]),
                         ["tif", "tif"], "the extension survives shortening")
        self.assertEqual(self.run_tool("ls", "-lR", m.path("tags", "long")).stderr, "")

    def test_text_that_is_not_utf8_in_the_catalog(self):
        """Rows written with SQL (sqlite3, pandas) may hold bytes that are
        not UTF-8: sidecars still render as JSON and listings still work."""
        m = self.m
        if m.engine != "sqlite":
            self.skipTest("PostgreSQL refuses text that is not UTF-8 when it is written")
        self.make_image("HeLa", "HeLa-P20-s01", "cell01")
        m.stop()
        with contextlib.closing(sqlite3.connect(m.catalog)) as con, con:
            con.execute("UPDATE slide SET notes = CAST(X'6669786564ff2034' AS TEXT) "
                        "WHERE reference = 'HeLa-P20-s01'")
            con.execute("UPDATE image SET comments = CAST(X'c3' AS TEXT)")
        m.start()
        slide = m.path("slides", "HeLa-P20-s01")
        self.assertEqual(sorted(parse_ls_l(self.run_tool("ls", "-l", "--time-style=+%s",
                                                         slide).stdout)),
                         ["images", "slide.json"])
        j = json.loads(self.run_tool("sh", "-c", 'cat "$1" | python3 -m json.tool', "sh",
                                     os.path.join(slide, "slide.json")).stdout)
        self.assertEqual(j["notes"], "fixed\ufffd 4")
        j = read_json(os.path.join(slide, "images", "cell01", "image.json"))
        self.assertEqual(j["comments"], "\ufffd")
        self.assertEqual(os.getxattr(slide, "user.xdg.comment"), b"fixed\xff 4")
        with open(os.path.join(slide, "slide.json"), "rb") as f:
            self.assertEqual(os.stat(os.path.join(slide, "slide.json")).st_size, len(f.read()))


class ReadOnlyMount(FixtureTestCase):
    """-o ro: every read works; nothing can change."""

    remount_options = ["ro"]

    def test_reads_work(self):
        with open("/proc/self/mounts") as f:
            options = [line.split()[3].split(",") for line in f
                       if line.split()[1] == os.path.realpath(self.m.mnt)]
        self.assertEqual(len(options), 1)
        self.assertIn("ro", options[0])
        self.assertTreeEqual(self.fx.tree(), self.find_tree(""), "/ (ro)")
        n = self.check_every_file_cmp()
        self.assertGreater(n, 100)
        slide = self.m.path("slides", "RW07-LV-s01")
        j = json.loads(self.run_tool("sh", "-c", 'cat "$1" | python3 -m json.tool', "sh",
                                     os.path.join(slide, "slide.json")).stdout)
        self.assertEqual([l["dye"] for l in j["labellings"]], ["A647", "A568"])
        a = parse_getfattr(self.run_tool("getfattr", "-d", "-m", "-", "--absolute-names",
                                         slide).stdout)
        self.assertEqual(a["user.xdg.tags"], b"good")
        f = os.path.join(slide, "images", "cell01", "files", "z-stack 1 (Zelle α).tif")
        self.assertEqual(os.getxattr(f, "user.samplefs.hash").decode(),
                         "xxh3-128:" + xxh128(os.path.join(self.fx.src, "RW07-LV-s01", "cell01",
                                                           "z-stack 1 (Zelle α).tif")))
        status = read_json(self.m.path(".samplefs", "status.json"))
        self.assertEqual(status["slides"], len(SLIDES))

    def test_changes_are_erofs(self):
        m = self.m
        files = m.path("slides", "RW07-LV-s01", "images", "cell01", "files")
        self.assertErrno(errno.EROFS, os.mkdir, m.path("species", "Sheep"))
        self.assertErrno(errno.EROFS, os.mkdir, os.path.join(files, "new"))
        self.assertErrno(errno.EROFS, open, os.path.join(files, "new.tif"), "wb")
        self.assertErrno(errno.EROFS, open, os.path.join(files, "cell01.h5"), "r+b")
        self.assertErrno(errno.EROFS, os.unlink, os.path.join(files, "cell01.h5"))
        self.assertErrno(errno.EROFS, os.setxattr, m.path("slides", "RW07-LV-s01"),
                         "user.xdg.tags", b"bad")
        self.assertEqual(m.sql("SELECT count(*) FROM species WHERE name = 'Sheep'"), [(0,)])
        self.assertEqual(os.getxattr(m.path("slides", "RW07-LV-s01"), "user.xdg.tags"), b"good")


if __name__ == "__main__":
    unittest.main()
