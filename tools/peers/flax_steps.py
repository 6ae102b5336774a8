"""Trains a model description for a few Adam steps in Flax/optax and in wgpu-cnn from the same
Flax init and the same images, and compares every weight change (after − init) and, for models
with batch norm, every running statistic; then evaluates both results on the test set in Flax.

    python tools/peers/flax_steps.py --model assets/models/lenet5.toml \
        --data ../shared/cifar10/cifar-10-batches-bin [--steps 4] [--batch-size 32] [--lr 1e-3]

wgpu-cnn runs `train --init flax_init.safetensors --no-augment --no-shuffle --val-size 0
--train-limit steps·batch --epochs 1`: the first steps·batch images of data_batch_1.bin in file
order, normalised with CIFAR-10's mean and std, exactly what this script feeds Flax.

The init file holds the params under their Flax names (`Conv_0.kernel`, `BatchNorm_0.scale`, …)
and the batch norm running statistics as `batch_stats.BatchNorm_0.mean` / `.var` (zeros and
ones); wgpu-cnn's checkpoint must hold the same names. Flax trains with train=True and
mutable=["batch_stats"] (batch statistics, running ones updated with the layer's momentum).
Both results are then evaluated in eval mode (running statistics) in Flax: Flax's own weights and
wgpu-cnn's weights loaded into the Flax model.

Batch norm makes the f32 gradient ill-conditioned: at init, ResNet-20's f32 gradients differ from
float64's (and from f32 with the batch permuted) by ~1e-2 relative, and Adam turns that into
sign flips of full-size steps, so two correct f32 implementations (even Flax jitted and Flax
op by op) differ by ~4e-2 after 4 steps. For such models (`--reference auto`: those with batch
norm) the same steps also run in float64 Flax; the check then passes when wgpu-cnn is as close to
the float64 result as Flax's own f32 run is (≤ max(1e-3, 2 × Flax f32's distance), per group
params / running statistics), besides the plain ≤ 1e-3 against Flax f32. Adam's first moment
(`opt.mu.*`, = 0.1·gradient after one step: `--steps 1` compares gradients) is compared too
where the checkpoint has it.
"""
import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from flax_model import FlaxModel, flatten, load_description, unflatten  # noqa: E402
from flax_load import evaluate, load_cifar  # noqa: E402


