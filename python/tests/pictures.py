"""Test pictures shared by the package's tests (made here, no files)."""

import numpy as np
from PIL import Image


def picture(seed, w=192, h=144):
    """A w×h RGB uint8 array with structure at several scales (PDQ quality
    100): a bicubic upscale of random colours plus 8×8 blocks of noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
    a = np.asarray(img).astype(np.int16)
    fine = rng.integers(-40, 40, size=(h // 8, w // 8, 3))
    a += np.kron(fine, np.ones((8, 8, 1), dtype=np.int16))
    return np.clip(a, 0, 255).astype(np.uint8)
