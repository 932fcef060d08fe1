#!/usr/bin/env python3
"""Generate the ONNX reader's fixtures (tests/onnx.rs): small ONNX models, each with
onnxruntime's value of every tensor, and broken files for the bad-input tests.

Usage (the venv scripts/test.sh builds: Debian's torch 1.13 + onnx 1.15 + onnxruntime 1.16):
    /var/tmp/netwalk-torch-venv/bin/python tools/make_onnx_fixtures.py [--out tests/fixtures/onnx]

Per case <name>: <name>.onnx, <name>.input.safetensors (tensor `input`, the raw input, [C,H,W]),
<name>.ort.safetensors (every tensor the graph computes, by ONNX name, batch dim kept).
"""

import argparse
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file


class TinyResNet(nn.Module):
    """conv/bn/relu, ceil-mode max pool, a residual add, global pool, linear, softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4)
        self.avg = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(x + self.conv2(x))
        x = self.avg(F.leaky_relu(self.conv3(x), 0.1))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.softmax(self.fc(x), dim=1)


class Mobile(nn.Module):
    """Depthwise conv, squeeze-excitation (mul by a [C,1,1] gate), SiLU/Hardswish decompositions,
    ReLU6 (Clip), ELU, PReLU, GELU (erf form), concat, mean over H and W."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.se1 = nn.Conv2d(12, 4, 1)
        self.se2 = nn.Conv2d(4, 12, 1)
        self.pw = nn.Conv2d(12, 6, 1)
        self.prelu = nn.PReLU(6)
        self.side = nn.Conv2d(12, 6, 1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = F.hardswish(self.stem(x))
        x = F.silu(self.dw(x))
        g = torch.sigmoid(self.se2(F.relu(self.se1(x.mean((2, 3), keepdim=True)))))
        x = x * g
        a = self.prelu(self.pw(x))
        b = F.elu(F.relu6(self.side(x)))
        x = F.gelu(torch.cat([a, b], 1))
        return self.fc(x.mean((2, 3)))


class Shuffle(nn.Module):
    """ShuffleNet's chunk, branch, concat and reshape–transpose–reshape channel shuffle."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        x = F.relu(self.conv(x))
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, F.relu(self.branch(b))], 1)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return self.head(x)


class NeXt(nn.Module):
    """ConvNeXt's block: depthwise 7x7, permute, LayerNorm, Linear, GELU, Linear, layer scale,
    permute back, residual."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(6, 6, 7, padding=3, groups=6)
        self.norm = nn.LayerNorm(6, eps=1e-6)
        self.fc1 = nn.Linear(6, 12)
        self.fc2 = nn.Linear(12, 6)
        self.gamma = nn.Parameter(torch.rand(6, 1, 1) + 0.5)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.gamma * y


class Seg(nn.Module):
    """An encoder–decoder: asymmetric pad, strided conv, transposed conv, nearest and bilinear
    upsampling, a skip concat."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 6, 3, stride=2)
        self.up = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.out = nn.Conv2d(7, 2, 1)

    def forward(self, x):
        y = F.relu(self.down(F.pad(x, (0, 1, 0, 1))))
        y = self.up(y)
        z = F.interpolate(y, scale_factor=2, mode="nearest")
        z = F.interpolate(z, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
        return self.out(torch.cat([z, x], 1))


def all_outputs(model_path, out_path):
    """The model with every node output as a graph output (for onnxruntime's reference values)."""
    m = onnx.load(str(model_path))
    m = onnx.shape_inference.infer_shapes(m)
    known = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in known:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                known.add(o)
    onnx.save(m, str(out_path))


def reference(out, name, onnx_path, x):
    """Write <name>.input.safetensors and <name>.ort.safetensors beside the model."""
    tmp = out / f".{name}.all.onnx"
    all_outputs(onnx_path, tmp)
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x[None].astype(np.float32)}
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, feed)
    tmp.unlink()
    tensors = {n: np.ascontiguousarray(v.astype(np.float32)) for n, v in zip(names, values) if v.dtype.kind == "f"}
    save_file(tensors, str(out / f"{name}.ort.safetensors"))
    save_file({"input": np.ascontiguousarray(x.astype(np.float32))}, str(out / f"{name}.input.safetensors"))


def export(out, name, module, shape, opset, **kw):
    torch.manual_seed(hash(name) % 1000)
    module.eval()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
        for b in module.buffers():
            if b.dtype.is_floating_point:
                b.uniform_(0.5, 1.5)
    x = torch.rand(1, *shape)
    path = out / f"{name}.onnx"
    torch.onnx.export(module, x, str(path), opset_version=opset, **kw)
    reference(out, name, path, x[0].numpy())
    return path


