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
with torch.fx on an example input (sizes become constants; eval-mode identities such as Dropout
and StochasticDepth leave no layer), so residual `x + y`, torch.cat (channels), SE gates and
channel shuffles work too. Supported (docs/pytorch.md has the full table):

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
    nn.PReLU, F.prelu  prelu
    nn.Softmax / F.softmax over the features of [N] or the channels of [C, H, W]  softmax
    x + y, x - y, x * y, x / y (numpy broadcasting)  add/sub/mul/div of two inputs
    x * w, x + w, x - w, x / w (w a parameter/buffer)  add/sub/mul/div with "constant": w's shape
    torch.cat(dim=1)   concat            x.chunk/x.split(dim=1)[i], x[:, a:b]  slice (start, end)
    view(N, g, C/g, H, W) -> transpose(1, 2) -> view(N, C, H, W)  channel_shuffle (groups)
    permute(0, 2, 3, 1) -> LayerNorm(C) / F.layer_norm / Linear / activations -> permute(0, 3, 1, 2)
                       layernorm (eps) / 1x1 conv2d (weight `<path>.weight_1x1`) / as they are
    torch.cat of the input's channels scaled and shifted by numbers (transform_input)
                       folded into the input's mean/std
    nn.Dropout*, nn.Identity, StochasticDepth  skipped (eval mode)

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
import weakref
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

def _has_tensor(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, (tuple, list)):
        return any(_has_tensor(x) for x in v)
    if isinstance(v, dict):
        return any(_has_tensor(x) for x in v.values())
    return False


