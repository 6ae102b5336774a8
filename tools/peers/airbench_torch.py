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

  steps      The whole recipe's training steps from the same weights: airbench94.py's network
             (make_net), its optimizer formulation (loss summed over the batch, lr and decay per
             1024 examples, the batch-norm biases' group at 64x the rate, Nesterov SGD), its
             LambdaLR schedule, its whitening-bias freezing and its LookaheadState (alpha
             schedule 0.95^5 (t/T)^3 every 5 steps, the copy-back at the end), on the first
             B*T training images in file order without augmentation; wgpu-cnn runs the
             `cifar10-airbench94` recipe from the same weights (--init) with the learning rate
             its lr line says for batch B (0.3 * B / 1024) and the schedule's boundaries for T.
             Every tensor (parameters and running statistics) is compared, and both are
             measured from the same PyTorch steps in float64. One deliberate difference: the
             running variance moves with the biased batch variance (Flax's rule, which wgpu-cnn
             follows; PyTorch's BatchNorm2d uses the unbiased one), so the port's batch norm
             does the same.

  tta        airbench94.py's test-time augmentation (tta_level 2: the image and its mirror,
             and both of them shifted by one pixel up-left and down-right in a reflect pad,
             logits averaged) of a checkpoint's model loaded into the PyTorch port, against
             `wgpu-cnn eval --tta airbench` of the same checkpoint: accuracy and the
             cross-entropy of the averaged logits on the first N test images.

  speed      One training step of airbench94 at batch B, median of N after a warmup, in the
             same run: PyTorch float32 on this CPU (airbench94.py's network and optimizer, all
             cores) and `wgpu-cnn bench --model airbench94` (lavapipe on the same cores, or
             the GPU it finds), with GFLOP/s from wgpu-cnn's count of the step's work.

Usage:
  python tools/peers/airbench_torch.py tta --checkpoint runs/X/last.safetensors [--images 2000]
  python tools/peers/airbench_torch.py speed --batch-size 512 [--steps 5]
  python tools/peers/airbench_torch.py whitening --checkpoint runs/X/last.safetensors \\
      --data ../shared/cifar10/cifar-10-batches-bin [--images 5000]
  python tools/peers/airbench_torch.py steps --data ../shared/cifar10/cifar-10-batches-bin \\
      [--batch-size 64] [--steps 10] [--bin target/release/wgpu-cnn]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch import nn

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


class BatchNorm(nn.Module):
    """airbench94's BatchNorm (no trainable weight, eps 1e-12, PyTorch momentum 0.4) with the
    running variance moved by the biased batch variance (Flax's rule, see the module doc)."""

    def __init__(self, c, momentum=0.6, eps=1e-12):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.m, self.eps = momentum, eps

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            with torch.no_grad():
                self.running_mean.mul_(self.m).add_((1 - self.m) * mean)
                self.running_var.mul_(self.m).add_((1 - self.m) * var)
        else:
            mean, var = self.running_mean, self.running_var
        x = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return x + self.bias[None, :, None, None]


class ConvGroup(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = BatchNorm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding="same", bias=False)
        self.norm2 = BatchNorm(cout)
        self.activ = nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Mul(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def make_net():
    """airbench94.py's make_net (widths 64, 256, 256), float32 on the CPU."""
    return nn.Sequential(
        nn.Conv2d(3, 24, 2, padding=0, bias=True), nn.GELU(),
        ConvGroup(24, 64), ConvGroup(64, 256), ConvGroup(256, 256),
        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, 10, bias=False), Mul(1 / 9))


def flax_names(net):
    """(Flax name, torch tensor, layout) of every parameter and running statistic."""
    out = [("Conv_0.kernel", net[0].weight, "conv"), ("Conv_0.bias", net[0].bias, "")]
    for g in range(3):
        grp = net[2 + g]
        out += [(f"Conv_{2 * g + 1}.kernel", grp.conv1.weight, "conv"),
                (f"BatchNorm_{2 * g}.bias", grp.norm1.bias, ""),
                (f"Conv_{2 * g + 2}.kernel", grp.conv2.weight, "conv"),
                (f"BatchNorm_{2 * g + 1}.bias", grp.norm2.bias, "")]
        for k, bn in ((2 * g, grp.norm1), (2 * g + 1, grp.norm2)):
            out += [(f"batch_stats.BatchNorm_{k}.mean", bn.running_mean, ""),
                    (f"batch_stats.BatchNorm_{k}.var", bn.running_var, "")]
    out.append(("Dense_0.kernel", net[7].weight, "dense"))
    return out


def to_flax(t, layout):
    """A torch tensor in Flax's layout, C-contiguous (safetensors writes the memory order)."""
    a = t.detach().double().numpy()
    if layout == "conv":
        a = a.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif layout == "dense":
        a = a.T  # [out, in] -> [in, out]
    return np.ascontiguousarray(a)


def train_airbench(net, x, y, batch, steps, dtype):
    """airbench94.py's training loop for `steps` updates on the batches of (x, y) in order."""
    net = net.to(dtype)
    momentum, bias_scaler = 0.85, 64.0
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = 11.5 / kilostep_scale
    wd = 0.0153 * batch / kilostep_scale
    lr_biases = lr * bias_scaler
    net[0].weight.requires_grad = False
    named = list(net.named_parameters())
    norm_biases = [p for k, p in named if "norm" in k and p.requires_grad]
    other = [p for k, p in named if "norm" not in k and p.requires_grad]
    opt = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                           dict(params=other, lr=lr, weight_decay=wd / lr)],
                          momentum=momentum, nesterov=True)
    total = steps
    warmup = int(total * 0.23)

    def get_lr(step):
        if step < warmup:
            frac = step / warmup
            return 0.2 * (1 - frac) + 1.0 * frac
        frac = (step - warmup) / (total - warmup)
        return 1.0 * (1 - frac) + 0.07 * frac
    sched = torch.optim.lr_scheduler.LambdaLR(opt, get_lr)
    alpha = 0.95 ** 5 * (torch.arange(total + 1) / total) ** 3
    ema = {k: v.clone() for k, v in net.state_dict().items()}

    def lookahead(decay):
        for e, p in zip(ema.values(), net.state_dict().values()):
            if p.dtype in (torch.float32, torch.float64):
                e.lerp_(p, 1 - decay)
                p.copy_(e)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    net.train()
    net[0].bias.requires_grad = True  # epoch 0 < whiten_bias_epochs
    for t in range(steps):
        xb = x[t * batch:(t + 1) * batch].to(dtype)
        loss = loss_fn(net(xb), y[t * batch:(t + 1) * batch]).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (t + 1) % 5 == 0:
            lookahead(alpha[t + 1].item())
        if t + 1 >= total:
            lookahead(1.0)
    return net


