#!/usr/bin/env python3
"""The PyTorch side of tests/pytorch.rs: builds random models with torch, exports them with
tools/netwalk_torch.py, and writes PyTorch's own outputs for netwalk to be compared against.

    layers OUT [CASE...]
                    per case (all, or those named) OUT/<case>/: the exported model, input.safetensors (`input`,
                    the raw [C, H, W] input netwalk normalizes itself) and expected.safetensors
                    (every layer's PyTorch output in float64 arithmetic, named by the layer,
                    without the batch dimension; `__output__`: model(x) itself)
    train MODEL WATCH
                    exports a small CNN to MODEL, then trains it on random data with a
                    CheckpointWriter writing into WATCH (a short pause between steps, so a
                    watcher sees files arrive), leaves a half-written `.tmp` file there as a
                    writer killed mid-save would, and writes MODEL/manifest.json: each
                    checkpoint's file, label, step, train_loss and heldout_accuracy as written,
                    and MODEL/final.safetensors (`input`, and `output`: the trained model's output)
    unsupported     tries models netwalk cannot express; prints one line per case,
                    `<expected module>\\t<error message>`, and fails if one exports
    bad_model       (a factory for the CLI test: a MaxPool2d with dilation=2)
"""

import json
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netwalk_torch  # noqa: E402