class _Proxy(torch.fx.Proxy):
    """A proxy that knows its value for the example input: `x.shape` and `len(x)` are numbers, and
    a tuple of tensors (x.chunk(2, 1)) unpacks into its elements."""

    def _value(self) -> Any:
        return self.node.meta.get("netwalk_value")

    def __getattr__(self, k: str) -> Any:
        v = self.node.meta.get("netwalk_value") if k != "node" else None
        if isinstance(v, torch.Tensor) and k in ("shape", "ndim", "dtype", "device", "is_cuda"):
            return getattr(v, k)
        return super().__getattr__(k)

    def __len__(self) -> int:
        v = self._value()
        if isinstance(v, (tuple, list, torch.Tensor)):
            return len(v)
        return super().__len__()

    def __iter__(self) -> Any:
        v = self._value()
        if isinstance(v, (tuple, list)):
            return iter([self[i] for i in range(len(v))])
        return super().__iter__()


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, keeping every torch.nn module (but containers) a single call.

    Given an example input, it also computes every operation's value as it traces (the model
    runs once, eagerly): what is not a tensor (`x.size()`, `x.dim()`, `x.shape[1] // 2`) becomes
    a constant of the graph, as the exporter specializes the model to one input shape anyway,
    and an operation whose result is its first argument, unchanged (Dropout, StochasticDepth or
    a wrapped function in eval mode, `x.contiguous()`) is left out of the graph."""

    def __init__(self, example: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.scope = ""  # the path of the (non-leaf) module whose forward is being traced
        self.example = example
        self.evaluating = 0  # > 0 while an operation runs on values (modules run as they are)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return m.__module__.startswith("torch.nn") or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        if self.evaluating:
            return forward(*args, **kwargs)
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

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: Dict[str, Any]) -> Any:
        if self.evaluating:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def proxy(self, node: torch.fx.Node) -> torch.fx.Proxy:
        return _Proxy(node, self)

    def _evaluate(self, kind: str, target: Any, args: Any, kwargs: Any) -> Any:
        def value(a: Any) -> Any:
            if isinstance(a, torch.fx.Proxy):
                return a.node.meta["netwalk_value"]
            return a
        args = torch.fx.node.map_aggregate(args, value)
        kwargs = torch.fx.node.map_aggregate(kwargs, value)
        if kind == "call_function":
            return target(*args, **kwargs)
        if kind == "call_method":
            return getattr(args[0], target)(*args[1:], **kwargs)
        if kind == "call_module":
            return self.root.get_submodule(target)(*args, **kwargs)
        # get_attr: a parameter or buffer by its qualified name
        obj: Any = self.root
        for part in str(target).split("."):
            obj = getattr(obj, part)
        return obj

    def _in_place(self, kind: str, target: Any, kwargs: Any) -> bool:
        """An operation that may write its input (ReLU(inplace=True), F.relu(x, inplace=True), x.add_(y)):
        never taken for an identity, even where it left the example's values as they were."""
        if kind == "call_module":
            return bool(getattr(self.root.get_submodule(target), "inplace", False))
        name = target if isinstance(target, str) else getattr(target, "__name__", "")
        return bool(kwargs.get("inplace")) or (name.endswith("_") and not name.endswith("__"))

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, name: Optional[str] = None,
                     type_expr: Optional[Any] = None, proxy_factory_fn: Any = None) -> Any:
        if self.example is None:
            return super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        if kind == "placeholder":
            result: Any = self.example
        elif kind == "output":
            result = None
        else:
            if kind == "call_method" and target in ("item", "tolist", "numpy"):
                raise torch.fx.proxy.TraceError(f"x.{target}() reads the data (the graph would depend on it)")
            first = args[0] if args else None
            before = (first.node.meta["netwalk_value"].clone()
                      if isinstance(first, torch.fx.Proxy) and isinstance(first.node.meta.get("netwalk_value"), torch.Tensor)
                      else None)
            self.evaluating += 1
            try:
                with torch.no_grad():
                    result = self._evaluate(kind, target, args, kwargs)
            finally:
                self.evaluating -= 1
            if not _has_tensor(result):
                return result  # a size, a dim, a flag: a constant from here on
            if (before is not None and result is first.node.meta["netwalk_value"] and kind != "get_attr"
                    and not self._in_place(kind, target, kwargs) and torch.equal(before, result)):
                return first  # the identity here (eval mode)
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        proxy.node.meta["netwalk_value"] = result
        return proxy


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
# x + y, torch.add(x, y), ...: netwalk's broadcasting binary ops
_BINARY_FUNCS = {
    operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub",
    operator.mul: "mul", torch.mul: "mul", operator.truediv: "div", torch.div: "div",
}
_BINARY_METHODS = {"add": "add", "sub": "sub", "mul": "mul", "div": "div"}
# modules that do nothing in eval mode
_SKIPPED = tuple(getattr(nn, n) for n in ("Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                                          "AlphaDropout", "FeatureAlphaDropout") if hasattr(nn, n))


class _Graph:
    """Walks a traced graph with its shapes and builds the netwalk layer list."""

    def __init__(self, model: nn.Module, gm: torch.fx.GraphModule, shapes: Dict[str, Tuple[int, ...]],
                 input_name: str, pieces: Optional[Dict[str, List[Tuple[int, ...]]]] = None):
        self.gm = gm
        self.pieces = pieces or {}  # nodes whose value is a tuple of tensors: their shapes
        self.modules = dict(model.named_modules())
        self.shapes = shapes
        self.input_name = input_name
        self.layers: List[Dict[str, Any]] = []
        # fx node -> the netwalk name that holds its value (a layer, or the input)
        self.value: Dict[torch.fx.Node, str] = {}
        self.used: set = {input_name}
        # nodes whose value is netwalk's value permuted to channels-last ([N, H, W, C]): "nhwc"
        self.layout: Dict[torch.fx.Node, str] = {}
        self.params: Dict[torch.fx.Node, str] = {}  # get_attr nodes: parameter/buffer names
        # channels split into groups, [N, g, C/g, H, W]: node -> (kind, groups, netwalk source);
        # kind "groups" as split, "shuffled" after transpose(1, 2)
        self.grouped: Dict[torch.fx.Node, Tuple[str, int, str]] = {}
        # per-channel affine maps of the input (GoogLeNet's transform_input): node ->
        # (channels, scale, shift, squeezed)
        self.affine: Dict[torch.fx.Node, Tuple[List[int], List[float], List[float], bool]] = {}
        self.input_affine: Optional[Tuple[List[float], List[float]]] = None  # (scale, shift) per channel
        # layer name -> (fx node name, how netwalk's value is read from the node's: None, "nhwc", "map")
        self.refs: Dict[str, Tuple[str, Optional[str]]] = {}
        # tensors the layers read that are not in the state_dict: name -> (state_dict key, shape)
        self.derived: Dict[str, Tuple[str, Tuple[int, ...]]] = {}
        self.placeholder: Optional[torch.fx.Node] = None

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

    def name_for(self, node: torch.fx.Node, base: Optional[str] = None) -> str:
        if base is None:
            base = str(node.target) if node.op == "call_module" else node.name
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def emit(self, node: torch.fx.Node, inputs: List[str], layer: Dict[str, Any],
             layout: Optional[str] = None, base: Optional[str] = None) -> None:
        name = self.name_for(node, base)
        previous = self.layers[-1]["name"] if self.layers else self.input_name
        out = {"name": name}
        out.update(layer)
        if inputs != [previous]:
            out["inputs"] = inputs
        self.layers.append(out)
        self.value[node] = name
        self.refs[name] = (node.name, layout)
        if layout:
            self.layout[node] = layout

    def alias(self, node: torch.fx.Node, arg: Any, layout: Any = "same") -> None:
        """A node netwalk skips: its value is its input's (in the same layout unless given)."""
        self.value[node] = self.source(node, arg)
        layout = self.layout.get(arg) if layout == "same" else layout
        if layout:
            self.layout[node] = layout

    def is_nhwc(self, arg: Any) -> bool:
        return isinstance(arg, torch.fx.Node) and self.layout.get(arg) == "nhwc"

    def channels_first(self, node: torch.fx.Node) -> None:
        """Refuses a channels-last input: netwalk's ops take [C, H, W]."""
        for a in node.args:
            if self.is_nhwc(a):
                raise self.fail(node, "is not supported on a channels-last tensor (between permute(0, 2, 3, 1) "
                                      "and permute(0, 3, 1, 2) only LayerNorm, Linear, activations and "
                                      "elementwise ops are)")

    # -- the walk -------------------------------------------------------------
    def build(self) -> List[Dict[str, Any]]:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ExportError(f"the model's forward must take one tensor, it takes {len(placeholders)}")
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.value[node] = self.input_name
                self.placeholder = node
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, torch.fx.Node):
                    raise ExportError("the model must return one tensor (not a tuple, list or dict)")
                if self.value.get(out) == self.input_name or out not in self.value:
                    raise ExportError("the model computes nothing netwalk can show (every module is skipped)")
                last = self.value[out]
                if self.is_nhwc(out):
                    raise ExportError("the model's output is channels-last: permute it back (0, 3, 1, 2)")
                if self.layers[-1]["name"] != last:
                    raise ExportError(
                        f"the model's output `{last}` must be its last layer (outputs of later "
                        "layers would be unused)")
            elif node.op == "get_attr":
                self.params[node] = str(node.target)  # used as a constant operand or a norm's weight
            elif node.name not in self.shapes and node.op != "call_module":
                continue  # not a tensor (x.size(0), x.chunk(2, 1)); used only through others
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
        layout = self.layout.get(node.args[0])
        if layout == "nhwc":
            return self.nhwc_module(node, m, src, in_shape, path)
        if isinstance(m, nn.PReLU):
            return self.emit(node, [src], {"op": "prelu", "weight": f"{path}.weight"})
        if isinstance(m, nn.LayerNorm):
            raise self.fail(node, f"normalizes the last dims {list(m.normalized_shape)} of {list(in_shape)}: netwalk's "
                                  "layernorm normalizes the channels at each position (permute(0, 2, 3, 1) first)")
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
                              "LeakyReLU, ELU, PReLU, Softmax, LayerNorm (channels-last), Dropout, Identity)")

    def activation_module(self, node: torch.fx.Node, m: nn.Module) -> Optional[Dict[str, Any]]:
        """The layer of an activation module (elementwise: any layout), or None."""
        if isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh)):
            return {"op": {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}[type(m)]}
        if isinstance(m, nn.ReLU6):
            return {"op": "relu6"}
        if isinstance(m, nn.Hardtanh):
            return {"op": "clip", "min": float(m.min_val), "max": float(m.max_val)}
        if isinstance(m, (nn.Hardswish, nn.Hardsigmoid, nn.SiLU)):
            return {"op": {nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.SiLU: "silu"}[type(m)]}
        if isinstance(m, nn.GELU):
            return self.gelu(node, getattr(m, "approximate", "none"))
        if isinstance(m, nn.LeakyReLU):
            return {"op": "leaky_relu", "negative_slope": float(m.negative_slope)}
        if isinstance(m, nn.ELU):
            return {"op": "elu", "alpha": float(m.alpha)}
        return None

    def nhwc_module(self, node: torch.fx.Node, m: nn.Module, src: str, in_shape: Tuple[int, ...], path: str) -> None:
        """A module on a channels-last [N, H, W, C] tensor: LayerNorm over C is netwalk's
        layernorm, Linear a 1x1 conv2d, an activation itself; the output stays channels-last."""
        channels = in_shape[-1]
        if isinstance(m, nn.LayerNorm):
            if tuple(m.normalized_shape) != (channels,):
                raise self.fail(node, f"normalizes {list(m.normalized_shape)} of channels-last {list(in_shape)}: "
                                      "netwalk's layernorm normalizes the channels only")
            if m.weight is None or m.bias is None:
                raise self.fail(node, "LayerNorm without weight and bias (elementwise_affine=False) is not supported")
            layer = {"op": "layernorm", "eps": float(m.eps), "weight": f"{path}.weight", "bias": f"{path}.bias"}
            return self.emit(node, [src], layer, "nhwc")
        if isinstance(m, nn.Linear):
            return self.emit(node, [src], self.linear_1x1(path, m.weight.shape, m.bias is not None), "nhwc")
        layer = self.activation_module(node, m)
        if layer is None:
            self.channels_first(node)
        return self.emit(node, [src], layer, "nhwc")

    def linear_1x1(self, path: str, shape: Any, bias: bool) -> Dict[str, Any]:
        """A Linear over the channels of a channels-last tensor: a 1x1 conv2d, whose weight is the
        Linear's [out, in] reshaped to [out, in, 1, 1] (`<path>.weight_1x1`, written beside the
        state_dict)."""
        out, inp = int(shape[0]), int(shape[1])
        weight = f"{path}.weight_1x1"
        self.derived[weight] = (f"{path}.weight", (out, inp, 1, 1))
        return {"op": "conv2d", "out_channels": out, "kernel": 1, "weight": weight,
                "bias": f"{path}.bias" if bias else None}

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
        self.emit(node, [self.one_input(node)], layer, self.layout.get(node.args[0]))

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
        self.refs[gap] = (node.name, "map")
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
        first = node.args[0] if node.args else None
        if f in _ELEMENTWISE_FUNCS:
            return self.emit(node, [self.one_input(node)], {"op": _ELEMENTWISE_FUNCS[f]}, self.layout.get(first))
        if f in _ACTIVATION_FUNCS:
            return self.activation(node)
        if f in _BINARY_FUNCS:
            return self.binary(node, _BINARY_FUNCS[f])
        if f is operator.getitem:
            return self.getitem(node)
        if f is torch.permute:
            return self.permute(node, node.args[1] if len(node.args) > 1 else node.kwargs.get("dims"))
        if f is torch.transpose:
            return self.transpose(node, node.args[1:])
        if f is torch.unsqueeze:
            return self.unsqueeze(node, node.args[1] if len(node.args) > 1 else node.kwargs.get("dim"))
        if f is F.layer_norm:
            return self.layer_norm(node)
        if f is F.prelu:
            self.channels_first(node)
            weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            w = self.param(node, weight)
            return self.emit(node, [self.one_input(node)], {"op": "prelu", "weight": w}, base=self.owner(w))
        if f is torch.cat:
            tensors = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            shape = self.shape(node)
            if not isinstance(tensors, (list, tuple)) or len(shape) not in (2, 4) or dim % len(shape) != 1:
                raise self.fail(node, "netwalk concatenates channels (or features): torch.cat(xs, dim=1)")
            if all(isinstance(t, torch.fx.Node) and t in self.affine for t in tensors):
                return self.fold_input_affine(node, list(tensors))
            self.channels_first(node)
            if len(tensors) == 1:  # DenseNet's first layer: torch.cat([x], 1)
                return self.alias(node, tensors[0])
            return self.join(node, list(tensors), "concat")
        self.channels_first(node)
        if f is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            if first in self.grouped and (start, end) == (1, 2):
                return self.ungroup(node, first)
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
        first = node.args[0]
        if name in _ELEMENTWISE_METHODS and len(node.args) == 1:
            return self.emit(node, [self.one_input(node)], {"op": _ELEMENTWISE_METHODS[name]}, self.layout.get(first))
        if name in _BINARY_METHODS:
            return self.binary(node, _BINARY_METHODS[name])
        if name in ("contiguous", "clone") and first in self.grouped:
            self.grouped[node] = self.grouped[first]
            return None
        if name in ("contiguous", "clone") and first in self.affine:
            self.affine[node] = self.affine[first]
            return None
        if name == "permute":
            dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
            return self.permute(node, node.kwargs.get("dims", dims))
        if name == "transpose":
            return self.transpose(node, node.args[1:])
        if name == "unsqueeze":
            return self.unsqueeze(node, node.args[1] if len(node.args) > 1 else node.kwargs.get("dim"))
        if name in ("view", "reshape", "flatten") and first in self.grouped:
            return self.ungroup(node, first)
        if name in ("view", "reshape") and self.group_split(node):
            return None
        self.channels_first(node)
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
        self.emit(node, [self.source(node, a) for a in args], {"op": op})

    def param(self, node: torch.fx.Node, arg: Any) -> Optional[str]:
        """The state_dict name of a parameter/buffer argument (None for None)."""
        if arg is None:
            return None
        if not isinstance(arg, torch.fx.Node) or arg not in self.params:
            raise self.fail(node, f"reads {arg!r} as a weight: it must be a parameter or buffer of the model")
        return self.params[arg]

    def binary(self, node: torch.fx.Node, op: str) -> None:
        """x + y, x - y, x * y, x / y with numpy broadcasting: of two computed tensors, or of one
        and a parameter/buffer (the constant operand: `x op w`; `w * x` and `w + x` too)."""
        if len(node.args) != 2 or node.kwargs:
            raise self.fail(node, f"only `x {op} y` of two operands is supported (no alpha, out or rounding_mode)")
        a, b = node.args
        if any(isinstance(t, torch.fx.Node) and t in self.affine for t in (a, b)):
            return self.affine_op(node, op, a, b)
        tensors = [t for t in (a, b) if isinstance(t, torch.fx.Node) and t not in self.params]
        consts = [t for t in (a, b) if isinstance(t, torch.fx.Node) and t in self.params]
        out = self.shape(node)
        if len(tensors) == 2:
            la, lb = (self.layout.get(t) for t in tensors)
            sa, sb = (self.shape(t) for t in tensors)
            if la != lb:
                raise self.fail(node, "mixes a channels-last and a channels-first tensor")
            if len(sa) != len(sb) or len(sa) not in (2, 4):
                raise self.fail(node, f"shapes {list(sa)} and {list(sb)}: netwalk broadcasts [batch, C, H, W] with "
                                      "[batch, C, H, W] or [batch, N] with [batch, N]")
            return self.emit(node, [self.source(node, t) for t in tensors], {"op": op}, la)
        if len(tensors) == 1 and len(consts) == 1:
            x, w = tensors[0], consts[0]
            if op in ("sub", "div") and a is w:
                raise self.fail(node, f"`w {op} x` with the parameter first is not supported (netwalk computes x {op} w)")
            xs, ws = self.shape(x), tuple(self.shapes[w.name])
            if out != xs:
                raise self.fail(node, f"the parameter {list(ws)} broadcasts {list(xs)} to {list(out)}: it may not grow x")
            fits = (len(ws) == 1 and len(xs) == 2) or (len(ws) == 3 and len(xs) == 4 and not self.is_nhwc(x))
            if not fits:
                raise self.fail(node, f"a parameter of shape {list(ws)} with {list(xs)}: netwalk takes constants of "
                                      "3 dims ([C, 1, 1]-like) for channels-first maps and of 1 dim for vectors")
            return self.emit(node, [self.source(node, x)], {"op": op, "constant": list(ws), "weight": self.params[w]},
                             self.layout.get(x))
        raise self.fail(node, f"`x {op} <number>` is not supported: netwalk's {op} takes two tensors, or a tensor "
                              "and a parameter of the model")

    def affine_op(self, node: torch.fx.Node, op: str, a: Any, b: Any) -> None:
        """A number times/plus a channel of the input (the start of transform_input)."""
        if isinstance(a, torch.fx.Node) and a in self.affine and isinstance(b, (int, float)):
            x, k = a, float(b)
        elif isinstance(b, torch.fx.Node) and b in self.affine and isinstance(a, (int, float)) and op in ("add", "mul"):
            x, k = b, float(a)
        else:
            raise self.fail(node, "channels of the input may only be scaled and shifted by numbers")
        channels, scale, shift, squeezed = self.affine[x]
        if op == "add":
            shift = [v + k for v in shift]
        elif op == "sub":
            shift = [v - k for v in shift]
        elif op == "mul":
            scale, shift = [v * k for v in scale], [v * k for v in shift]
        else:
            scale, shift = [v / k for v in scale], [v / k for v in shift]
        self.affine[node] = (channels, scale, shift, squeezed)

    def unsqueeze(self, node: torch.fx.Node, dim: Any) -> None:
        first = node.args[0]
        if first in self.affine and self.affine[first][3] and dim == 1:
            channels, scale, shift, _ = self.affine[first]
            self.affine[node] = (channels, scale, shift, False)
            return None
        raise self.fail(node, "is not supported by netwalk-model/1")

    def fold_input_affine(self, node: torch.fx.Node, pieces: List[torch.fx.Node]) -> None:
        """torch.cat of the input's channels, each scaled and shifted by numbers (GoogLeNet's and
        Inception's transform_input): folded into netwalk's input normalization."""
        channels: List[int] = []
        scale: List[float] = []
        shift: List[float] = []
        for p in pieces:
            ch, sc, sh, squeezed = self.affine[p]
            if squeezed:
                raise self.fail(node, "concatenates an input channel without its channel dimension")
            channels, scale, shift = channels + ch, scale + sc, shift + sh
        n = self.shape(self.placeholder)[1]
        users_ok = all(u in self.affine for u in self.placeholder.users)
        if channels != list(range(n)) or not users_ok or self.input_affine is not None:
            raise self.fail(node, "rearranges the input's channels: netwalk only folds a per-channel scale and shift "
                                  "of the input, in channel order, into its normalization")
        if any(v == 0.0 for v in scale):
            raise self.fail(node, "scales an input channel by 0")
        self.input_affine = (scale, shift)
        self.value[node] = self.input_name

    def getitem(self, node: torch.fx.Node) -> None:
        """A piece of x.chunk/x.split along the channels, x[:, a:b] (slice), or x[:, c] of the input
        (the start of transform_input)."""
        base, idx = node.args[0], node.args[1]
        if isinstance(base, torch.fx.Node) and base.name in self.pieces and isinstance(idx, int):
            tensor = base.args[0]
            dim = base.args[2] if len(base.args) > 2 else base.kwargs.get("dim", 0)
            shape = self.shape(tensor)
            if len(shape) != 4 or not isinstance(dim, int) or dim % 4 != 1 or self.is_nhwc(tensor):
                raise self.fail(node, f"splits {list(shape)} along dim {dim}: netwalk slices channels (dim=1)")
            sizes = [p[1] for p in self.pieces[base.name]]
            start = sum(sizes[:idx])
            return self.slice(node, tensor, start, start + sizes[idx])
        shape = self.shape(base)
        if isinstance(idx, tuple) and len(idx) == 2 and idx[0] == slice(None) and len(shape) == 4:
            if isinstance(idx[1], int) and base is self.placeholder:
                c = idx[1] % shape[1]
                self.affine[node] = ([c], [1.0], [0.0], True)
                return None
            if isinstance(idx[1], slice) and idx[1].step in (None, 1) and not self.is_nhwc(base):
                start, end, _ = idx[1].indices(shape[1])
                return self.slice(node, base, start, end)
        raise self.fail(node, f"indexing {list(shape)} with {idx!r} is not supported: netwalk slices channels, x[:, a:b]")

    def slice(self, node: torch.fx.Node, tensor: torch.fx.Node, start: int, end: int) -> None:
        if (start, end) == (0, self.shape(tensor)[1]):
            return self.alias(node, tensor)
        self.emit(node, [self.source(node, tensor)], {"op": "slice", "start": start, "end": end})

    def permute(self, node: torch.fx.Node, dims: Any) -> None:
        x = node.args[0]
        shape = self.shape(x)
        dims = tuple(int(d) % len(shape) for d in dims) if isinstance(dims, (tuple, list)) else None
        if x in self.grouped and dims == (0, 2, 1, 3, 4):
            return self.transpose(node, (1, 2))
        if dims == (0, 2, 3, 1) and len(shape) == 4 and not self.is_nhwc(x):
            return self.alias(node, x, "nhwc")
        if dims == (0, 3, 1, 2) and self.is_nhwc(x):
            return self.alias(node, x, None)
        raise self.fail(node, f"permuting {list(shape)} by {dims} is not supported: netwalk follows (0, 2, 3, 1) to "
                              "channels-last and (0, 3, 1, 2) back, and (0, 2, 1, 3, 4) of channel groups")

    def transpose(self, node: torch.fx.Node, dims: Any) -> None:
        x = node.args[0]
        dims = tuple(dims)
        if x in self.grouped and self.grouped[x][0] == "groups" and len(dims) == 2 and sorted(d % 5 for d in dims) == [1, 2]:
            _, groups, src, shape = self.grouped[x]
            self.grouped[node] = ("shuffled", groups, src, shape)
            return None
        raise self.fail(node, f"transposing dims {dims} of {list(self.shape(x))} is not supported: netwalk "
                              "transposes only channel groups, [N, g, C/g, H, W] dims 1 and 2 (channel shuffle)")

    def group_split(self, node: torch.fx.Node) -> bool:
        """x.view(N, g, C/g, H, W) of a [N, C, H, W] map: the first step of a channel shuffle."""
        x = node.args[0]
        src, out = self.shape(x), self.shape(node)
        if (len(src) == 4 and len(out) == 5 and out[0] == src[0] and out[1] * out[2] == src[1]
                and out[3:] == src[2:] and not self.is_nhwc(x)):
            self.grouped[node] = ("groups", out[1], self.source(node, x), src)
            return True
        return False

    def ungroup(self, node: torch.fx.Node, x: torch.fx.Node) -> None:
        """Channel groups viewed back as [N, C, H, W]: a channel_shuffle after the transpose."""
        kind, groups, src, shape = self.grouped[x]
        if self.shape(node) != shape:
            raise self.fail(node, f"reshapes channel groups to {list(self.shape(node))}: netwalk takes them back to "
                                  f"{list(shape)} only")
        if kind == "groups":
            self.value[node] = src
            return None
        self.emit(node, [src], {"op": "channel_shuffle", "groups": groups})

    def layer_norm(self, node: torch.fx.Node) -> None:
        """F.layer_norm over the channels of a channels-last tensor: netwalk's layernorm."""
        x = node.args[0]
        names = ["normalized_shape", "weight", "bias", "eps"]
        kw = dict(zip(names, node.args[1:]))
        kw.update(node.kwargs)
        shape = self.shape(x)
        if not self.is_nhwc(x) or tuple(kw.get("normalized_shape", ())) != (shape[-1],):
            raise self.fail(node, f"layer_norm over {kw.get('normalized_shape')} of {list(shape)} is not supported: "
                                  "netwalk's layernorm normalizes the channels at each position (channels-last, "
                                  "after permute(0, 2, 3, 1))")
        if kw.get("weight") is None or kw.get("bias") is None:
            raise self.fail(node, "layer_norm without weight and bias is not supported")
        layer = {"op": "layernorm", "eps": float(kw.get("eps", 1e-5)),
                 "weight": self.param(node, kw.get("weight")), "bias": self.param(node, kw.get("bias"))}
        self.emit(node, [self.source(node, x)], layer, "nhwc", base=self.owner(layer["weight"]))

    def owner(self, param: Optional[str]) -> Optional[str]:
        """The module path of a parameter (`features.0.1` of `features.0.1.weight`): the name of a
        functional layer that reads its module's parameters (F.layer_norm in LayerNorm2d), when free."""
        if param is None or "." not in param:
            return None
        path = param.rsplit(".", 1)[0]
        return path if path not in self.used else None


