#!/usr/bin/env python3
"""docs/SCHEMA.md's pandas examples run (issue 17 item 6).

Builds a small demo-like catalog with `samplectl init` and `samplectl load`
(species, samples, dyes, slides with labellings, images and files: no
objects are needed to read the views), extracts every ```python block of
docs/SCHEMA.md, points its catalog path at this catalog and runs it. The
blocks must run without error and their results must say what the catalog
holds. Skips (exit 77) with a clear message only when pandas is missing
(Debian: python3-pandas, installed by tools/install-deps.sh).

Usage: schema_examples_test.py SAMPLECTL SCHEMA.md
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

SAMPLECTL, SCHEMA_MD = sys.argv[1], sys.argv[2]
DOC_CATALOG = "/home/me/.local/share/samplefs/catalog.db"
DOC_MOUNT = "/home/me/catalog"

try:
    import pandas  # noqa: F401
except ImportError:
    # Debian's python3-pandas is for the system python3; try it if this is another one.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        probe = subprocess.run(["/usr/bin/python3", "-c", "import pandas"], capture_output=True)
        if probe.returncode == 0:
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("SKIP: pandas is not installed (apt-get install python3-pandas, or tools/install-deps.sh);"
          " docs/SCHEMA.md's pandas examples were not run")
    sys.exit(77)


def entry(path, size, h, kind="raw"):
    return {"path": path, "type": "file", "mode": 420, "mtime_ns": 1772446800000000000,
            "kind": kind, "size": size, "hash": h}


ROOT = {"path": "", "type": "folder", "mode": 493, "mtime_ns": 1772446800000000000, "kind": "other"}
DOCUMENT = {
    "format": "samplefs-dump", "version": 1, "schema_version": 5,
    "species": [{"name": "HeLa", "species": "Human", "strain": "HeLa", "notes": ""},
                {"name": "Rat-Wistar", "species": "Rat", "strain": "Wistar", "notes": ""}],
    "samples": [{"name": "P12", "species": "HeLa", "patient_id": "", "sample_type": "Cell Culture", "notes": ""},
                {"name": "RW7", "species": "Rat-Wistar", "patient_id": "7", "sample_type": "Tissue Section",
                 "notes": ""}],
    "dyes": [{"short_name": "A647", "long_name": "Alexa Fluor 647", "spectra_db_name": ""},
             {"short_name": "A488", "long_name": "Alexa Fluor 488", "spectra_db_name": ""}],
    "tags": ["good"],
    "slides": [
        {"reference": "S1", "sample": "P12", "creator": "ana", "notes": "",
         "created": "2026-03-02T10:11:12Z", "modified": "2026-03-02T10:11:12Z",
         "labellings": [{"structure": "tubulin", "isotype": "", "antibody": "", "dye": "A647"},
                        {"structure": "actin", "isotype": "", "antibody": "", "dye": "A488"}],
         "tags": ["good"],
         "images": [{"name": "cell01", "user": "ana", "acquired": "2026-03-02T10:20:00Z", "comments": "",
                     "entries": [ROOT, {"path": "Pos0", "type": "folder", "mode": 493,
                                        "mtime_ns": 1772446800000000000, "kind": "other"},
                                 entry("Pos0/img_0001.tif", 1024, "1" * 32),
                                 entry("Pos0/img_0002.tif", 2048, "2" * 32),
                                 entry("fits.csv", 10, "3" * 32, "analysis")]}]},
        {"reference": "S2", "sample": "RW7", "creator": "bob", "notes": "",
         "created": "2026-03-05T08:00:00Z", "modified": "2026-03-05T08:00:00Z",
         "labellings": [{"structure": "RyR", "isotype": "", "antibody": "", "dye": "A647"}],
         "images": [{"name": "c1", "user": "bob", "acquired": "2026-03-05T09:00:00Z", "comments": "",
                     "entries": [ROOT, entry("raw.h5", 4096, "4" * 32)]}]},
    ],
}


class SchemaExamples(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        self.catalog = os.path.join(d, "catalog.db")
        conf = os.path.join(d, "samplefs.conf")
        with open(conf, "w") as f:
            f.write(f"catalog = {self.catalog}\nstore = {os.path.join(d, 'store')}\n")
        doc = os.path.join(d, "demo.json")
        with open(doc, "w") as f:
            json.dump(DOCUMENT, f)
        env = dict(os.environ, HOME=d, XDG_CONFIG_HOME=d, XDG_DATA_HOME=d)
        for args in (["init"], ["load", doc]):
            p = subprocess.run([SAMPLECTL, "--config", conf, "-q"] + args, capture_output=True, text=True, env=env)
            self.assertEqual(p.returncode, 0, f"samplectl {args}: {p.stdout}{p.stderr}")

    def tearDown(self):
        self.tmp.cleanup()

    def blocks(self):
        with open(SCHEMA_MD) as f:
            text = f.read()
        found = re.findall(r"```python\n(.*?)```", text, re.S)
        self.assertTrue(found, "docs/SCHEMA.md has no ```python block")
        for code in found:
            self.assertIn(DOC_CATALOG, code, "the example no longer names the documented catalog path")
        return [c.replace(DOC_CATALOG, self.catalog) for c in found]

    def test_python_blocks_run_and_answer(self):
        ns = {}
        for code in self.blocks():
            exec(compile(code, "docs/SCHEMA.md", "exec"), ns)  # noqa: S102 (our own documentation)
        files, slides, per_dye = ns["files"], ns["slides"], ns["per_dye"]
        # HeLa raw files: the two TIFFs of S1 (fits.csv is analysis, raw.h5 is a rat's).
        self.assertEqual(sorted(files.path), ["Pos0/img_0001.tif", "Pos0/img_0002.tif"])
        self.assertEqual(str(files.mtime.dt.tz), "UTC")
        self.assertEqual(sorted(files.mount_path),
                         ["slides/S1/images/cell01/files/Pos0/img_0001.tif",
                          "slides/S1/images/cell01/files/Pos0/img_0002.tif"])
        self.assertEqual(sorted(files.local),
                         [os.path.join(DOC_MOUNT, "slides/S1/images/cell01/files/Pos0/img_0001.tif"),
                          os.path.join(DOC_MOUNT, "slides/S1/images/cell01/files/Pos0/img_0002.tif")])
        self.assertEqual(sorted(slides.slide), ["S1", "S2"])
        self.assertEqual(per_dye.to_dict(), {"A488": 1, "A647": 2})
        lab = ns["labellings"]
        self.assertEqual(len(lab), 3)
        self.assertEqual(sorted(lab.columns[:4]), sorted(["labelling_id", "slide_id", "slide", "sample"]))
        self.assertEqual(ns["per_dye_and_structure"].to_dict(),
                         {("A488", "actin"): 1, ("A647", "RyR"): 1, ("A647", "tubulin"): 1})
        self.assertEqual(set(lab[lab.slide == "S2"].species), {"Rat-Wistar"})


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
