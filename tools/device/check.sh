#!/usr/bin/env bash
# Run ON THE DEVICE MACHINE (see prepare.sh): correctness of every kernel on the NVIDIA
# adapter, the plans, `bench` and `profile` of the seed and resnet20, the JAX, Flax and PyTorch
# peers on the same GPU, and the full 100-epoch seed recipe timed from launch to its final test
# line. Everything it prints also lands in $OUT (the device tool brings $OUT back).
#
#   bash tools/device/check.sh            on the device, after prepare.sh here (≤ 8 minutes)
#   DRY=1 bash tools/device/check.sh      here, on lavapipe: the same script end to end with
#                                          few steps, one short epoch and the CPU peers
#
# CIFAR-10 for the accuracy run: $CIFAR (a folder with the binary files), else the parts that
# prepare.sh staged as .cifar-1 … .cifar-4 (each under the tool's 64 MiB per call; carried one
# per call while the machine stays warm, see prepare.sh), else ../shared/cifar10 when it exists.
set -uo pipefail
cd "$(dirname "$0")/../.."
DRY="${DRY:-0}"
export XDG_RUNTIME_DIR=/tmp PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/check-out}"; mkdir -p "$OUT"
B=tools/device/bin
PY="${PYTHON:-python3}"
t_start=$(date +%s)
if [ "$DRY" = 1 ]; then
  ADAPTER="${WGPU_CNN_CHECK_ADAPTER:-llvmpipe}"
  WARM=2; STEPS=5; R_WARM=1; R_STEPS=2; PROFILE_STEPS=1
  TRAIN=(--epochs 1 --train-limit 2560 --test-limit 2000)
  TORCH_DEVICE=cpu
else
  ADAPTER="${WGPU_CNN_CHECK_ADAPTER:-nvidia}"
  WARM=20; STEPS=100; R_WARM=10; R_STEPS=50; PROFILE_STEPS=5
  TRAIN=()
  TORCH_DEVICE=cuda
  # The Vulkan/EGL loaders travel as debs (.gl, see prepare.sh); the NVIDIA ICD is the host's.
  for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done; ldconfig
  if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
fi
[ -x "$B/wgpu-cnn" ] || { echo "error: $B/wgpu-cnn missing: run tools/device/prepare.sh first" >&2; exit 1; }
section() { echo; echo "== $1 ($(( $(date +%s) - t_start )) s)"; }

section "device"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
fi
lscpu | grep -m1 'Model name' | tee -a "$OUT/gpu.txt"
$B/wgpu-cnn devices | tee -a "$OUT/gpu.txt"

# Correctness on the adapter: the same GPU-vs-CPU tests as CI.
section "tests"
export WGPU_CNN_ADAPTER="$ADAPTER"
for t in gpu_vs_cpu model; do
  $B/test_$t --test-threads 4 2>&1 | tail -n 4 | tee -a "$OUT/tests.txt"
done
# The planner tests that run no CLI (the others call this machine's build path).
$B/test_planner seed_plan buffers_are_shared a_small_binding 2>&1 | tail -n 4 | tee -a "$OUT/tests.txt"
# Only the shader tests of data.rs: the others run the CLI from this machine's build path.
$B/test_data augmentation 2>&1 | tail -n 4 | tee -a "$OUT/tests.txt"

# wgpu's GL backend on the same adapter (EGL; "GL too if it runs"): the kernel tests, one at a
# time as in CI, bounded so that a slow first shader compile cannot eat the call.
section "tests on GL"
WGPU_CNN_BACKEND=gl timeout "${GL_TIMEOUT:-90}" $B/test_gpu_vs_cpu --test-threads 1 2>&1 \
  | tail -n 4 | tee "$OUT/tests-gl.txt"
echo "GL backend: exit ${PIPESTATUS[0]} (124: stopped at ${GL_TIMEOUT:-90} s)" | tee -a "$OUT/tests-gl.txt"

