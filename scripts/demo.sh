#!/usr/bin/env bash
# Runs netwalk on the bundled MNIST demo model (Debian 12, as root or a user with cargo):
# model summary, held-out accuracy, one neuron explained, a rendered snapshot (netwalk-demo.png), then
# netwalk itself (XR, else a desktop window, else netwalk-overview.png).
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
# protoc builds the ONNX reader's protobuf types (the candle-onnx crate).
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
ldconfig -p | grep -q 'libvulkan\.so\.1 ' || need_apt+=(libvulkan1)
ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "scripts/demo.sh: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi
command -v cargo >/dev/null || { echo "scripts/demo.sh: cargo (Rust >= 1.85) is needed: install it with rustup" >&2; exit 1; }
cargo build --release --locked
nw=target/release/netwalk
"$nw" info
"$nw" eval
echo "--- what made output neuron 7 fire for sample 7 (a handwritten 7):"
"$nw" neuron --sample 7 --layer fc2 --index 7 --top 5
"$nw" snapshot --sample 7 --size 1280x720 --out netwalk-demo.png
echo "--- netwalk itself: in a headset when an OpenXR runtime and headset are there, else in a window,"
echo "    else (no display) an overview picture, netwalk-overview.png"
"$nw"
