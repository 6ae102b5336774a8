#!/usr/bin/env bash
# Run ON THE DEVICE MACHINE (see prepare.sh): correctness of every kernel on the NVIDIA
# adapter, then the benchmarks: wgpu-cnn bench and profile, the JAX peer and the PyTorch peer
# on the same GPU. Everything it prints also lands in $OUT.
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export XDG_RUNTIME_DIR=/tmp PYTHONUNBUFFERED=1
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
B=tools/device/bin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
$B/wgpu-cnn devices | tee -a "$OUT/gpu.txt"
# Correctness on the NVIDIA adapter: the same GPU-vs-CPU tests as CI.
export WGPU_CNN_ADAPTER=nvidia
for t in gpu_vs_cpu model; do
  $B/test_$t --test-threads 4 2>&1 | tail -n 4 | tee -a "$OUT/tests.txt"
done
# The planner tests that run no CLI (the others call this machine's build path).
$B/test_planner seed_plan buffers_are_shared a_small_binding 2>&1 | tail -n 4 | tee -a "$OUT/tests.txt"
# Only the shader tests of data.rs: the others run the CLI from this machine's build path.
$B/test_data augmentation 2>&1 | tail -n 4 | tee -a "$OUT/tests.txt"
# The plans on this adapter: kernels chosen, fusions, buffers, the largest batch.
for m in flax-cifar10 lenet5 resnet20; do
  $B/wgpu-cnn models $m --plan --adapter nvidia 2>&1 | tee -a "$OUT/plans.txt"
done
$B/wgpu-cnn bench --adapter nvidia --warmup 20 --steps 100 2>&1 | tee "$OUT/bench.txt"
$B/wgpu-cnn bench --adapter nvidia --model lenet5 --warmup 20 --steps 100 2>&1 | tee -a "$OUT/bench.txt"
$B/wgpu-cnn bench --adapter nvidia --batch-size 512 --warmup 10 --steps 50 2>&1 | tee -a "$OUT/bench.txt"
$B/wgpu-cnn profile --adapter nvidia --steps 5 --trace "$OUT/trace.json" 2>&1 | tee "$OUT/profile.txt"
$B/wgpu-cnn bench --adapter nvidia --model resnet20 --warmup 10 --steps 50 2>&1 | tee -a "$OUT/bench.txt"
$B/wgpu-cnn profile --adapter nvidia --model resnet20 --steps 3 2>&1 | tee "$OUT/profile-resnet20.txt"
python3 tools/peers/jax_cnn.py --warmup 20 --steps 100 2>&1 | tail -n 2 | tee "$OUT/jax.txt"
python3 tools/peers/torch_cnn.py --device cuda --warmup 20 --steps 100 2>&1 | tail -n 2 | tee "$OUT/torch.txt"
python3 tools/peers/flax_bench.py --model resnet20 --warmup 10 --steps 50 2>&1 | tail -n 2 | tee "$OUT/flax-resnet20.txt"
