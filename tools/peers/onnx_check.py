"""Checks wgpu-cnn's ONNX export with the ONNX project's own tools: `onnx.checker` (full check,
with shape inference) and onnxruntime.

    python tools/peers/onnx_check.py --bin target/release/wgpu-cnn \
        --data ../shared/cifar10/cifar-10-batches-bin --out /tmp/onnx-check \
        [--presets flax-cifar10,lenet5,resnet20,vgg11-bn] [--checkpoint FILE ...] [--cases]

- Per preset: a short training run (`--train-limit`, one epoch) gives a checkpoint; per
  `--checkpoint`: that file (a `.xz` is unpacked first). Each is evaluated by `wgpu-cnn eval
  --out` on the whole CIFAR-10 test split and exported with `wgpu-cnn export`; onnxruntime runs
  the exported model on the raw test images (NHWC float32 pixels 0-255, as the contract says).
  Pass: the same top-1 class for every image, logits within 1e-4 relative (per image: the
  largest difference over the largest |logit|).
- `--cases`: runs `cargo test --release --test onnx` with WGPU_CNN_ONNX_CASES set, which writes
  every model that test compares (the presets and the random descriptions, random running
  statistics) with its input and the float64 CPU reference's logits; onnxruntime must be within
  1e-4 relative of the reference for each.

Needs `pip install onnx onnxruntime safetensors numpy` in the peers' environment.
"""
import argparse
import glob
import lzma
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

TOL = 1e-4


def relative(got, want):
    """Per row: max |got - want| / max |want| (floored at 1e-3); the worst row."""
    scale = np.maximum(np.abs(want).max(axis=1), 1e-3)
    return float((np.abs(got.astype(np.float64) - want).max(axis=1) / scale).max())


def session(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert "classes" in meta, "metadata_props has no classes"
    [inp] = model.graph.input
    [out] = model.graph.output
    assert inp.name == "images" and out.name == "logits", (inp.name, out.name)
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]), meta


def cifar_test(data):
    raw = np.fromfile(os.path.join(data, "test_batch.bin"), dtype=np.uint8).reshape(-1, 3073)
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32)
    return images, labels


def run(cmd):
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def check_checkpoint(bin_, data, ck, name, out, images, labels):
    onnx_path = os.path.join(out, f"{name}.onnx")
    eval_dir = os.path.join(out, f"{name}-eval")
    run([bin_, "export", "--checkpoint", ck, "--out", onnx_path])
    run([bin_, "eval", "--checkpoint", ck, "--data", data, "--out", eval_dir])
    ours = load_file(os.path.join(eval_dir, "logits.safetensors"))
    assert (ours["labels"] == labels).all(), "eval's labels are not the test split's"
    sess, meta = session(onnx_path)
    got = np.concatenate([sess.run(["logits"], {"images": images[i:i + 500]})[0]
                          for i in range(0, len(images), 500)])
    want = ours["logits"].astype(np.float64)
    same = int((got.argmax(1) == want.argmax(1)).sum())
    err = relative(got, want)
    acc_onnx = float((got.argmax(1) == labels).mean())
    acc_ours = float((want.argmax(1) == labels).mean())
    ok = same == len(labels) and err <= TOL
    print(f"{name}: {same}/{len(labels)} same top-1, logits {err:.2e} relative; accuracy "
          f"onnxruntime {acc_onnx:.4f}, wgpu-cnn eval {acc_ours:.4f}; classes {meta['classes']}"
          f" -> {'ok' if ok else 'FAIL'}", flush=True)
    return ok


def check_cases(out):
    cases = os.path.join(out, "cases")
    shutil.rmtree(cases, ignore_errors=True)
    env = dict(os.environ, WGPU_CNN_ONNX_CASES=os.path.abspath(cases))
    print("$ cargo test --release --test onnx onnx_matches", flush=True)
    subprocess.run(["cargo", "test", "--release", "--test", "onnx", "onnx_matches"], check=True,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = True
    files = sorted(glob.glob(os.path.join(cases, "*.onnx")))
    assert files, "the test wrote no cases"
    for path in files:
        case = load_file(path[:-5] + ".safetensors")
        sess, _ = session(path)
        got = sess.run(["logits"], {"images": case["images"]})[0]
        err = relative(got, case["reference"])
        ok &= err <= TOL
        print(f"{os.path.basename(path)[:-5]}: onnxruntime {err:.2e} relative from the float64 "
              f"reference -> {'ok' if err <= TOL else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/wgpu-cnn")
    ap.add_argument("--data", default="../shared/cifar10/cifar-10-batches-bin")
    ap.add_argument("--out", default="/tmp/onnx-check")
    ap.add_argument("--presets", default="flax-cifar10,lenet5,resnet20,vgg11-bn")
    ap.add_argument("--train-limit", type=int, default=2048)
    ap.add_argument("--checkpoint", action="append", default=[])
    ap.add_argument("--cases", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    images, labels = cifar_test(a.data)
    ok = True
    for p in [p for p in a.presets.split(",") if p]:
        run_dir = os.path.join(a.out, f"train-{p}")
        shutil.rmtree(run_dir, ignore_errors=True)
        run([a.bin, "train", "--model", p, "--data", a.data, "--epochs", "1", "--train-limit",
             str(a.train_limit), "--test-limit", "500", "--out", run_dir])
        ok &= check_checkpoint(a.bin, a.data, os.path.join(run_dir, "last.safetensors"), p, a.out,
                               images, labels)
    for ck in a.checkpoint:
        name = os.path.basename(ck).split(".")[0]
        if ck.endswith(".xz"):
            unpacked = os.path.join(a.out, name + ".safetensors")
            with lzma.open(ck) as f, open(unpacked, "wb") as g:
                shutil.copyfileobj(f, g)
            ck = unpacked
        ok &= check_checkpoint(a.bin, a.data, ck, name, a.out, images, labels)
    if a.cases:
        ok &= check_cases(a.out)
    print("all ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
