"""Loads a wgpu-cnn checkpoint into the Flax model unchanged and evaluates it on the CIFAR-10
test set: the proof that the checkpoint contract (names, shapes, HWIO kernels, (H, W, C)
flattening) is Flax's. The model is the checkpoint's description (metadata `model`, built by
flax_model.py), or the seed CNN for checkpoints without one.

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

from flax_model import FlaxModel
from jax_cnn import CNN

MEAN = np.array([0.49139968, 0.48215841, 0.44653091], np.float32)
STD = np.array([0.24703223, 0.24348513, 0.26158784], np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="data/cifar-10-batches-bin")
    args = ap.parse_args()
    tensors = load_file(args.checkpoint)
    params = {}
    for name, value in tensors.items():
        if name.startswith("adam."):
            continue
        layer, kind = name.split(".")
        params.setdefault(layer, {})[kind] = jnp.asarray(value)
    raw = np.fromfile(os.path.join(args.data, "test_batch.bin"), np.uint8).reshape(-1, 3073)
    labels = raw[:, 0].astype(np.int32)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    images = (images - MEAN) / STD
    with safe_open(args.checkpoint, "np") as f:
        text = (f.metadata() or {}).get("model")
    model = FlaxModel(tuple(tomllib.loads(text)["layer"])) if text else CNN()
    apply = jax.jit(lambda x: model.apply({"params": params}, x))
    logits = np.concatenate([np.asarray(apply(images[i:i + 1000])) for i in range(0, len(images), 1000)])
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    loss = float(-logp[np.arange(len(labels)), labels].mean())
    correct = int((logits.argmax(1) == labels).sum())
    print(f"flax on {args.checkpoint}: loss: {loss:.4f}, accuracy: {correct / len(labels):.4f} "
          f"({correct}/{len(labels)})")
    print(json.dumps({"loss": loss, "accuracy": correct / len(labels), "correct": correct, "total": len(labels)}))


if __name__ == "__main__":
    main()
