#!/usr/bin/env python3
"""Convert Meta's SSCD checkpoints to the safetensors file `lookalike --model` reads.

SSCD (Pizzi et al., CVPR 2022; github.com/facebookresearch/sscd-copy-detection,
MIT licence) publishes a ResNet-50 copy-detection model as TorchScript
(`sscd_disc_mixup.torchscript.pt`) and as a Classy Vision checkpoint. Both are
torch zip archives (a pickle plus raw tensor storages). This script reads them
WITHOUT torch (a restricted unpickler that only rebuilds tensors), renames
SSCD's Classy Vision names to torchvision's, and writes F32 safetensors:

    backbone.initial_block._module.{0,1}                  -> conv1, bn1
    backbone.blocks.S.blockS-I.convolutional_block.{0,1}  -> layer{S+1}.I.conv1, bn1
                                     ...{3,4} / {6,7}     -> conv2, bn2 / conv3, bn3
    backbone.blocks.S.blockS-I.downsample.{0,1}           -> layer{S+1}.I.downsample.{0,1}
    embeddings.1                                          -> projection

Files that already use torchvision names pass through unchanged. An ONNX
export of the same network (e.g. an int8 QDQ file) also converts: weights are
dequantized, BatchNorm is already folded there, so convs get a bias.

Usage:
    python3 scripts/convert_sscd.py sscd_disc_mixup.torchscript.pt sscd.safetensors
    lookalike --model sscd.safetensors index data/train
Weights are the user's: never commit a converted file.
"""

import json
import pickle
import re
import struct
import sys
import zipfile

import numpy as np

DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _Storage:
    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


class _Any:
    """Stands in for any class the pickle names (modules, TorchScript objects)."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _rebuild_tensor(storage, offset, shape, stride, *rest):
    return ("tensor", storage, offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if name in DTYPES:
            return DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        return _Any

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        kind, stype, key = pid[0], pid[1], pid[2]
        assert kind == "storage", pid
        dtype = stype if isinstance(stype, type) else np.float32
        return _Storage(dtype, str(key))


def _walk(obj, prefix, out, seen):
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, tuple) and obj and obj[0] == "tensor":
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{prefix}{k}.", out, seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, f"{prefix}{i}.", out, seen)
    elif isinstance(obj, _Any):
        state = getattr(obj, "state", None)
        if state is not None:
            _walk(state, prefix, out, seen)


def read_torch_zip(path):
    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
    root = pkl[: -len("data.pkl")]
    obj = _Unpickler(z.open(pkl)).load()
    found = {}
    _walk(obj, "", found, set())
    tensors = {}
    for name, (_, st, off, shape, stride) in found.items():
        raw = np.frombuffer(z.read(f"{root}data/{st.key}"), dtype=st.dtype)
        n = int(np.prod(shape)) if shape else 1
        a = np.lib.stride_tricks.as_strided(
            raw[off:], shape=shape, strides=[s * raw.itemsize for s in stride]
        ) if n else raw[:0]
        tensors[name] = np.ascontiguousarray(a).reshape(shape)
    # state_dict conventions: strip wrappers such as "model." / "state_dict.".
    return {re.sub(r"^(state_dict\.|model\.|module\.)+", "", k): v for k, v in tensors.items()}


def read_onnx(path):
    import onnx
    from onnx import numpy_helper

    g = onnx.load(path).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    deq = {}
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in init:
            q = init[n.input[0]].astype(np.float64)
            s, zp = init[n.input[1]], init[n.input[2]].astype(np.float64)
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if s.ndim:
                shape[axis] = -1
            deq[n.output[0]] = ((q - zp.reshape(shape)) * s.reshape(shape)).astype(np.float32)
    value = lambda k: deq.get(k, init.get(k))
    out = {}
    for n in g.node:
        if n.op_type == "Conv":
            # /backbone/blocks/0/block0-0/shortcut/0/Conv -> backbone.blocks.0.block0-0.shortcut.0
            name = n.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            out[f"{name}.weight"] = value(n.input[1])
            if len(n.input) > 2:
                out[f"{name}.bias"] = value(n.input[2])
        elif n.op_type == "Gemm":
            out["embeddings.1.weight"] = value(n.input[1])
            out["embeddings.1.bias"] = value(n.input[2])
    return out


RULES = [
    (r"^backbone\.initial_block\._module\.0\.", "conv1."),
    (r"^backbone\.initial_block\._module\.1\.", "bn1."),
    (r"^backbone\.blocks\.(\d)\.block\d-(\d+)\.convolutional_block\.([0-9])\.", None),
    (r"^backbone\.blocks\.(\d)\.block\d-(\d+)\.(?:shortcut|downsample)\.([01])\.", None),
    (r"^embeddings\.1\.", "projection."),
]
CONV_BLOCK = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}


def torchvision_name(k):
    for pat, rep in RULES:
        m = re.match(pat, k)
        if not m:
            continue
        rest = k[m.end():]
        if rep is not None:
            return rep + rest
        stage, block, part = int(m.group(1)) + 1, m.group(2), m.group(3)
        if "downsample" in pat:
            return f"layer{stage}.{block}.downsample.{part}.{rest}"
        return f"layer{stage}.{block}.{CONV_BLOCK[part]}.{rest}"
    return k


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    raw = read_onnx(src) if src.endswith(".onnx") else read_torch_zip(src)
    tensors = {torchvision_name(k): v for k, v in raw.items()
               if not k.endswith("num_batches_tracked")}
    tensors = {k: v for k, v in tensors.items()
               if k.startswith(("conv1.", "bn1.", "layer", "projection."))}
    if "conv1.weight" not in tensors or "projection.weight" not in tensors:
        sys.exit(f"{src}: no SSCD ResNet-50 found (names seen: {sorted(raw)[:8]} ...)")
    write_safetensors(dst, tensors, {"lookalike.model": "sscd-resnet50", "source": src.split("/")[-1]})
    print(f"{dst}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
