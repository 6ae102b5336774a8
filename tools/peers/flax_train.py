"""The Flax twin of `wgpu-cnn train` for the documented runs (issue 10): a model description
(flax_model.py) trained on CIFAR-10 with Adam, batch statistics in training mode, per-channel
normalisation from the training split, horizontal flip and pad-4 random crop (zero bytes, as
`--augment flip,crop:4`), a held-out validation split; per epoch the training loss and accuracy,
the validation accuracy and the epoch's wall time, then the test accuracy in eval mode (running
statistics) and the run's wall time from launch.

    python tools/peers/flax_train.py --model resnet20 --data ../shared/cifar10/cifar-10-batches-bin \
        --epochs 10 --lr 1e-3 [--batch-size 128] [--val-size 5000] [--seed 42] \
        [--train-limit N] [--test-limit N] [--out metrics.jsonl] [--state run.pkl]

With `--state FILE` the run saves its whole state after every epoch (parameters, batch statistics,
Adam state, numpy's generator, the wall time so far; written to a temporary file and renamed) and
a later launch with the same arguments continues from the last finished epoch, so a run longer
than one session adds up; the final wall time is the sum over launches.

The recipe of `wgpu-cnn train --model resnet20 --epochs 10 --optimizer adam --lr 1e-3
--augment flip,crop:4 --normalize dataset` (batch 128, 5,000 validation images). The two
compare as recipes, not bit for bit: the validation images are a seeded choice of this script,
the shuffles and augmentation draw numpy's random numbers, the init is Flax's.
"""
import argparse
import json
import os
import pickle
import sys
import time

LAUNCHED = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from flax_model import FlaxModel, load_description, train_step_fn  # noqa: E402

TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]


def read(data, files):
    """uint8 NHWC images and int32 labels of CIFAR-10 binary files, in file order."""
    raw = np.concatenate([np.fromfile(os.path.join(data, f), np.uint8).reshape(-1, 3073)
                          for f in files])
    return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), raw[:, 0].astype(np.int32)


def augment(images, rng, pad=4):
    """Random horizontal flip, then a random crop of the image padded with `pad` zero bytes."""
    n, h, w, _ = images.shape
    flip = rng.random(n) < 0.5
    x = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top = rng.integers(0, 2 * pad + 1, n)
    left = rng.integers(0, 2 * pad + 1, n)
    rows = top[:, None] + np.arange(h)[None, :]
    cols = left[:, None] + np.arange(w)[None, :]
    return x[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a preset name or a description file")
    ap.add_argument("--data", required=True, help="folder of the CIFAR-10 binary files")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--out", default=None, help="write one JSON line per epoch here")
    ap.add_argument("--state", default=None,
                    help="save the run's state here after every epoch; resume from it if present")
    args = ap.parse_args()

    desc = load_description(args.model)
    model = FlaxModel(tuple(desc["layer"]))
    rng = np.random.default_rng(args.seed)
    images, labels = read(args.data, TRAIN_FILES)
    order = rng.permutation(len(images))
    val_idx, train_idx = order[:args.val_size], order[args.val_size:]
    if args.train_limit:
        train_idx = train_idx[:args.train_limit]
    x_train, y_train = images[train_idx], labels[train_idx]
    x_val, y_val = images[val_idx], labels[val_idx]
    x_test, y_test = read(args.data, ["test_batch.bin"])
    x_test, y_test = x_test[:args.test_limit], y_test[:args.test_limit]
    pixels = x_train.reshape(-1, 3).astype(np.float64) / 255.0
    mean, std = pixels.mean(0).astype(np.float32), pixels.std(0).astype(np.float32)

    def normalise(x):
        return (x.astype(np.float32) / 255.0 - mean) / std

    h, w, c = desc["input"]
    variables = model.init(jax.random.PRNGKey(args.seed), jnp.ones((1, h, w, c)))
    params, stats = variables["params"], variables.get("batch_stats", {})
    tx = optax.adam(args.lr)
    opt = tx.init(params)

    train_step = train_step_fn(model, tx)

    @jax.jit
    def predict(params, stats, x):
        return model.apply({"params": params, "batch_stats": stats}, x).argmax(-1)

    def accuracy(x, y):
        correct = sum(int((np.asarray(predict(params, stats, normalise(x[i:i + 1000])))
                           == y[i:i + 1000]).sum()) for i in range(0, len(x), 1000))
        return correct / max(len(x), 1)

    b = args.batch_size
    steps = len(x_train) // b  # whole batches, as wgpu-cnn drops the last partial one
    first, earlier_wall = 0, 0.0
    if args.state and os.path.exists(args.state):
        with open(args.state, "rb") as f:
            saved = pickle.load(f)
        if saved["args"] != {k: v for k, v in vars(args).items() if k != "epochs"}:
            sys.exit(f"error: {args.state} was saved by a run with other arguments: {saved['args']}")
        params, stats, opt = saved["params"], saved["stats"], saved["opt"]
        rng.bit_generator.state = saved["rng"]
        first, earlier_wall = saved["epoch"] + 1, saved["wall_s"]
        print(f"resuming after epoch {saved['epoch']} from {args.state} "
              f"({earlier_wall:.1f} s of earlier launches)")
    out = None
    if args.out:
        # A resumed run keeps the log's lines of the epochs its state includes and rewrites the
        # rest (an epoch logged but killed before its state was saved runs again, once).
        kept = []
        if first and os.path.exists(args.out):
            with open(args.out) as f:
                kept = [line for line in f
                        if json.loads(line).get("epoch", first) < first]
        out = open(args.out, "w")
        out.writelines(kept)
        out.flush()
    print(f"jax {jax.__version__} on {jax.devices()[0]}: {args.model}, {len(x_train)} training, "
          f"{len(x_val)} validation, {len(x_test)} test images; {steps} steps per epoch")
    for epoch in range(first, args.epochs):
        t = time.perf_counter()
        perm = rng.permutation(len(x_train))
        loss_sum, correct = 0.0, 0
        for s in range(steps):
            idx = perm[s * b:(s + 1) * b]
            x = normalise(augment(x_train[idx], rng))
            params, stats, opt, loss, ok = train_step(params, stats, opt, x, y_train[idx])
            loss_sum += float(loss)
            correct += int(ok)
        seconds = time.perf_counter() - t
        val = accuracy(x_val, y_val) if len(x_val) else None
        line = {"epoch": epoch, "train_loss": loss_sum / steps,
                "train_accuracy": correct / (steps * b), "val_accuracy": val,
                "seconds": seconds, "step_ms": 1e3 * seconds / steps}
        print(json.dumps(line), flush=True)
        if out:
            out.write(json.dumps(line) + "\n")
            out.flush()
        if args.state:
            state = {"args": {k: v for k, v in vars(args).items() if k != "epochs"},
                     "epoch": epoch, "params": jax.device_get(params),
                     "stats": jax.device_get(stats), "opt": jax.device_get(opt),
                     "rng": rng.bit_generator.state,
                     "wall_s": earlier_wall + time.perf_counter() - LAUNCHED}
            with open(args.state + ".tmp", "wb") as f:
                pickle.dump(state, f)
            os.replace(args.state + ".tmp", args.state)
    test = accuracy(x_test, y_test)
    wall = earlier_wall + time.perf_counter() - LAUNCHED
    print(f"test accuracy {test:.4f} ({len(x_test)} images), wall {wall:.1f} s from launch"
          + (" (summed over launches)" if earlier_wall else ""))
    if out:
        out.write(json.dumps({"test_accuracy": test, "wall_s": wall}) + "\n")


if __name__ == "__main__":
    main()
