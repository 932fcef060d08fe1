#!/usr/bin/env python3
"""A torchvision classification model, randomly initialized (seeded), in both of netwalk's routes
in: the PyTorch exporter's folder and an ONNX file, with one input and what PyTorch and
onnxruntime compute for it (tests/zoo.rs compares netwalk with them layer by layer).

    python3 tools/onnx_zoo.py resnet18 --size 64 --out DIR [--opset 13|17] [--seed 0]
        [--no-torch | --no-onnx] [--replay]

writes into DIR:

    torch/model.json, torch/weights.safetensors   tools/netwalk_torch.py's export (netwalk-model/1)
    torch/expected.safetensors   PyTorch's value (float64, stored as f32) of every layer of that
                                 export, named by the layer, as netwalk lays it out ([C, H, W] or
                                 [N]), and `__output__`: model(x)
    model.onnx                   torch.onnx.export (opset 13 by default), input `input`
                                 [1, 3, S, S], output `output`
    input.safetensors            tensor `input` [3, S, S] (f32): x, the model's input as given to
                                 PyTorch and onnxruntime (a normalized image); what
                                 `netwalk activations --input` reads for either folder
    ort.safetensors              onnxruntime's value of every float tensor of model.onnx (graph
                                 input, every node output, the output), named by ONNX tensor name,
                                 with ONNX's shape ([1, C, H, W], [1, N])
    zoo.json                     what was made: model, size, opset, seed, timings, parameter count

The model is built by its torchvision builder without weights; constant-initialized parameters
and buffers (BatchNorm's and LayerNorm's affine and running statistics, ConvNeXt's layer scale)
are redrawn so that no layer is an identity. Where the builder has them, transform_input=True (as
the pretrained GoogLeNet and Inception v3 use) and aux_logits=False.

Requirements: torch, torchvision, safetensors, onnx, onnxruntime (tools/requirements-torch.txt).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netwalk_torch  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build(name: str, seed: int) -> nn.Module:
    """torchvision.models.<name>() with seeded random weights, in eval mode."""
    import torchvision.models as tvm

    builder = getattr(tvm, name, None)
    if builder is None or not callable(builder):
        raise SystemExit(f"onnx_zoo: torchvision.models has no model {name!r}")
    torch.manual_seed(seed)
    kwargs: Dict[str, Any] = {}
    # the class the builder makes: its constructor's keywords (GoogLeNet, Inception3)
    cls = getattr(tvm, _class_name(builder), None)
    params = inspect.signature(cls.__init__).parameters if inspect.isclass(cls) else {}
    if "transform_input" in params:
        kwargs["transform_input"] = True
    if "aux_logits" in params:
        kwargs["aux_logits"] = False
    if "init_weights" in params:
        kwargs["init_weights"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = builder(weights=None, **kwargs)
    redraw_constants(model, seed)
    return model.eval()


def _class_name(builder: Any) -> str:
    """The class a builder returns, from its annotation (`-> GoogLeNet`)."""
    ret = inspect.signature(builder).return_annotation
    return ret if isinstance(ret, str) else getattr(ret, "__name__", "")


def redraw_constants(model: nn.Module, seed: int) -> None:
    """Every floating parameter or buffer whose values are all equal (ones, zeros, 1e-6) gets
    seeded random values: biases and means around 0, scales and variances around 1."""
    g = torch.Generator().manual_seed(seed + 1)
    named = list(model.named_parameters()) + list(model.named_buffers())
    with torch.no_grad():
        for name, t in named:
            if not t.is_floating_point() or t.numel() < 2 or not bool((t == t.flatten()[0]).all()):
                continue
            u = torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("bias", "running_mean"):
                t.copy_((u - 0.5) * 0.4)  # [-0.2, 0.2]
            else:  # weight, running_var, layer_scale, ...
                t.copy_(0.5 + u)  # [0.5, 1.5]


def make_input(size: int, seed: int) -> torch.Tensor:
    """A seeded random image in [0, 1], normalized with ImageNet's mean and std: [3, S, S]."""
    g = torch.Generator().manual_seed(seed + 2)
    raw = torch.rand((3, size, size), generator=g)
    m = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((raw - m) / s).contiguous()


