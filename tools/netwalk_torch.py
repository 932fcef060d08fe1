#!/usr/bin/env python3
"""PyTorch -> netwalk: export a model to `netwalk-model/1`, and write training checkpoints
into a folder that `netwalk run MODEL --watch DIR` follows.

    export(model, (3, 32, 32), "out/cifar", classes=[...], mean=[...], std=[...])
        writes out/cifar/model.json and out/cifar/weights.safetensors (the model's
        state_dict, tensor names unchanged; floating tensors as f32), and
        out/cifar/samples.safetensors when `samples`/`labels` are given.

    writer = CheckpointWriter(model, "out/cifar/checkpoints", every=50)
    writer.save("init")
    for ...:
        ...; optimizer.step()
        writer.step(loss=loss.item())            # a checkpoint every 50 steps
    writer.save("final", accuracy=0.93)

Models: an nn.Sequential (nested too) or a module whose forward chains its children, traced
with torch.fx, so residual `x + y` / torch.add and torch.cat (channels) work too. Supported:

    nn.Conv2d          conv2d (stride, padding incl. 'valid' and symmetric 'same', dilation,
                       groups; zero padding only)
    nn.Linear          dense (on a flat [N] input)
    nn.BatchNorm2d     batchnorm2d (eps; eval mode: running statistics)
    nn.MaxPool2d, F.max_pool2d  maxpool2d (ceil_mode; dilation 1)
    nn.AvgPool2d, F.avg_pool2d  avgpool2d (ceil_mode, count_include_pad)
    nn.AdaptiveAvgPool2d, F.adaptive_avg_pool2d
                       adaptive_avgpool2d (any output size; 1: global_avgpool2d)
    x.mean((2, 3)), torch.mean(x, (2, 3))  global_avgpool2d (keepdim=False: then flatten)
    nn.Flatten, torch.flatten(x, 1), x.view(x.size(0), -1), x.reshape(...)  flatten
    nn.ReLU/Sigmoid/Tanh, F.relu, torch.sigmoid, x.relu(), ...              relu/sigmoid/tanh
    nn.ReLU6, F.relu6  relu6             nn.Hardtanh, F.hardtanh  clip (min, max)
    nn.Hardswish/Hardsigmoid/SiLU, F.hardswish/hardsigmoid/silu  hardswish/hardsigmoid/silu
    nn.GELU, F.gelu    gelu (approximate 'none' or 'tanh')
    nn.LeakyReLU, F.leaky_relu  leaky_relu (negative_slope)    nn.ELU, F.elu  elu (alpha)
    nn.Softmax / F.softmax over the features of [N] or the channels of [C, H, W]  softmax
    x + y, torch.add   add (same shapes)      torch.cat(dim=1)  concat
    nn.Dropout*, nn.Identity                  skipped (eval mode)

Anything else raises ExportError naming the module path (e.g. `features.3 (LSTM)`).
Layers are named after their module path (`features.0`), so netwalk's activations, the
module names in PyTorch and the state_dict keys agree.

netwalk normalizes its input, (x - mean) / std per channel, before the first layer: give
`mean`/`std` when the PyTorch model expects normalized input, and feed netwalk raw input
(PNG pixels scaled to [0, 1]).

Checkpoints follow netwalk's watch protocol (src/nn/live.rs): each file is written under
`NAME.safetensors.tmp` and then renamed (os.replace, atomic within a folder) to
`PREFIX-NNNNNN.safetensors` (zero-padded, so name order is write order), with the string
metadata netwalk's timeline reads: `label`, `step`, `epoch`, `train_loss`, `heldout_accuracy`.

CLI:
    python3 tools/netwalk_torch.py export MODULE:FACTORY --shape 3,32,32 --out DIR
        [--state-dict FILE.pt|FILE.safetensors] [--classes a,b,...] [--mean ..] [--std ..]

MODULE is an importable module or a .py file; FACTORY a module attribute: an nn.Module or
a callable returning one (called without arguments).

Requirements: torch (>= 1.13) and safetensors (PyPI); see docs/pytorch.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import operator
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.fx
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

FORMAT = "netwalk-model/1"
PathLike = Union[str, os.PathLike]


class ExportError(ValueError):
    """A model (or one of its modules) that netwalk's format cannot express."""


# ----------------------------------------------------------------------------
# tracing
# ----------------------------------------------------------------------------

