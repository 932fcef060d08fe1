#!/usr/bin/env python3
"""Convert a netwalk `netwalk-model/1` model (model.json + safetensors weights) to ONNX.

The ONNX graph reproduces netwalk's forward pass with PyTorch eval-mode semantics:

    conv2d            Conv (pads [ph, pw, ph, pw], strides, dilations, group)
    dense             Gemm (transB=1; C omitted for "bias": null)
    batchnorm2d       BatchNormalization (epsilon = "eps", default 1e-5; a null
                      weight/bias becomes ones/zeros)
    maxpool2d         MaxPool (floor mode; padding counts as -inf)
    avgpool2d         AveragePool (floor mode, count_include_pad=1)
    global_avgpool2d  GlobalAveragePool
    flatten           Flatten (axis 1)
    relu/sigmoid/tanh Relu/Sigmoid/Tanh
    softmax           Softmax (axis 1: features of [N], channels of [C, H, W])
    add               Sum
    concat            Concat (axis 1)

The graph input is the RAW input, shape [1, C, H, W] (or [1, N]), named like the
model input; the per-channel normalization (x - mean) / std is done by Sub/Div
nodes at the head of the graph (omitted when mean is all 0 and std all 1).  A
layer that lists the input's name in "inputs" reads the normalized input, as in
netwalk.  Layers are ordered like netwalk orders them (stable topological sort of
the "inputs" graph); the graph output is the last layer in that order, or every
layer with `all_layers=True` (each output named by its layer, with batch dim 1).

Weights may be stored as F32, F16 or BF16; they become float32 initializers.

Library use:
    from netwalk_onnx import load_netwalk
    m = load_netwalk("tests/fixtures/reference/basic", all_layers=True)

CLI:
    python3 tools/netwalk_onnx.py MODEL --out model.onnx [--all-layers] [--weights FILE]

MODEL is a model directory (holding model.json) or the model.json path.
"""

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FORMAT = "netwalk-model/1"
OPSET = 17
IR_VERSION = 8
# protobuf cannot serialize a message of 2 GiB or more; beyond this, use external data
PROTO_LIMIT = 2**31 - 2**26

OPS = ("conv2d", "dense", "batchnorm2d", "maxpool2d", "avgpool2d", "global_avgpool2d",
       "flatten", "relu", "sigmoid", "tanh", "softmax", "add", "concat")
# attribute keys each op accepts (besides name/op/inputs), as netwalk's parser does
KNOWN_KEYS = {
    "conv2d": ("out_channels", "kernel", "stride", "padding", "dilation", "groups", "weight", "bias"),
    "dense": ("out_features", "weight", "bias"),
    "batchnorm2d": ("eps", "weight", "bias", "running_mean", "running_var"),
    "maxpool2d": ("kernel", "stride", "padding"),
    "avgpool2d": ("kernel", "stride", "padding"),
}


class NetwalkError(ValueError):
    pass


# ----------------------------------------------------------------------------
# safetensors reading (F32 / F16 via the safetensors numpy API, BF16 by hand)
# ----------------------------------------------------------------------------

