#!/usr/bin/env bash
# Runs netwalk on the bundled MNIST demo model (Debian 12, as root or a user with cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cc >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential
fi
command -v cargo >/dev/null || { echo "scripts/demo.sh: cargo (Rust >= 1.85) is needed: install it with rustup" >&2; exit 1; }
cargo build --release --locked
nw=target/release/netwalk
"$nw" info
"$nw" eval
echo "--- what made output neuron 7 fire for sample 7 (a handwritten 7):"
"$nw" neuron --sample 7 --layer fc2 --index 7 --top 5