class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, keeping every torch.nn module (but containers) a single call."""

    def __init__(self) -> None:
        super().__init__()
        self.scope = ""  # the path of the (non-leaf) module whose forward is being traced

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return m.__module__.startswith("torch.nn") or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        outer = self.scope
        self.scope = self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.scope = outer

    def create_node(self, *args: Any, **kwargs: Any) -> torch.fx.Node:
        node = super().create_node(*args, **kwargs)
        node.meta["netwalk_scope"] = self.scope
        return node


def _pair(v: Any) -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(x) for x in v)
    if len(t) == 1:
        return (t[0], t[0])
    if len(t) != 2:
        raise ValueError(f"expected an int or a pair, got {v!r}")
    return (t[0], t[1])


def _attr(p: Tuple[int, int]) -> Union[int, List[int]]:
    """A 2-D attribute as model.json writes it: an int when square."""
    return p[0] if p[0] == p[1] else [p[0], p[1]]


_ELEMENTWISE_FUNCS = {
    F.relu: "relu", torch.relu: "relu", torch.sigmoid: "sigmoid", torch.tanh: "tanh",
}
try:  # torch.nn.functional.sigmoid/tanh are deprecated aliases; keep them if present
    _ELEMENTWISE_FUNCS[F.sigmoid] = "sigmoid"
    _ELEMENTWISE_FUNCS[F.tanh] = "tanh"
except AttributeError:  # pragma: no cover
    pass
_ELEMENTWISE_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
# functional activations with attributes: F.x -> (op, [(argument, position, default, attribute)])
_ACTIVATION_FUNCS = {
    F.relu6: ("relu6", []),
    F.hardtanh: ("clip", [("min_val", 1, -1.0, "min"), ("max_val", 2, 1.0, "max")]),
    F.hardswish: ("hardswish", []),
    F.hardsigmoid: ("hardsigmoid", []),
    F.silu: ("silu", []),
    F.gelu: ("gelu", [("approximate", 1, "none", "approximate")]),
    F.leaky_relu: ("leaky_relu", [("negative_slope", 1, 0.01, "negative_slope")]),
    F.elu: ("elu", [("alpha", 1, 1.0, "alpha")]),
}
# modules that do nothing in eval mode
_SKIPPED = tuple(getattr(nn, n) for n in ("Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                                          "AlphaDropout", "FeatureAlphaDropout") if hasattr(nn, n))


class _Graph:
    """Walks a traced graph with its shapes and builds the netwalk layer list."""

    def __init__(self, model: nn.Module, gm: torch.fx.GraphModule, shapes: Dict[str, Tuple[int, ...]],
                 input_name: str):
        self.gm = gm
        self.modules = dict(model.named_modules())
        self.shapes = shapes
        self.input_name = input_name
        self.layers: List[Dict[str, Any]] = []
        # fx node -> the netwalk name that holds its value (a layer, or the input)
        self.value: Dict[torch.fx.Node, str] = {}
        self.used: set = {input_name}

    # -- helpers --------------------------------------------------------------
    def where(self, node: torch.fx.Node) -> str:
        if node.op == "call_module":
            return f"module `{node.target}` ({type(self.modules[str(node.target)]).__name__})"
        target = getattr(node.target, "__name__", str(node.target))
        kind = "tensor method" if node.op == "call_method" else "function"
        scope = node.meta.get("netwalk_scope") or ""
        inside = f" in the forward of `{scope}` ({type(self.modules[scope]).__name__})" if scope else ""
        return f"operation `{node.name}` ({kind} {target}){inside}"

    def fail(self, node: torch.fx.Node, msg: str) -> ExportError:
        return ExportError(f"{self.where(node)}: {msg}")

    def shape(self, node: Any) -> Tuple[int, ...]:
        if not isinstance(node, torch.fx.Node) or node.name not in self.shapes:
            raise ExportError(f"`{node}` is not a tensor computed by the model")
        return self.shapes[node.name]

    def source(self, node: torch.fx.Node, arg: Any) -> str:
        if not isinstance(arg, torch.fx.Node) or arg not in self.value:
            raise self.fail(node, f"reads {arg!r}, which is not a tensor netwalk computes")
        return self.value[arg]

    def name_for(self, node: torch.fx.Node) -> str:
        base = str(node.target) if node.op == "call_module" else node.name
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def emit(self, node: torch.fx.Node, inputs: List[str], layer: Dict[str, Any]) -> None:
        name = self.name_for(node)
        previous = self.layers[-1]["name"] if self.layers else self.input_name
        out = {"name": name}
        out.update(layer)
        if inputs != [previous]:
            out["inputs"] = inputs
        self.layers.append(out)
        self.value[node] = name

    def alias(self, node: torch.fx.Node, arg: Any) -> None:
        """A node netwalk skips: its value is its input's."""
        self.value[node] = self.source(node, arg)

    # -- the walk -------------------------------------------------------------
    def build(self) -> List[Dict[str, Any]]:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ExportError(f"the model's forward must take one tensor, it takes {len(placeholders)}")
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.value[node] = self.input_name
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, torch.fx.Node):
                    raise ExportError("the model must return one tensor (not a tuple, list or dict)")
                if self.value.get(out) == self.input_name or out not in self.value:
                    raise ExportError("the model computes nothing netwalk can show (every module is skipped)")
                last = self.value[out]
                if self.layers[-1]["name"] != last:
                    raise ExportError(
                        f"the model's output `{last}` must be its last layer (outputs of later "
                        "layers would be unused)")
            elif node.name not in self.shapes and node.op != "call_module":
                continue  # not a tensor (x.size(0) and the like); used only through others
            elif node.op == "call_module":
                self.module(node, self.modules[str(node.target)])
            elif node.op == "call_function":
                self.function(node)
            elif node.op == "call_method":
                self.method(node)
            else:
                raise self.fail(node, "is not supported (parameters used directly in forward)")
        return self.layers

    def one_input(self, node: torch.fx.Node) -> str:
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node) and a.name in self.shapes]
        if len(tensors) != 1 or node.args[0] is not tensors[0]:
            raise self.fail(node, "must take exactly one tensor")
        return self.source(node, node.args[0])

    def module(self, node: torch.fx.Node, m: nn.Module) -> None:
        if node.kwargs:
            raise self.fail(node, f"keyword arguments {sorted(node.kwargs)} are not supported")
        src = self.one_input(node)
        in_shape = self.shape(node.args[0])
        path = str(node.target)
        if isinstance(m, _SKIPPED):
            return self.alias(node, node.args[0])
        if isinstance(m, nn.Conv2d):
            return self.emit(node, [src], self.conv(node, m, path))
        if isinstance(m, nn.Linear):
            if len(in_shape) != 2:
                raise self.fail(node, f"needs a flat input [batch, N], got {list(in_shape)} (add nn.Flatten)")
            layer = {"op": "dense", "out_features": m.out_features, "weight": f"{path}.weight"}
            layer["bias"] = f"{path}.bias" if m.bias is not None else None
            return self.emit(node, [src], layer)
        if isinstance(m, nn.BatchNorm2d):
            if m.running_mean is None or m.running_var is None:
                raise self.fail(node, "track_running_stats=False is not supported (netwalk uses running statistics)")
            layer = {"op": "batchnorm2d", "eps": float(m.eps)}
            for role in ("weight", "bias"):
                layer[role] = f"{path}.{role}" if getattr(m, role) is not None else None
            layer["running_mean"] = f"{path}.running_mean"
            layer["running_var"] = f"{path}.running_var"
            return self.emit(node, [src], layer)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return self.emit(node, [src], self.pool(node, m))
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return self.emit(node, [src], self.adaptive(node, m.output_size, in_shape))
        if isinstance(m, nn.Flatten):
            return self.flatten(node, m.start_dim, m.end_dim)
        if isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh)):
            op = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}[type(m)]
            return self.emit(node, [src], {"op": op})
        if isinstance(m, nn.ReLU6):  # before Hardtanh, its base class
            return self.emit(node, [src], {"op": "relu6"})
        if isinstance(m, nn.Hardtanh):
            return self.emit(node, [src], {"op": "clip", "min": float(m.min_val), "max": float(m.max_val)})
        if isinstance(m, (nn.Hardswish, nn.Hardsigmoid, nn.SiLU)):
            op = {nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.SiLU: "silu"}[type(m)]
            return self.emit(node, [src], {"op": op})
        if isinstance(m, nn.GELU):
            return self.emit(node, [src], self.gelu(node, getattr(m, "approximate", "none")))
        if isinstance(m, nn.LeakyReLU):
            return self.emit(node, [src], {"op": "leaky_relu", "negative_slope": float(m.negative_slope)})
        if isinstance(m, nn.ELU):
            return self.emit(node, [src], {"op": "elu", "alpha": float(m.alpha)})
        if isinstance(m, nn.Softmax):
            return self.softmax(node, m.dim)
        raise self.fail(node, "is not supported by netwalk-model/1 (supported: Conv2d, Linear, "
                              "BatchNorm2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, ReLU, "
                              "Sigmoid, Tanh, ReLU6, Hardtanh, Hardswish, Hardsigmoid, SiLU, GELU, "
                              "LeakyReLU, ELU, Softmax, Dropout, Identity)")

    def gelu(self, node: torch.fx.Node, approximate: Any) -> Dict[str, Any]:
        if approximate not in ("none", "tanh"):
            raise self.fail(node, f"GELU approximate={approximate!r} is not supported ('none' or 'tanh')")
        return {"op": "gelu", "approximate": approximate}

    def activation(self, node: torch.fx.Node) -> None:
        """A functional activation (F.relu6, F.gelu, F.leaky_relu, ...) with its arguments."""
        op, args = _ACTIVATION_FUNCS[node.target]
        layer: Dict[str, Any] = {"op": op}
        for arg, pos, default, attribute in args:
            v = node.args[pos] if len(node.args) > pos else node.kwargs.get(arg, default)
            if isinstance(v, torch.fx.Node):
                raise self.fail(node, f"{arg} must be a number, not a tensor")
            layer[attribute] = v if attribute == "approximate" else float(v)
        if op == "gelu":
            layer = self.gelu(node, layer["approximate"])
        self.emit(node, [self.one_input(node)], layer)

    def conv(self, node: torch.fx.Node, m: nn.Conv2d, path: str) -> Dict[str, Any]:
        if m.padding_mode != "zeros":
            raise self.fail(node, f"padding_mode={m.padding_mode!r} is not supported (only zero padding)")
        kernel, dilation, stride = _pair(m.kernel_size), _pair(m.dilation), _pair(m.stride)
        if isinstance(m.padding, str):
            if m.padding == "valid":
                padding = (0, 0)
            else:  # 'same' (stride 1): symmetric only when the total padding is even
                total = [d * (k - 1) for d, k in zip(dilation, kernel)]
                if any(t % 2 for t in total):
                    raise self.fail(node, "padding='same' with an even kernel pads unevenly; "
                                          "netwalk pads symmetrically (use an explicit padding)")
                padding = (total[0] // 2, total[1] // 2)
        else:
            padding = _pair(m.padding)
        layer: Dict[str, Any] = {"op": "conv2d", "out_channels": m.out_channels,
                                 "kernel": _attr(kernel)}
        if stride != (1, 1):
            layer["stride"] = _attr(stride)
        if padding != (0, 0):
            layer["padding"] = _attr(padding)
        if dilation != (1, 1):
            layer["dilation"] = _attr(dilation)
        if m.groups != 1:
            layer["groups"] = m.groups
        layer["weight"] = f"{path}.weight"
        layer["bias"] = f"{path}.bias" if m.bias is not None else None
        return layer

    def pool(self, node: torch.fx.Node, m: Union[nn.MaxPool2d, nn.AvgPool2d]) -> Dict[str, Any]:
        if isinstance(m, nn.MaxPool2d):
            return self.pool_layer(node, "maxpool2d", m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                   dilation=m.dilation, return_indices=m.return_indices)
        return self.pool_layer(node, "avgpool2d", m.kernel_size, m.stride, m.padding, m.ceil_mode,
                               count_include_pad=m.count_include_pad, divisor_override=m.divisor_override)

    def pool_layer(self, node: torch.fx.Node, kind: str, kernel: Any, stride: Any, padding: Any, ceil_mode: Any, *,
                   dilation: Any = 1, return_indices: Any = False, count_include_pad: Any = True,
                   divisor_override: Any = None) -> Dict[str, Any]:
        """nn.MaxPool2d/AvgPool2d and F.max_pool2d/avg_pool2d alike."""
        for arg, v in (("kernel_size", kernel), ("stride", stride), ("padding", padding), ("ceil_mode", ceil_mode),
                       ("count_include_pad", count_include_pad)):
            if isinstance(v, torch.fx.Node):
                raise self.fail(node, f"{arg} must be a constant, not a tensor")
        kernel = _pair(kernel)
        stride = _pair(stride if stride not in (None, (), []) else kernel)
        padding = _pair(padding)
        if _pair(dilation) != (1, 1):
            raise self.fail(node, f"dilation={dilation} is not supported")
        if return_indices:
            raise self.fail(node, "return_indices=True is not supported")
        if divisor_override is not None:
            raise self.fail(node, "divisor_override is not supported")
        layer: Dict[str, Any] = {"op": kind, "kernel": _attr(kernel)}
        if stride != kernel:
            layer["stride"] = _attr(stride)
        if padding != (0, 0):
            layer["padding"] = _attr(padding)
        if ceil_mode:
            layer["ceil_mode"] = True
        if not count_include_pad:
            layer["count_include_pad"] = False
        return layer

    def adaptive(self, node: torch.fx.Node, size: Any, in_shape: Tuple[int, ...]) -> Dict[str, Any]:
        if len(in_shape) != 4:
            raise self.fail(node, f"needs a [batch, C, H, W] input, got {list(in_shape)}")
        if isinstance(size, torch.fx.Node):
            raise self.fail(node, "output_size must be a constant, not a tensor")
        h, w = in_shape[2], in_shape[3]
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        oh, ow = _pair(tuple(n if s is None else s for s, n in zip(sizes, (h, w))))
        if (oh, ow) == (1, 1):
            return {"op": "global_avgpool2d"}
        return {"op": "adaptive_avgpool2d", "output_size": _attr((oh, ow))}

    def mean(self, node: torch.fx.Node, dims: Any, keepdim: Any) -> None:
        """x.mean((2, 3)) / torch.mean(x, (2, 3)): a global average pool, flattened unless keepdim."""
        shape = self.shape(node.args[0])
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if len(shape) != 4 or sorted(d % 4 for d in dims if isinstance(d, int)) != [2, 3] or len(dims) != 2:
            raise self.fail(node, f"mean over dims {dims} of {list(shape)} is not supported: netwalk averages "
                                  "the whole map of [batch, C, H, W] (dims (2, 3))")
        if isinstance(keepdim, torch.fx.Node):
            raise self.fail(node, "keepdim must be a constant")
        src = self.source(node, node.args[0])
        if keepdim:
            return self.emit(node, [src], {"op": "global_avgpool2d"})
        # [batch, C]: netwalk's [C, 1, 1] map (named `<node>_map`), then flattened under the node's name.
        gap, k = f"{node.name}_map", 1
        while gap in self.used:
            k += 1
            gap = f"{node.name}_map{k}"
        self.used.add(gap)
        previous = self.layers[-1]["name"] if self.layers else self.input_name
        layer: Dict[str, Any] = {"name": gap, "op": "global_avgpool2d"}
        if src != previous:
            layer["inputs"] = [src]
        self.layers.append(layer)
        self.value[node] = gap
        self.emit(node, [gap], {"op": "flatten"})

    def flatten(self, node: torch.fx.Node, start: int, end: int) -> None:
        shape = self.shape(node.args[0])
        if start % len(shape) != 1 or end % len(shape) != len(shape) - 1:
            raise self.fail(node, f"flattening dims {start}..{end} is not supported: netwalk flattens all but the batch "
                                  "dimension (start_dim=1, end_dim=-1)")
        if len(shape) == 2:
            return self.alias(node, node.args[0])
        self.emit(node, [self.source(node, node.args[0])], {"op": "flatten"})

    def softmax(self, node: torch.fx.Node, dim: Optional[int]) -> None:
        shape = self.shape(node.args[0])
        if dim is None:  # PyTorch's implicit choice: dim 1 for 2-D and 4-D inputs
            dim = 0 if len(shape) in (0, 1, 3) else 1
        if len(shape) not in (2, 4) or dim % len(shape) != 1:
            raise self.fail(node, f"softmax over dim {dim} of {list(shape)} is not supported: netwalk's softmax runs "
                                  "over the features of [batch, N] or the channels of [batch, C, H, W] (dim=1)")
        self.emit(node, [self.source(node, node.args[0])], {"op": "softmax"})

    def function(self, node: torch.fx.Node) -> None:
        f = node.target
        if f in _ELEMENTWISE_FUNCS:
            return self.emit(node, [self.one_input(node)], {"op": _ELEMENTWISE_FUNCS[f]})
        if f in _ACTIVATION_FUNCS:
            return self.activation(node)
        if f in (operator.add, torch.add):
            if len(node.args) != 2 or node.kwargs:
                raise self.fail(node, "only `x + y` of two tensors is supported (no alpha)")
            return self.join(node, list(node.args), "add")
        if f is torch.cat:
            tensors = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            shape = self.shape(node)
            if not isinstance(tensors, (list, tuple)) or len(shape) not in (2, 4) or dim % len(shape) != 1:
                raise self.fail(node, "netwalk concatenates channels (or features): torch.cat(xs, dim=1)")
            return self.join(node, list(tensors), "concat")
        if f is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, start, end)
        if f in (F.softmax, torch.softmax):
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            return self.softmax(node, dim)
        if f is F.dropout:
            return self.alias(node, node.args[0])
        if f in (F.max_pool2d, F.avg_pool2d):
            names = (["kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"]
                     if f is F.max_pool2d else
                     ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"])
            kw = dict(zip(names, node.args[1:]))
            kw.update(node.kwargs)
            if "kernel_size" not in kw:
                raise self.fail(node, "needs a kernel_size")
            kind = "maxpool2d" if f is F.max_pool2d else "avgpool2d"
            layer = self.pool_layer(node, kind, kw.pop("kernel_size"), kw.pop("stride", None), kw.pop("padding", 0),
                                    kw.pop("ceil_mode", False), **kw)
            return self.emit(node, [self.one_input(node)], layer)
        if f is F.adaptive_avg_pool2d:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            return self.emit(node, [self.one_input(node)], self.adaptive(node, size, self.shape(node.args[0])))
        if f is torch.mean:
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
            return self.mean(node, dims, keepdim)
        raise self.fail(node, "is not supported by netwalk-model/1")

    def method(self, node: torch.fx.Node) -> None:
        name = str(node.target)
        if name in _ELEMENTWISE_METHODS and len(node.args) == 1:
            return self.emit(node, [self.one_input(node)], {"op": _ELEMENTWISE_METHODS[name]})
        if name in ("view", "reshape", "flatten"):
            src, out = self.shape(node.args[0]), self.shape(node)
            if len(out) == 2 and out[0] == src[0]:  # [batch, everything else], row-major
                if len(src) == 2:
                    return self.alias(node, node.args[0])
                return self.emit(node, [self.source(node, node.args[0])], {"op": "flatten"})
            raise self.fail(node, f"reshaping {list(src)} to {list(out)} is not supported: netwalk only flattens to [batch, N]")
        if name == "softmax":
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            return self.softmax(node, dim)
        if name in ("contiguous", "clone"):
            return self.alias(node, node.args[0])
        if name == "mean":
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
            return self.mean(node, dims, keepdim)
        raise self.fail(node, "is not supported by netwalk-model/1")

    def join(self, node: torch.fx.Node, args: List[Any], op: str) -> None:
        shapes = [self.shape(a) for a in args]
        if op == "add" and any(s != shapes[0] for s in shapes):
            raise self.fail(node, f"adding shapes {[list(s) for s in shapes]} is not supported: netwalk adds same-shaped tensors (no broadcasting)")
        self.emit(node, [self.source(node, a) for a in args], {"op": op})


def _trace(model: nn.Module, x: torch.Tensor) -> Tuple[torch.fx.GraphModule, Dict[str, Tuple[int, ...]]]:
    """The model's fx graph and the shape of every tensor-valued node (for input `x`)."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # torch.fx raises many kinds (TraceError, TypeError, ...)
        raise ExportError(f"cannot trace the model ({type(model).__name__}) with torch.fx: {e}; its "
                          "forward must be a straight chain of its modules (no data-dependent control flow)") from e
    gm = torch.fx.GraphModule(model, graph)
    shapes: Dict[str, Tuple[int, ...]] = {}

    class _Shapes(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            result = super().run_node(n)
            if isinstance(result, torch.Tensor):
                shapes[n.name] = tuple(result.shape)
            return result

    with torch.no_grad():
        _Shapes(gm).run(x)
    return gm, shapes


# ----------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------

def _state_tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The state_dict as safetensors stores it: floating tensors as contiguous f32 copies (no
    shared storage), other tensors (BatchNorm's num_batches_tracked) as they are."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        out[k] = (v.float() if v.is_floating_point() else v).contiguous().clone()
    return out


def _per_channel(key: str, values: Optional[Sequence[float]], channels: int) -> Optional[List[float]]:
    if values is None:
        return None
    vals = [float(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]
    if len(vals) not in (1, channels) or not all(math.isfinite(v) for v in vals):
        raise ExportError(f"{key}: give 1 or {channels} finite values, got {vals}")
    if key == "std" and 0.0 in vals:
        raise ExportError("std must not be 0")
    return vals


def export(model: nn.Module, input_shape: Sequence[int], out_dir: PathLike, *, name: Optional[str] = None,
           classes: Optional[Sequence[str]] = None, mean: Optional[Sequence[float]] = None,
           std: Optional[Sequence[float]] = None, samples: Optional[torch.Tensor] = None,
           labels: Optional[torch.Tensor] = None, input_name: str = "input") -> Path:
    """Write `model` as a netwalk model into `out_dir` and return the model.json path.

    input_shape: (C, H, W) or (N,), without the batch dimension. mean/std: netwalk's input
    normalization (one value, or one per channel). samples: raw images [N, C, H, W] (uint8, or
    float in [0, 1]) and labels [N] (integers): the held-out set netwalk's `eval` and `--sample`
    use. The model is traced in eval mode (its training mode is restored afterwards).
    Raises ExportError when the model uses something netwalk-model/1 cannot express.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ExportError(f"input_shape must be (C, H, W) or (N,), got {tuple(input_shape)}")
    out = Path(out_dir)
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros((1,) + shape, dtype=param.dtype if param is not None else torch.float32,
                        device=param.device if param is not None else "cpu")
        gm, shapes = _trace(model, x)
        layers = _Graph(model, gm, shapes, input_name).build()
        tensors = _state_tensors(model)
    finally:
        model.train(was_training)
    for layer in layers:
        for role in ("weight", "bias", "running_mean", "running_var"):
            t = layer.get(role)
            if t is not None and t not in tensors:
                raise ExportError(f"module `{layer['name']}`: its {role} `{t}` is not in the state_dict")
    doc: Dict[str, Any] = {"format": FORMAT, "name": name or type(model).__name__}
    inp: Dict[str, Any] = {"name": input_name, "shape": list(shape)}
    for key, vals in (("mean", mean), ("std", std)):
        v = _per_channel(key, vals, shape[0])
        if v is not None:
            inp[key] = v
    doc["input"] = inp
    if classes is not None:
        classes = [str(c) for c in classes]
        last = [n for n in gm.graph.nodes if n.op == "output"][0].args[0]
        n_out = math.prod(shapes[last.name][1:])
        if len(classes) != n_out:
            raise ExportError(f"{len(classes)} classes given but the model has {n_out} outputs")
        doc["classes"] = classes
    doc["weights"] = "weights.safetensors"
    out.mkdir(parents=True, exist_ok=True)
    if samples is not None or labels is not None:
        doc["samples"] = "samples.safetensors"
        _write_samples(out / "samples.safetensors", samples, labels, shape)
    doc["layers"] = layers
    _atomic_save(tensors, out / "weights.safetensors", {"format": "pt"})
    path = out / "model.json"
    tmp = out / "model.json.tmp"
    tmp.write_text(_dumps(doc))
    os.replace(tmp, path)
    return path


def _dumps(doc: Dict[str, Any]) -> str:
    """model.json text: one line per top-level key and per layer."""
    lines = []
    for key, value in doc.items():
        if key == "layers":
            inner = ",\n".join("    " + json.dumps(layer) for layer in value)
            lines.append(f'  "layers": [\n{inner}\n  ]')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _write_samples(path: Path, samples: Optional[torch.Tensor], labels: Optional[torch.Tensor],
                   shape: Tuple[int, ...]) -> None:
    if samples is None or labels is None:
        raise ExportError("samples and labels go together: give both or neither")
    images = torch.as_tensor(samples).detach().cpu()
    lab = torch.as_tensor(labels).detach().cpu()
    if tuple(images.shape[1:]) != shape or images.shape[0] < 1:
        raise ExportError(f"samples must be [N, {', '.join(map(str, shape))}], got {list(images.shape)}")
    if lab.shape != (images.shape[0],) or lab.is_floating_point() or lab.is_complex():
        raise ExportError(f"labels must be {images.shape[0]} integers, got {lab.dtype} {list(lab.shape)}")
    if images.dtype != torch.uint8:
        images = images.float()
    _atomic_save({"images": images.contiguous(), "labels": lab.long().contiguous()}, path, None)


def _atomic_save(tensors: Dict[str, torch.Tensor], path: Path, metadata: Optional[Dict[str, str]]) -> None:
    """Writes `path` under a name that does not end in .safetensors, then renames it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------
# checkpoints for `netwalk run MODEL --watch DIR`
# ----------------------------------------------------------------------------

class CheckpointWriter:
    """Writes the model's weights into `watch_dir` as training goes, for netwalk's timeline.

    Call `step(loss=...)` after every optimizer step: every `every` steps it writes a checkpoint
    whose `train_loss` is the mean of the losses given since the previous one. `save()` writes
    one now (e.g. `save("init")` before training, `save("final", accuracy=...)` after).
    `steps_per_epoch` (optional) fills in each checkpoint's `epoch`. Files are named
    `PREFIX-NNNNNN.safetensors`, numbered after the PREFIX-*.safetensors files already there.
    """

    def __init__(self, model: nn.Module, watch_dir: PathLike, every: int = 100, *, prefix: str = "ckpt",
                 steps_per_epoch: Optional[int] = None) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a plain file name part, got {prefix!r}")
        self.model = model
        self.dir = Path(watch_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.every = every
        self.prefix = prefix
        self.steps_per_epoch = steps_per_epoch
        self.steps = 0
        self._losses: List[float] = []
        existing = [p.name[len(prefix) + 1:-len(".safetensors")] for p in self.dir.glob(f"{prefix}-*.safetensors")]
        self.count = max([int(n) + 1 for n in existing if n.isdigit()], default=0)
        self.written: List[Path] = []

    def step(self, loss: Optional[float] = None, accuracy: Optional[float] = None,
             label: Optional[str] = None) -> Optional[Path]:
        """Counts one training step (with its loss); writes a checkpoint every `every` steps
        (with `accuracy`, the held-out accuracy in [0, 1], when given) and returns its path."""
        self.steps += 1
        if loss is not None:
            self._losses.append(float(loss))
        if self.steps % self.every == 0:
            return self.save(label, accuracy=accuracy)
        return None

    def save(self, label: Optional[str] = None, *, loss: Optional[float] = None,
             accuracy: Optional[float] = None, epoch: Optional[float] = None,
             metadata: Optional[Dict[str, str]] = None) -> Path:
        """Writes a checkpoint of the model's current weights now and returns its path.
        label: the timeline's name for it (default `step N`); loss: the training loss (default:
        the mean of the losses given to step() since the previous checkpoint); accuracy: the
        held-out accuracy in [0, 1]; epoch: default steps / steps_per_epoch when that was given."""
        if accuracy is not None and not 0.0 <= float(accuracy) <= 1.0:
            raise ValueError(f"accuracy is a fraction in [0, 1], got {accuracy}")
        if loss is None and self._losses:
            loss = sum(self._losses) / len(self._losses)
        self._losses = []
        if epoch is None and self.steps_per_epoch:
            epoch = self.steps / self.steps_per_epoch
        meta = dict(metadata or {})
        meta["label"] = label if label else f"step {self.steps}"
        meta["step"] = str(self.steps)
        if epoch is not None:
            meta["epoch"] = f"{float(epoch):.4f}"
        if loss is not None and math.isfinite(float(loss)):
            meta["train_loss"] = f"{float(loss):.6f}"
        if accuracy is not None:
            meta["heldout_accuracy"] = f"{float(accuracy):.6f}"
        path = self.dir / f"{self.prefix}-{self.count:06d}.safetensors"
        _atomic_save(_state_tensors(self.model), path, meta)
        self.count += 1
        self.written.append(path)
        return path


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------

def _load_factory(spec: str) -> nn.Module:
    mod_name, sep, attr = spec.partition(":")
    if not sep or not attr:
        raise SystemExit(f"netwalk_torch: expected MODULE:FACTORY, got {spec!r}")
    if mod_name.endswith(".py"):
        sys.path.insert(0, str(Path(mod_name).resolve().parent))  # its own imports
        s = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
        if s is None or s.loader is None:
            raise SystemExit(f"netwalk_torch: cannot import {mod_name}")
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
    else:
        mod = importlib.import_module(mod_name)
    obj = getattr(mod, attr)
    model = obj if isinstance(obj, nn.Module) else obj()
    if not isinstance(model, nn.Module):
        raise SystemExit(f"netwalk_torch: {spec} gave a {type(model).__name__}, not an nn.Module")
    return model


def _floats(s: Optional[str]) -> Optional[List[float]]:
    return None if s is None else [float(v) for v in s.split(",")]


def main(argv: Optional[Iterable[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="netwalk_torch.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="export a PyTorch model to netwalk-model/1")
    ex.add_argument("factory", help="MODULE:FACTORY (module name or .py file; nn.Module or a callable making one)")
    ex.add_argument("--shape", required=True, help="input shape without batch: C,H,W or N")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--state-dict", help="weights to load first (.pt/.pth from torch.save, or .safetensors)")
    ex.add_argument("--name")
    ex.add_argument("--classes", help="comma-separated class names")
    ex.add_argument("--mean", help="comma-separated per-channel mean")
    ex.add_argument("--std", help="comma-separated per-channel std")
    args = ap.parse_args(None if argv is None else list(argv))
    model = _load_factory(args.factory)
    if args.state_dict:
        if args.state_dict.endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(args.state_dict)
        else:
            state = torch.load(args.state_dict, map_location="cpu")
        model.load_state_dict(state)
    try:
        path = export(model, [int(d) for d in args.shape.split(",")], args.out, name=args.name,
                      classes=args.classes.split(",") if args.classes else None,
                      mean=_floats(args.mean), std=_floats(args.std))
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