def all_outputs(model_path: Path) -> Any:
    """model.onnx with every node output (typed by shape inference) as a graph output."""
    import onnx

    model = onnx.load(str(model_path))
    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    have = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for out in node.output:
            if out and out not in have:
                vi = typed.get(out)
                model.graph.output.append(vi if vi is not None else onnx.ValueInfoProto(name=out))
                have.add(out)
    return model


def run_ort(model_path: Path, x: np.ndarray) -> Dict[str, np.ndarray]:
    """onnxruntime's value of every float tensor (the input too), by ONNX name."""
    import onnxruntime as ort

    model = all_outputs(model_path)
    opts = ort.SessionOptions()
    # the graph as written: no fusions that would drop intermediate tensors
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    input_name = sess.get_inputs()[0].name
    values = sess.run(names, {input_name: x})
    out = {input_name: x.astype(np.float32)}
    for name, v in zip(names, values):
        v = np.asarray(v)
        if v.dtype.kind == "f" and v.size > 0:
            out[name] = np.ascontiguousarray(v.astype(np.float32))
    return out


def replay(folder: Path, x: torch.Tensor) -> Dict[str, float]:
    """Each layer of an exported folder computed by PyTorch from the expected values of its
    inputs (model.json's ops as netwalk defines them, in float64): the relative error against the
    expected value, by layer. A check of the exporter's model.json on its own, before netwalk
    runs it (the ops netwalk has yet to learn included)."""
    import torch.nn.functional as F
    from safetensors.torch import load_file

    doc = json.loads((folder / "model.json").read_text())
    weights = {k: v.double() for k, v in load_file(str(folder / "weights.safetensors")).items()
               if v.is_floating_point()}
    expected = load_file(str(folder / "expected.safetensors"))
    inp = doc["input"]
    c = inp["shape"][0]
    v = x.double().reshape(inp["shape"])
    if "mean" in inp or "std" in inp:
        m = torch.tensor(inp.get("mean", [0.0]), dtype=torch.float64)
        s = torch.tensor(inp.get("std", [1.0]), dtype=torch.float64)
        v = (v - m.view(-1, 1, 1)) / s.view(-1, 1, 1) if len(inp["shape"]) == 3 else (v - m) / s
    del c
    values = {inp["name"]: v}
    errors: Dict[str, float] = {}
    previous = inp["name"]

    def pair(a: Any, default: Any) -> Any:
        a = default if a is None else a
        return (a, a) if isinstance(a, int) else tuple(a)

    for layer in doc["layers"]:
        name, op = layer["name"], layer["op"]
        ins = [values[i] for i in layer.get("inputs", [previous])]
        a = ins[0]
        w = weights.get(layer.get("weight") or "")
        b = weights.get(layer.get("bias") or "")
        one = a[None]
        if op == "conv2d":
            y = F.conv2d(one, w, b, pair(layer.get("stride"), 1), pair(layer.get("padding"), 0),
                         pair(layer.get("dilation"), 1), layer.get("groups", 1))[0]
        elif op == "dense":
            y = F.linear(a, w, b)
        elif op == "batchnorm2d":
            y = F.batch_norm(one, weights[layer["running_mean"]], weights[layer["running_var"]], w, b,
                             False, 0.0, layer["eps"])[0]
        elif op == "maxpool2d":
            k = pair(layer["kernel"], None)
            y = F.max_pool2d(one, k, pair(layer.get("stride"), None) if layer.get("stride") else k,
                             pair(layer.get("padding"), 0), ceil_mode=layer.get("ceil_mode", False))[0]
        elif op == "avgpool2d":
            k = pair(layer["kernel"], None)
            y = F.avg_pool2d(one, k, pair(layer.get("stride"), None) if layer.get("stride") else k,
                             pair(layer.get("padding"), 0), ceil_mode=layer.get("ceil_mode", False),
                             count_include_pad=layer.get("count_include_pad", True))[0]
        elif op == "adaptive_avgpool2d":
            y = F.adaptive_avg_pool2d(one, pair(layer["output_size"], None))[0]
        elif op == "global_avgpool2d":
            y = a.mean((1, 2), keepdim=True)
        elif op == "flatten":
            y = a.reshape(-1)
        elif op in ("relu", "sigmoid", "tanh", "relu6", "hardswish", "hardsigmoid", "silu"):
            y = getattr(F, op)(a) if op not in ("sigmoid", "tanh") else getattr(torch, op)(a)
        elif op == "clip":
            y = a.clamp(layer["min"], layer["max"])
        elif op == "gelu":
            y = F.gelu(a, approximate=layer.get("approximate", "none"))
        elif op == "leaky_relu":
            y = F.leaky_relu(a, layer["negative_slope"])
        elif op == "elu":
            y = F.elu(a, layer["alpha"])
        elif op == "prelu":
            y = F.prelu(one, w)[0]
        elif op == "softmax":
            y = a.softmax(0)
        elif op in ("add", "sub", "mul", "div"):
            f = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[op]
            if "constant" in layer:
                k = w.reshape(layer["constant"])
                ins = [a, k.reshape(-1, 1, 1) if k.dim() == 1 and a.dim() == 3 else k]
            y = ins[0]
            for other in ins[1:]:
                y = f(y, other)
        elif op == "concat":
            y = torch.cat(ins, 0)
        elif op == "slice":
            y = a[layer["start"]:layer["end"]]
        elif op == "channel_shuffle":
            g = layer["groups"]
            y = a.reshape(g, a.shape[0] // g, *a.shape[1:]).transpose(0, 1).reshape(a.shape)
        elif op == "layernorm":
            y = F.layer_norm(a.permute(1, 2, 0), (a.shape[0],), w, b, layer["eps"]).permute(2, 0, 1)
        else:
            raise SystemExit(f"onnx_zoo: replay does not know op {op!r} (layer {name})")
        want = expected[name].double()
        y = y.contiguous()
        if tuple(y.shape) != tuple(want.shape):
            errors[name] = float("inf")
        else:
            errors[name] = float((y - want).abs().max() / want.abs().max().clamp_min(1e-6))
        values[name] = want  # the next layers start from PyTorch's own value
        previous = name
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(prog="onnx_zoo.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a torchvision.models builder: resnet18, convnext_tiny, ...")
    ap.add_argument("--size", type=int, default=64, help="input height and width (default 64)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--opset", type=int, default=13, help="ONNX opset (13 or 17; default 13)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-onnx", action="store_true", help="no model.onnx and ort.safetensors")
    ap.add_argument("--no-torch", action="store_true", help="no exporter folder (torch/)")
    ap.add_argument("--no-reference", action="store_true",
                    help="no ort.safetensors (model.onnx only: for benchmarks)")
    ap.add_argument("--replay", action="store_true",
                    help="also compute each exported layer from its inputs' expected values in PyTorch "
                         "(model.json's ops as netwalk defines them) and report the worst layers")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times: Dict[str, float] = {}
    t = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build(args.model, args.seed)
    x = make_input(args.size, args.seed)
    save_file({"input": x}, str(out / "input.safetensors"))
    times["build"] = time.time() - t

    shape = tuple(x.shape)
    if not args.no_torch:
        t = time.time()
        netwalk_torch.export(model, shape, out / "torch", name=args.model)
        times["export"] = time.time() - t
        t = time.time()
        expected = netwalk_torch.reference_activations(model, shape, x)
        save_file(expected, str(out / "torch" / "expected.safetensors"))
        times["reference"] = time.time() - t

    worst = None
    if args.replay and not args.no_torch:
        errors = replay(out / "torch", x)
        worst = sorted(errors.items(), key=lambda kv: -kv[1])[:3]

    if not args.no_onnx:
        t = time.time()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # Newer torch exports through dynamo by default; the TorchScript exporter (torch 1.13's,
            # what CI checks netwalk against) where there is the choice.
            kw = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
            torch.onnx.export(model, (x[None],), str(out / "model.onnx"), opset_version=args.opset,
                              input_names=["input"], output_names=["output"], **kw)
        times["onnx"] = time.time() - t
        if not args.no_reference:
            t = time.time()
            save_numpy(run_ort(out / "model.onnx", x[None].numpy()), str(out / "ort.safetensors"))
            times["ort"] = time.time() - t

    info = {"model": args.model, "size": args.size, "opset": args.opset, "seed": args.seed,
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": {k: round(v, 2) for k, v in times.items()}}
    if worst is not None:
        info["replay_worst"] = worst
    (out / "zoo.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