def randomize_batchnorm(model: nn.Module) -> None:
    """Random affine parameters and running statistics, so eval-mode batchnorm is not ~identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                if m.weight is not None:
                    m.weight.normal_(1.0, 0.3)
                    m.bias.normal_(0.0, 0.3)


def sequential_cnn() -> nn.Module:
    """A nested nn.Sequential covering conv (stride, padding, groups, dilation, no bias), bn,
    relu/sigmoid/tanh, max/avg pooling with padding, flatten, dropout, linear, softmax."""
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8, eps=1e-3),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4),      # 16 -> 8
        nn.Sigmoid(),
        nn.MaxPool2d(3, stride=2, padding=1),                   # 8 -> 4
        nn.Conv2d(8, 12, (3, 1), padding=(2, 0), dilation=(2, 1), bias=False),
        nn.BatchNorm2d(12),
        nn.Tanh(),
        nn.AvgPool2d(3, stride=1, padding=1),                   # counts the padding
        nn.Dropout2d(0.5),
    )
    classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(12 * 4 * 4, 16), nn.ReLU(),
                               nn.Identity(), nn.Linear(16, 10), nn.Softmax(dim=1))
    return nn.Sequential(features, classifier)


class ResidualCNN(nn.Module):
    """A module whose forward chains its children with a residual add, a channel concat,
    functional activations, adaptive pooling, a channel softmax and torch.flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 5, stride=1, padding=2), nn.BatchNorm2d(6), nn.ReLU())
        self.block = nn.Conv2d(6, 6, 3, padding="same")
        self.squeeze = nn.Conv2d(12, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(3)      # 12x12 -> 3x3: avgpool2d kernel 4
        self.channels = nn.Softmax(dim=1)        # over channels
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stem(x)
        b = F.relu(self.block(a) + a)
        c = torch.cat([a, b], dim=1)
        d = self.pool(self.squeeze(c).tanh())
        e = self.gap(self.channels(d))
        return torch.sigmoid(self.fc(torch.flatten(e, 1)))


class ActivationsCNN(nn.Module):
    """Every activation netwalk has beyond relu/sigmoid/tanh, as modules and as functions (GELU
    both exact and tanh-approximated), on pre-activations wide enough to reach their bends."""

    def __init__(self) -> None:
        super().__init__()
        one = lambda: nn.Conv2d(6, 6, 1)  # noqa: E731
        self.stem = nn.Sequential(
            nn.Conv2d(2, 6, 3, padding=1), nn.ReLU6(),
            nn.Conv2d(6, 6, 3, padding=1), nn.Hardswish(),
            one(), nn.Hardsigmoid(),
            one(), nn.SiLU(),
            one(), nn.GELU(),
            one(), nn.GELU(approximate="tanh"),
            one(), nn.LeakyReLU(0.2),
            one(), nn.ELU(alpha=0.7),
            one(), nn.Hardtanh(-0.5, 0.75),
        )
        self.conv = nn.Conv2d(6, 6, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(54, 5)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.mul_(6.0)   # pre-activations of several units: past +-3 and 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.conv(self.stem(x))
        parts = [F.relu6(b), F.hardtanh(b, -1.0, 2.0), F.hardswish(b), F.hardsigmoid(b), F.silu(b), F.gelu(b),
                 F.gelu(b, approximate="tanh"), F.leaky_relu(b, 0.1), F.elu(b, alpha=1.5)]
        return F.elu(self.fc(torch.flatten(self.gap(torch.cat(parts, dim=1)), 1)))


class PoolingCNN(nn.Module):
    """Every pooling form on a 13x13 map (odd, so ceil mode and clipped windows matter): modules and
    functions, ceil mode, count_include_pad both ways, adaptive 5x5, and means over (2, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.max_ceil = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.max_ceil0 = nn.MaxPool2d(2, ceil_mode=True)
        self.avg_ceil = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)
        self.avg_ceil_nopad = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.avg_ceil0 = nn.AvgPool2d(2, ceil_mode=True)
        self.adaptive = nn.AdaptiveAvgPool2d(5)
        self.fc = nn.Linear(4 * 5 * 5 + 4 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.conv(x)
        a = self.adaptive(b)
        parts = [
            self.max_ceil(b).mean((2, 3)),                                   # keepdim=False
            torch.mean(self.max_ceil0(b), (2, 3), keepdim=True).flatten(1),
            self.avg_ceil(b).mean(dim=(-2, -1)),
            torch.mean(self.avg_ceil_nopad(b), dim=(2, 3)),
            self.avg_ceil0(b).mean((2, 3)),
            F.max_pool2d(b, [2, 3], stride=[3, 2], padding=1, ceil_mode=True).mean((2, 3)),
            F.avg_pool2d(b, 3, 2, 1, True, False).mean((2, 3)),
            F.adaptive_avg_pool2d(b, (3, 4)).mean((2, 3)),
            torch.flatten(a, 1),
        ]
        return self.fc(torch.cat([parts[-1]] + parts[:-1], dim=1))


class PatternsCNN(nn.Module):
    """The patterns of issue 14's CNNs in one model: an input transform folded into the
    normalization, PReLU, a squeeze-and-excitation gate (mul by [C, 1, 1]), chunk and a channel
    shuffle, a channel slice, sub/div of tensors and by a parameter, a ConvNeXt block
    (channels-last LayerNorm, Linear, GELU, layer scale) and a functional LayerNorm2d."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.prelu = nn.PReLU(8)
        self.se_reduce = nn.Conv2d(8, 2, 1)
        self.se_expand = nn.Conv2d(2, 8, 1)
        self.branch = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.side = nn.Conv2d(4, 8, 1)
        self.scale = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.offset = nn.Parameter(torch.rand(8, 1, 1) - 0.5)
        self.dwconv = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.pw1 = nn.Linear(8, 16)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(16, 8)
        self.gamma = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.ln_weight = nn.Parameter(torch.rand(8) + 0.5)
        self.ln_bias = nn.Parameter(torch.rand(8) - 0.5)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.unsqueeze(x[:, c], 1) * (0.5 + c) + (0.1 * c - 0.1) for c in range(3)], 1)
        x = self.prelu(self.stem(x))
        s = torch.sigmoid(self.se_expand(F.relu(self.se_reduce(F.adaptive_avg_pool2d(x, 1)))))
        x = x * s
        a, b = x.chunk(2, dim=1)
        x = torch.cat((a, self.branch(b)), dim=1)
        n, c, h, w = x.size()
        x = torch.transpose(x.view(n, 2, c // 2, h, w), 1, 2).contiguous().view(n, -1, h, w)
        x = x - self.side(x[:, 2:6])
        x = (x - self.offset) / self.scale
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pw2(self.act(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)
        x = x + self.gamma * y
        x = F.layer_norm(x.permute(0, 2, 3, 1), (8,), self.ln_weight, self.ln_bias, 1e-6).permute(0, 3, 1, 2)
        return self.fc(x.mean((2, 3))).softmax(dim=1)


def reference_outputs(model: nn.Module, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Every traced node's output, named as the exporter names layers (module path for modules,
    the fx node name otherwise); computed by PyTorch itself."""
    gm = netwalk_torch.trace(model, x)
    outs: Dict[str, torch.Tensor] = {}

    class Record(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node):
            r = super().run_node(n)
            if isinstance(r, torch.Tensor) and n.op in ("call_module", "call_function", "call_method"):
                outs[str(n.target) if n.op == "call_module" else n.name] = r.clone()  # before in-place ops
                if n.target in (torch.mean, "mean") and r.dim() == 2:  # the exporter's map before flattening
                    outs[f"{n.name}_map"] = r[:, :, None, None].clone()
            return r

    with torch.no_grad():
        Record(gm).run(x)
        outs["__output__"] = model(x)
    return outs


def cmd_layers(out: Path, *only: Path) -> None:
    torch.manual_seed(7)
    cases = {
        "sequential": (sequential_cnn(), (3, 16, 16), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        "residual": (ResidualCNN(), (1, 12, 12), [0.5], [0.25]),
        "activations": (ActivationsCNN(), (2, 8, 8), [0.5, 0.5], [0.5, 0.5]),
        "pooling": (PoolingCNN(), (2, 13, 13), [0.5, 0.5], [0.5, 0.5]),
        "patterns": (PatternsCNN(), (3, 9, 9), [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]),
    }
    for case, (model, shape, mean, std) in cases.items():
        if only and case not in {str(o) for o in only}:
            continue
        randomize_batchnorm(model)
        model.eval()
        d = out / case
        netwalk_torch.export(model, shape, d, name=case, mean=mean, std=std)
        raw = torch.rand(shape)
        save_file({"input": raw.contiguous()}, str(d / "input.safetensors"))
        m = torch.tensor(mean, dtype=torch.float64).view(-1, 1, 1)
        s = torch.tensor(std, dtype=torch.float64).view(-1, 1, 1)
        x = ((raw.double() - m) / s).unsqueeze(0)
        if case == "patterns":  # channels-last values: netwalk's layout from the exporter's own map
            outs = {k: v[None] for k, v in netwalk_torch.reference_activations(model, shape, raw, mean=mean, std=std).items()}
        else:
            outs = reference_outputs(model.double(), x)
        save_file({k: v[0].float().contiguous() for k, v in outs.items()}, str(d / "expected.safetensors"))
        print(f"{case}: {len(outs) - 1} outputs")


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 3), nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def cmd_train(model_dir: Path, watch: Path) -> None:
    torch.manual_seed(3)
    model = SmallCNN()
    images = torch.rand(24, 1, 8, 8)
    labels = torch.randint(0, 3, (24,))
    netwalk_torch.export(model, (1, 8, 8), model_dir, classes=["a", "b", "c"], samples=images[:6],
                         labels=labels[:6])
    writer = netwalk_torch.CheckpointWriter(model, watch, every=3, steps_per_epoch=6)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    manifest = []

    def record(path, label, step, loss, accuracy):
        manifest.append({"file": path.name, "label": label, "step": step, "train_loss": loss,
                         "heldout_accuracy": accuracy})

    record(writer.save("init"), "init", 0, None, None)
    losses = []
    for step in range(1, 10):
        model.train()
        i = (step * 4) % 24
        out = model.classifier[:-1](model.features(images[i:i + 4]))   # logits
        loss = F.cross_entropy(out, labels[i:i + 4])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        accuracy = None
        if step % 3 == 0:
            model.eval()
            with torch.no_grad():
                accuracy = (model(images[:6]).argmax(1) == labels[:6]).float().mean().item()
        path = writer.step(loss=loss.item(), accuracy=accuracy)
        if path is not None:
            record(path, f"step {step}", step, sum(losses) / len(losses), accuracy)
            losses = []
        time.sleep(0.25)
    # A writer killed in the middle of a save leaves this behind: never to be read.
    final = writer.dir / f"ckpt-{writer.count:06d}.safetensors"
    tmp = final.with_name(final.name + ".tmp")
    tmp.write_bytes(writer.written[-1].read_bytes()[:100])
    model.eval()
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        save_file({"input": x[0].contiguous(), "output": model(x)[0].contiguous()},
                  str(model_dir / "final.safetensors"))
    (model_dir / "manifest.json").write_text(json.dumps({"checkpoints": manifest, "tmp": tmp.name}, indent=1))
    print(f"{len(manifest)} checkpoints in {watch}")


def bad_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, dilation=2)))


def cmd_unsupported() -> None:
    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y * 2.0  # a number operand: netwalk's mul takes tensors and parameters

    cases = [
        ("1.1", bad_model()),
        ("features.1", nn.Sequential(OrderedDict(features=nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4))))),
        ("2", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AvgPool2d(3, padding=1, divisor_override=2))),
        ("0", nn.Sequential(nn.Conv2d(3, 4, 3, padding_mode="reflect", padding=1))),
        ("2", nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Softmax(dim=0))),
        ("gate", nn.Sequential(OrderedDict(gate=Gated()))),
    ]
    failed = False
    for expected, model in cases:
        try:
            with tempfile.TemporaryDirectory() as d:
                netwalk_torch.export(model, (3, 8, 8), d)
        except netwalk_torch.ExportError as e:
            print(f"{expected}\t{e}")
        else:
            print(f"{expected}\texported, but netwalk cannot run it", file=sys.stderr)
            failed = True
    if failed:
        sys.exit(1)


def main() -> None:
    cmd, args = sys.argv[1], [Path(a) for a in sys.argv[2:]]
    if cmd == "layers":
        cmd_layers(*args)
    elif cmd == "train":
        cmd_train(*args)
    elif cmd == "unsupported":
        cmd_unsupported()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
