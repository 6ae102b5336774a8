"""The seed model in JAX/Flax (the Flax tutorial's CNN, TrainState + optax.adam, one jitted
step), timed like `wgpu-cnn bench`: warm-up, then the median of steps each synced with
block_until_ready. Prints a table and one JSON line.

    python tools/peers/jax_cnn.py [--batch-size 128] [--steps 10] [--warmup 3]
"""
import argparse
import json
import statistics
import time

LAUNCHED = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import linen as nn  # noqa: E402
from flax.training import train_state  # noqa: E402

# 3x-forward FLOP count with padding taps, as wgpu-cnn's headline number.
def train_flops(b):
    conv0 = 2 * b * 32 * 32 * 32 * 27
    conv1 = 2 * b * 16 * 16 * 64 * 288
    dense0 = 2 * b * 4096 * 256
    dense1 = 2 * b * 256 * 10
    return 3 * (conv0 + conv1 + dense0 + dense1)


class CNN(nn.Module):
    """The Flax tutorial's CIFAR-10 CNN; parameter names match wgpu-cnn checkpoints."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(features=32, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.Conv(features=64, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(features=256)(x)
        x = nn.relu(x)
        x = nn.Dense(features=10)(x)
        return x


@jax.jit
def train_step(state, images, labels):
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, images)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return state, loss, accuracy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    b = args.batch_size
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((b, 32, 32, 3), dtype=np.float32))
    labels = jnp.asarray(rng.integers(0, 10, b).astype(np.int32))
    model = CNN()
    params = model.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)))["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-4))
    state, loss, _ = train_step(state, images, labels)
    loss.block_until_ready()
    startup = time.perf_counter() - LAUNCHED
    for _ in range(args.warmup):
        state, loss, _ = train_step(state, images, labels)
        loss.block_until_ready()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        state, loss, _ = train_step(state, images, labels)
        jax.block_until_ready(state.params)
        times.append(time.perf_counter() - t)
    step = statistics.median(times)
    result = {
        "framework": "jax",
        "version": f"jax {jax.__version__}",
        "device": str(jax.devices()[0]),
        "batch_size": b,
        "startup_s": startup,
        "step_ms_median": step * 1e3,
        "images_per_second": b / step,
        "gflops_per_second": train_flops(b) / step / 1e9,
    }
    print(f"jax {jax.__version__} on {result['device']}: step {step * 1e3:.1f} ms, "
          f"{b / step:.0f} images/s, {result['gflops_per_second']:.2f} GFLOP/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
