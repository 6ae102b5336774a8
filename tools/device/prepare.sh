#!/usr/bin/env bash
# Run HERE (no GPU) before a session's device calls: builds the release binary and the GPU test
# binaries into tools/device/bin, fetches the Vulkan loader debs into .gl, and stages CIFAR-10
# in three parts (.cifar-1: batches 1-2, .cifar-2: batches 3-4, .cifar-3: batch 5, the test
# batch and the label names; each about 61.5 MB, so that one part and the 2 MB working tree fit
# the device tool's 64 MiB per call). All of these are ignored by git; the parts are hard links
# (or copies) of the data, never committed.
#
#   bash tools/device/prepare.sh [CIFAR_DIR]      (default ../shared/cifar10/cifar-10-batches-bin)
#
# Then four device calls back to back (a machine stays warm 30 s after a call and keeps the
# ignored paths that earlier calls carried):
#   carry [".cifar-1"]                        command: true
#   carry [".cifar-2"]                        command: true
#   carry [".cifar-3"]                        command: true
#   carry [".gl", "tools/device/bin"]         command: bash tools/device/check.sh
#          (timeout_s 540; check.sh assembles the parts, runs everything in ≤ 8 minutes)
# Without the parts check.sh still runs everything except the 100-epoch recipe.
set -euo pipefail
cd "$(dirname "$0")/../.."
cifar="${1:-../shared/cifar10/cifar-10-batches-bin}"
cargo build --release
mkdir -p tools/device/bin
cp target/release/wgpu-cnn tools/device/bin/
# The GPU test binaries (they take the adapter from WGPU_CNN_ADAPTER).
cargo test --release --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("gpu_vs_cpu", "model", "data", "planner"):
        shutil.copy(m["executable"], "tools/device/bin/test_" + m["target"]["name"])
'
ls -la tools/device/bin
if [ ! -d .gl ]; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
if [ -d "$cifar" ]; then
  stage() {
    local part="$1"; shift
    rm -rf "$part"; mkdir -p "$part"
    for f in "$@"; do ln "$cifar/$f" "$part/$f" 2>/dev/null || cp "$cifar/$f" "$part/$f"; done
  }
  stage .cifar-1 data_batch_1.bin data_batch_2.bin
  stage .cifar-2 data_batch_3.bin data_batch_4.bin
  stage .cifar-3 data_batch_5.bin test_batch.bin batches.meta.txt
  du -sh .cifar-1 .cifar-2 .cifar-3
else
  echo "no CIFAR-10 at $cifar: the device run will skip the 100-epoch recipe"
fi
du -sh .gl tools/device/bin
