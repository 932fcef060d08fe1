#!/usr/bin/env python3
"""Generate reference fixtures for netwalk's forward pass.

Each case is a small `netwalk-model/1` model with random weights.  The
expected per-layer outputs are computed by onnxruntime (an implementation
independent of netwalk) from an ONNX graph built to match netwalk's
(PyTorch eval-mode) semantics.  Every case is additionally recomputed by a
plain float64 numpy forward pass written here from the netwalk semantics,
and the script fails unless onnxruntime and numpy agree to <= 1e-5.

Usage (from anywhere):
    pip install -r tools/requirements.txt
    python3 tools/make_fixtures.py [--out tests/fixtures/reference]

Output, per case: tests/fixtures/reference/<case>/
    model.json            netwalk-model/1 description
    weights.safetensors   parameters (F32, or F16 / BF16 for the dtype cases)
    input.safetensors     one F32 tensor "input", shape [C,H,W], RAW input
                          (netwalk applies mean/std itself)
    expected.safetensors  one F32 tensor per layer, named by the layer,
                          shaped as the layer output without batch dim
"""

import argparse
import copy
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netwalk_onnx  # noqa: E402  (the shared netwalk -> ONNX converter)

OPSET = netwalk_onnx.OPSET
TOL = 1e-5
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures" / "reference"


# ----------------------------------------------------------------------------
# safetensors writer (by hand, so that BF16 needs no extra library)
# ----------------------------------------------------------------------------

def f32_to_bf16_bits(a):
    """Round float32 -> bfloat16 (round to nearest, ties to even); uint16 bits."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    assert np.all(np.isfinite(a)), "bf16 rounding here does not handle nan/inf"
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def round_to(a, dtype):
    """Value of float32 array `a` after storing it as `dtype`, back in float32."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.copy()
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_bits_to_f32(f32_to_bf16_bits(a))
    raise ValueError(dtype)


