"""The Flax twin of any model description (flax_model.py), timed like `wgpu-cnn bench --model`:
one jitted training step (forward with batch statistics, cross-entropy, backward, optax.adam,
running statistics updated: mutable=["batch_stats"]), warm-up, then the median of steps each
synced with block_until_ready. Prints one line and one JSON line in jax_cnn.py's format.

    python tools/peers/flax_bench.py --model resnet20|FILE [--batch-size 128] [--steps 10] [--warmup 3]

GFLOP/s counts 3 × the forward's conv and dense multiply-adds with padding taps (wgpu-cnn's
headline convention; batch norm, pools and activations not counted).
"""
import argparse
import json
import os
import statistics
import sys
import time

LAUNCHED = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from flax_model import FlaxModel, forward_flops, load_description, train_step_fn  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a preset name (assets/models/NAME.toml) or a TOML file")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    args, ignored = ap.parse_known_args()  # compare.sh passes bench's own flags (--backend, …) too
    if ignored:
        print(f"flax_bench.py: ignoring {' '.join(ignored)}", file=sys.stderr)
    b = args.batch_size
    desc = load_description(args.model)
    model = FlaxModel(tuple(desc["layer"]))
    h, w, c = desc["input"]
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((b, h, w, c), dtype=np.float32))
    labels = jnp.asarray(rng.integers(0, desc["classes"], b).astype(np.int32))
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, h, w, c)))
    params, stats = variables["params"], variables.get("batch_stats", {})
    tx = optax.adam(args.lr)
    opt = tx.init(params)

    train_step = train_step_fn(model, tx)
    state = (params, stats, opt)
    *state, loss, _ = train_step(*state, images, labels)
    loss.block_until_ready()
    startup = time.perf_counter() - LAUNCHED
    for _ in range(args.warmup):
        *state, loss, _ = train_step(*state, images, labels)
        loss.block_until_ready()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        *state, loss, _ = train_step(*state, images, labels)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    step = statistics.median(times)
    flops = 3 * forward_flops(model, variables, (b, h, w, c))
    result = {
        "framework": "flax",
        "version": f"jax {jax.__version__}",
        "device": str(jax.devices()[0]),
        "model": args.model,
        "batch_size": b,
        "startup_s": startup,
        "step_ms_median": step * 1e3,
        "step_ms_min": min(times) * 1e3,
        "images_per_second": b / step,
        "gflops_per_second": flops / step / 1e9,
        "gflop_per_step": flops / 1e9,
    }
    print(f"flax ({args.model}) jax {jax.__version__} on {result['device']}: step {step * 1e3:.1f} ms, "
          f"{b / step:.0f} images/s, {result['gflops_per_second']:.2f} GFLOP/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
