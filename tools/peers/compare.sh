#!/usr/bin/env bash
# Runs wgpu-cnn's bench and the JAX and PyTorch peers one after another on this machine and
# prints the ratios (peer step time / ours: > 1 means wgpu-cnn is faster).
#
#   bash tools/peers/compare.sh [--batch-size 128] [--steps 10]
# Needs a release build (cargo build --release) and a Python with jax, flax, optax and torch
# (PYTHON=/path/to/python to choose it; see tools/peers/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
BIN="${WGPU_CNN_BIN:-target/release/wgpu-cnn}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
out=$(mktemp -d)
"$BIN" bench "$@" | tee "$out/ours.txt"
tail -n 1 "$out/ours.txt" > "$out/ours.json"
"$PYTHON" tools/peers/jax_cnn.py "$@" | tee "$out/jax.txt"
tail -n 1 "$out/jax.txt" > "$out/jax.json"
if "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" tools/peers/torch_cnn.py "$@" | tee "$out/torch.txt"
  tail -n 1 "$out/torch.txt" > "$out/torch.json"
fi
"$PYTHON" - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
ours = json.load(open(os.path.join(d, "ours.json")))
print()
print(f"{'framework':<10} {'step ms':>9} {'images/s':>9} {'GFLOP/s':>8} {'startup s':>9} {'ours faster by':>15}")
print(f"{'wgpu-cnn':<10} {ours['step_ms_median']:>9.1f} {ours['images_per_second']:>9.0f} "
      f"{ours['gflops_per_second']:>8.2f} {ours['startup_s']:>9.2f} {'':>15}")
for name in ("jax", "torch"):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        continue
    r = json.load(open(p))
    ratio = r["step_ms_median"] / ours["step_ms_median"]
    print(f"{name:<10} {r['step_ms_median']:>9.1f} {r['images_per_second']:>9.0f} "
          f"{r['gflops_per_second']:>8.2f} {r['startup_s']:>9.2f} {ratio:>14.2f}x")
print(f"\nadapter: {ours['adapter']}")
print(f"ratio ours/jax step time: {ours['step_ms_median'] / json.load(open(os.path.join(d, 'jax.json')))['step_ms_median']:.2f}")
PY
