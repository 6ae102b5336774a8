#!/usr/bin/env python3
"""PyTorch float32 twins of airbench94's pieces (KellerJordan/cifar10-airbench, airbench94.py),
checked against wgpu-cnn's `cifar10-airbench94` recipe.

  whitening  The whitening conv as airbench94's init_whitening_conv computes it (get_patches,
             get_whitening_parameters: the uncentred 2x2 patch covariance of the first 5,000
             normalised training images, torch.linalg.eigh, eigenvectors / sqrt(λ + 5e-4), then
             their negatives) against the frozen Conv_0.kernel of a wgpu-cnn checkpoint of the
             recipe, both measured from the same computation in float64 (close eigenvalues
             make the eigenvectors sensitive: airbench's float32 is itself ~1e-2 off there).
             An eigenvector's sign is arbitrary (wgpu-cnn makes the largest component
             positive), so each filter is compared up to its sign.

Usage:
  python tools/peers/airbench_torch.py whitening --checkpoint runs/X/last.safetensors \\
      --data ../shared/cifar10/cifar-10-batches-bin [--images 5000]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(__file__))
from flax_load import load_cifar  # noqa: E402

def get_patches(x, patch_shape):
    c, (h, w) = x.shape[1], patch_shape
    return x.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w)


def get_whitening_parameters(patches):
    n, c, h, w = patches.shape
    patches_flat = patches.reshape(n, -1)
    est_patch_covariance = (patches_flat.T @ patches_flat) / n
    eigenvalues, eigenvectors = torch.linalg.eigh(est_patch_covariance, UPLO="U")
    return eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)


def whitening_weight(images, eps=5e-4):
    """airbench94's init_whitening_conv on NCHW images (in their dtype: airbench's float32, or
    float64 as the reference): the [24, 3, 2, 2] weight and the eigenvalues."""
    patches = get_patches(images, patch_shape=(2, 2))
    eigenvalues, eigenvectors = get_whitening_parameters(patches)
    eigenvectors_scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
    return torch.cat((eigenvectors_scaled, -eigenvectors_scaled)), eigenvalues.flatten()


def filter_distances(a, b):
    """Per filter ‖a − ±b‖ / ‖b‖ (the sign of an eigenvector is arbitrary)."""
    out = []
    for f in range(a.shape[0]):
        x, y = a[f].flatten().double(), b[f].flatten().double()
        sign = 1.0 if float((x * y).sum()) >= 0 else -1.0
        out.append(float((x - sign * y).norm() / y.norm()))
    return out


def check_whitening(args):
    # The first images in file order, normalised with CIFAR-10's statistics (as the recipe).
    images, _ = load_cifar(args.data, "data_batch_1.bin", args.images)
    x = torch.tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2).contiguous()
    w32, lam = whitening_weight(x)
    w64, _ = whitening_weight(x.double())
    ours = load_file(args.checkpoint)["Conv_0.kernel"]  # HWIO [2, 2, 3, 24]
    ours = torch.tensor(ours).permute(3, 2, 0, 1)  # OIHW
    d_ours, d_torch = filter_distances(ours, w64), filter_distances(w32, w64)
    print(f"eigenvalues: {', '.join(f'{v:.4g}' for v in lam.tolist())}")
    print("per eigenvector, distance from PyTorch float64 (up to sign): ours / PyTorch float32")
    for f in range(12):
        print(f"  {f:2d}  λ {lam[f]:.4g}  {d_ours[f]:.2e} / {d_torch[f]:.2e}")
    worst_ours, worst_torch = max(d_ours), max(d_torch)
    ok = worst_ours <= max(3 * worst_torch, 1e-6)
    print(f"worst: ours {worst_ours:.3e}, PyTorch float32 {worst_torch:.3e}")
    print(json.dumps({"check": "whitening", "images": args.images, "ours_vs_f64": worst_ours,
                      "torch_f32_vs_f64": worst_torch, "pass": ok}))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="check", required=True)
    w = sub.add_parser("whitening")
    w.add_argument("--checkpoint", required=True)
    w.add_argument("--data", default="data/cifar-10-batches-bin")
    w.add_argument("--images", type=int, default=5000)
    args = ap.parse_args()
    ok = check_whitening(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