def _read_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise NetwalkError(f"{path}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        if n > 100 * 2**20:
            raise NetwalkError(f"{path}: safetensors header of {n} bytes is implausible")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def read_safetensors(path, names=None):
    """Tensors of a safetensors file as float32 numpy arrays (all, or only `names`).

    F32 and F16 are read with the safetensors package's numpy API when it is
    installed (else by hand); BF16, which numpy lacks, is widened by hand
    (bf16 bits << 16 are the float32 bits, exactly).
    """
    path = Path(path)
    header, body = _read_header(path)
    wanted = list(header) if names is None else list(names)
    missing = [n for n in wanted if n not in header]
    if missing:
        raise NetwalkError(f"{path}: no tensor(s) {', '.join(map(repr, missing))}")
    try:
        from safetensors import safe_open
    except ImportError:
        safe_open = None
    for name in wanted:
        dtype = header[name]["dtype"]
        if dtype not in ("F32", "F16", "BF16"):
            raise NetwalkError(f"{path}: tensor {name!r} has dtype {dtype} "
                               "(netwalk supports F32, F16, BF16)")
    out = {}
    by_lib = [n for n in wanted if header[n]["dtype"] != "BF16"] if safe_open else []
    if by_lib:
        with safe_open(str(path), framework="numpy") as f:
            for name in by_lib:
                out[name] = np.ascontiguousarray(f.get_tensor(name), dtype=np.float32)
    by_hand = [n for n in wanted if n not in out]
    if by_hand:
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        for name in by_hand:
            info = header[name]
            s, e = info["data_offsets"]
            buf = np.asarray(mm[body + s:body + e])
            if info["dtype"] == "BF16":  # bf16 bits are the top half of the f32 bits
                a = (buf.view("<u2").astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] == "F16":
                a = buf.view("<f2").astype(np.float32)
            else:
                a = buf.view("<f4").astype(np.float32)
            out[name] = np.ascontiguousarray(a.reshape(info["shape"]), dtype=np.float32)
        del mm
    for name in wanted:
        if tuple(out[name].shape) != tuple(header[name]["shape"]):
            raise NetwalkError(f"{path}: tensor {name!r} read with shape {out[name].shape}")
    return out


# ----------------------------------------------------------------------------
# netwalk-model/1 semantics
# ----------------------------------------------------------------------------

def _err(layer, msg):
    return NetwalkError(f"layer `{layer}`: {msg}")


def _count(layer, key, default=None):
    v = layer.get(key, default)
    if v is None:
        raise _err(layer["name"], f'missing "{key}"')
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _err(layer["name"], f'"{key}" must be a positive integer, got {v!r}')
    return v


def _pair(layer, key, default=None, minimum=1):
    v = layer.get(key, default)
    if v is None:
        raise _err(layer["name"], f'missing "{key}"')
    if isinstance(v, (list, tuple)) and len(v) == 2:
        h, w = v
    else:
        h = w = v
    for x in (h, w):
        if isinstance(x, bool) or not isinstance(x, int) or x < minimum:
            raise _err(layer["name"], f'"{key}" must be an integer or [h, w] of integers '
                                      f'>= {minimum}, got {v!r}')
    return int(h), int(w)


def conv_out(n, k, s, p, d):
    """PyTorch's output size: floor((n + 2p - d(k-1) - 1) / s) + 1; None if it does not fit."""
    span = d * (k - 1) + 1
    if n + 2 * p < span:
        return None
    return (n + 2 * p - span) // s + 1


def _param_name(layer, key, optional):
    """Tensor name of parameter `key`, or None for `null` (where optional)."""
    if key not in layer:
        return f"{layer['name']}.{key}"
    v = layer[key]
    if v is None:
        if optional:
            return None
        raise _err(layer["name"], f'"{key}" cannot be null for this op')
    if not isinstance(v, str):
        raise _err(layer["name"], f'"{key}" must be a tensor name or null, got {v!r}')
    return v


def load_model_json(model_dir_or_json):
    """(model dict, path of model.json)."""
    p = Path(model_dir_or_json)
    if p.is_dir():
        p = p / "model.json"
    model = json.loads(p.read_text())
    if not isinstance(model, dict) or model.get("format") != FORMAT:
        raise NetwalkError(f'{p}: expected "format": "{FORMAT}", got {model.get("format")!r}')
    return model, p


def input_spec(model):
    """(name, shape tuple, mean float32[C], std float32[C]) with netwalk's defaults."""
    inp = model.get("input")
    if not isinstance(inp, dict) or "shape" not in inp:
        raise NetwalkError('missing "input" with a "shape" ([C, H, W] or [N])')
    name = inp.get("name", "input")
    shape = tuple(int(d) for d in inp["shape"])
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise NetwalkError(f'input: "shape" must be [C, H, W] or [N], got {list(shape)}')
    c = shape[0]

    def per_channel(key, default):
        v = inp.get(key)
        if v is None:
            return np.full(c, default, np.float32)
        v = np.asarray(v, np.float32).reshape(-1)
        if v.size == 1:
            return np.full(c, v[0], np.float32)
        if v.size != c:
            raise NetwalkError(f'input: "{key}" has {v.size} values for {c} channels')
        return v

    mean, std = per_channel("mean", 0.0), per_channel("std", 1.0)
    if np.any(std == 0):
        raise NetwalkError('input: "std" must not be 0')
    return name, shape, mean, std


def ordered_layers(model):
    """Layers with resolved "inputs", in netwalk's order: a topological sort of the
    inputs graph that is stable with respect to file order (smallest index first)."""
    in_name = input_spec(model)[0]
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        raise NetwalkError('missing or empty "layers" array')
    raws, index = [], {}
    for i, l in enumerate(layers):
        name = l.get("name")
        if not isinstance(name, str) or not name:
            raise NetwalkError(f'layer {i} has no "name"')
        if name == in_name:
            raise _err(name, "name is already used by the model input")
        if name in index:
            raise _err(name, "duplicate layer name")
        index[name] = i
        ins = l.get("inputs")
        if ins is None:
            ins = [in_name] if i == 0 else [raws[-1][0]]
        elif not isinstance(ins, list) or not ins or not all(isinstance(s, str) for s in ins):
            raise _err(name, '"inputs" must be a non-empty array of names')
        raws.append((name, l, list(ins)))
    indeg = [0] * len(raws)
    readers = [[] for _ in raws]
    for i, (name, _, ins) in enumerate(raws):
        for s in ins:
            if s == name:
                raise _err(name, 'lists itself in "inputs" (a cycle)')
            if s != in_name and s not in index:
                raise _err(name, f"unknown input `{s}`")
            if s in index:
                indeg[i] += 1
                readers[index[s]].append(i)
    import heapq
    ready = [i for i in range(len(raws)) if indeg[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for k in readers[i]:
            indeg[k] -= 1
            if indeg[k] == 0:
                heapq.heappush(ready, k)
    if len(order) != len(raws):
        stuck = next(raws[i][0] for i in range(len(raws)) if indeg[i] > 0)
        raise _err(stuck, 'its "inputs" form a cycle')
    return [(raws[i][1], raws[i][2]) for i in order]


def plan(model):
    """Walk the layers in netwalk's order; returns a list of dicts with the layer,
    its input names, ONNX op + attributes, parameter specs [(role, tensor name or
    None, shape)] and output shape (netwalk shape, no batch dim)."""
    in_name, in_shape, _, _ = input_spec(model)
    shapes = {in_name: in_shape}
    steps = []
    for layer, ins in ordered_layers(model):
        name, op = layer["name"], layer.get("op")
        if op not in OPS:
            raise _err(name, f"unknown op {op!r}")
        known = KNOWN_KEYS.get(op, ())
        for k in layer:
            if k not in ("name", "op", "inputs") and k not in known:
                raise _err(name, f'unknown key "{k}" for op `{op}`')
        in_shapes = [shapes[s] for s in ins]
        multi = op in ("add", "concat")
        if multi and len(ins) < 2:
            raise _err(name, f"`{op}` needs at least 2 inputs")
        if not multi and len(ins) != 1:
            raise _err(name, f"`{op}` takes exactly 1 input, got {len(ins)}")
        s0 = in_shapes[0]

        def chw():
            if len(s0) != 3:
                raise _err(name, f"`{op}` needs a [C, H, W] input, got {list(s0)}")
            return s0

        params, attrs = [], {}
        if op == "conv2d":
            c, h, w = chw()
            o = _count(layer, "out_channels")
            kh, kw = _pair(layer, "kernel")
            sh, sw = _pair(layer, "stride", 1)
            ph, pw = _pair(layer, "padding", 0, minimum=0)
            dh, dw = _pair(layer, "dilation", 1)
            g = _count(layer, "groups", 1)
            if c % g or o % g:
                raise _err(name, f"groups = {g} must divide the input channels ({c}) "
                                 f"and out_channels ({o})")
            oh, ow = conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw, dw)
            if oh is None or ow is None:
                raise _err(name, f"kernel {(kh, kw)} (dilation {(dh, dw)}) does not fit "
                                 f"the padded {h}x{w} input")
            params = [("weight", _param_name(layer, "weight", False), (o, c // g, kh, kw)),
                      ("bias", _param_name(layer, "bias", True), (o,))]
            onnx_op = "Conv"
            attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                         dilations=[dh, dw], group=g)
            out = (o, oh, ow)
        elif op == "dense":
            if len(s0) != 1:
                raise _err(name, f"`dense` needs a flat [N] input, got {list(s0)} "
                                 "(add a `flatten` layer)")
            o = _count(layer, "out_features")
            params = [("weight", _param_name(layer, "weight", False), (o, s0[0])),
                      ("bias", _param_name(layer, "bias", True), (o,))]
            onnx_op, attrs, out = "Gemm", dict(transB=1), (o,)
        elif op == "batchnorm2d":
            c, h, w = chw()
            eps = layer.get("eps", 1e-5)
            if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
                raise _err(name, '"eps" must be a positive number')
            params = [("weight", _param_name(layer, "weight", True), (c,)),
                      ("bias", _param_name(layer, "bias", True), (c,)),
                      ("running_mean", _param_name(layer, "running_mean", False), (c,)),
                      ("running_var", _param_name(layer, "running_var", False), (c,))]
            # netwalk keeps eps as f32
            onnx_op, attrs, out = "BatchNormalization", dict(epsilon=float(np.float32(eps))), s0
        elif op in ("maxpool2d", "avgpool2d"):
            c, h, w = chw()
            kh, kw = _pair(layer, "kernel")
            sh, sw = _pair(layer, "stride", [kh, kw])
            ph, pw = _pair(layer, "padding", 0, minimum=0)
            if 2 * ph > kh or 2 * pw > kw:
                raise _err(name, f"padding {(ph, pw)} must be at most half the kernel {(kh, kw)}")
            oh, ow = conv_out(h, kh, sh, ph, 1), conv_out(w, kw, sw, pw, 1)
            if oh is None or ow is None:
                raise _err(name, f"kernel {(kh, kw)} does not fit the padded {h}x{w} input")
            attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                         ceil_mode=0)
            if op == "maxpool2d":
                onnx_op = "MaxPool"
            else:
                onnx_op = "AveragePool"
                attrs["count_include_pad"] = 1
            out = (c, oh, ow)
        elif op == "global_avgpool2d":
            c, _, _ = chw()
            onnx_op, out = "GlobalAveragePool", (c, 1, 1)
        elif op == "flatten":
            onnx_op, attrs, out = "Flatten", dict(axis=1), (int(np.prod(s0)),)
        elif op in ("relu", "sigmoid", "tanh"):
            onnx_op, out = op.capitalize(), s0
        elif op == "softmax":
            # batch dim is axis 0: axis 1 = features of [N], channels of [C, H, W]
            onnx_op, attrs, out = "Softmax", dict(axis=1), s0
        elif op == "add":
            if any(s != s0 for s in in_shapes):
                raise _err(name, f"`add` inputs must have the same shape, got {in_shapes}")
            onnx_op, out = "Sum", s0
        elif op == "concat":
            if any(len(s) != len(s0) or s[1:] != s0[1:] for s in in_shapes):
                raise _err(name, f"`concat` inputs must agree except in dim 0, got {in_shapes}")
            onnx_op, attrs = "Concat", dict(axis=1)
            out = (sum(s[0] for s in in_shapes),) + tuple(s0[1:])
        shapes[name] = tuple(out)
        steps.append(dict(layer=layer, name=name, inputs=ins, onnx_op=onnx_op, attrs=attrs,
                          params=params, shape=tuple(out)))
    return steps


def param_tensors(model, weights_path=None, model_json=None):
    """Load the parameter tensors the model needs from its weights file."""
    if weights_path is None:
        rel = model.get("weights")
        if not isinstance(rel, str):
            raise NetwalkError('missing "weights" (path of a .safetensors file)')
        weights_path = Path(model_json).parent / rel if model_json else Path(rel)
    names = sorted({t for st in plan(model) for _, t, _ in st["params"] if t is not None})
    return read_safetensors(weights_path, names)


def build_onnx(model, params, all_layers=False, check=True,
               producer="netwalk tools/netwalk_onnx.py"):
    """ONNX graph of `model` (a parsed model.json dict) with `params` (dict
    tensor name -> array, PyTorch layout) as float32 initializers."""
    in_name, in_shape, mean, std = input_spec(model)
    steps = plan(model)
    used = {in_name} | {st["name"] for st in steps}

    def fresh(base):
        n, i = base, 0
        while n in used:
            i += 1
            n = f"{base}_{i}"
        used.add(n)
        return n

    nodes, inits = [], []
    init_of = {}  # netwalk tensor name -> onnx initializer name

    def add_init(a, base):
        n = fresh(base)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), n))
        return n

    # input normalization (x - mean) / std, broadcast over [1, C, 1, 1] or [1, N]
    tensor_of = {}
    if np.any(mean != 0) or np.any(std != 1):
        bshape = (1, in_shape[0], 1, 1) if len(in_shape) == 3 else (1, in_shape[0])
        m = add_init(mean.reshape(bshape), "__netwalk_input_mean")
        s = add_init(std.reshape(bshape), "__netwalk_input_std")
        centered, normalized = fresh("__netwalk_input_centered"), fresh("__netwalk_input_normalized")
        nodes.append(helper.make_node("Sub", [in_name, m], [centered], name="__netwalk_input_sub"))
        nodes.append(helper.make_node("Div", [centered, s], [normalized], name="__netwalk_input_div"))
        tensor_of[in_name] = normalized
    else:
        tensor_of[in_name] = in_name

    for st in steps:
        name = st["name"]
        args = [tensor_of[i] for i in st["inputs"]]
        for role, tname, shape in st["params"]:
            if tname is None:
                if st["onnx_op"] == "BatchNormalization":  # weight -> 1, bias -> 0
                    fill = 1.0 if role == "weight" else 0.0
                    args.append(add_init(np.full(shape, fill, np.float32), f"{name}.__{role}"))
                continue  # optional bias of Conv/Gemm: omitted (trailing input)
            if tname not in params:
                raise _err(name, f"parameter tensor `{tname}` ({role}) is missing from the weights")
            a = params[tname]
            if tuple(a.shape) != tuple(shape):
                raise _err(name, f"parameter `{tname}` has shape {list(a.shape)}, "
                                 f"expected {list(shape)}")
            if tname not in init_of:
                init_of[tname] = add_init(a, tname)
            args.append(init_of[tname])
        nodes.append(helper.make_node(st["onnx_op"], args, [name], name=name, **st["attrs"]))
        tensor_of[name] = name

    outs = steps if all_layers else steps[-1:]
    graph = helper.make_graph(
        nodes, str(model.get("name", "netwalk")),
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, [1, *in_shape])],
        [helper.make_tensor_value_info(st["name"], TensorProto.FLOAT, [1, *st["shape"]])
         for st in outs],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name=producer)
    m.ir_version = IR_VERSION
    if check and m.ByteSize() < PROTO_LIMIT:
        onnx.checker.check_model(m, full_check=True)
    return m


