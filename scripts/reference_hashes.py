#!/usr/bin/env python3
"""Prints reference PDQ and pHash values for every image in a folder, as CSV:

    file,pdq_hex,quality,phash_hex

Where the values come from (the versions these vectors were made with):
  * PDQ: `pdqhash` 0.2.8 on PyPI (github.com/faustomorales/pdqhash-python), a
    Cython binding that compiles Meta's C++ reference (facebook/ThreatExchange
    pdq/cpp/hashing/pdqhashing.cpp + downscaling.cpp). `pdqhash.compute` is fed
    the FULL-RESOLUTION RGB array: the binding does not downsample (unlike
    ThreatExchange's CLI `pdq-photo-hasher`, which squashes anything over 512 px
    to 512x512 with CImg, and ThreatExchange's pure-Python hasher, which calls
    PIL `thumbnail((512, 512))`). Luma is computed by the binding in numpy
    (float64, then cast to float32) with the Rec.601 weights 0.299/0.587/0.114.
  * pHash: `ImageHash` 4.3.2 `imagehash.phash(img)` (hash_size=8,
    highfreq_factor=4) with Pillow 13.0.0, scipy 1.17.1, numpy 2.4.6. It is
    given the image converted to RGB, because lookalike hashes decoded RGB.

Hex: the binding returns 256 bits with bit 255 first; read as one big-endian
binary number that is exactly ThreatExchange's hex (sixteen 16-bit words, most
significant first) and lookalike's `Hash256::to_hex`. Checked against
ThreatExchange's published vector: pdq/data/reg-test-input/dih/bridge-1-original.jpg
after PIL thumbnail((512, 512)) hashes to
d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22 (their
pdq/python/pdqhashing/tests/pdq_test.py), distance 0.

    python3 scripts/reference_hashes.py tests/data/descriptors > tests/data/descriptors/reference.csv

With --dihedral it prints instead `file,quality,original,rot90,rot180,rot270,
flipx,flipy,flipplus1,flipminus1` from `pdqhash.compute_dihedral` (the
reference's eight variants from one DCT, in its order):

    python3 scripts/reference_hashes.py --dihedral tests/data/descriptors > tests/data/descriptors/reference_dihedral.csv
"""
import os
import sys

import imagehash
import numpy as np
import pdqhash
from PIL import Image

EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def pdq_hex(bits):
    return "%064x" % int("".join("1" if b else "0" for b in bits), 2)


def main():
    args = sys.argv[1:]
    dihedral = "--dihedral" in args
    folder = [a for a in args if a != "--dihedral"][0]
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTS))
    if dihedral:
        print("file,quality,original,rot90,rot180,rot270,flipx,flipy,flipplus1,flipminus1")
    else:
        print("file,pdq_hex,quality,phash_hex")
    for name in names:
        with Image.open(os.path.join(folder, name)) as im:
            rgb = im.convert("RGB")
        arr = np.array(rgb, dtype=np.uint8)  # H x W x 3, C-contiguous, writable
        if dihedral:
            variants, quality = pdqhash.compute_dihedral(arr)
            print(",".join([name, str(quality)] + [pdq_hex(v) for v in variants]))
        else:
            bits, quality = pdqhash.compute(arr)
            print(f"{name},{pdq_hex(bits)},{quality},{imagehash.phash(rgb)}")


if __name__ == "__main__":
    main()
