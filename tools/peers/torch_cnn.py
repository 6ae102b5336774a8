"""The seed model in PyTorch (eager, torch.optim.Adam with optax's defaults), timed like
`wgpu-cnn bench`: warm-up, then the median of steps. Prints a table and one JSON line.

    python tools/peers/torch_cnn.py [--batch-size 128] [--steps 10] [--warmup 3]
"""
import argparse
import json
import statistics
import time

LAUNCHED = time.perf_counter()

import torch  # noqa: E402
from torch import nn  # noqa: E402


def train_flops(b):
    conv0 = 2 * b * 32 * 32 * 32 * 27
    conv1 = 2 * b * 16 * 16 * 64 * 288
    dense0 = 2 * b * 4096 * 256
    dense1 = 2 * b * 256 * 10
    return 3 * (conv0 + conv1 + dense0 + dense1)


def model():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    b = args.batch_size
    dev = torch.device(args.device)
    torch.manual_seed(0)
    net = model().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.randn(b, 3, 32, 32, device=dev)
    labels = torch.randint(0, 10, (b,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(images), labels)
        loss.backward()
        opt.step()
        return loss.item()  # syncs the device

    step()
    startup = time.perf_counter() - LAUNCHED
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    s = statistics.median(times)
    result = {
        "framework": "pytorch",
        "version": f"torch {torch.__version__}",
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "batch_size": b,
        "startup_s": startup,
        "step_ms_median": s * 1e3,
        "images_per_second": b / s,
        "gflops_per_second": train_flops(b) / s / 1e9,
    }
    print(f"torch {torch.__version__} on {result['device']}: step {s * 1e3:.1f} ms, "
          f"{b / s:.0f} images/s, {result['gflops_per_second']:.2f} GFLOP/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
