#!/usr/bin/env bash
# Issue 14's speed goal: torchvision's 18 classification families at full size (224x224,
# Inception v3 299x299), exported to ONNX by tools/onnx_zoo.py (random init), each timed by
# `netwalk bench forward model.onnx` against onnxruntime on the same file and thread count
# (every layer an output, and the last layer only). Two-thread runs are pinned to two cores.
#
#   tools/zoo_bench.sh NETWALK OUT [THREADS...]      (default threads: 16 2)
#
# NETWALK is the netwalk binary, OUT a scratch folder (the .onnx files, several GB). One line a
# model and thread count goes to stdout, "<model> t<threads>: <bench forward's lines joined by |>".
set -uo pipefail
bin=$1
out=$2
shift 2
threads=${*:-16 2}
models=${ZOO_MODELS:-"alexnet vgg11_bn vgg16 resnet18 resnet50 resnext50_32x4d wide_resnet50_2 squeezenet1_1
googlenet inception_v3 densenet121 mobilenet_v2 mobilenet_v3_small shufflenet_v2_x0_5 mnasnet0_5
efficientnet_b0 regnet_y_400mf convnext_tiny"}
here=$(cd "$(dirname "$0")" && pwd)
for m in $models; do
  size=224
  [ "$m" = inception_v3 ] && size=299
  if ! python3 "$here/onnx_zoo.py" "$m" --size $size --out "$out/$m" --no-torch --no-reference --opset "${ZOO_OPSET:-13}" >"$out/$m.export.log" 2>&1; then
    echo "$m: export failed: $(tail -1 "$out/$m.export.log")"
    continue
  fi
  for t in $threads; do
    pin=()
    if [ "$t" -le 2 ] && command -v taskset >/dev/null; then pin=(taskset -c 0,1); fi
    iters=${ZOO_ITERS:-$([ "$t" -le 2 ] && echo 10 || echo 30)}
    line=$(RAYON_NUM_THREADS=$t "${pin[@]}" "$bin" bench forward "$out/$m/model.onnx" --iters "$iters" 2>&1 | tr '\n' '|')
    echo "$m t$t: $line"
  done
  rm -rf "$out/$m"
done