def encode(a, dtype):
    """Little-endian raw bytes of float32 array `a` stored as `dtype`."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: dict name -> float32 ndarray; all stored as `dtype`."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = tensors[name]
        data = encode(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)  # pad header to 8 bytes, like the reference impl
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Independent reader used to double-check what was written -> dict of f32."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        buf = body[s:e]
        if info["dtype"] == "F32":
            a = np.frombuffer(buf, "<f4")
        elif info["dtype"] == "F16":
            a = np.frombuffer(buf, "<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            a = bf16_bits_to_f32(np.frombuffer(buf, "<u2"))
        else:
            raise ValueError(info["dtype"])
        out[name] = a.reshape(info["shape"]).astype(np.float32)
    return out


# ----------------------------------------------------------------------------
# netwalk semantics: attribute parsing, shapes, parameter names
# ----------------------------------------------------------------------------

def pair(layer, key, default):
    v = layer.get(key, default)
    if isinstance(v, int):
        return (v, v)
    assert isinstance(v, list) and len(v) == 2, (layer["name"], key, v)
    return (int(v[0]), int(v[1]))


def conv_out(n, k, s, p, d):
    """PyTorch: floor((in + 2p - d(k-1) - 1) / s) + 1."""
    o = (n + 2 * p - d * (k - 1) - 1) // s + 1
    assert o >= 1, (n, k, s, p, d)
    return o


def param_name(layer, key):
    """Tensor name of parameter `key` ('weight', 'bias', ...), or None if null."""
    if key in layer:
        return layer[key]  # may be None ("bias": null)
    return f"{layer['name']}.{key}"


def layer_inputs(layer, prev):
    return layer.get("inputs", [prev])


class Builder:
    """Walks the layer list with netwalk semantics: infers shapes and creates
    random parameters (PyTorch layout).  The ONNX graph is built from the model
    and these parameters by the shared converter, tools/netwalk_onnx.py."""

    def __init__(self, rng, model, weight_dtype):
        self.rng = rng
        self.model = model
        self.weight_dtype = weight_dtype
        self.params = {}      # name -> float32 (already rounded to weight_dtype)
        self.shapes = {}      # tensor name (layer or input) -> netwalk shape (tuple)

    def new_param(self, name, a):
        assert name not in self.params, f"duplicate parameter {name}"
        self.params[name] = round_to(a, self.weight_dtype)
        return name

    def randn(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def build(self):
        inp = self.model["input"]
        iname = inp["name"]
        self.shapes[iname] = tuple(inp["shape"])
        prev = iname
        for layer in self.model["layers"]:
            name = layer["name"]
            assert name not in self.shapes, f"duplicate layer name {name}"
            ins = layer_inputs(layer, prev)
            for i in ins:
                assert i in self.shapes, f"{name}: unknown input {i}"
            shape = getattr(self, "op_" + layer["op"])(layer, ins, [self.shapes[i] for i in ins])
            self.shapes[name] = tuple(shape)
            prev = name
        return self

    # ops: each returns the netwalk output shape
    def op_conv2d(self, layer, ins, shapes):
        (c, h, w), = shapes
        o = layer["out_channels"]
        kh, kw = pair(layer, "kernel", None)
        sh, sw = pair(layer, "stride", [1, 1])
        ph, pw = pair(layer, "padding", [0, 0])
        dh, dw = pair(layer, "dilation", [1, 1])
        g = layer.get("groups", 1)
        assert c % g == 0 and o % g == 0
        fan_in = (c // g) * kh * kw
        self.new_param(param_name(layer, "weight"),
                       self.randn((o, c // g, kh, kw), 1 / np.sqrt(fan_in)))
        bn = param_name(layer, "bias")
        if bn is not None:
            self.new_param(bn, self.randn((o,), 1 / np.sqrt(fan_in)))
        return (o, conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw, dw))

    def op_dense(self, layer, ins, shapes):
        (n,), = shapes  # input must be [N]
        o = layer["out_features"]
        self.new_param(param_name(layer, "weight"), self.randn((o, n), 1 / np.sqrt(n)))
        bn = param_name(layer, "bias")
        if bn is not None:
            self.new_param(bn, self.randn((o,), 1 / np.sqrt(n)))
        return (o,)

    def op_batchnorm2d(self, layer, ins, shapes):
        (c, h, w), = shapes
        r = self.rng
        # Even channels get small running_var (0.01..0.05) so that eps visibly
        # matters (1e-3 vs 1e-5 changes the scale by up to ~5%); weight is scaled
        # by sqrt(running_var) so that outputs stay O(1).
        var = np.where(np.arange(c) % 2 == 0, r.uniform(0.01, 0.05, c), r.uniform(0.5, 2.0, c))
        vals = {
            "weight": r.uniform(0.5, 1.5, c) * np.sqrt(var),
            "bias": r.normal(0, 0.5, c),
            "running_mean": r.normal(0, 0.5, c),
            "running_var": var,
        }
        for key in ("weight", "bias", "running_mean", "running_var"):
            nm = param_name(layer, key)
            assert nm is not None, "batchnorm parameters are not optional in these fixtures"
            self.new_param(nm, vals[key].astype(np.float32))
        return (c, h, w)

    def _pool(self, layer, shapes):
        (c, h, w), = shapes
        kh, kw = pair(layer, "kernel", None)
        sh, sw = pair(layer, "stride", [kh, kw])
        ph, pw = pair(layer, "padding", [0, 0])
        assert 2 * ph <= kh and 2 * pw <= kw, "PyTorch requires padding <= kernel/2"
        return (c, conv_out(h, kh, sh, ph, 1), conv_out(w, kw, sw, pw, 1))

    def op_maxpool2d(self, layer, ins, shapes):
        return self._pool(layer, shapes)

    def op_avgpool2d(self, layer, ins, shapes):
        return self._pool(layer, shapes)

    def op_global_avgpool2d(self, layer, ins, shapes):
        (c, h, w), = shapes
        return (c, 1, 1)

    def op_flatten(self, layer, ins, shapes):
        s, = shapes
        return (int(np.prod(s)),)

    def op_relu(self, layer, ins, shapes):
        return shapes[0]

    def op_sigmoid(self, layer, ins, shapes):
        return shapes[0]

    def op_tanh(self, layer, ins, shapes):
        return shapes[0]

    def op_softmax(self, layer, ins, shapes):
        return shapes[0]

    def op_add(self, layer, ins, shapes):
        assert len(ins) >= 2 and all(s == shapes[0] for s in shapes)
        return shapes[0]

    def op_concat(self, layer, ins, shapes):
        assert len(ins) >= 2 and all(len(s) == len(shapes[0]) for s in shapes)
        assert all(s[1:] == shapes[0][1:] for s in shapes)
        return (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])

    def onnx_model(self):
        """ONNX graph of the model with every layer as an output (the shared
        converter, which also runs onnx.checker with full_check)."""
        m = netwalk_onnx.build_onnx(self.model, self.params, all_layers=True,
                                    producer="netwalk tools/make_fixtures.py")
        assert [o.name for o in m.graph.output] == [l["name"] for l in self.model["layers"]]
        return m


# ----------------------------------------------------------------------------
# independent numpy (float64) forward pass of netwalk semantics
# ----------------------------------------------------------------------------

def np_windows(xp, kh, kw, sh, sw, dh, dw, ho, wo):
    """Yield (ki, kj, view [C,ho,wo]) for each kernel tap over padded xp."""
    for ki in range(kh):
        for kj in range(kw):
            r0, c0 = ki * dh, kj * dw
            yield ki, kj, xp[:, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw]


def numpy_forward(model, params, x_raw):
    P = {k: v.astype(np.float64) for k, v in params.items()}
    inp = model["input"]
    C = inp["shape"][0]
    x = x_raw.astype(np.float64)
    mean = np.array(inp.get("mean", [0.0] * C), np.float64).reshape(C, 1, 1)
    std = np.array(inp.get("std", [1.0] * C), np.float64).reshape(C, 1, 1)
    # netwalk normalizes in f32; emulate that rounding for the input
    x = ((x_raw.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float64)
    vals = {inp["name"]: x}
    prev = inp["name"]
    for L in model["layers"]:
        xs = [vals[i] for i in layer_inputs(L, prev)]
        op = L["op"]
        if op == "conv2d":
            a = xs[0]
            c, h, w = a.shape
            kh, kw = pair(L, "kernel", None)
            sh, sw = pair(L, "stride", [1, 1])
            ph, pw = pair(L, "padding", [0, 0])
            dh, dw = pair(L, "dilation", [1, 1])
            g = L.get("groups", 1)
            W = P[param_name(L, "weight")]
            o = W.shape[0]
            ho, wo = conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw, dw)
            xp = np.pad(a, ((0, 0), (ph, ph), (pw, pw)))
            y = np.zeros((o, ho, wo))
            cg, og = c // g, o // g
            for ki, kj, v in np_windows(xp, kh, kw, sh, sw, dh, dw, ho, wo):
                for gi in range(g):
                    y[gi * og:(gi + 1) * og] += np.einsum(
                        "oc,chw->ohw", W[gi * og:(gi + 1) * og, :, ki, kj], v[gi * cg:(gi + 1) * cg])
            bn = param_name(L, "bias")
            if bn is not None:
                y += P[bn].reshape(-1, 1, 1)
        elif op == "dense":
            a = xs[0]
            assert a.ndim == 1
            y = P[param_name(L, "weight")] @ a
            bn = param_name(L, "bias")
            if bn is not None:
                y = y + P[bn]
        elif op == "batchnorm2d":
            a = xs[0]
            g_, b_, m_, v_ = (P[param_name(L, k)].reshape(-1, 1, 1)
                              for k in ("weight", "bias", "running_mean", "running_var"))
            y = (a - m_) / np.sqrt(v_ + L.get("eps", 1e-5)) * g_ + b_
        elif op in ("maxpool2d", "avgpool2d"):
            a = xs[0]
            c, h, w = a.shape
            kh, kw = pair(L, "kernel", None)
            sh, sw = pair(L, "stride", [kh, kw])
            ph, pw = pair(L, "padding", [0, 0])
            ho, wo = conv_out(h, kh, sh, ph, 1), conv_out(w, kw, sw, pw, 1)
            if op == "maxpool2d":
                xp = np.pad(a, ((0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
                y = np.full((c, ho, wo), -np.inf)
                for _, _, v in np_windows(xp, kh, kw, sh, sw, 1, 1, ho, wo):
                    y = np.maximum(y, v)
            else:
                xp = np.pad(a, ((0, 0), (ph, ph), (pw, pw)))
                y = np.zeros((c, ho, wo))
                for _, _, v in np_windows(xp, kh, kw, sh, sw, 1, 1, ho, wo):
                    y += v
                y /= kh * kw  # count_include_pad=True, floor mode: window always inside padded input
        elif op == "global_avgpool2d":
            y = xs[0].mean(axis=(1, 2), keepdims=True)
        elif op == "flatten":
            y = xs[0].reshape(-1)
        elif op == "relu":
            y = np.maximum(xs[0], 0)
        elif op == "sigmoid":
            y = 1 / (1 + np.exp(-xs[0]))
        elif op == "tanh":
            y = np.tanh(xs[0])
        elif op == "softmax":
            e = np.exp(xs[0] - xs[0].max(axis=0, keepdims=True))
            y = e / e.sum(axis=0, keepdims=True)
        elif op == "add":
            y = sum(xs[1:], xs[0])
        elif op == "concat":
            y = np.concatenate(xs, axis=0)
        else:
            raise ValueError(op)
        vals[L["name"]] = y
        prev = L["name"]
    return {L["name"]: vals[L["name"]] for L in model["layers"]}


# ----------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------

def case_basic(name="basic", weight_dtype="F32"):
    return {
        "format": "netwalk-model/1",
        "name": name,
        "input": {"name": "image", "shape": [1, 12, 12], "mean": [0.5], "std": [0.25]},
        "classes": ["zero", "one", "two", "three", "four",
                    "five", "six", "seven", "eight", "nine"],
        "weights": "weights.safetensors",
        "layers": [
            {"name": "conv1", "op": "conv2d", "out_channels": 4, "kernel": [3, 3], "padding": [1, 1]},
            {"name": "relu1", "op": "relu"},
            {"name": "pool1", "op": "maxpool2d", "kernel": [2, 2]},
            {"name": "conv2", "op": "conv2d", "out_channels": 6, "kernel": [3, 3]},
            {"name": "relu2", "op": "relu"},
            {"name": "flatten", "op": "flatten"},
            {"name": "fc", "op": "dense", "out_features": 10},
            {"name": "softmax", "op": "softmax"},
        ],
    }, weight_dtype


def case_stride_pad_dilation():
    return {
        "format": "netwalk-model/1",
        "name": "stride_pad_dilation",
        "input": {"name": "image", "shape": [3, 15, 13],
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "weights": "weights.safetensors",
        "layers": [
            # non-square kernel, asymmetric stride/padding/dilation
            {"name": "conv1", "op": "conv2d", "out_channels": 5, "kernel": [3, 2],
             "stride": [2, 1], "padding": [1, 2], "dilation": [2, 1]},
            # everything written as plain ints
            {"name": "conv2", "op": "conv2d", "out_channels": 6, "kernel": 3,
             "stride": 2, "padding": 2, "dilation": 2},
            # pools on conv1 (values are signed, so -inf max-padding matters)
            {"name": "maxpool_pad", "op": "maxpool2d", "inputs": ["conv1"],
             "kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]},
            {"name": "avgpool_pad", "op": "avgpool2d", "inputs": ["conv1"],
             "kernel": 3, "stride": 2, "padding": 1},
            {"name": "avgpool_rect", "op": "avgpool2d", "inputs": ["conv2"],
             "kernel": [2, 3], "stride": [1, 2]},
            # 7x16 with kernel 2 (stride defaults to kernel): H floors 3.5 -> 3
            {"name": "maxpool_floor", "op": "maxpool2d", "inputs": ["conv1"], "kernel": 2},
            # 7x16 with kernel 3, default stride 3: 2x5, both dims floor
            {"name": "avgpool_floor", "op": "avgpool2d", "inputs": ["conv1"], "kernel": [3, 3]},
        ],
    }, "F32"


def case_groups_bn():
    return {
        "format": "netwalk-model/1",
        "name": "groups_bn",
        "input": {"name": "image", "shape": [4, 10, 10],
                  "mean": [0.5, 0.4, 0.6, 0.5], "std": [0.3, 0.2, 0.25, 0.5]},
        "classes": ["a", "b", "c", "d", "e"],
        "weights": "weights.safetensors",
        "layers": [
            {"name": "conv_g2", "op": "conv2d", "out_channels": 6, "kernel": [3, 3],
             "padding": [1, 1], "groups": 2},
            {"name": "bn1", "op": "batchnorm2d"},
            {"name": "dw", "op": "conv2d", "out_channels": 6, "kernel": [3, 3],
             "padding": [1, 1], "groups": 6},
            {"name": "bn2", "op": "batchnorm2d", "eps": 1e-3},
            {"name": "sig", "op": "sigmoid"},
            {"name": "dw_mult2", "op": "conv2d", "out_channels": 12, "kernel": [3, 3],
             "stride": [2, 2], "padding": [1, 1], "groups": 6},
            {"name": "tanh", "op": "tanh"},
            {"name": "softmax_ch", "op": "softmax", "inputs": ["tanh"]},
            {"name": "gap", "op": "global_avgpool2d", "inputs": ["tanh"]},
            {"name": "flatten", "op": "flatten"},
            {"name": "fc", "op": "dense", "out_features": 5},
            {"name": "softmax", "op": "softmax"},
        ],
    }, "F32"


def case_residual_concat():
    return {
        "format": "netwalk-model/1",
        "name": "residual_concat",
        # no mean/std: the input goes in unnormalized
        "input": {"name": "image", "shape": [3, 8, 8]},
        "weights": "weights.safetensors",
        "layers": [
            {"name": "a", "op": "conv2d", "inputs": ["image"], "out_channels": 4,
             "kernel": [3, 3], "padding": [1, 1]},
            {"name": "b", "op": "conv2d", "inputs": ["image"], "out_channels": 4, "kernel": [1, 1]},
            {"name": "add_ab", "op": "add", "inputs": ["a", "b"]},
            {"name": "relu", "op": "relu"},
            {"name": "c", "op": "conv2d", "out_channels": 4, "kernel": [3, 3], "padding": [1, 1]},
            {"name": "add_abc", "op": "add", "inputs": ["a", "b", "c"]},
            {"name": "d", "op": "conv2d", "out_channels": 3, "kernel": [3, 3], "padding": [1, 1]},
            {"name": "cat", "op": "concat", "inputs": ["a", "d"]},
            {"name": "pool", "op": "maxpool2d", "kernel": [2, 2]},
            {"name": "flatten", "op": "flatten"},
            {"name": "fc1", "op": "dense", "inputs": ["flatten"], "out_features": 6},
            {"name": "fc2", "op": "dense", "inputs": ["flatten"], "out_features": 6},
            {"name": "cat_fc", "op": "concat", "inputs": ["fc1", "fc2"]},
            {"name": "add_fc", "op": "add", "inputs": ["fc1", "fc2"]},
            {"name": "softmax", "op": "softmax"},
        ],
    }, "F32"


def case_explicit_names():
    return {
        "format": "netwalk-model/1",
        "name": "explicit_names",
        "input": {"name": "image", "shape": [3, 9, 9],
                  "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.25, 0.125]},
        "classes": ["cat", "dog", "bird", "fish"],
        "weights": "weights.safetensors",
        "layers": [
            {"name": "conv1", "op": "conv2d", "out_channels": 6, "kernel": [3, 3], "padding": [1, 1],
             "weight": "features.0.weight", "bias": "features.0.bias"},
            {"name": "relu1", "op": "relu"},
            {"name": "bn", "op": "batchnorm2d",
             "weight": "features.2.weight", "bias": "features.2.bias",
             "running_mean": "features.2.running_mean", "running_var": "features.2.running_var"},
            # no bias; weight under a non-default name
            {"name": "conv2", "op": "conv2d", "out_channels": 8, "kernel": [3, 3],
             "stride": [2, 2], "weight": "features.3.weight", "bias": None},
            {"name": "relu2", "op": "relu"},
            {"name": "pool", "op": "global_avgpool2d"},
            {"name": "flatten", "op": "flatten"},
            # default weight name ("hidden.weight"), but no bias
            {"name": "hidden", "op": "dense", "out_features": 7, "bias": None},
            {"name": "fc", "op": "dense", "out_features": 4,
             "weight": "classifier.1.weight", "bias": "classifier.1.bias"},
            {"name": "softmax", "op": "softmax"},
        ],
    }, "F32"


# name -> (factory, seed). dtype cases share basic's seed: same weights before rounding.
CASES = {
    "basic": (lambda: case_basic(), 1),
    "stride_pad_dilation": (case_stride_pad_dilation, 2),
    "groups_bn": (case_groups_bn, 3),
    "residual_concat": (case_residual_concat, 4),
    "explicit_names": (case_explicit_names, 5),
    "dtype_f16": (lambda: case_basic("dtype_f16", "F16"), 1),
    "dtype_bf16": (lambda: case_basic("dtype_bf16", "BF16"), 1),
}

# expected output shapes worked out by hand from the PyTorch formula
EXPECTED_SHAPES = {
    "basic": {"conv1": (4, 12, 12), "relu1": (4, 12, 12), "pool1": (4, 6, 6),
              "conv2": (6, 4, 4), "relu2": (6, 4, 4), "flatten": (96,), "fc": (10,),
              "softmax": (10,)},
    "stride_pad_dilation": {
        "conv1": (5, 7, 16),        # H: (15+2-4-1)//2+1=7, W: (13+4-1-1)//1+1=16
        "conv2": (6, 4, 8),         # H: (7+4-4-1)//2+1=4, W: (16+4-4-1)//2+1=8
        "maxpool_pad": (5, 4, 8),   # H: (7+2-3)//2+1=4, W: (16+2-3)//2+1=8
        "avgpool_pad": (5, 4, 8),
        "avgpool_rect": (6, 3, 3),  # H: (4-2)//1+1=3, W: (8-3)//2+1=3
        "maxpool_floor": (5, 3, 8),
        "avgpool_floor": (5, 2, 5)},
    "groups_bn": {"conv_g2": (6, 10, 10), "bn1": (6, 10, 10), "dw": (6, 10, 10),
                  "bn2": (6, 10, 10), "sig": (6, 10, 10), "dw_mult2": (12, 5, 5),
                  "tanh": (12, 5, 5), "softmax_ch": (12, 5, 5), "gap": (12, 1, 1),
                  "flatten": (12,), "fc": (5,), "softmax": (5,)},
    "residual_concat": {"a": (4, 8, 8), "b": (4, 8, 8), "add_ab": (4, 8, 8), "relu": (4, 8, 8),
                        "c": (4, 8, 8), "add_abc": (4, 8, 8), "d": (3, 8, 8), "cat": (7, 8, 8),
                        "pool": (7, 4, 4), "flatten": (112,), "fc1": (6,), "fc2": (6,),
                        "cat_fc": (12,), "add_fc": (6,), "softmax": (6,)},
    "explicit_names": {"conv1": (6, 9, 9), "relu1": (6, 9, 9), "bn": (6, 9, 9),
                       "conv2": (8, 4, 4), "relu2": (8, 4, 4), "pool": (8, 1, 1),
                       "flatten": (8,), "hidden": (7,), "fc": (4,), "softmax": (4,)},
}
EXPECTED_SHAPES["dtype_f16"] = EXPECTED_SHAPES["basic"]
EXPECTED_SHAPES["dtype_bf16"] = EXPECTED_SHAPES["basic"]

EXPECTED_PARAMS = {
    "explicit_names": {"features.0.weight", "features.0.bias", "features.2.weight",
                       "features.2.bias", "features.2.running_mean", "features.2.running_var",
                       "features.3.weight", "hidden.weight",
                       "classifier.1.weight", "classifier.1.bias"},
}


def discrimination_checks(name, model, params, x, expected):
    """Make sure the fixtures would catch the usual wrong readings of the semantics."""

    def differs(layer, wrong, what, thresh=1e-3):
        d = float(np.max(np.abs(np.asarray(wrong, np.float64) - expected[layer])))
        assert d > thresh, f"{name}/{layer}: fixture does not detect {what} (diff {d})"

    def variant(layer_name, **changes):
        m = copy.deepcopy(model)
        for l in m["layers"]:
            if l["name"] == layer_name:
                l.update(changes)
        return numpy_forward(m, params, x)[layer_name]

    if name == "groups_bn":
        differs("bn2", variant("bn2", eps=1e-5), "eps 1e-3 ignored")
        differs("bn1", variant("bn1", eps=1e-3), "wrong default eps")
        t = expected["tanh"].astype(np.float64)
        differs("softmax_ch", np.exp(t) / np.exp(t).sum(), "softmax over all elements instead of channels")
    if name == "stride_pad_dilation":
        c1 = expected["conv1"].astype(np.float64)
        xp = np.pad(c1, ((0, 0), (1, 1), (1, 1)))
        ones = np.pad(np.ones_like(c1), ((0, 0), (1, 1), (1, 1)))
        mx = np.full((5, 4, 8), -np.inf)
        sm = np.zeros((5, 4, 8))
        cnt = np.zeros((5, 4, 8))
        for _, _, v in np_windows(xp, 3, 3, 2, 2, 1, 1, 4, 8):
            mx = np.maximum(mx, v)
            sm += v
        for _, _, v in np_windows(ones, 3, 3, 2, 2, 1, 1, 4, 8):
            cnt += v
        differs("maxpool_pad", mx, "max pooling padded with 0 instead of -inf")
        differs("avgpool_pad", sm / cnt, "avg pooling with count_include_pad=False")
    if name in ("dtype_f16", "dtype_bf16"):
        m, _ = case_basic()
        bb = Builder(np.random.default_rng(CASES["basic"][1]), m, "F32").build()
        differs("fc", numpy_forward(m, bb.params, x)["fc"], "weights used without rounding",
                thresh=10 * TOL)
        try:
            import ml_dtypes  # cross-check our bf16 rounding (round-to-nearest-even)
            for k, v in bb.params.items():
                t = v.astype(ml_dtypes.bfloat16 if name == "dtype_bf16" else np.float16)
                assert np.array_equal(t.astype(np.float32), params[k]), k
        except ImportError:
            pass


def model_json_text(model):
    """JSON with one layer per line (readable diffs)."""
    head = {k: v for k, v in model.items() if k != "layers"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "layers": [')
    ls = [json.dumps(l) for l in model["layers"]]
    lines.append(",\n".join("    " + s for s in ls))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == model
    return text


def run_case(name, out_dir):
    factory, seed = CASES[name]
    model, wdtype = factory()
    rng = np.random.default_rng(seed)
    b = Builder(rng, model, wdtype).build()
    C, H, W = model["input"]["shape"]
    x = rng.random((C, H, W)).astype(np.float32)  # raw input in [0, 1)

    m = b.onnx_model()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [l["name"] for l in model["layers"]]
    outs = sess.run(names, {model["input"]["name"]: x[None]})
    expected = {}
    for n, o in zip(names, outs):
        assert o.shape[0] == 1 and o.dtype == np.float32, (n, o.shape, o.dtype)
        expected[n] = np.ascontiguousarray(o[0])

    # shape checks: ORT vs netwalk-semantics shape inference vs hand-computed table
    for n in names:
        assert expected[n].shape == b.shapes[n] == EXPECTED_SHAPES[name][n], \
            (name, n, expected[n].shape, b.shapes[n], EXPECTED_SHAPES[name][n])
    if name in EXPECTED_PARAMS:
        assert set(b.params) == EXPECTED_PARAMS[name], sorted(b.params)

    # independent numpy check
    ref = numpy_forward(model, b.params, x)
    worst = 0.0
    for n in names:
        d = float(np.max(np.abs(ref[n] - expected[n])))
        worst = max(worst, d)
        assert d <= TOL, f"{name}/{n}: onnxruntime vs numpy differ by {d}"

    # sanity: the reduced-precision cases really differ from f32
    if wdtype != "F32":
        base_model, _ = case_basic()
        bb = Builder(np.random.default_rng(seed), base_model, "F32").build()
        for k in bb.params:
            assert np.array_equal(b.params[k], round_to(bb.params[k], wdtype))
        assert any(not np.array_equal(b.params[k], bb.params[k]) for k in bb.params)

    discrimination_checks(name, model, b.params, x, expected)

    d = out_dir / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "model.json").write_text(model_json_text(model))
    write_safetensors(d / "weights.safetensors", b.params, wdtype)
    write_safetensors(d / "input.safetensors", {"input": x}, "F32")
    write_safetensors(d / "expected.safetensors", expected, "F32")

    # read back (own reader; and the safetensors library where it can)
    wb = read_safetensors(d / "weights.safetensors")
    assert wb.keys() == b.params.keys() and all(np.array_equal(wb[k], b.params[k]) for k in wb)
    eb = read_safetensors(d / "expected.safetensors")
    assert all(np.array_equal(eb[k], expected[k]) for k in names)
    try:
        from safetensors.numpy import load_file
        for f, ref_t in (("input", {"input": x}), ("expected", expected), ("weights", b.params)):
            t = load_file(str(d / f"{f}.safetensors"))
            assert t.keys() == ref_t.keys()
            for k in t:
                assert np.array_equal(np.asarray(t[k], dtype=np.float32), ref_t[k]), (f, k)
    except ImportError:
        pass

    print(f"{name:22s} seed={seed} weights={wdtype:4s} layers={len(names):2d} "
          f"max|ort-numpy|={worst:.2e}")


def write_readme(out_dir):
    case_lines = "\n".join(
        f"- `{n}` (seed {CASES[n][1]}): " + desc for n, desc in [
            ("basic", "conv(pad)+bias, relu, maxpool, conv, flatten, dense, softmax; mean/std; classes."),
            ("stride_pad_dilation", "non-square kernel, stride/padding/dilation as [h,w] pairs and as "
             "plain ints; max/avg pool with padding (count_include_pad), rectangular pool kernel/stride, "
             "default stride = kernel, floor mode on non-dividing sizes."),
            ("groups_bn", "grouped conv, batchnorm (default eps and explicit `eps: 1e-3`; half the "
             "channels have running_var 0.01..0.05 so eps matters), depthwise conv (multiplier 1 and 2), "
             "sigmoid, tanh, channel softmax on [C,H,W], global avgpool, flatten, dense, softmax."),
            ("residual_concat", "`inputs` from the model input and earlier layers, add of 2 and 3 "
             "inputs, channel concat of different channel counts, two dense layers from one vector, "
             "[N] concat, [N] add, softmax; no mean/std."),
            ("explicit_names", "state_dict-style tensor names (`weight`/`bias`/`running_mean`/"
             "`running_var` given per layer), `\"bias\": null` on a conv and on a dense."),
            ("dtype_f16", "the `basic` model and seed with all weights stored as F16."),
            ("dtype_bf16", "the `basic` model and seed with all weights stored as BF16 "
             "(round-to-nearest-even from f32)."),
        ])
    text = f"""# Reference fixtures for the forward pass

