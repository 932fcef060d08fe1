#!/usr/bin/env python3
"""Time a netwalk model under onnxruntime (CPU), as a baseline for netwalk's own forward pass.

    python3 tools/ort_bench.py MODEL [--iters N] [--warmup W] [--threads T] [--seed S]

MODEL is a netwalk model directory (holding model.json) or a model.json path,
converted with tools/netwalk_onnx.py (raw input [1, C, H, W], normalization in
the graph, output = the last layer), or an .onnx file, run as it is (with
--all-layers: every float tensor a node makes added as a graph output, from ONNX
shape inference; dynamic input dimensions: batch 1, the rest from --input-shape
C,H,W, NCHW or NHWC as the file's fixed dimensions say).  It is loaded into an onnxruntime CPU session with
graph optimization level ALL and intra_op_num_threads = T (0: onnxruntime's
default), and run W times untimed then N times timed on one random U[0, 1) input
of the model's input shape (batch 1).  Prints exactly one line on stdout:

    onnxruntime median_ms=<float> p99_ms=<float> iters=<N> threads=<T> outputs=last|all
        source=onnx|netwalk outputs_n=<graph outputs> version=<ort version>

p99 is numpy's percentile (linear interpolation) of the N per-run wall times.
Exits 2 if onnxruntime cannot be imported, 1 if the model cannot be converted.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path


def load_onnx(path, all_layers):
    """An .onnx file as it is; with all_layers, every float tensor a node makes is an output."""
    import onnx
    m = onnx.load(path)  # external data beside it included
    if all_layers:
        inferred = onnx.shape_inference.infer_shapes(m)
        info = {v.name: v for v in inferred.graph.value_info}
        have = {o.name for o in m.graph.output}
        for node in m.graph.node:
            for name in node.output:
                v = info.get(name)
                if name and name not in have and v is not None and v.type.tensor_type.elem_type == 1:
                    m.graph.output.append(v)
                    have.add(name)
    return m


def input_dims(dims, input_shape):
    """Concrete input dimensions: fixed ones kept, a dynamic batch 1, others from C,H,W."""
    fixed = [d if isinstance(d, int) and d > 0 else None for d in dims]
    if all(d is not None for d in fixed):
        return fixed
    given = [int(v) for v in input_shape.split(",")] if input_shape else None
    if len(fixed) == 4 and given is not None and len(given) == 3:
        c, h, w = given
        for cand in ([1, c, h, w], [1, h, w, c]):
            if all(f is None or f == v for f, v in zip(fixed, cand)):
                return cand
    if len(fixed) == 2 and given is not None and len(given) == 1:
        return [1, given[0]]
    if fixed[0] is None and all(d is not None for d in fixed[1:]):
        return [1] + fixed[1:]
    raise ValueError(f"dynamic dimensions {list(dims)}: give --input-shape C,H,W")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory (with model.json), model.json, or an .onnx file")
    ap.add_argument("--input-shape", default=None,
                    help="C,H,W (or N) for an .onnx file's dynamic input dimensions")
    ap.add_argument("--iters", type=int, default=100, help="timed runs (default 100)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads; 0 = onnxruntime's default (default 0)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random input")
    ap.add_argument("--all-layers", action="store_true",
                    help="make every layer a graph output (what netwalk computes) instead of the last only")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.threads < 0:
        ap.error("--iters must be >= 1, --warmup and --threads >= 0")

    try:
        import onnxruntime as ort
    except Exception as e:  # ImportError, or a broken install failing on load
        print(f"ort_bench: onnxruntime is not importable ({e}); "
              "pip install -r tools/requirements.txt", file=sys.stderr)
        return 2

    import numpy as np
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import netwalk_onnx

    try:
        if args.model.lower().endswith(".onnx"):
            m = load_onnx(args.model, args.all_layers)
        else:
            m = netwalk_onnx.load_netwalk(args.model, all_layers=args.all_layers)
    except (netwalk_onnx.NetwalkError, OSError, ValueError) as e:
        print(f"ort_bench: {e}", file=sys.stderr)
        return 1

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = args.threads
    so.log_severity_level = 3  # errors only (keeps stderr quiet too)
    providers = ["CPUExecutionProvider"]
    if m.ByteSize() < netwalk_onnx.PROTO_LIMIT:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=providers)
    else:  # past protobuf's 2 GiB limit: load from a file with external data
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "model.onnx"
            netwalk_onnx.save(m, p)
            sess = ort.InferenceSession(str(p), so, providers=providers)
    del m

    inp = sess.get_inputs()[0]
    try:
        shape = input_dims(inp.shape, args.input_shape)
    except ValueError as e:
        print(f"ort_bench: {args.model}: input `{inp.name}`: {e}", file=sys.stderr)
        return 1
    x = np.random.default_rng(args.seed).random(shape, dtype=np.float32)
    feeds = {inp.name: x}
    out_names = [o.name for o in sess.get_outputs()]

    for _ in range(args.warmup):
        sess.run(out_names, feeds)
    times = np.empty(args.iters)
    clock = time.perf_counter
    for i in range(args.iters):
        t0 = clock()
        sess.run(out_names, feeds)
        times[i] = clock() - t0
    times *= 1e3

    print(f"onnxruntime median_ms={np.median(times):.4f} p99_ms={np.percentile(times, 99):.4f} "
          f"iters={args.iters} threads={args.threads} outputs={'all' if args.all_layers else 'last'} "
          f"source={'onnx' if args.model.lower().endswith('.onnx') else 'netwalk'} outputs_n={len(out_names)} "
          f"version={ort.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