def load_netwalk(model_dir_or_json, all_layers=False, weights=None, check=True):
    """Read a netwalk model (directory or model.json; weights from its "weights"
    entry unless `weights` names a safetensors file) and build the ONNX graph.

    Input: the raw input [1, C, H, W] (or [1, N]); outputs: the last layer, or all
    layers with `all_layers=True`."""
    model, path = load_model_json(model_dir_or_json)
    params = param_tensors(model, weights, path)
    return build_onnx(model, params, all_layers=all_layers, check=check)


def save(m, out):
    """Write a ModelProto; models past protobuf's 2 GiB limit get external data."""
    out = Path(out)
    if m.ByteSize() < PROTO_LIMIT:
        onnx.save_model(m, str(out))
    else:
        onnx.save_model(m, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=out.name + ".data", size_threshold=1024)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory (with model.json) or model.json")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--all-layers", action="store_true", help="output every layer, not only the last")
    ap.add_argument("--weights", help="safetensors file to use instead of the model's \"weights\"")
    args = ap.parse_args(argv)
    try:
        m = load_netwalk(args.model, all_layers=args.all_layers, weights=args.weights)
    except (NetwalkError, OSError, json.JSONDecodeError) as e:
        print(f"netwalk_onnx: {e}", file=sys.stderr)
        return 1
    save(m, args.out)
    g = m.graph
    print(f"wrote {args.out}: input {g.input[0].name} "
          f"{[d.dim_value for d in g.input[0].type.tensor_type.shape.dim]}, "
          f"{len(g.node)} nodes, {len(g.output)} output(s), "
          f"{sum(int(np.prod(t.dims)) for t in g.initializer)} parameters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
