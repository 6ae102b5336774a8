"""Compares wgpu-cnn's learning-rate schedules (examples/schedule.rs) with optax's, count by
count, over whole runs.

    cargo build --release --example schedule
    python tools/peers/optax_schedules.py
"""
import json
import subprocess

import numpy as np
import optax

BIN = "target/release/examples/schedule"


def ours(*args):
    out = subprocess.run([BIN, *map(str, args)], check=True, capture_output=True, text=True)
    return np.array(json.loads(out.stdout))


cases = [
    ("cosine 0.1 -> 1e-3 over 1000", ours("cosine", 0.1, 1000, "-", 1e-3),
     optax.cosine_decay_schedule(0.1, 1000, alpha=1e-3 / 0.1)),
    ("warmup-cosine 0.05, 100 warmup, 5000 total, end 1e-4",
     ours("warmup-cosine", 0.05, 5000, 100, 1e-4),
     optax.warmup_cosine_decay_schedule(0.0, 0.05, 100, 5000, end_value=1e-4)),
    ("piecewise 0.1 x0.1 at 500, x0.1 at 750 over 1000",
     ours("piecewise", 0.1, 1000, "-", "-", "500,750", "0.1,0.1"),
     optax.piecewise_constant_schedule(0.1, {500: 0.1, 750: 0.1})),
    ("piecewise-linear 0.2 x5 by 230, x0.07 by 1000 (airbench94's shape)",
     ours("piecewise-linear", 0.2, 1000, "-", "-", "230,1000", "5,0.07"),
     optax.piecewise_interpolate_schedule("linear", 0.2, {230: 5.0, 1000: 0.07})),
    ("constant 1e-4", ours("constant", 1e-4, 100), optax.constant_schedule(1e-4)),
]
worst = 0.0
for name, got, sched in cases:
    want = np.array([float(sched(c)) for c in range(len(got))])
    rel = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-12)))
    worst = max(worst, rel)
    print(f"{name}: {len(got)} counts, max relative difference {rel:.2e}")
print(json.dumps({"worst_relative": worst}))
raise SystemExit(0 if worst < 1e-5 else 1)