def check_steps(args):
    torch.manual_seed(args.seed)
    b, t = args.batch_size, args.steps
    images, labels = load_cifar(args.data, "data_batch_1.bin", max(b * t, 5000))
    x_all = torch.tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(labels[:b * t], dtype=torch.long)
    net = make_net()
    # airbench94's inits: PyTorch's defaults, dirac on the first c_in filters of the 3x3 convs,
    # the whitening conv from the first 5,000 images.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                nn.init.dirac_(m.weight[:m.weight.size(1)])
        net[0].bias.zero_()
        net[0].weight.copy_(whitening_weight(x_all[:5000])[0])
    init = {n: np.ascontiguousarray(to_flax(p, l), dtype=np.float32) for n, p, l in flax_names(net)}
    x = x_all[:b * t]
    with tempfile.TemporaryDirectory() as d:
        init_path = os.path.join(d, "init.safetensors")
        save_file(init, init_path)
        out = os.path.join(d, "run")
        cmd = [args.bin, "train", "--recipe", "cifar10-airbench94", "--data", args.data,
               "--init", init_path, "--train-limit", str(b * t), "--val-size", "0",
               "--no-augment", "--no-shuffle", "--batch-size", str(b), "--epochs", "1",
               "--lr", str(0.3 * b / 1024), "--boundaries", f"{int(t * 0.23)},{t}",
               "--scales", "5,0.07", "--tta", "none", "--test-limit", str(b), "--out", out]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ours = load_file(os.path.join(out, "last.safetensors"))
    import copy
    f32 = train_airbench(copy.deepcopy(net), x, y, b, t, torch.float32)
    f64 = train_airbench(copy.deepcopy(net), x, y, b, t, torch.float64)
    rows, worst = [], {"ours": 0.0, "torch_f32": 0.0}
    for (name, p32, layout), (_, p64, _) in zip(flax_names(f32), flax_names(f64)):
        ref, a, tf = to_flax(p64, layout), ours[name].astype(np.float64), to_flax(p32, layout)
        base = init[name].astype(np.float64)
        moved = np.linalg.norm(ref - base)
        scale = moved if moved > 0 else max(np.linalg.norm(ref), 1e-30)
        d_ours = float(np.linalg.norm(a - ref) / scale)
        d_torch = float(np.linalg.norm(tf - ref) / scale)
        rows.append((name, moved, d_ours, d_torch))
        worst["ours"] = max(worst["ours"], d_ours)
        worst["torch_f32"] = max(worst["torch_f32"], d_torch)
    print(f"{t} steps of batch {b}; per tensor, distance of the change from PyTorch float64: "
          "ours / PyTorch float32")
    for name, moved, d_ours, d_torch in rows:
        print(f"  {name:34s} |change| {moved:.3e}  {d_ours:.2e} / {d_torch:.2e}")
    ok = worst["ours"] <= max(3 * worst["torch_f32"], 1e-5)
    print(json.dumps({"check": "steps", "batch": b, "steps": t, "ours_vs_f64": worst["ours"],
                      "torch_f32_vs_f64": worst["torch_f32"], "pass": ok}))
    return ok