Generated by `tools/make_fixtures.py`; do not edit by hand. To regenerate:

```
pip install -r tools/requirements.txt
python3 tools/make_fixtures.py
```

Expected values come from **onnxruntime {ort.__version__}** (CPU execution provider,
graph optimizations disabled, 1 thread) running an ONNX graph (onnx {onnx.__version__},
opset {OPSET}) built from each `model.json` with PyTorch eval-mode semantics:
Conv, MaxPool, AveragePool (`count_include_pad=1`), GlobalAveragePool, Flatten,
Gemm (`transB=1`), BatchNormalization, Relu/Sigmoid/Tanh, Softmax (axis 1 after the batch
dim: features for `[N]`, channels for `[C,H,W]`), Sum (for `add`), Concat (axis 1).
The input normalization `(x - mean[c]) / std[c]` is a Sub/Div at the head of the graph.
The script also recomputes every case with an independent float64 numpy forward pass
and requires agreement with onnxruntime to <= {TOL:g} (absolute), and checks every
output shape against the PyTorch formula `floor((in + 2p - d(k-1) - 1)/s) + 1`.

Random parameters use numpy's `default_rng(seed)`: conv/dense weights and biases
~ N(0, std = 1/sqrt(fan_in)); batchnorm bias and running_mean
~ N(0, 0.5), running_var ~ U(0.01, 0.05) (even channels, so eps matters) or U(0.5, 2)
(odd channels), weight ~ U(0.5, 1.5) * sqrt(running_var) (keeps outputs O(1)).
Inputs ~ U[0, 1).

