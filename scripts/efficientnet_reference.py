#!/usr/bin/env python3
"""Reference forward pass of models/efficientnet_lite0/model.safetensors in plain
numpy float32 (no torch, no safetensors package): the network is read from the
file's `lookalike.arch` metadata, so this doubles as an executable spec of that
schema for the Rust/WGSL engine.

Output per image:
  * embedding: the head's 1280-channel feature map (after its folded BN and
    ReLU6) -> GeM pooling (p = 3: clamp(x, 1e-6) ** 3, mean over H, W, ** (1/3))
    -> L2 normalisation;
  * with --logits: the ImageNet logits (global average pool -> fc), top 5 printed.

Preprocessing (`preprocess`): PIL open, EXIF transpose, RGB (alpha composited on
white), resize the whole image (no crop) to 224x224 with PIL BILINEAR (which is
an antialiased triangle filter when downscaling), float32, (x - 127) / 128.
`--short-side N` instead resizes so the short side is N, aspect kept (the
padding rule then follows the actual sizes).

    python3 scripts/efficientnet_reference.py IMAGE... [--logits] [--out emb.npy]
    python3 scripts/efficientnet_reference.py examples/sample/training/train_11.jpg \
        --golden tests/data/efficientnet_golden.json      # the Rust engine's test vector
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
from PIL import Image, ImageOps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO, 'models', 'efficientnet_lite0', 'model.safetensors')

_DT = {'F16': np.float16, 'F32': np.float32, 'BF16': None}


def read_safetensors(path):
    """Returns (dict name -> float32 array, metadata dict)."""
    with open(path, 'rb') as f:
        buf = f.read()
    (n,) = struct.unpack('<Q', buf[:8])
    header = json.loads(buf[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        a, b = info['data_offsets']
        dt = np.dtype(_DT[info['dtype']]).newbyteorder('<')
        arr = np.frombuffer(buf, dtype=dt, count=(b - a) // dt.itemsize, offset=base + a)
        out[name] = arr.reshape(info['shape']).astype(np.float32)
    return out, meta


def load_rgb(path):
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    if im.mode in ('RGBA', 'LA', 'PA') or (im.mode == 'P' and 'transparency' in im.info) \
            or (im.mode in ('RGB', 'L') and 'transparency' in im.info):
        im = im.convert('RGBA')
        bg = Image.new('RGBA', im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert('RGB')


def preprocess(path, size=224, short_side=None):
    """-> float32 array (H, W, 3), normalised."""
    im = load_rgb(path)
    if short_side:
        w, h = im.size
        s = short_side / min(w, h)
        tw, th = max(1, round(w * s)), max(1, round(h * s))
    else:
        tw = th = size
    im = im.resize((tw, th), Image.BILINEAR)
    x = np.asarray(im, dtype=np.float32)
    return (x - 127.0) / 128.0


def tf_same_pad(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Net:
    def __init__(self, path=DEFAULT_MODEL):
        self.t, self.meta = read_safetensors(path)
        self.layers = json.loads(self.meta['lookalike.arch'])
        self.head = next(i for i, L in enumerate(self.layers) if L.get('name') == 'head')
        # prepared weights, HWC activations
        self.prep = {}
        for L in self.layers:
            if L['type'] == 'conv':
                w = self.t[L['weight']]  # O, I/g, kh, kw
                k, g = L['k'], L['groups']
                if g == 1 and k == 1:
                    self.prep[L['name']] = np.ascontiguousarray(w[:, :, 0, 0].T)      # I, O
                elif g == 1:
                    # im2col column order (dy, dx, c)
                    self.prep[L['name']] = np.ascontiguousarray(
                        w.transpose(2, 3, 1, 0).reshape(k * k * L['in'], L['out']))
                elif g == L['in'] == L['out']:
                    self.prep[L['name']] = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))  # kh, kw, C
                else:
                    raise NotImplementedError('grouped conv with groups=%d' % g)

    def conv(self, L, x):
        H, W, C = x.shape
        k, s = L['k'], L['stride']
        pt, pb = tf_same_pad(H, k, s)
        pl, pr = tf_same_pad(W, k, s)
        if H == L.get('in_hw') and W == L.get('in_hw'):
            assert [pt, pl, pb, pr] == L['pad'], (L['name'], [pt, pl, pb, pr], L['pad'])
        Ho, Wo = -(-H // s), -(-W // s)
        wt = self.prep[L['name']]
        if k == 1 and L['groups'] == 1:
            xs = x[::s, ::s] if s > 1 else x
            y = xs.reshape(-1, C) @ wt
            y = y.reshape(Ho, Wo, -1)
        else:
            xp = np.pad(x, ((pt, pb), (pl, pr), (0, 0))) if (pt or pb or pl or pr) else x
            if L['groups'] == 1:
                cols = np.empty((Ho, Wo, k, k, C), np.float32)
                for dy in range(k):
                    for dx in range(k):
                        cols[:, :, dy, dx] = xp[dy:dy + s * (Ho - 1) + 1:s, dx:dx + s * (Wo - 1) + 1:s]
                y = (cols.reshape(Ho * Wo, k * k * C) @ wt).reshape(Ho, Wo, -1)
            else:  # depthwise: k*k shifted multiply-adds
                y = np.zeros((Ho, Wo, C), np.float32)
                for dy in range(k):
                    for dx in range(k):
                        y += xp[dy:dy + s * (Ho - 1) + 1:s, dx:dx + s * (Wo - 1) + 1:s] * wt[dy, dx]
        y += self.t[L['bias']]
        if L['act'] == 'relu6':
            np.clip(y, 0.0, 6.0, out=y)
        elif L['act'] != 'none':
            raise NotImplementedError(L['act'])
        return y

    def forward(self, x, logits=False):
        """x: (H, W, 3) float32 normalised. Returns (feature map HWC of the head, logits or None)."""
        outs = []
        cur = x
        feat = None
        lg = None
        for i, L in enumerate(self.layers):
            t = L['type']
            if t == 'conv':
                cur = self.conv(L, cur)
            elif t == 'add':
                cur = cur + outs[L['from']]
            elif t == 'global_avg_pool':
                if not logits:
                    break
                cur = cur.reshape(-1, cur.shape[-1]).mean(0)
            elif t == 'linear':
                cur = self.t[L['weight']] @ cur + self.t[L['bias']]
                lg = cur
            else:
                raise NotImplementedError(t)
            outs.append(cur)
            if i == self.head:
                feat = cur
        return feat, lg


def gem_l2(feat, p=3.0, eps=1e-6):
    f = np.maximum(feat.reshape(-1, feat.shape[-1]).astype(np.float64), eps)
    g = np.mean(f ** p, axis=0) ** (1.0 / p)
    return (g / np.linalg.norm(g)).astype(np.float32)


PREPROCESS_DESC = ('PIL open, ImageOps.exif_transpose, RGB (alpha composited on white), resize whole image '
                   '(no crop) to 224x224 with PIL Image.BILINEAR, float32, (x - 127) / 128, HWC RGB')


def write_golden(args):
    import hashlib
    if len(args.images) != 1 or args.short_side:
        raise SystemExit('--golden takes exactly one image and no --short-side')
    path = args.images[0]
    net = Net(args.model)
    rgb = np.asarray(load_rgb(path), dtype=np.uint8)
    x = preprocess(path)
    feat, lg = net.forward(x, logits=True)
    e = gem_l2(feat)
    top = np.argsort(-lg)[:5]
    rel = os.path.relpath(os.path.abspath(path), REPO)
    g = {
        'image': rel,
        'preprocess': PREPROCESS_DESC,
        'decoded_size': [int(rgb.shape[1]), int(rgb.shape[0])],
        'decoded_checksum': int(rgb.astype(np.int64).sum()),
        'input_shape': [1, 3, int(x.shape[0]), int(x.shape[1])],
        'input_checksum': round(float(x.astype(np.float64).sum()), 4),
        'input_abs_checksum': round(float(np.abs(x.astype(np.float64)).sum()), 4),
        'feature_map_shape': [1, int(feat.shape[2]), int(feat.shape[0]), int(feat.shape[1])],
        'feature_map_checksum': round(float(feat.astype(np.float64).sum()), 3),
        'embedding': [round(float(v), 6) for v in e],
        'logits_top5': [[int(i), round(float(lg[i]), 4)] for i in top],
        'model_sha256': hashlib.sha256(open(args.model, 'rb').read()).hexdigest(),
        'tolerance_note': 'numpy f32 reference; an f16/f32 GPU engine should reach cosine > 0.999 with this embedding '
                          'and the same top-1; the checksums separate decode, resize and network differences',
        'source': 'scripts/efficientnet_reference.py (numpy f32) with models/efficientnet_lite0/model.safetensors',
    }
    with open(args.golden, 'w') as f:
        json.dump(g, f, indent=1)
        f.write('\n')
    print('wrote %s: top5 %s' % (args.golden, g['logits_top5']))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('images', nargs='+')
    ap.add_argument('--model', default=DEFAULT_MODEL)
    ap.add_argument('--logits', action='store_true', help='also compute ImageNet logits, print top 5')
    ap.add_argument('--out', help='write embeddings (N x 1280 float32) to this .npy')
    ap.add_argument('--short-side', type=int, default=None,
                    help='resize so the short side is N (aspect kept) instead of 224x224')
    ap.add_argument('--labels', help='optional ImageNet class names, one a line (1000 lines)')
    ap.add_argument('--golden', help='write the golden test vector JSON for the (single) image')
    args = ap.parse_args()
    if args.golden:
        return write_golden(args)

    net = Net(args.model)
    labels = None
    if args.labels:
        labels = [l.rstrip('\n') for l in open(args.labels)]
    embs = []
    for path in args.images:
        t0 = time.perf_counter()
        x = preprocess(path, short_side=args.short_side)
        feat, lg = net.forward(x, logits=args.logits)
        e = gem_l2(feat)
        dt = time.perf_counter() - t0
        embs.append(e)
        line = '%s  %dx%d  %.0f ms  emb[:4]=%s' % (path, x.shape[1], x.shape[0], dt * 1000,
                                                  np.array2string(e[:4], precision=4))
        print(line)
        if lg is not None:
            top = np.argsort(-lg)[:5]
            print('   top5: ' + ', '.join('%d%s (%.2f)' % (i, (' ' + labels[i]) if labels else '', lg[i]) for i in top))
    if args.out:
        np.save(args.out, np.stack(embs))


if __name__ == '__main__':
    main()
