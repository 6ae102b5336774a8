"""Loads a wgpu-cnn checkpoint into the Flax model unchanged and evaluates it on the CIFAR-10
test set: the proof that the checkpoint contract (names, shapes, HWIO kernels, (H, W, C)
flattening, `batch_stats.BatchNorm_i.mean/var`) is Flax's. The model is the checkpoint's
description (metadata `model`, built by flax_model.py), or the seed CNN for checkpoints without
one. Batch norm layers evaluate with the checkpoint's running statistics (Flax's eval mode,
use_running_average=True).

    python tools/peers/flax_load.py CHECKPOINT.safetensors --data ../shared/cifar10/cifar-10-batches-bin
"""
import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import tomllib

from safetensors import safe_open
from safetensors.numpy import load_file

from flax_model import FlaxModel, unflatten

MEAN = np.array([0.49139968, 0.48215841, 0.44653091], np.float32)
STD = np.array([0.24703223, 0.24348513, 0.26158784], np.float32)


def load_cifar(data, file="test_batch.bin", limit=None):
    """Images (NHWC, normalised with CIFAR-10's mean and std) and labels of one binary file, in
    file order, as wgpu-cnn reads them."""
    raw = np.fromfile(os.path.join(data, file), np.uint8).reshape(-1, 3073)[:limit]
    labels = raw[:, 0].astype(np.int32)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return (images - MEAN) / STD, labels


def evaluate(model, variables, images, labels, batch=1000):
    """Eval mode (running statistics): mean cross-entropy, number correct, predictions."""
    apply = jax.jit(lambda v, x: model.apply(v, x))
    logits = np.concatenate([np.asarray(apply(variables, images[i:i + batch]))
                             for i in range(0, len(images), batch)]).astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    loss = float(-logp[np.arange(len(labels)), labels].mean())
    pred = logits.argmax(1)
    return loss, int((pred == labels).sum()), pred


def load_checkpoint(path):
    """(Flax variables {"params", and "batch_stats" where the model has batch norm}, model)."""
    variables = unflatten({k: jnp.asarray(v) for k, v in load_file(path).items()})
    with safe_open(path, "np") as f:
        text = (f.metadata() or {}).get("model")
    if text:
        model = FlaxModel(tuple(tomllib.loads(text)["layer"]))
    else:
        from jax_cnn import CNN
        model = CNN()
    return variables, model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="data/cifar-10-batches-bin")
    args = ap.parse_args()
    variables, model = load_checkpoint(args.checkpoint)
    images, labels = load_cifar(args.data)
    loss, correct, _ = evaluate(model, variables, images, labels)
    print(f"flax on {args.checkpoint}: loss: {loss:.4f}, accuracy: {correct / len(labels):.4f} "
          f"({correct}/{len(labels)})")
    print(json.dumps({"loss": loss, "accuracy": correct / len(labels), "correct": correct, "total": len(labels)}))


if __name__ == "__main__":
    main()