def from_flax(net, tensors):
    """Loads a wgpu-cnn checkpoint (Flax names and layouts) into the port."""
    with torch.no_grad():
        for name, t, layout in flax_names(net):
            a = tensors[name]
            if layout == "conv":
                a = a.transpose(3, 2, 0, 1)
            elif layout == "dense":
                a = a.T
            t.copy_(torch.tensor(np.ascontiguousarray(a)))


def check_tta(args):
    import torch.nn.functional as F
    net = make_net()
    from_flax(net, load_file(args.checkpoint))
    net.eval()
    images, labels = load_cifar(args.data, "test_batch.bin", args.images)
    x = torch.tensor(np.asarray(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(labels, dtype=torch.long)

    def infer_mirror(inputs):
        return 0.5 * net(inputs) + 0.5 * net(inputs.flip(-1))

    def infer_mirror_translate(inputs):
        logits = infer_mirror(inputs)
        padded = F.pad(inputs, (1,) * 4, "reflect")
        shifted = [padded[:, :, 0:32, 0:32], padded[:, :, 2:34, 2:34]]
        logits_translate = torch.stack([infer_mirror(t) for t in shifted]).mean(0)
        return 0.5 * logits + 0.5 * logits_translate

    with torch.no_grad():
        logits = torch.cat([infer_mirror_translate(x[i:i + 500]) for i in range(0, len(x), 500)])
    acc = float((logits.argmax(1) == y).float().mean())
    loss = float(F.cross_entropy(logits.double(), y))
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([args.bin, "eval", "--checkpoint", args.checkpoint, "--data", args.data,
                        "--tta", "airbench", "--test-limit", str(args.images), "--out", d],
                       check=True, stdout=subprocess.DEVNULL)
        ours = json.load(open(os.path.join(d, "test.json")))["tta_views"]
    print(f"six-view TTA on the first {args.images} test images: PyTorch accuracy {acc:.4f} "
          f"loss {loss:.6f}; wgpu-cnn accuracy {ours['accuracy']:.4f} loss {ours['loss']:.6f}")
    ok = abs(acc - ours["accuracy"]) <= 2 / args.images and abs(loss - ours["loss"]) < 1e-4
    print(json.dumps({"check": "tta", "images": args.images, "torch_accuracy": acc,
                      "torch_loss": loss, "ours_accuracy": ours["accuracy"],
                      "ours_loss": ours["loss"], "pass": ok}))
    return ok


def check_speed(args):
    import time
    b = args.batch_size
    net = make_net().to(memory_format=torch.channels_last)
    x = torch.randn(b, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (b,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.85, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    net.train()
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = loss_fn(net(x), y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    torch_ms = 1e3 * sorted(times)[len(times) // 2]
    out = subprocess.run([args.bin, "bench", "--model", "airbench94", "--batch-size", str(b),
                          "--steps", str(args.steps), "--warmup", str(args.warmup)],
                         check=True, capture_output=True, text=True).stdout
    ours = json.loads(out.strip().splitlines()[-1])
    gflop = ours["gflop_per_step"]
    print(f"airbench94 train step, batch {b}, median of {args.steps}:")
    print(f"  PyTorch {torch.__version__} CPU f32 ({torch.get_num_threads()} threads): "
          f"{torch_ms:.0f} ms, {gflop / torch_ms * 1e3:.1f} GFLOP/s")
    print(f"  wgpu-cnn on {ours['adapter']}: {ours['step_ms_median']:.0f} ms, "
          f"{ours['gflops_per_second']:.1f} GFLOP/s")
    ratio = ours["step_ms_median"] / torch_ms
    print(f"  ours / PyTorch: {ratio:.2f}")
    print(json.dumps({"check": "speed", "batch": b, "torch_ms": torch_ms,
                      "ours_ms": ours["step_ms_median"], "gflop_per_step": gflop,
                      "ratio": ratio}))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="check", required=True)
    w = sub.add_parser("whitening")
    w.add_argument("--checkpoint", required=True)
    w.add_argument("--data", default="data/cifar-10-batches-bin")
    w.add_argument("--images", type=int, default=5000)
    st = sub.add_parser("steps")
    st.add_argument("--data", default="data/cifar-10-batches-bin")
    st.add_argument("--batch-size", type=int, default=64)
    st.add_argument("--steps", type=int, default=10)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--bin", default="target/release/wgpu-cnn")
    tt = sub.add_parser("tta")
    tt.add_argument("--checkpoint", required=True)
    tt.add_argument("--data", default="data/cifar-10-batches-bin")
    tt.add_argument("--images", type=int, default=2000)
    tt.add_argument("--bin", default="target/release/wgpu-cnn")
    sp = sub.add_parser("speed")
    sp.add_argument("--batch-size", type=int, default=512)
    sp.add_argument("--steps", type=int, default=5)
    sp.add_argument("--warmup", type=int, default=2)
    sp.add_argument("--bin", default="target/release/wgpu-cnn")
    args = ap.parse_args()
    ok = {"whitening": check_whitening, "steps": check_steps, "tta": check_tta,
          "speed": check_speed}[args.check](args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
