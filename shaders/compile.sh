#!/usr/bin/env bash
# Compiles every shaders/*.vert, *.frag and *.comp to SPIR-V beside it (or into OUT_DIR), with the flags the
# committed .spv files were built with. tests/render.rs (shaders_are_fresh) runs it into a temporary
# folder and compares. Usage: shaders/compile.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-.}"
for f in *.vert *.frag *.comp; do
  glslc --target-env=vulkan1.3 -O -o "$out/$f.spv" "$f"
done
