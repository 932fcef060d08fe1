#!/usr/bin/env bash
# Runs every netwalk test on a Debian 12 machine as root, installing what the tests need.
# Usage: scripts/test.sh            (from anywhere inside the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
# protoc builds the ONNX reader's protobuf types (the candle-onnx crate).
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# The renderer tests: Vulkan loader, Mesa's lavapipe (CPU) driver, the validation layer, glslc.
ldconfig -p | grep 'libvulkan\.so\.1 ' >/dev/null || need_apt+=(libvulkan1)
[ -e /usr/include/vulkan/vulkan.h ] || need_apt+=(libvulkan-dev)
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
[ -e /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json ] || need_apt+=(vulkan-validationlayers)
command -v vulkaninfo >/dev/null || need_apt+=(vulkan-tools)
command -v glslc >/dev/null || need_apt+=(glslc)
command -v spirv-val >/dev/null || need_apt+=(spirv-tools)
# The window tests (tests/window.rs): an X server without a screen, and the X libraries winit loads.
command -v Xvfb >/dev/null || need_apt+=(xvfb)
for lib in libX11.so.6:libx11-6 libX11-xcb.so.1:libx11-xcb1 libXcursor.so.1:libxcursor1 libXi.so.6:libxi6 \
  libxkbcommon-x11.so.0:libxkbcommon-x11-0; do
  ldconfig -p | grep "${lib%%:*} " >/dev/null || need_apt+=("${lib##*:}")
done
# The PyTorch exporter tests (tests/pytorch.rs, tests/zoo.rs): Debian's torch 1.13 and torchvision
# 0.14 for /usr/bin/python3, without recommends (about 150 MB to download, 650 MB installed), and venv
# to add safetensors, onnx and onnxruntime from PyPI below.
need_torch=()
has_py_module() { /usr/bin/python3 -c "import importlib.util as u, sys; sys.exit(not u.find_spec('$1'))" 2>/dev/null; }
has_py_module torch || need_torch+=(python3-torch)
has_py_module torchvision || need_torch+=(python3-torchvision)
has_py_module ensurepip || need_torch+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ] || { [ ${#need_torch[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; }; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    if [ ${#need_apt[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    fi
    if [ ${#need_torch[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_torch[@]}"
    fi
  else
    echo "scripts/test.sh: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi
if ! command -v cargo >/dev/null; then
  echo "scripts/test.sh: cargo (Rust >= 1.85, edition 2024) is needed: install it with rustup" >&2
  exit 1
fi

# The XR tests (tests/xr.rs): a headless Monado 25 runtime, unpacked from Debian trixie packages into a
# cache folder once (needs root and the package mirror; tests/xr.rs runs the script again for its
# environment). Without it the XR tests skip, except under CI, where they fail.
if [ "$(id -u)" = 0 ]; then
  xr-config/setup-monado.sh >/dev/null || echo "scripts/test.sh: the OpenXR runtime could not be set up" >&2
fi

# safetensors, onnx and onnxruntime from PyPI (pinned, tools/requirements-torch.txt) in a venv that
# sees Debian's torch and torchvision, kept under /var/tmp between runs; tests/pytorch.rs runs
# tools/netwalk_torch.py with it, tests/zoo.rs tools/onnx_zoo.py. Without torch the PyTorch tests
# skip (without torchvision or onnxruntime the zoo tests), except under CI, where they fail.
torch_venv=/var/tmp/netwalk-torch-venv
pinned() { sed -n "s/^$1==//p" tools/requirements-torch.txt; }
venv_current() {
  "$torch_venv/bin/python" -c "import sys, safetensors, onnx, onnxruntime as ort
sys.exit(not (safetensors.__version__, onnx.__version__, ort.__version__) == tuple(sys.argv[1:]))" \
    "$(pinned safetensors)" "$(pinned onnx)" "$(pinned onnxruntime)" 2>/dev/null
}
if has_py_module torch && has_py_module ensurepip; then
  if ! venv_current; then
    rm -rf "$torch_venv"
    { /usr/bin/python3 -m venv --system-site-packages "$torch_venv" &&
      "$torch_venv/bin/pip" install -q --disable-pip-version-check -r tools/requirements-torch.txt; } ||
      echo "scripts/test.sh: safetensors, onnx and onnxruntime could not be installed into $torch_venv" >&2
  fi
  export NETWALK_TORCH_PYTHON="$torch_venv/bin/python"
else
  echo "scripts/test.sh: /usr/bin/python3 has no torch (Debian: python3-torch): the PyTorch tests will skip" >&2
fi

# Keep CI's build cache between runs when the machine is reused; a fresh machine builds from scratch.
if [ -n "${CI:-}" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR=/var/tmp/netwalk-ci-target
fi
# Tests unpack the embedded demo; give them a private cache folder.
export NETWALK_CACHE="${NETWALK_CACHE:-$(mktemp -d /tmp/netwalk-test-cache.XXXXXX)}"

# Formatting and lints first (issue 13): a badly formatted file or any clippy warning fails the run
# before the tests. rustup's default profile has both; add them where a minimal profile left them out.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --check
# The structure issue 13 set: gfx draws plain data (imports nothing of scene, nn, input or view), no
# source file over 1,000 lines, main.rs only parses and dispatches, no import cycles between files.
if grep -rnE "crate::(scene|nn|input|view)" src/gfx | grep -vE '^[^:]+:[0-9]+: *//'; then
  echo "scripts/test.sh: src/gfx must not import from scene, nn, input or view (above)" >&2
  exit 1
fi
long=$(find src tests -name '*.rs' -exec wc -l {} + | awk '$2 != "total" && $1 > 1000')
if [ -n "$long" ]; then
  echo "scripts/test.sh: source files over 1,000 lines: $long" >&2
  exit 1
fi
if [ "$(wc -l <src/main.rs)" -gt 600 ]; then
  echo "scripts/test.sh: src/main.rs is over 600 lines: it parses the command line and dispatches" >&2
  exit 1
fi
python3 scripts/import_cycles.py src
cargo clippy --locked --all-targets -- -D warnings 2>&1

cargo test --locked --all-targets 2>&1
