#!/usr/bin/env python3
"""Builds examples/sample/: the README's small demo corpus.

Source: public-domain images of the evaluation corpus (shared/corpus, made from
DFSG-free Debian packages; see examples/sample/SOURCES.csv for package, path
and licence of each). Training images are downscaled to at most 320 px;
"generated" images are edited copies of some of them (what a memorising model
might output) plus unrelated images that must not match.

Usage: python3 scripts/make_sample.py ../shared/corpus examples/sample
Needs Pillow. The outputs are committed; this script documents how they were made.
"""
import csv, os, random, sys
from PIL import Image, ImageDraw, ImageEnhance, ImageOps, ImageFilter

src, out = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader(open(os.path.join(src, "manifest.csv")))
        if r["license"].startswith("public-domain") and r["set"] == "db"]
rows.sort(key=lambda r: r["file"])
random.seed(7)
random.shuffle(rows)
train, unrelated = rows[:30], rows[30:36]
os.makedirs(os.path.join(out, "training"), exist_ok=True)
os.makedirs(os.path.join(out, "generated"), exist_ok=True)

def load(r):
    im = Image.open(os.path.join(src, r["file"])).convert("RGB")
    im.thumbnail((320, 320), Image.LANCZOS)
    return im

edits = [
    ("reencoded", lambda im: im),
    ("resized", lambda im: im.resize((im.width * 2 // 3, im.height * 2 // 3), Image.BILINEAR)),
    ("mirrored", ImageOps.mirror),
    ("rotated", lambda im: im.rotate(90, expand=True)),
    ("brighter", lambda im: ImageEnhance.Brightness(im).enhance(1.3)),
    ("grey", lambda im: ImageOps.grayscale(im).convert("RGB")),
    ("blurred", lambda im: im.filter(ImageFilter.GaussianBlur(1.5))),
    ("cropped", lambda im: im.crop((im.width // 20, im.height // 20, im.width * 19 // 20, im.height * 19 // 20))),
    ("captioned", lambda im: caption(im)),
    ("saturated", lambda im: ImageEnhance.Color(im).enhance(1.6)),
]

def caption(im):
    im = im.copy()
    d = ImageDraw.Draw(im)
    d.rectangle((0, im.height - 18, im.width, im.height), fill=(255, 255, 255))
    d.text((4, im.height - 16), "a generated image", fill=(0, 0, 0))
    return im

sources = [("file", "set", "package", "source_path", "license")]
for i, r in enumerate(train):
    name = f"train_{i:02d}.jpg"
    load(r).save(os.path.join(out, "training", name), quality=88)
    sources.append((f"training/{name}", "training", r["package"], r["source_path"], r["license"]))
for i, (label, fn) in enumerate(edits):
    r = train[i * 3]
    name = f"gen_{i:02d}_{label}.jpg"
    fn(load(r)).save(os.path.join(out, "generated", name), quality=80)
    sources.append((f"generated/{name}", f"edited copy of training/train_{i*3:02d}.jpg", r["package"], r["source_path"], r["license"]))
for i, r in enumerate(unrelated):
    name = f"gen_{10 + i:02d}_novel.jpg"
    load(r).save(os.path.join(out, "generated", name), quality=85)
    sources.append((f"generated/{name}", "unrelated (not in training)", r["package"], r["source_path"], r["license"]))
with open(os.path.join(out, "SOURCES.csv"), "w", newline="") as f:
    csv.writer(f).writerows(sources)
