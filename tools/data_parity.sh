#!/usr/bin/env bash
# Real-data checks of issue 11, on one machine in one invocation:
#  1. `--recipe flax-cifar10` trains exactly as plain `train` (2 epochs, weights compared bit for bit);
#  2. CIFAR-10 exported as a PNG image folder and back to binary files gives the same 60,000
#     records; the folder (decoded, then from its cache) and the binary files in the folder's
#     order train to bit-identical weights and equal test results.
# Usage: tools/data_parity.sh [CIFAR10_DIR] [WORK_DIR]
set -euo pipefail
DATA=${1:-../shared/cifar10/cifar-10-batches-bin}
WORK=${2:-/tmp/wgpu-cnn-data-parity}
BIN=${BIN:-target/release/wgpu-cnn}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
rm -rf "$WORK"; mkdir -p "$WORK"
lscpu | grep -m1 'Model name' || true
same() { python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = load(sys.argv[1]), load(sys.argv[2])
ok = a == b
print(f"{len(a)} tensors: {'bit-identical' if ok else 'DIFFERENT'}")
sys.exit(0 if ok else 1)
PY
}
echo "== 1. --recipe flax-cifar10 vs plain train, 2 epochs"
/usr/bin/time -f "%e s" $BIN train --data "$DATA" --epochs 2 --out "$WORK/plain" | grep -E "^(epoch|test, last)"
/usr/bin/time -f "%e s" $BIN train --recipe flax-cifar10 --data "$DATA" --epochs 2 --out "$WORK/recipe" | grep -E "^(epoch|test, last)"
same "$WORK/plain/last.safetensors" "$WORK/recipe/last.safetensors"

echo "== 2. CIFAR-10 as a PNG folder"
/usr/bin/time -f "export to PNG: %e s" $BIN export --data "$DATA" --out "$WORK/png"
/usr/bin/time -f "export back to binary: %e s" $BIN export --data "$WORK/png" --format cifar10 --out "$WORK/bin"
python3 - "$DATA" "$WORK/bin" <<'PY'
import sys
def recs(d):
    fs = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    b = b"".join(open(f"{d}/{f}", "rb").read() for f in fs)
    return sorted(b[i:i + 3073] for i in range(0, len(b), 3073))
a, b = recs(sys.argv[1]), recs(sys.argv[2])
print(f"records: {len(a)} original, {len(b)} after PNG round trip, equal as multisets: {a == b}")
sys.exit(0 if a == b else 1)
PY
COMMON=(--epochs 1 --train-limit 10000 --normalize dataset --augment flip,crop:4 --test-limit 10000)
/usr/bin/time -f "folder run (decodes 60,000 PNGs, writes the cache): %e s" $BIN train --data "$WORK/png" "${COMMON[@]}" --out "$WORK/run-png" | grep -E "^(data|epoch|test, last)"
/usr/bin/time -f "folder run from the cache: %e s" $BIN train --data "$WORK/png" "${COMMON[@]}" --out "$WORK/run-png2" | grep -E "^(images|data|epoch|test, last)"
/usr/bin/time -f "binary run (folder order): %e s" $BIN train --data "$WORK/bin" "${COMMON[@]}" --out "$WORK/run-bin" | grep -E "^(data|epoch|test, last)"
same "$WORK/run-png/last.safetensors" "$WORK/run-bin/last.safetensors"
same "$WORK/run-png2/last.safetensors" "$WORK/run-bin/last.safetensors"
cmp <(python3 -c "import json,sys; d=json.load(open('$WORK/run-png/test.json')); print(d['accuracy'], d['confusion'])") \
    <(python3 -c "import json,sys; d=json.load(open('$WORK/run-bin/test.json')); print(d['accuracy'], d['confusion'])") \
  && echo "test accuracy and confusion matrix: identical"
