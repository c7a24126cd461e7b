#!/usr/bin/env python3
"""Generates the small synthetic descriptor test set in tests/data/descriptors/.

Deterministic (fixed seed, numpy + Pillow only). Reference hashes for these
images live next to them in reference.csv, made by scripts/reference_hashes.py.

    python3 scripts/make_test_images.py tests/data/descriptors
"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def save(out, name, arr):
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").save(os.path.join(out, name))


def smooth_field(rng, h, w, cells, channels=3):
    # Coarse random grid upsampled with bicubic: a smooth, photo-like field.
    small = rng.uniform(0, 255, size=(cells, cells, channels)).astype(np.uint8)
    return np.asarray(Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC), dtype=np.float64)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/descriptors"
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(20240611)

    y, x = np.mgrid[0:96, 0:128]
    save(out, "grad_h.png", np.stack([x * 2.0, x * 1.5 + 20, 255 - x * 2.0], -1))

    y, x = np.mgrid[0:120, 0:120]
    save(out, "grad_diag.png", np.stack([(x + y) * 1.06, y * 2.1, 128 + 0 * x + (x - y) * 0.9], -1))

    y, x = np.mgrid[0:128, 0:128]
    c = (((x // 16) + (y // 16)) % 2) * 255.0
    save(out, "checker16.png", np.stack([c, c, c], -1))

    y, x = np.mgrid[0:70, 0:100]
    c = (((x // 7) + (y // 7)) % 2).astype(np.float64)
    save(out, "checker7_color.png", np.stack([40 + 200 * c, 200 - 150 * c, 90 + 0 * c], -1))

    im = Image.new("RGB", (150, 110), (30, 60, 90))
    d = ImageDraw.Draw(im)
    d.ellipse((10, 10, 70, 70), fill=(250, 200, 40))
    d.rectangle((80, 20, 140, 60), fill=(200, 30, 30))
    d.polygon([(20, 100), (75, 75), (130, 105)], fill=(40, 220, 120))
    d.line((0, 90, 150, 80), fill=(255, 255, 255), width=3)
    im.save(os.path.join(out, "shapes.png"))

    save(out, "smooth_noise.png", smooth_field(rng, 128, 128, 6))

    # Photo-like: several octaves of smooth noise plus fine grain, then a blur.
    f = smooth_field(rng, 120, 160, 4) * 0.5 + smooth_field(rng, 120, 160, 12) * 0.35
    f += rng.normal(0, 12, size=f.shape)
    photo = Image.fromarray(np.clip(f, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(1.5))
    photo.save(os.path.join(out, "photo_like.png"))

    save(out, "tiny8.png", rng.uniform(0, 255, size=(8, 8, 3)))

    y, x = np.mgrid[0:20, 0:160]
    save(out, "wide160x20.png", np.stack([128 + 100 * np.sin(x / 9.0), 60 + y * 8.0, 128 + 100 * np.cos(x / 23.0)], -1))

    save(out, "flat_grey.png", np.full((64, 64, 3), 128.0))

    y, x = np.mgrid[0:140, 0:140]
    r = np.hypot(x - 63.3, y - 71.7)
    g = 128 + 110 * np.sin(r / 4.0)
    save(out, "rings.png", np.stack([g, g * 0.8, 255 - g], -1))

    y, x = np.mgrid[0:128, 0:96]
    s = 128 + 90 * np.sign(np.sin(x / 3.0)) + rng.normal(0, 20, size=x.shape)
    save(out, "stripes_noisy.png", np.stack([s, s, s * 0.5 + 60], -1))


if __name__ == "__main__":
    main()
