#!/usr/bin/env python3
"""Writes the ONNX fixtures of src/cnn/onnx.rs's tests (needs `onnx`, `numpy`).

    python3 scripts/make_onnx_fixture.py        # from the repository root

tests/data/tiny_resnet.onnx: a tiny ResNet in onnxruntime's QDQ layout, as
SSCD's int8 file has it: uint8 NHWC input, Cast/Sub/Div/Transpose, a stride-2
stem conv and a max pool, a bottleneck with a downsample shortcut and one
without, activations in QuantizeLinear/DequantizeLinear pairs (zero point 0
where the float model had a ReLU, which the quantiser removed), int8
per-channel weights, int32 biases, and the GeM (p = 3) -> Gemm -> L2 tail.

tests/data/tiny_resnet_float.onnx: a float model as torch exports one:
float NCHW input, Conv + BatchNormalization + Relu, a grouped conv with
Clip(0, 6), a residual Add + Relu, Constant nodes, GeM without projection.

tests/data/tiny_resnet_expected.json: numpy forwards of both (QDQ pairs on
activations are identity, except the clamp at 0 a zero point of 0 means) of
the two images that `image(n, y, x, c)` below defines; the Rust test builds
them with the same formula.
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N, H, W = 2, 20, 24
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
rng = np.random.default_rng(20240611)


def images():
    n, y, x, c = np.meshgrid(np.arange(N), np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 50 + n * 91 + x * y) % 256).astype(np.uint8)  # NHWC


def conv_ref(x, w, b, stride, pad, groups=1):
    n, cin, h, wd = x.shape
    cout, cig, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, cout, oh, ow), np.float64)
    cog = cout // groups
    for o in range(cout):
        g = o // cog
        for i in range(cig):
            for dy in range(k):
                for dx in range(k):
                    patch = xp[:, g * cig + i, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
                    out[:, o] += w[o, i, dy, dx] * patch
    return out + b.reshape(1, -1, 1, 1)


def maxpool_ref(x, k=3, s=2, p=1):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for dy in range(k):
        for dx in range(k):
            out = np.maximum(out, xp[:, :, dy:dy + s * oh:s, dx:dx + s * ow:s])
    return out


def gem_ref(x, p=3.0, eps=1e-6):
    return (np.maximum(x.reshape(x.shape[0], x.shape[1], -1), eps) ** p).mean(axis=2) ** (1.0 / p)


def l2(v):
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op, inputs, outputs=None, **attrs):
        self.n += 1
        outputs = outputs or [f"{op}_{self.n}_out"]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{self.n}", **attrs))
        return outputs[0]

    def qdq(self, x, relu):
        """An activation QDQ pair; zero point 0 when the tensor was ReLU'd."""
        s = self.init(f"{x}_scale", np.array(rng.uniform(0.01, 0.05), np.float32))
        z = self.init(f"{x}_zp", np.array(0 if relu else rng.integers(90, 170), np.uint8))
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, s, z]), s, z])


