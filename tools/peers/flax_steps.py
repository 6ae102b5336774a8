"""Trains a model description for a few Adam steps in Flax/optax and in wgpu-cnn from the same
Flax init and the same images, and compares every weight change (after − init).

    python tools/peers/flax_steps.py --model assets/models/lenet5.toml \
        --data ../shared/cifar10/cifar-10-batches-bin [--steps 4] [--batch-size 32] [--lr 1e-3]

wgpu-cnn runs `train --init flax_init.safetensors --no-augment --no-shuffle --val-size 0
--train-limit steps·batch --epochs 1`: the first steps·batch images of data_batch_1.bin in file
order, normalised with CIFAR-10's mean and std, exactly what this script feeds Flax.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from flax_model import FlaxModel, load_description  # noqa: E402

MEAN = np.array([0.49139968, 0.48215841, 0.44653091], np.float32)
STD = np.array([0.24703223, 0.24348513, 0.26158784], np.float32)


def flatten(params, prefix=""):
    out = {}
    for k, v in params.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(flatten(v, name))
        else:
            out[name] = np.asarray(v, np.float32)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="data/cifar-10-batches-bin")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--bin", default="target/release/wgpu-cnn")
    args = ap.parse_args()
    desc = load_description(args.model)
    model = FlaxModel(tuple(desc["layer"]))
    h, w, c = desc["input"]
    params = model.init(jax.random.PRNGKey(0), jnp.ones((1, h, w, c)))["params"]
    init = flatten(params)

    n = args.steps * args.batch_size
    raw = np.fromfile(os.path.join(args.data, "data_batch_1.bin"), np.uint8).reshape(-1, 3073)[:n]
    labels = raw[:, 0].astype(np.int32)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    images = (images - MEAN) / STD

    tx = optax.adam(args.lr)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, y):
        def loss_fn(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    losses = []
    for s in range(args.steps):
        sl = slice(s * args.batch_size, (s + 1) * args.batch_size)
        params, opt, loss = step(params, opt, images[sl], labels[sl])
        losses.append(float(loss))
    flax_after = flatten(params)

    with tempfile.TemporaryDirectory() as d:
        init_path = os.path.join(d, "flax_init.safetensors")
        save_file(init, init_path)
        out = os.path.join(d, "run")
        cmd = [args.bin, "train", "--model", args.model, "--data", args.data, "--init", init_path,
               "--no-augment", "--no-shuffle", "--val-size", "0", "--train-limit", str(n),
               "--epochs", "1", "--batch-size", str(args.batch_size), "--lr", str(args.lr),
               "--test-limit", str(args.batch_size), "--out", out]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ours = load_file(os.path.join(out, "last.safetensors"))

    # Per tensor: the relative difference of the weight change, ‖Δours − Δflax‖ / ‖Δflax‖, and
    # the largest element difference over the largest change (Adam turns gradients that are
    # rounding noise in f32 — different summation orders in XLA and here — into full-size steps
    # of either sign, so single elements can differ by up to 2·lr·steps).
    worst = 0.0
    worst_elem = 0.0
    for name, v0 in init.items():
        d_flax = (flax_after[name] - v0).astype(np.float64)
        d_ours = (ours[name] - v0).astype(np.float64)
        rel = float(np.linalg.norm(d_ours - d_flax) / max(np.linalg.norm(d_flax), 1e-30))
        elem = float(np.abs(d_ours - d_flax).max() / max(np.abs(d_flax).max(), 1e-30))
        worst = max(worst, rel)
        worst_elem = max(worst_elem, elem)
        print(f"{name:<18} |change| {np.linalg.norm(d_flax):.3e}  relative difference {rel:.2e}"
              f"  (largest element {elem:.2e} of the largest change)")
    print(f"flax losses: {', '.join(f'{l:.5f}' for l in losses)}")
    print(f"worst relative difference of the weight changes after {args.steps} Adam steps: {worst:.2e}"
          f" (largest element: {worst_elem:.2e})")
    print(json.dumps({"model": args.model, "steps": args.steps, "batch_size": args.batch_size,
                      "lr": args.lr, "worst_relative": worst, "worst_element": worst_elem,
                      "flax_losses": losses}))
    sys.exit(0 if worst <= 1e-3 else 1)


if __name__ == "__main__":
    main()
