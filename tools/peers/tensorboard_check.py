"""Reads a wgpu-cnn run folder's TensorBoard events with TensorBoard's own reader
(EventAccumulator) and checks them against the run's metrics.jsonl and test.json: every epoch
exactly once, in order, with the same numbers (as float32).

    python tools/peers/tensorboard_check.py runs/RUN [runs/OTHER ...]

Needs `pip install tensorboard` in the peers' environment.
"""
import json
import os
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAGS = {"train/loss": "train_loss", "train/accuracy": "train_accuracy", "val/loss": "val_loss",
        "val/accuracy": "val_accuracy", "learning_rate": "lr",
        "images_per_second": "images_per_second"}


def check(run):
    acc = EventAccumulator(run)
    acc.Reload()
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    tags = acc.Tags()["scalars"]
    problems = []
    for tag, key in TAGS.items():
        want = [(m["epoch"], np.float32(m[key])) for m in lines if m.get(key) is not None]
        if not want:
            if tag in tags:
                problems.append(f"{tag}: in the events, not in metrics.jsonl")
            continue
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)] if tag in tags else []
        if got != want:
            problems.append(f"{tag}: events {got} != metrics.jsonl {want}")
    test_path = os.path.join(run, "test.json")
    if os.path.exists(test_path):
        test = json.load(open(test_path))
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars("test/accuracy")]
        if got != [(test["epoch"], np.float32(test["accuracy"]))]:
            problems.append(f"test/accuracy: events {got} != test.json {test['accuracy']}")
    epochs = [m["epoch"] for m in lines]
    print(f"{run}: {len(epochs)} epochs {epochs}, tags {sorted(tags)}: "
          + ("ok" if not problems else "MISMATCH"))
    for p in problems:
        print("  " + p)
    return not problems


if __name__ == "__main__":
    ok = all([check(r) for r in sys.argv[1:]])
    sys.exit(0 if ok else 1)
