#!/usr/bin/env python3
"""Fills a mounted samplefs catalog with a small, realistic demo lab.

Everything goes through the mount, as a lab would do it: mkdir for records,
setfattr for fields and tags, slide.json edits for labellings, cp-like
writes for files. Idempotent: records that exist are left alone.

usage: demo_populate.py MOUNTPOINT [DEMO_DIR]
DEMO_DIR holds species.csv and dyes.csv (default: tools/demo/ beside this
script).
"""
import csv
import json
import os
import random
import sys


def setx(path, name, value):
    os.setxattr(path, name, value.encode())


def mkdir(path):
    if not os.path.isdir(path):
        os.mkdir(path)
        return True
    return False


def write(path, data):
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)


def main():
    mnt = sys.argv[1]
    demo = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo")
    rnd = random.Random(2026)
    with open(os.path.join(demo, "species.csv")) as f:
        species = list(csv.DictReader(f))
    with open(os.path.join(demo, "dyes.csv")) as f:
        dyes = list(csv.DictReader(f))
    for sp in species:
        p = os.path.join(mnt, "species", sp["name"])
        if mkdir(p):
            setx(p, "user.samplefs.species", sp["species"])
            if sp["strain"]:
                setx(p, "user.samplefs.strain", sp["strain"])
    for d in dyes:
        p = os.path.join(mnt, "dyes", d["short_name"])
        if mkdir(p):
            setx(p, "user.samplefs.long_name", d["long_name"])
            setx(p, "user.samplefs.spectra_db_name", d["spectra_db_name"])

    plan = [
        ("HeLa", "HeLa-2026-001", [("tubulin", "A647"), ("DNA", "DAPI")], ["good", "confocal"]),
        ("HeLa", "HeLa-2026-002", [("Nup96", "A647")], ["good"]),
        ("HeLa", "HeLa-2026-003", [("actin", "A488")], ["bleached"]),
        ("U2OS", "U2OS-2026-001", [("TOM20", "CF568"), ("tubulin", "A488")], ["confocal"]),
        ("Rat-Wistar", "RatHeart-2026-001", [("RyR", "A647"), ("Cav3", "A568")], ["tissue"]),
    ]
    for sp, ref, labellings, tags in plan:
        slide = os.path.join(mnt, "slides", ref)
        if not os.path.isdir(slide):
            os.mkdir(os.path.join(mnt, "species", sp, "slides", ref))
            doc_path = os.path.join(slide, "slide.json")
            with open(doc_path) as f:
                doc = json.load(f)
            doc["notes"] = f"demo slide of {sp}"
            doc["labellings"] = [{"structure": s, "isotype": "", "antibody": f"anti-{s}", "dye": d}
                                 for s, d in labellings]
            doc["tags"] = tags
            doc["annotations"] = {"microscope": rnd.choice(["dSTORM-1", "confocal-2"])}
            with open(doc_path, "w") as f:
                json.dump(doc, f, indent=2)
        for n in (1, 2):
            image = os.path.join(slide, "images", f"cell{n:02d}")
            if not mkdir(image):
                continue
            files = os.path.join(image, "files")
            # PYME raw series and its analysis
            write(os.path.join(files, "raw_0001.h5"), rnd.randbytes(2 * 1024 * 1024))
            write(os.path.join(files, "raw_0001.h5r"), rnd.randbytes(256 * 1024))
            write(os.path.join(files, "localisations.csv"),
                  ("x,y,z,intensity\n" + "".join(
                      f"{rnd.uniform(0, 5e4):.1f},{rnd.uniform(0, 5e4):.1f},0,{rnd.randint(100, 5000)}\n"
                      for _ in range(2000))).encode())
            # Micro-Manager folder
            pos = os.path.join(files, "Pos0")
            mkdir(pos)
            for i in range(5):
                write(os.path.join(pos, f"img_{i:09d}_Cy5_000.tif"), rnd.randbytes(64 * 1024))
            write(os.path.join(pos, "metadata.txt"), b'{"Summary": {"Channels": 1}}\n')
            # OME-Zarr tree
            zarr = os.path.join(files, "stack.ome.zarr")
            mkdir(zarr)
            write(os.path.join(zarr, ".zattrs"), b'{"multiscales": []}\n')
            mkdir(os.path.join(zarr, "0"))
            for c in range(3):
                mkdir(os.path.join(zarr, "0", str(c)))
                write(os.path.join(zarr, "0", str(c), "0"), rnd.randbytes(32 * 1024))
            link = os.path.join(files, "latest.h5")
            if not os.path.lexists(link):
                os.symlink("raw_0001.h5", link)
            setx(os.path.join(files, "raw_0001.h5"), "user.origin", "microscope3")
            if n == 1:
                setx(image, "user.xdg.tags", "best")
    print(f"demo catalog ready in {mnt}")


if __name__ == "__main__":
    main()