Each `<case>/` holds:

- `model.json`: the `netwalk-model/1` description.
- `weights.safetensors`: the parameters (PyTorch layout), F32 except the dtype cases.
  For F16/BF16 the reference was computed from the weights *after* rounding to that
  dtype (converted back to f32 exactly).
- `input.safetensors`: one F32 tensor `input`, shape `[C,H,W]`, the RAW input
  (before mean/std normalization).
- `expected.safetensors`: one F32 tensor per layer, named by the layer, shaped as
  that layer's output without a batch dimension.

A float32 implementation should match to about 1e-5 absolute (these values are O(1)).

Conventions these fixtures assume (where the format description leaves room):

- conv2d/dense without a `"bias"` key have a bias tensor `<layer>.bias` in the file;
  only `"bias": null` means no bias.
- batchnorm2d's epsilon is the layer key `"eps"` (default 1e-5).
- `"inputs": ["image"]` (the input's name) is used only in `residual_concat`, which has
  no mean/std, so it does not matter whether the name means the raw or normalized input.
- Layers with `inputs` may leave dead-end branches; the last layer in the list is not
  necessarily the only leaf (e.g. `stride_pad_dilation`, `residual_concat`).

Cases:

{case_lines}
"""
    (out_dir / "README.md").write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    for name in args.cases:
        run_case(name, args.out)
    write_readme(args.out)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({total} bytes)")


if __name__ == "__main__":
    main()