section "plans"
for m in flax-cifar10 lenet5 resnet20; do
  $B/wgpu-cnn models $m --plan --adapter "$ADAPTER" 2>&1 | tee -a "$OUT/plans.txt"
done

section "bench and profile"
$B/wgpu-cnn bench --adapter "$ADAPTER" --warmup $WARM --steps $STEPS 2>&1 | tee "$OUT/bench.txt"
$B/wgpu-cnn bench --adapter "$ADAPTER" --model lenet5 --warmup $WARM --steps $STEPS 2>&1 | tee -a "$OUT/bench.txt"
$B/wgpu-cnn bench --adapter "$ADAPTER" --batch-size 512 --warmup $WARM --steps $STEPS 2>&1 | tee -a "$OUT/bench.txt"
$B/wgpu-cnn profile --adapter "$ADAPTER" --steps $PROFILE_STEPS --trace "$OUT/trace.json" 2>&1 | tee "$OUT/profile.txt"
$B/wgpu-cnn bench --adapter "$ADAPTER" --model resnet20 --warmup $R_WARM --steps $R_STEPS 2>&1 | tee -a "$OUT/bench.txt"
$B/wgpu-cnn profile --adapter "$ADAPTER" --model resnet20 --steps 1 2>&1 | tee -a "$OUT/profile.txt"

# The peers on the same machine in the same call (JAX, Flax and PyTorch with CUDA there).
section "peers"
$PY tools/peers/jax_cnn.py --warmup $WARM --steps $STEPS 2>&1 | tail -n 2 | tee "$OUT/peers.txt"
if $PY -c "import torch" 2>/dev/null; then
  $PY tools/peers/torch_cnn.py --device $TORCH_DEVICE --warmup $WARM --steps $STEPS 2>&1 | tail -n 2 | tee -a "$OUT/peers.txt"
else
  echo "torch: not installed here" | tee -a "$OUT/peers.txt"
fi
$PY tools/peers/flax_bench.py --model resnet20 --warmup $R_WARM --steps $R_STEPS 2>&1 | tail -n 2 | tee -a "$OUT/peers.txt"

# The full seed recipe (100 epochs; DRY: one short epoch), timed from launch to the final test
# line. Data: $CIFAR, or the carried parts assembled in /tmp, or the shared copy.
section "seed recipe"
if [ -z "${CIFAR:-}" ]; then
  if compgen -G ".cifar-*/data_batch_*.bin" >/dev/null || compgen -G ".cifar-*/test_batch.bin" >/dev/null; then
    CIFAR=/tmp/cifar10/cifar-10-batches-bin
    mkdir -p "$CIFAR"
    for f in .cifar-*/*; do ln -f "$f" "$CIFAR/" 2>/dev/null || cp "$f" "$CIFAR/"; done
  elif [ -d ../shared/cifar10/cifar-10-batches-bin ]; then
    CIFAR=../shared/cifar10/cifar-10-batches-bin
  fi
fi
missing=""
for f in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin; do
  [ -f "${CIFAR:-/nonexistent}/$f" ] || missing="$missing $f"
done
if [ -n "$missing" ]; then
  echo "seed recipe skipped: CIFAR-10 incomplete (missing:$missing); see prepare.sh" | tee "$OUT/recipe.txt"
else
  rm -rf /tmp/seed-run
  t0=$(date +%s.%N)
  # The device tool's call ends at 10 minutes; stop the run well before (its epochs are logged).
  timeout "${RECIPE_TIMEOUT:-300}" $B/wgpu-cnn train --recipe flax-cifar10 --data "$CIFAR" \
    --adapter "$ADAPTER" --out /tmp/seed-run "${TRAIN[@]}" 2>&1 | tee "$OUT/recipe.txt"
  rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  echo "seed recipe: exit $rc, $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s from launch to exit" | tee -a "$OUT/recipe.txt"
  cat /tmp/seed-run/metrics.jsonl >> "$OUT/recipe.txt" 2>/dev/null
fi
section "done"
