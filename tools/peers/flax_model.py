"""A wgpu-cnn model description (TOML, the format of README "Model files") as a Flax module:
the Flax twin of any model wgpu-cnn trains. Layers map one to one onto Flax's modules with the
same arguments, called inline in one `nn.compact` method, so Flax names the parameters exactly
as wgpu-cnn does (Conv_0, Conv_1, Dense_0, ...).

    from flax_model import load_description, FlaxModel
    desc = load_description("assets/models/lenet5.toml")
    model = FlaxModel(desc["layer"])
"""
import tomllib

from flax import linen as nn


def load_description(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


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


class FlaxModel(nn.Module):
    layers: tuple

    @nn.compact
    def __call__(self, x):
        for layer in self.layers:
            kind = layer["type"]
            if kind == "conv":
                x = nn.Conv(
                    features=layer["features"],
                    kernel_size=_pair(layer["kernel"]),
                    strides=_pair(layer.get("stride", 1)),
                    padding=_padding(layer.get("padding"), "SAME"),
                    use_bias=layer.get("bias", True),
                )(x)
            elif kind == "dense":
                x = nn.Dense(features=layer["features"], use_bias=layer.get("bias", True))(x)
            elif kind == "relu":
                x = nn.relu(x)
            elif kind == "gelu":
                x = nn.gelu(x)  # approximate=True (tanh), Flax's default
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