def qdq_conv(b, x, cin, cout, k, stride, relu, per_tensor=False):
    """int8 per-channel weights, int32 bias; returns (QDQ'd output, float ref params)."""
    w = rng.normal(0, (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k)).astype(np.float32)
    name = f"conv{len(b.nodes)}"
    if per_tensor:
        ws, wz = np.array(np.abs(w).max() / 120, np.float32), np.array(3, np.int8)
        wq = np.clip(np.round(w / ws) + wz, -128, 127).astype(np.int8)
        wf = (wq.astype(np.float32) - wz) * ws
        wdq = b.node("DequantizeLinear", [b.init(name + "_wq", wq), b.init(name + "_ws", ws), b.init(name + "_wz", wz)])
    else:
        ws = (np.abs(w).reshape(cout, -1).max(axis=1) / 127).astype(np.float32)
        wz = rng.integers(-2, 3, cout).astype(np.int8)
        wq = np.clip(np.round(w / ws.reshape(-1, 1, 1, 1)) + wz.reshape(-1, 1, 1, 1), -128, 127).astype(np.int8)
        wf = (wq.astype(np.float32) - wz.reshape(-1, 1, 1, 1)) * ws.reshape(-1, 1, 1, 1)
        wdq = b.node("DequantizeLinear", [b.init(name + "_wq", wq), b.init(name + "_ws", ws), b.init(name + "_wz", wz)], axis=0)
    bs = rng.uniform(1e-4, 1e-3, cout).astype(np.float32)
    bq = rng.integers(-300, 300, cout).astype(np.int32)
    bdq = b.node("DequantizeLinear", [b.init(name + "_bq", bq), b.init(name + "_bs", bs), b.init(name + "_bz", np.zeros(cout, np.int32))], axis=0)
    out = b.node("Conv", [x, wdq, bdq], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=1, dilations=[1, 1])
    return b.qdq(out, relu), (wf, bq.astype(np.float64) * bs, stride, k // 2, relu)


def relu_if(x, r):
    return np.maximum(x, 0) if r else x


def quantised_model():
    b = Builder()
    x = b.node("Cast", ["image"], to=TensorProto.FLOAT)
    x = b.node("Sub", [x, b.init("pixel_mean", MEAN)])
    x = b.node("Div", [x, b.init("pixel_std", STD)])
    x = b.qdq(b.node("Transpose", [x], perm=[0, 3, 1, 2]), relu=False)
    x, stem = qdq_conv(b, x, 3, 4, 3, 2, True)
    x = b.qdq(b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=0), relu=True)
    specs = []
    for cin, mid, cout, stride, down in [(4, 2, 8, 2, True), (8, 2, 8, 1, False)]:
        c1, p1 = qdq_conv(b, x, cin, mid, 1, 1, True)
        if down:  # onnxruntime's file lists the shortcut right after conv1
            d, pd = qdq_conv(b, x, cin, cout, 1, stride, False, per_tensor=True)
        c2, p2 = qdq_conv(b, c1, mid, mid, 3, stride, True)
        c3, p3 = qdq_conv(b, c2, mid, cout, 1, 1, False)
        if not down:  # and block input as the first Add operand, for variety
            x = b.qdq(b.node("Add", [x, c3]), relu=True)
        else:
            x = b.qdq(b.node("Add", [c3, d]), relu=True)
        specs.append((p1, p2, p3, pd if down else None))
    g = b.node("Reshape", [x, b.init("flat_shape", np.array([0, 0, -1], np.int64))])
    g = b.node("Clip", [g, b.init("gem_eps", np.array(1e-6, np.float32)), ""])
    g = b.node("Pow", [g, b.init("gem_p", np.array(3.0, np.float32))])
    g = b.node("ReduceMean", [g], axes=[2], keepdims=0)
    g = b.node("Pow", [g, b.init("gem_inv_p", np.array(1 / 3, np.float32))])
    pw = rng.normal(0, 0.3, (6, 8)).astype(np.float32)
    pb = rng.normal(0, 0.1, 6).astype(np.float32)
    e = b.node("Gemm", [g, b.init("proj.weight", pw), b.init("proj.bias", pb)], alpha=1.0, beta=1.0, transB=1)
    shape = b.node("Shape", [e])
    nrm = b.node("ReduceL2", [e], axes=[1], keepdims=1)
    nrm = b.node("Clip", [nrm, b.init("l2_eps", np.array(1e-12, np.float32)), ""])
    nrm = b.node("Expand", [nrm, shape])
    b.node("Div", [e, nrm], outputs=["embedding"])
    graph = helper.make_graph(
        b.nodes, "tiny_resnet_qdq",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 6])],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    # Float reference.
    t = ((images().astype(np.float32) - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float64)
    wf, bf, s, p, r = stem
    t = maxpool_ref(relu_if(conv_ref(t, wf, bf, s, p), r))
    for p1, p2, p3, pd in specs:
        y = t
        for wf, bf, s, p, r in (p1, p2, p3):
            y = relu_if(conv_ref(y, wf, bf, s, p), r)
        short = conv_ref(t, pd[0], pd[1], pd[2], pd[3]) if pd else t
        t = np.maximum(y + short, 0)
    emb = l2(gem_ref(t) @ pw.T.astype(np.float64) + pb)
    return model, emb


def float_model():
    b = Builder()
    w0 = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, 4).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32)
    mu, var = rng.normal(0, 0.2, 4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    x = b.node("Conv", ["input", b.init("c0.w", w0)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.node("BatchNormalization", [x, b.init("bn.g", gamma), b.init("bn.b", beta), b.init("bn.m", mu), b.init("bn.v", var)], epsilon=1e-5)
    pool = b.node("MaxPool", [b.node("Relu", [x])], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    w1, b1 = rng.normal(0, 0.4, (4, 2, 3, 3)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32)
    y = b.node("Conv", [pool, b.init("c1.w", w1), b.init("c1.b", b1)], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2)
    six = b.node("Constant", [], value=numpy_helper.from_array(np.array(6.0, np.float32)))
    y = b.node("Clip", [y, b.init("zero", np.array(0.0, np.float32)), six])
    w2, b2 = rng.normal(0, 0.4, (4, 4, 1, 1)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32)
    y = b.node("Identity", [b.node("Conv", [y, b.init("c2.w", w2), b.init("c2.b", b2)])])
    x = b.node("Relu", [b.node("Add", [y, pool])])
    g = b.node("Reshape", [x, b.init("flat_shape", np.array([0, 4, -1], np.int64))])
    g = b.node("Clip", [g, b.init("gem_eps", np.array(1e-6, np.float32))])
    p = b.node("Constant", [], value=numpy_helper.from_array(np.array(3.0, np.float32)))
    g = b.node("Pow", [g, p])
    g = b.node("ReduceMean", [g], axes=[-1], keepdims=1)
    b.node("Pow", [g, b.init("gem_inv_p", np.array(1 / 3, np.float32))], outputs=["pooled"])
    graph = helper.make_graph(
        b.nodes, "tiny_resnet_float",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 4, 1])],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    imagenet_mean, imagenet_std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    t = ((images().astype(np.float64) - imagenet_mean) / imagenet_std).transpose(0, 3, 1, 2)
    sc = gamma / np.sqrt(var + 1e-5)
    t = conv_ref(t, w0 * sc.reshape(-1, 1, 1, 1), beta - mu * sc, 2, 1)
    pool = maxpool_ref(np.maximum(t, 0))
    y = np.clip(conv_ref(pool, w1, b1, 1, 1, groups=2), 0, 6)
    y = conv_ref(y, w2, b2, 1, 0)
    return model, l2(gem_ref(np.maximum(y + pool, 0)))


def main():
    os.makedirs("tests/data", exist_ok=True)
    out = {"images": "NHWC uint8 [2, 20, 24, 3]: (x*7 + y*13 + c*50 + n*91 + x*y) % 256"}
    for name, build in [("tiny_resnet", quantised_model), ("tiny_resnet_float", float_model)]:
        model, emb = build()
        onnx.checker.check_model(model)
        onnx.save(model, f"tests/data/{name}.onnx")
        out[name] = [[round(float(v), 7) for v in e] for e in emb]
        print(f"tests/data/{name}.onnx: {os.path.getsize(f'tests/data/{name}.onnx')} bytes")
    with open("tests/data/tiny_resnet_expected.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
