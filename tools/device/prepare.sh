#!/usr/bin/env bash
# Run HERE (no GPU) before a session's device call: builds the release binary and the GPU test
# binaries into tools/device/bin, and fetches the Vulkan loader debs into .gl (both ignored by
# git; name them in the device tool's `carry`). Then call the device tool with
#   carry: [".gl", "tools/device/bin"]
#   command: bash tools/device/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
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
du -sh .gl tools/device/bin