def _trace(model: nn.Module, x: torch.Tensor) -> Tuple[torch.fx.GraphModule, Dict[str, Tuple[int, ...]],
                                                     Dict[str, List[Tuple[int, ...]]]]:
    """The model's fx graph (traced for input `x`, see _Tracer), the shape of every tensor-valued
    node and the shapes of every node that gives a tuple of tensors (x.chunk(2, 1))."""
    try:
        graph = trace(model, x).graph
    except Exception as e:  # torch.fx raises many kinds (TraceError, TypeError, ...)
        raise ExportError(f"cannot trace the model ({type(model).__name__}) with torch.fx: {e}; its "
                          "forward must be a straight chain of its modules (no data-dependent control flow)") from e
    gm = torch.fx.GraphModule(model, graph)
    shapes: Dict[str, Tuple[int, ...]] = {}
    pieces: Dict[str, List[Tuple[int, ...]]] = {}

    class _Shapes(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            result = super().run_node(n)
            if isinstance(result, torch.Tensor):
                shapes[n.name] = tuple(result.shape)
            elif isinstance(result, (tuple, list)) and result and all(isinstance(t, torch.Tensor) for t in result):
                pieces[n.name] = [tuple(t.shape) for t in result]
            return result

    with torch.no_grad():
        _Shapes(gm).run(x)
    return gm, shapes, pieces


def trace(model: nn.Module, x: torch.Tensor) -> torch.fx.GraphModule:
    """The model's torch.fx graph as the exporter sees it, specialized to the input `x`'s shape
    (sizes are constants; identities in eval mode, such as Dropout and StochasticDepth, are left
    out). torch.fx errors propagate."""
    tracer = _Tracer(x)
    graph = tracer.trace(model)
    for n in graph.nodes:
        n.meta.pop("netwalk_value", None)
    return torch.fx.GraphModule(model, graph)


def _convert(model: nn.Module, shape: Tuple[int, ...], input_name: str) -> _Graph:
    """Traces `model` (in eval mode) for one input of `shape` and builds its netwalk layers."""
    param = next(model.parameters(), None)
    # a seeded random example (not zeros, under which many operations look like identities)
    x = torch.rand((1,) + shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = x.to(dtype=param.dtype if param is not None else torch.float32,
             device=param.device if param is not None else "cpu")
    gm, shapes, pieces = _trace(model, x)
    graph = _Graph(model, gm, shapes, input_name, pieces)
    graph.build()
    return graph


def _input_shape(input_shape: Sequence[int]) -> Tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ExportError(f"input_shape must be (C, H, W) or (N,), got {tuple(input_shape)}")
    return shape


def _normalization(graph: _Graph, shape: Tuple[int, ...], mean: Optional[Sequence[float]],
                   std: Optional[Sequence[float]]) -> Tuple[Optional[List[float]], Optional[List[float]]]:
    """netwalk's input mean/std: the given ones, with the model's own per-channel scale and shift
    of its input (transform_input) folded in: x' = (x - m) / s, then a * x' + b, is
    (x - (m - b s / a)) / (s / a)."""
    m = _per_channel("mean", mean, shape[0])
    s = _per_channel("std", std, shape[0])
    if graph.input_affine is None:
        return m, s
    scale, shift = graph.input_affine
    c = len(scale)
    m = (m * c if len(m) == 1 else m) if m is not None else [0.0] * c
    s = (s * c if len(s) == 1 else s) if s is not None else [1.0] * c
    return ([mi - b * si / a for mi, si, a, b in zip(m, s, scale, shift)],
            [si / a for si, a in zip(s, scale)])


def reference_activations(model: nn.Module, input_shape: Sequence[int], raw: torch.Tensor, *,
                          mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                          input_name: str = "input", dtype: torch.dtype = torch.float64) -> Dict[str, torch.Tensor]:
    """What netwalk should compute for the raw (unnormalized) input `raw` ([C, H, W] or [N]):
    every layer of the export, named as its layer, as PyTorch computes it (in `dtype`, on a copy
    of the model), in netwalk's layout (no batch dimension, channels first), as f32; and
    `__output__`, model(x) itself."""
    import copy
    shape = _input_shape(input_shape)
    m = copy.deepcopy(model).to(dtype).eval()
    graph = _convert(m, shape, input_name)
    x = raw.to(dtype).reshape((1,) + shape)
    if mean is not None or std is not None:
        mv = torch.tensor(_per_channel("mean", mean, shape[0]) or [0.0], dtype=dtype)
        sv = torch.tensor(_per_channel("std", std, shape[0]) or [1.0], dtype=dtype)
        if len(shape) == 3:
            mv, sv = mv.view(-1, 1, 1), sv.view(-1, 1, 1)
        x = (x - mv) / sv
    outs: Dict[str, torch.Tensor] = {}

    class _Record(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            r = super().run_node(n)
            if isinstance(r, torch.Tensor):
                outs[n.name] = r.detach().clone()  # before any in-place op changes it
            return r

    with torch.no_grad():
        _Record(graph.gm).run(x)
        result = {"__output__": m(x)[0].float().contiguous()}
    for layer, (node, how) in graph.refs.items():
        v = outs[node][0]
        if how == "nhwc":
            v = v.permute(2, 0, 1)
        elif how == "map":
            v = v[:, None, None]
        result[layer] = v.float().contiguous()
    return result


# ----------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------

# models exported with tensors beside their state_dict (a channels-last Linear's weight as a 1x1
# conv's): name -> (state_dict key, shape); checkpoints of the model write them too
_DERIVED: "weakref.WeakKeyDictionary[nn.Module, Dict[str, Tuple[str, Tuple[int, ...]]]]" = weakref.WeakKeyDictionary()


def _state_tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The state_dict as safetensors stores it: floating tensors as contiguous f32 copies (no
    shared storage), other tensors (BatchNorm's num_batches_tracked) as they are; and the
    tensors the export derived from them (see _DERIVED)."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        out[k] = (v.float() if v.is_floating_point() else v).contiguous().clone()
    for name, (key, shape) in _DERIVED.get(model, {}).items():
        out[name] = out[key].reshape(shape).contiguous().clone()
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
    shape = _input_shape(input_shape)
    out = Path(out_dir)
    was_training = model.training
    model.eval()
    try:
        graph = _convert(model, shape, input_name)
        layers, gm, shapes = graph.layers, graph.gm, graph.shapes
        if graph.derived:
            _DERIVED[model] = dict(graph.derived)
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
    for key, v in zip(("mean", "std"), _normalization(graph, shape, mean, std)):
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