def parse_group(spec):
    """wgpu-cnn's --param-group spec: pattern, lr and decay multipliers, frozen after N updates
    (0: from the start; None: never)."""
    pattern, _, opts = spec.partition(":")
    g = {"pattern": pattern.strip(), "lr": 1.0, "decay": 1.0, "frozen": None}
    for opt in filter(None, (o.strip() for o in opts.split(","))):
        key, _, value = opt.partition("=")
        if key == "lr":
            g["lr"] = float(value)
        elif key == "decay":
            g["decay"] = float(value)
        elif key == "frozen":
            g["frozen"] = 0
        elif key == "frozen-from-step":
            g["frozen"] = int(value)
        else:
            sys.exit(f"--param-group {spec!r}: the twin knows lr, decay, frozen, frozen-from-step")
    return g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="data/cifar-10-batches-bin")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    ap.add_argument("--momentum", type=float, default=None)
    ap.add_argument("--nesterov", action="store_true")
    ap.add_argument("--weight-decay", type=float, default=None)
    ap.add_argument("--decay-mask", default="all", choices=["all", "kernels"])
    ap.add_argument("--lookahead-every", type=int, default=None,
                    help="optax.lookahead(tx, K, A, reset_state=False) in Flax (the slow weights "
                         "are the result), --lookahead 'every=K, decay=1-A' in wgpu-cnn; models "
                         "without batch norm (optax's lookahead does not average statistics)")
    ap.add_argument("--lookahead-step", type=float, default=0.5,
                    help="optax.lookahead's slow_step_size A")
    ap.add_argument("--param-group", action="append", default=[],
                    help="wgpu-cnn's --param-group 'PATTERN: lr=F, decay=F, frozen, "
                         "frozen-from-step=N' (repeatable); in optax a multi_transform whose "
                         "labels are the first matching group, each label the optimizer with "
                         "its rate ×lr and decay ×decay, set_to_zero when frozen, and for "
                         "frozen-from-step N the optimizer for N updates, then zero updates with "
                         "its state kept")
    ap.add_argument("--clip-grad-norm", type=float, default=None,
                    help="optax.chain(optax.clip_by_global_norm(X), adam) in Flax, "
                         "--clip-grad-norm X in wgpu-cnn")
    ap.add_argument("--label-smoothing", type=float, default=0.0,
                    help="optax.smooth_labels(onehot, α) + softmax_cross_entropy in Flax, "
                         "--label-smoothing α in wgpu-cnn")
    ap.add_argument("--schedule", default="constant",
                    choices=["constant", "cosine", "warmup-cosine"],
                    help="optax.cosine_decay_schedule(lr, steps, end/lr) or "
                         "warmup_cosine_decay_schedule(0, lr, warmup, steps, end) over the "
                         "run's steps in Flax; --schedule in wgpu-cnn (total = 1 epoch of steps)")
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--end-lr", type=float, default=0.0)
    ap.add_argument("--bin", default="target/release/wgpu-cnn")
    ap.add_argument("--test-limit", type=int, default=10000,
                    help="test images for the eval-mode accuracy of both results (0: skip)")
    ap.add_argument("--init-seed", type=int, default=0,
                    help="the Flax init's PRNG key (jax.random.PRNGKey(SEED)); repeat a comparison "
                         "over several seeds where single rounding events (a ReLU mask or a max "
                         "pool's choice flipped by rounding) decide the distance")
    ap.add_argument("--reference", choices=["auto", "on", "off"], default="auto",
                    help="also train in float64 Flax (auto: for models with batch norm)")
    args = ap.parse_args()
    desc = load_description(args.model)
    model = FlaxModel(tuple(desc["layer"]))
    h, w, c = desc["input"]
    variables = model.init(jax.random.PRNGKey(args.init_seed), jnp.ones((1, h, w, c)))
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    init = flatten(variables)

    n = args.steps * args.batch_size
    images, labels = load_cifar(args.data, "data_batch_1.bin", n)

    def kernels_only(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: getattr(path[-1], "key", None) == "kernel", params)

    mask = kernels_only if args.decay_mask == "kernels" else None
    if args.schedule == "cosine":
        lr = optax.cosine_decay_schedule(args.lr, args.steps, args.end_lr / args.lr)
    elif args.schedule == "warmup-cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, args.lr, args.warmup_steps, args.steps,
                                                args.end_lr)
    else:
        lr = args.lr
    def optimizer(lr, decay_scale=1.0):
        if args.optimizer == "adam":
            return optax.adam(lr)
        if args.optimizer == "adamw":
            wd = args.weight_decay if args.weight_decay is not None else 1e-4
            return optax.adamw(lr, weight_decay=wd * decay_scale, mask=mask)
        tx = optax.sgd(lr, momentum=args.momentum, nesterov=args.nesterov)
        if args.weight_decay:
            tx = optax.chain(optax.add_decayed_weights(args.weight_decay * decay_scale, mask), tx)
        return tx

    groups = [parse_group(g) for g in args.param_group]
    if groups:
        def scaled(mult):
            return (lambda count: lr(count) * mult) if callable(lr) else lr * mult

        def frozen_after(inner, n):
            """`inner` for n updates, then optax.set_to_zero with its state kept as it was."""
            def init(p):
                return inner.init(p), jnp.zeros([], jnp.int32)

            def update(u, state, p=None):
                s, count = state
                new_u, new_s = inner.update(u, s, p)
                keep = count < n
                new_u = jax.tree_util.tree_map(lambda a: jnp.where(keep, a, jnp.zeros_like(a)), new_u)
                new_s = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new_s, s)
                return new_u, (new_s, count + 1)
            return optax.GradientTransformation(init, update)

        transforms = {"default": optimizer(lr)}
        for k, g in enumerate(groups):
            inner = optimizer(scaled(g["lr"]), g["decay"])
            if g["frozen"] == 0:
                transforms[f"g{k}"] = optax.set_to_zero()
            elif g["frozen"] is not None:
                transforms[f"g{k}"] = frozen_after(inner, g["frozen"])
            else:
                transforms[f"g{k}"] = inner

        def group_labels(params):
            def label(path, _):
                name = ".".join(getattr(p, "key", str(p)) for p in path)
                for k, g in enumerate(groups):
                    if any(fnmatch.fnmatchcase(name, alt.strip()) for alt in g["pattern"].split("|")):
                        return f"g{k}"
                return "default"
            return jax.tree_util.tree_map_with_path(label, params)

        tx = optax.multi_transform(transforms, group_labels)
    else:
        tx = optimizer(lr)
    if args.clip_grad_norm:
        tx = optax.chain(optax.clip_by_global_norm(args.clip_grad_norm), tx)
    if args.lookahead_every:
        if stats:
            sys.exit("--lookahead-every: optax.lookahead has no batch statistics; take a model without batch norm")
        tx = optax.lookahead(tx, args.lookahead_every, args.lookahead_step)

    def train(dtype):
        """The steps in Flax with every array in `dtype`: (variables after, flat variables after,
        flat Adam first moment, losses)."""
        cast = lambda t: jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), t)  # noqa: E731
        p, st = cast(params), cast(stats)
        if args.lookahead_every:
            p = optax.LookaheadParams.init_synced(p)
        opt = tx.init(p)

        @jax.jit
        def step(p, st, opt, x, y):
            def loss_fn(p):
                logits, upd = model.apply({"params": p, "batch_stats": st}, x, train=True,
                                          mutable=["batch_stats"])
                if args.label_smoothing:
                    k = logits.shape[-1]
                    targets = optax.smooth_labels(jax.nn.one_hot(y, k, dtype=logits.dtype),
                                                  args.label_smoothing)
                    loss = optax.softmax_cross_entropy(logits, targets).mean()
                else:
                    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
                return loss, upd.get("batch_stats", {})

            fast = p.fast if args.lookahead_every else p
            (loss, st), grads = jax.value_and_grad(loss_fn, has_aux=True)(fast)
            updates, opt = tx.update(grads, opt, p)
            return optax.apply_updates(p, updates), st, opt, loss

        losses = []
        for k in range(args.steps):
            sl = slice(k * args.batch_size, (k + 1) * args.batch_size)
            p, st, opt, loss = step(p, st, opt, jnp.asarray(images[sl], dtype), labels[sl])
            losses.append(float(loss))
        if args.lookahead_every:
            p = p.slow
        after = {"params": p, **({"batch_stats": st} if st else {})}
        # Adam's state inside whatever chain (clip_by_global_norm first when asked).
        slot = "mu" if args.optimizer != "sgd" else "trace"
        states = [x for x in jax.tree_util.tree_leaves(
            opt, is_leaf=lambda x: hasattr(x, slot)) if hasattr(x, slot)]
        # With parameter groups each label has its own state, holding only its tensors (the
        # others are optax.MaskedNode); merged, they cover every trained tensor.
        mu = {}
        for x in states:
            if not hasattr(getattr(x, slot), "items"):
                continue
            # (a MaskedNode, an empty tuple, flattens to an empty array)
            mu.update({k: v for k, v in flatten(getattr(x, slot)).items() if v.size})
        return after, flatten(after), mu, losses

    flax_vars, flax_after, flax_mu, losses = train(jnp.float32)
    reference = args.reference == "on" or (args.reference == "auto" and bool(stats))
    if reference:
        with jax.enable_x64(True):
            _, ref_after, ref_mu, ref_losses = train(jnp.float64)

    with tempfile.TemporaryDirectory() as d:
        init_path = os.path.join(d, "flax_init.safetensors")
        save_file(init, init_path)
        out = os.path.join(d, "run")
        cmd = [args.bin, "train", "--model", args.model, "--data", args.data, "--init", init_path,
               "--no-augment", "--no-shuffle", "--val-size", "0", "--train-limit", str(n),
               "--epochs", "1", "--batch-size", str(args.batch_size), "--lr", str(args.lr),
               "--test-limit", str(args.batch_size), "--out", out]
        if args.label_smoothing:
            cmd += ["--label-smoothing", str(args.label_smoothing)]
        if args.schedule != "constant":
            cmd += ["--schedule", args.schedule, "--end-lr", str(args.end_lr)]
            if args.schedule == "warmup-cosine":
                cmd += ["--warmup-steps", str(args.warmup_steps)]
        if args.clip_grad_norm:
            cmd += ["--clip-grad-norm", str(args.clip_grad_norm)]
        if args.optimizer != "adam":
            cmd += ["--optimizer", args.optimizer]
            if args.momentum is not None:
                cmd += ["--momentum", str(args.momentum)]
            if args.nesterov:
                cmd += ["--nesterov"]
            if args.weight_decay is not None:
                cmd += ["--weight-decay", str(args.weight_decay)]
            if args.decay_mask != "all":
                cmd += ["--decay-mask", args.decay_mask]
        for g in args.param_group:
            cmd += ["--param-group", g]
        if args.lookahead_every:
            cmd += ["--lookahead", f"every={args.lookahead_every}, decay={1 - args.lookahead_step}, power=0"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ours = load_file(os.path.join(out, "last.safetensors"))

    missing = sorted(set(init) - set(ours))
    if missing:
        print(f"wgpu-cnn's checkpoint lacks {len(missing)} of the init's tensors: {', '.join(missing[:8])}"
              + (" …" if len(missing) > 8 else ""))
        sys.exit(1)

    # Per tensor: the relative difference of the change (after − init; for running statistics
    # too: mean from 0, var from 1), ‖Δours − Δflax‖ / ‖Δflax‖, and the largest element
    # difference over the largest change (Adam turns gradients that are rounding noise in f32 —
    # different summation orders in XLA and here — into full-size steps of either sign, so single
    # elements can differ by up to 2·lr·steps). With the float64 reference: the same distance of
    # Flax f32 and of wgpu-cnn from it.
    def rel(a, b, v0):
        da, db = (a.astype(np.float64) - v0), (b.astype(np.float64) - v0)
        return (float(np.linalg.norm(da - db) / max(np.linalg.norm(db), 1e-30)),
                float(np.abs(da - db).max() / max(np.abs(db).max(), 1e-30)))

    groups = ("params", "batch_stats")
    worst = {g: (0.0, "") for g in groups}
    floor = {g: (0.0, "") for g in groups}
    ours_ref = {g: (0.0, "") for g in groups}
    worst_elem = 0.0
    width = max(len(k) for k in init)
    for name, v0 in init.items():
        group = "batch_stats" if name.startswith("batch_stats.") else "params"
        v0 = v0.astype(np.float64)
        r, elem = rel(ours[name], flax_after[name], v0)
        worst[group] = max(worst[group], (r, name))
        if group == "params":
            worst_elem = max(worst_elem, elem)
        line = (f"{name:<{width}} |change| {np.linalg.norm(flax_after[name] - v0):.3e}  relative "
                f"difference {r:.2e}  (largest element {elem:.2e} of the largest change)")
        if reference:
            f, _ = rel(flax_after[name], ref_after[name], v0)
            o, _ = rel(ours[name], ref_after[name], v0)
            floor[group] = max(floor[group], (f, name))
            ours_ref[group] = max(ours_ref[group], (o, name))
            line += f"  vs f64: flax {f:.2e} ours {o:.2e}"
        print(line)
    mu_worst, mu_ok = None, True
    slot = "opt.trace" if args.optimizer == "sgd" else "opt.mu"
    if flax_mu and all(f"{slot}.{k}" in ours for k in flax_mu):
        mu_worst = max((float(np.linalg.norm(ours[f"{slot}.{k}"] - m.astype(np.float64))
                              / max(np.linalg.norm(m.astype(np.float64)), 1e-30)), k)
                       for k, m in flax_mu.items())
        line = f"worst relative difference of Adam's first moment (adam.mu): {mu_worst[0]:.2e} ({mu_worst[1]})"
        if reference:
            mf = max(float(np.linalg.norm(flax_mu[k] - m) / max(np.linalg.norm(m), 1e-30))
                     for k, m in ref_mu.items())
            mo = max(float(np.linalg.norm(ours[f"{slot}.{k}"] - m) / max(np.linalg.norm(m), 1e-30))
                     for k, m in ref_mu.items())
            line += f"; vs f64: flax {mf:.2e} ours {mo:.2e}"
        print(line)
        mu_ok = mu_worst[0] <= 1e-3 or (reference and mo <= max(1e-3, 2 * mf))
    print(f"flax losses: {', '.join(f'{l:.5f}' for l in losses)}")
    if reference:
        print(f"flax f64 losses: {', '.join(f'{l:.5f}' for l in ref_losses)}")
    print(f"worst relative difference of the weight changes after {args.steps} Adam steps: "
          f"{worst['params'][0]:.2e} ({worst['params'][1]}; largest element: {worst_elem:.2e})")
    if stats:
        print(f"worst relative difference of the running statistics' changes: "
              f"{worst['batch_stats'][0]:.2e} ({worst['batch_stats'][1]})")
    ok = mu_ok
    for g in groups:
        if worst[g][0] <= 1e-3:
            continue
        if reference:
            bound = max(1e-3, 2 * floor[g][0])
            print(f"{g}: distance from float64 Flax: flax f32 {floor[g][0]:.2e} ({floor[g][1]}), "
                  f"wgpu-cnn {ours_ref[g][0]:.2e} ({ours_ref[g][1]}); bound {bound:.2e}")
            ok = ok and ours_ref[g][0] <= bound
        else:
            ok = False
    result = {"model": args.model, "steps": args.steps, "batch_size": args.batch_size,
              "lr": args.lr, "worst_relative": worst["params"][0], "worst_element": worst_elem,
              "flax_losses": losses}
    if stats:
        result["worst_relative_batch_stats"] = worst["batch_stats"][0]
    if mu_worst is not None:
        result["worst_relative_adam_mu"] = mu_worst[0]
    if reference:
        result.update({"f64_flax_f32_params": floor["params"][0], "f64_ours_params": ours_ref["params"][0],
                       "f64_flax_f32_batch_stats": floor["batch_stats"][0],
                       "f64_ours_batch_stats": ours_ref["batch_stats"][0]})
    result["pass"] = ok

    if args.test_limit > 0:
        # Eval mode in Flax for both results: equal accuracy up to predictions that sit on a
        # decision boundary within the weights' rounding-level differences.
        test_x, test_y = load_cifar(args.data, "test_batch.bin", args.test_limit)
        ours_vars = unflatten({k: jnp.asarray(ours[k], jnp.float32) for k in init})
        loss_f, correct_f, pred_f = evaluate(model, flax_vars, test_x, test_y)
        loss_o, correct_o, pred_o = evaluate(model, ours_vars, test_x, test_y)
        t = len(test_y)
        differ = int((pred_f != pred_o).sum())
        print(f"test (eval mode, {t} images): flax weights accuracy {correct_f / t:.4f} "
              f"({correct_f}/{t}), loss {loss_f:.5f}; wgpu-cnn weights in flax accuracy "
              f"{correct_o / t:.4f} ({correct_o}/{t}), loss {loss_o:.5f}; predictions differ on "
              f"{differ} images")
        result.update({"test_total": t, "flax_test_correct": correct_f, "ours_test_correct": correct_o,
                       "flax_test_loss": loss_f, "ours_test_loss": loss_o,
                       "test_predictions_differ": differ})
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