def nhwc_gemm(out):
    """A TensorFlow-style graph: NHWC input transposed, Conv with SAME_UPPER auto-pad, Gemm with
    transB = 0, MatMul + Add, an external-data initializer."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.uniform(-0.5, 0.5, (4, 3, 3, 3)).astype(np.float32), "w")
    b1 = numpy_helper.from_array(rng.uniform(-0.5, 0.5, (4 * 4 * 4, 6)).astype(np.float32), "gemm_b")
    b2 = numpy_helper.from_array(rng.uniform(-0.5, 0.5, (6, 3)).astype(np.float32), "mm_b")
    c2 = numpy_helper.from_array(rng.uniform(-0.5, 0.5, (3,)).astype(np.float32), "mm_c")
    shape = numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "flat_shape")
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["nchw", "w"], ["c"], strides=[2, 2], auto_pad="SAME_UPPER", name="conv/Conv2D"),
        helper.make_node("Relu", ["c"], ["r"], name="conv/Relu"),
        helper.make_node("Reshape", ["r", "flat_shape"], ["f"], name="flatten/Reshape"),
        helper.make_node("Gemm", ["f", "gemm_b"], ["g"], name="dense/MatMul"),
        helper.make_node("Tanh", ["g"], ["t"], name="dense/Tanh"),
        helper.make_node("MatMul", ["t", "mm_b"], ["m"], name="logits/MatMul"),
        helper.make_node("Add", ["m", "mm_c"], ["logits"], name="logits/BiasAdd"),
    ]
    graph = helper.make_graph(
        nodes,
        "nhwc",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 8, 8, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [w, b1, b2, c2, shape],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = out / "nhwc_gemm.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="nhwc_gemm.weights", size_threshold=256)
    x = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
    # The netwalk input is [C, H, W]: the reference is fed NHWC, the netwalk input CHW.
    reference(out, "nhwc_gemm", path, x)
    save_file({"input": np.ascontiguousarray(x.transpose(2, 0, 1))}, str(out / "nhwc_gemm.input.safetensors"))


def bad_files(out):
    """Broken models for tests/onnx.rs: each must give a one-line error naming the problem."""
    good = (out / "tiny_resnet.onnx").read_bytes()
    bad = out / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (bad / "text.onnx").write_text("this is not a model\n")
    m = onnx.load(str(out / "tiny_resnet.onnx"))
    no_init = onnx.ModelProto()
    no_init.CopyFrom(m)
    del no_init.graph.initializer[0]
    onnx.save(no_init, str(bad / "missing_initializer.onnx"))
    cyc = onnx.ModelProto()
    cyc.CopyFrom(m)
    nodes = list(cyc.graph.node)
    del cyc.graph.node[:]
    cyc.graph.node.extend(reversed(nodes))
    onnx.save(cyc, str(bad / "cycle.onnx"))
    unsup = onnx.ModelProto()
    unsup.CopyFrom(m)
    for n in unsup.graph.node:
        if n.op_type == "Relu":
            n.op_type = "Softplus"
            break
    onnx.save(unsup, str(bad / "unsupported_op.onnx"))
    absurd = onnx.ModelProto()
    absurd.CopyFrom(m)
    t = absurd.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20, 1 << 10])
    onnx.save(absurd, str(bad / "absurd_dims.onnx"))
    old = onnx.ModelProto()
    old.CopyFrom(m)
    old.opset_import[0].version = 6
    onnx.save(old, str(bad / "old_opset.onnx"))
    shutil.copy(out / "nhwc_gemm.onnx", bad / "missing_external_data.onnx")
    dyn = onnx.ModelProto()
    dyn.CopyFrom(m)
    for d in dyn.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "size"
    onnx.save(dyn, out / "dynamic.onnx")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/fixtures/onnx"))
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    export(out, "tiny_resnet", TinyResNet(), (3, 15, 15), 13)
    export(out, "mobile", Mobile(), (3, 12, 12), 13)
    export(out, "shuffle", Shuffle(), (3, 6, 6), 13)
    export(out, "next", NeXt(), (6, 5, 5), 17)
    export(out, "seg", Seg(), (3, 9, 9), 13)
    nhwc_gemm(out)
    # A timeline: the same architecture at two moments (weights differ).
    tl = out / "timeline"
    tl.mkdir(exist_ok=True)
    for i in range(2):
        torch.manual_seed(i)
        m = TinyResNet().eval()
        torch.onnx.export(m, torch.rand(1, 3, 15, 15), str(tl / f"epoch{i}.onnx"), opset_version=13)
    bad_files(out)


if __name__ == "__main__":
    main()
