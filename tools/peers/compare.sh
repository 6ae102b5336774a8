#!/usr/bin/env bash
# Runs wgpu-cnn's bench and the JAX and PyTorch peers one after another on this machine and
# prints the ratios (peer step time / ours: > 1 means wgpu-cnn is faster).
#
#   bash tools/peers/compare.sh [--batch-size 128] [--steps 10]
#   bash tools/peers/compare.sh --model NAME|FILE [--batch-size 128] [--steps 10]
# Without --model: the seed CNN, against jax_cnn.py and torch_cnn.py. With --model (a preset name
# or a description file): `wgpu-cnn bench --model X` against the Flax twin of that description
# (flax_bench.py: jitted step, Adam, batch_stats mutable, same batch size).
# Needs a release build (cargo build --release) and a Python with jax, flax, optax (and torch
# for the seed's PyTorch peer; PYTHON=/path/to/python to choose it; see tools/peers/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
BIN="${WGPU_CNN_BIN:-target/release/wgpu-cnn}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
model=""
prev=""
for a in "$@"; do
  case "$a" in
    --model=*) model="${a#--model=}" ;;
  esac
  if [ "$prev" = "--model" ]; then model="$a"; fi
  prev="$a"
done
out=$(mktemp -d)
"$BIN" bench "$@" | tee "$out/ours.txt"
tail -n 1 "$out/ours.txt" > "$out/ours.json"
if [ -n "$model" ]; then
  peers="flax"
  "$PYTHON" tools/peers/flax_bench.py "$@" | tee "$out/flax.txt"
  tail -n 1 "$out/flax.txt" > "$out/flax.json"
else
  peers="jax torch"
  "$PYTHON" tools/peers/jax_cnn.py "$@" | tee "$out/jax.txt"
  tail -n 1 "$out/jax.txt" > "$out/jax.json"
  if "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" tools/peers/torch_cnn.py "$@" | tee "$out/torch.txt"
    tail -n 1 "$out/torch.txt" > "$out/torch.json"
  fi
fi
"$PYTHON" - "$out" $peers <<'PY'
import json, os, sys
d, peers = sys.argv[1], sys.argv[2:]
ours = json.load(open(os.path.join(d, "ours.json")))
print()
print(f"{'framework':<10} {'step ms':>9} {'images/s':>9} {'GFLOP/s':>8} {'startup s':>9} {'ours faster by':>15}")
print(f"{'wgpu-cnn':<10} {ours['step_ms_median']:>9.1f} {ours['images_per_second']:>9.0f} "
      f"{ours['gflops_per_second']:>8.2f} {ours['startup_s']:>9.2f} {'':>15}")
for name in peers:
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        continue
    r = json.load(open(p))
    ratio = r["step_ms_median"] / ours["step_ms_median"]
    print(f"{name:<10} {r['step_ms_median']:>9.1f} {r['images_per_second']:>9.0f} "
          f"{r['gflops_per_second']:>8.2f} {r['startup_s']:>9.2f} {ratio:>14.2f}x")
print(f"\nadapter: {ours['adapter']}")
first = peers[0]
peer = json.load(open(os.path.join(d, first + '.json')))['step_ms_median']
print(f"ratio ours/{first} step time: {ours['step_ms_median'] / peer:.2f}")
# The peers time a jitted (or eager) step on ready-made batches; ours above includes the
# on-GPU augmentation of the batch. Like for like: the step without it.
if "model_step_ms_median" in ours:  # builds before 2026-11-29 do not report it
    print(f"ratio ours/{first} step time without our augmentation: {ours['model_step_ms_median'] / peer:.2f}")
PY
