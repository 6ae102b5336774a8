"""A wgpu-cnn model description (TOML, the format of README "Model files") as a Flax module:
the Flax twin of any model wgpu-cnn trains. Layers map one to one onto Flax's modules with the
same arguments, called inline in one `nn.compact` method, so Flax names the parameters exactly
as wgpu-cnn does (Conv_0, Conv_1, Dense_0, BatchNorm_0, ...).

Residual blocks (`type = "residual"`, `body`, optional `shortcut`, nesting allowed) are inlined
too: body first, then the shortcut, then the sum, so per module type the numbering follows the
order of first call through the nesting. `type = "repeat"` (`times`, `body`) runs its body in a
Python loop, which names the parameters as the unrolled description does. Batch norm is nn.BatchNorm(use_running_average=not
train): its scale and bias are params (`BatchNorm_0.scale`), its running mean and variance the
`batch_stats` collection (`batch_stats.BatchNorm_0.mean`, `.var`, see `flatten`).

    from flax_model import load_description, FlaxModel
    desc = load_description("assets/models/lenet5.toml")
    model = FlaxModel(tuple(desc["layer"]))
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)))
    logits = model.apply(variables, x)                      # eval: running statistics
    logits, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
"""
import os
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_description(path):
    """A description from a TOML file, or from a preset name (assets/models/NAME.toml)."""
    if not os.path.isfile(path):
        preset = os.path.join(ROOT, "assets", "models", f"{path}.toml")
        if os.path.isfile(preset):
            path = preset
    with open(path, "rb") as f:
        return tomllib.load(f)


def flatten(variables, prefix=""):
    """Flax variables as wgpu-cnn's checkpoint names: `params` unprefixed (`Conv_0.kernel`),
    every other collection prefixed with its name (`batch_stats.BatchNorm_0.mean`). Accepts the
    whole variables dict (with a `params` key) or a params tree alone. Arrays come back as
    float32 numpy arrays (float64 ones stay float64)."""
    if prefix == "" and "params" in variables:
        out = flatten(variables["params"])
        for col, tree in variables.items():
            if col != "params":
                out.update(flatten(tree, col))
        return out
    out = {}
    for k, v in variables.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(flatten(v, name))
        else:
            a = np.asarray(v)
            out[name] = a if a.dtype == np.float64 else a.astype(np.float32)
    return out


def unflatten(tensors):
    """The inverse of `flatten`: checkpoint tensors as Flax variables {"params": ..., "batch_stats":
    ...}; optimizer state (`opt.*`, older `adam.*`) is skipped."""
    variables = {}
    for name, value in tensors.items():
        parts = name.split(".")
        if parts[0] in ("adam", "opt"):
            continue
        if parts[0] != "batch_stats":
            parts = ["params"] + parts
        node = variables
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return variables


def forward_flops(model, variables, x_shape):
    """Multiply-add FLOPs of one forward pass over conv and dense layers, padding taps included
    (wgpu-cnn's convention: 2·N·OH·OW·O·KH·KW·C per conv, 2·M·K·N per dense)."""
    import jax
    import jax.numpy as jnp

    total = [0]

    def count(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        m = context.module
        if context.method_name == "__call__" and isinstance(m, (nn.Conv, nn.Dense)):
            x = args[0]
            if isinstance(m, nn.Conv):
                kh, kw = m.kernel_size
                total[0] += 2 * int(np.prod(out.shape)) * kh * kw * x.shape[-1]
            else:
                total[0] += 2 * int(np.prod(out.shape)) * x.shape[-1]
        return out

    with nn.intercept_methods(count):
        jax.eval_shape(lambda v: model.apply(v, jnp.zeros(x_shape)), variables)
    return total[0]


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _padding(v, default):
    if v is None:
        return default
    if isinstance(v, str):
        return v.upper()
    if isinstance(v, int):
        return ((v, v), (v, v))
    return tuple(tuple(p) for p in v)


def _layers(layers, x, train):
    """Runs `layers` inline in the caller's compact method (a plain function, not a method, so
    every module it creates belongs to the FlaxModel and is named in order of first call)."""
    for layer in layers:
        kind = layer["type"]
        if kind == "repeat":
            # Flax's loop: the body's modules are created `times` times in call order, so
            # they are named as in the unrolled description.
            for _ in range(layer["times"]):
                x = _layers(layer["body"], x, train)
        elif kind == "residual":
            y = _layers(layer["body"], x, train)
            s = _layers(layer["shortcut"], x, train) if "shortcut" in layer else x
            x = y + s
        elif kind == "batch_norm":
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=layer.get("momentum", 0.9),
                use_scale=layer.get("use_scale", True),
                epsilon=layer.get("epsilon", 1e-5),
            )(x)
        else:
            x = _layer(layer, x)
    return x


