#!/usr/bin/env bash
# Bit-identity check for refactors: 20 training steps (batch 16, the real CIFAR-10, default
# augmentation) of the seed, resnet20 and tools/bitcheck/every-layer.toml (Adam), and the seed
# with SGD (Nesterov, decay, clipping), with BIN; prints one SHA-256 per run over every tensor of
# last.safetensors (weights, batch statistics, optimizer state; the metadata is left out).
# Run it with the binary before and after a change: the lines must be equal.
#
#   bash tools/bitcheck.sh BIN [DATA]     (DATA: ../shared/cifar10/cifar-10-batches-bin)
set -euo pipefail
bin="$(realpath "$1")"
data="$(realpath "${2:-$(dirname "$0")/../../shared/cifar10/cifar-10-batches-bin}")"
here="$(cd "$(dirname "$0")" && pwd)"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {
  local name="$1"; shift
  "$bin" train --data "$data" --train-limit 320 --batch-size 16 --epochs 1 --val-size 0 \
    --test-limit 64 --seed 7 --out "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1 \
    || { cat "$tmp/$name.log"; exit 1; }
  python3 - "$tmp/$name/last.safetensors" "$name" <<'PY'
import hashlib, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
header = json.loads(b[8:8 + n])
h = hashlib.sha256()
for k in sorted(k for k in header if k != "__metadata__"):
    s, e = header[k]["data_offsets"]
    h.update(k.encode()); h.update(b[8 + n + s:8 + n + e])
print(f"{sys.argv[2]:12} {h.hexdigest()}")
PY
}
run seed --model flax-cifar10
run seed-sgd --model flax-cifar10 --optimizer sgd --momentum 0.9 --nesterov --weight-decay 5e-4 --clip-grad-norm 1 --lr 0.05
run resnet20 --model resnet20 --optimizer sgd --momentum 0.9 --lr 0.1 --schedule cosine
run every-layer --model "$here/bitcheck/every-layer.toml" --label-smoothing 0.1