def _pytorch_uniform(fan_in):
    """Uniform in ±1/sqrt(fan_in): PyTorch's Conv2d/Linear default (`pytorch`)."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _dirac(fan_in):
    """`dirac`: `pytorch`, then filters o < min(C, O) of the HWIO kernel the identity."""
    uniform = _pytorch_uniform(fan_in)

    def init(key, shape, dtype=jnp.float32):
        kh, kw, c, o = shape
        k = uniform(key, shape, dtype)
        n = min(c, o)
        eye = jnp.zeros((kh, kw, c, n), dtype).at[kh // 2, kw // 2, jnp.arange(n), jnp.arange(n)].set(1)
        return k.at[..., :n].set(eye)

    return init


def _inits(layer, fan_in):
    """`kernel_init` / `bias_init` of a conv or dense layer as Flax initializers."""
    kernel = {"lecun_normal": nn.initializers.lecun_normal(), "pytorch": _pytorch_uniform(fan_in),
              "dirac": _dirac(fan_in),
              # Computed from the data by wgpu-cnn's train; the twins take weights from a
              # checkpoint, so the placeholder is PyTorch's default, as wgpu-cnn's without data.
              "whitening": _pytorch_uniform(fan_in)}[layer.get("kernel_init", "lecun_normal")]
    bias = {"zeros": nn.initializers.zeros, "pytorch": _pytorch_uniform(fan_in)}[
        layer.get("bias_init", "zeros")]
    return dict(kernel_init=kernel, bias_init=bias)


def _layer(layer, x):
    """One layer other than residual and batch norm."""
    kind = layer["type"]
    if kind == "conv":
        k = _pair(layer["kernel"])
        x = nn.Conv(
            features=layer["features"],
            kernel_size=k,
            strides=_pair(layer.get("stride", 1)),
            padding=_padding(layer.get("padding"), "SAME"),
            use_bias=layer.get("bias", True),
            **_inits(layer, k[0] * k[1] * x.shape[-1]),
        )(x)
    elif kind == "dense":
        x = nn.Dense(features=layer["features"], use_bias=layer.get("bias", True),
                     **_inits(layer, x.shape[-1]))(x)
    elif kind == "relu":
        x = nn.relu(x)
    elif kind == "gelu":
        # approximate=True (tanh) is Flax's default; `approximate = false`: x·Φ(x).
        x = nn.gelu(x, approximate=layer.get("approximate", True))
    elif kind == "scale":
        # No module, no parameters; the factor as wgpu-cnn holds it (f32), in x's precision.
        x = x * np.asarray(np.float32(layer["factor"]), dtype=x.dtype)
    elif kind == "max_pool":
        x = nn.max_pool(
            x,
            window_shape=_pair(layer["window"]),
            strides=_pair(layer.get("stride", layer["window"])),
            padding=_padding(layer.get("padding"), "VALID"),
        )
    elif kind == "global_avg_pool":
        x = x.mean(axis=(1, 2))
    elif kind == "dropout":
        # Evaluation mode. wgpu-cnn draws its masks from its own counter-based hash, not
        # JAX's PRNG, so training steps with dropout are compared with rate 0 only.
        x = nn.Dropout(rate=layer["rate"], deterministic=True)(x)
    elif kind == "avg_pool":
        window = _pair(layer["window"])
        x = nn.avg_pool(
            x,
            window_shape=window,
            strides=_pair(layer.get("stride", layer["window"])),
            padding=_padding(layer.get("padding"), "VALID"),
        )
    elif kind == "flatten":
        x = x.reshape((x.shape[0], -1))
    else:
        raise ValueError(f"layer type {kind!r} has no Flax twin here yet")
    return x


class FlaxModel(nn.Module):
    layers: tuple

    @nn.compact
    def __call__(self, x, train: bool = False):
        return _layers(self.layers, x, train)


def train_step_fn(model, tx):
    """One jitted training step of `model` with optimizer `tx`: forward in training mode (batch
    statistics, running ones updated: mutable=["batch_stats"]), mean softmax cross-entropy,
    backward, update. (params, stats, opt, x, y) -> (params, stats, opt, loss, correct)."""
    import jax
    import optax

    @jax.jit
    def step(params, stats, opt, x, y):
        def loss_fn(p):
            logits, upd = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                      mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, (upd.get("batch_stats", {}), logits)

        (loss, (stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        correct = (logits.argmax(-1) == y).sum()
        return optax.apply_updates(params, updates), stats, opt, loss, correct

    return step
