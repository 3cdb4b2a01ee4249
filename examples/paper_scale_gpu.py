"""Short paper-scale runs on a GPU machine that has JAX but no TensorFlow.

The recipes' ``train.py`` scripts are TensorFlow programs (tf.data, tf.distribute). The
GPU machines lent to this project carry JAX and no TensorFlow (and no network), so this
script trains the *same* Keras model builders (``examples.cifar10.models``,
``examples.div2k.models``) and the same optimiser settings with Keras 3 on the JAX
backend. Several networks are trained side by side on identical batches (one jitted
step each, called in turn), so a comparison is paired and equal in steps. The wall-clock
budget fixes the number of epochs (or steps) after a timed warm-up; the learning-rate
milestones are then placed at the paper's fractions of that schedule. Models are saved
as ``.keras`` files (backend-independent) so they can be evaluated and exported to
TFLite with TensorFlow elsewhere (``examples.div2k.evaluate``, ``keras-basis export``).

Commands (the ones behind benchmarks/RESULTS.md; ``KERAS_BACKEND=jax`` is set here):

    python -m examples.paper_scale_gpu cifar --tar cifar10-jpeg.tar.gz --out OUT \
        --budget 400
    python -m examples.paper_scale_gpu sr --train-dir sr-train --out OUT --budget 400

``cifar``: ResNet-56 baseline and basis (Table 8: one basis per stage, m = 24/48/84),
SGD momentum 0.9, lr 0.1 x0.1 at 50% and 75% of the epochs, batch 64, coupled weight
decay 1e-4, pad-4 crop + flip, the paper's mean/std; the CIFAR-10 JPEG copy.
``sr``: EDSR-8-128 x4 baseline, Basis-128-27 (with the authors' and with the matched
initialisation) and Basis-128-40 from scratch (the authors' route; a preset may end in
``+authors`` or ``+matched`` to pick ``basis_init`` of ``examples.div2k.models``, whose
default is "matched"), L1 loss, Adam (0.9, 0.999, 1e-8), lr 1e-4 x0.1 after 2/3 of the
steps, batch 16 of 48x48 LR patches with flips and transpose, LR made by Pillow bicubic.

Evaluate the SR models the paper's way with TensorFlow afterwards:

    python -m examples.div2k.evaluate OUT/edsr-8-128.keras --scale 4 \
        --benchmark-dir ../shared/data/sr-benchmarks --sets Set5,Set14
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tarfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

T0 = time.time()


def log(*parts):
    print(f"[{time.time() - T0:7.1f}s]", *parts, flush=True)


# ---------------------------------------------------------------------------- data
def load_cifar_tar(path):
    """CIFAR-10 JPEG copy straight from its tar: uint8 arrays and int labels per split."""
    from PIL import Image

    out = {"train": ([], []), "test": ([], [])}
    names = {}  # class folder -> label, in alphabetical order (the standard CIFAR ids)
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or parts[-3] not in out:
                continue
            with Image.open(tar.extractfile(member)) as im:
                out[parts[-3]][0].append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            out[parts[-3]][1].append(names.setdefault(parts[-2], len(names)))
    order = {c: i for i, c in enumerate(sorted(names))}
    remap = np.asarray([order[c] for c in names], np.int32)  # first-seen id -> sorted id
    return {k: (np.stack(x), remap[np.asarray(y, np.int32)]) for k, (x, y) in out.items()}


def augment_epoch(images, rng, pad=4):
    """Pad-``pad`` random crop and horizontal flip of every image (uint8, vectorised)."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    out = np.empty_like(images)
    for y in range(2 * pad + 1):
        for x in range(2 * pad + 1):
            sel = np.flatnonzero((dy == y) & (dx == x))
            out[sel] = padded[sel, y : y + h, x : x + w]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


# ------------------------------------------------------------------------ training
class Member:
    """One network of a paired run: its jitted train/eval steps and its state."""

    def __init__(self, name, model, optimizer, loss_fn, preprocess):
        import jax

        self.name, self.model, self.optimizer = name, model, optimizer
        optimizer.build(model.trainable_variables)
        self.lr_index = next(
            i for i, v in enumerate(optimizer.variables) if v is optimizer._learning_rate
        )
        # copies: the jitted step donates its state, which must not delete the buffers
        # still held by the model's (and the optimizer's) own variables
        self.state = tuple(
            [jax.numpy.array(v.value, copy=True) for v in variables]
            for variables in (model.trainable_variables, model.non_trainable_variables,
                              optimizer.variables)
        )

        def loss_and_updates(tv, ntv, x, y):
            pred, ntv = model.stateless_call(tv, ntv, preprocess(x), training=True)
            return loss_fn(y, pred), ntv

        grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

        def train_step(state, x, y):
            tv, ntv, ov = state
            (loss, ntv), grads = grad_fn(tv, ntv, x, y)
            tv, ov = optimizer.stateless_apply(ov, grads, tv)
            return (tv, ntv, ov), loss

        def predict(state, x):
            tv, ntv, _ = state
            pred, _ = model.stateless_call(tv, ntv, preprocess(x), training=False)
            return pred

        self.train_step = jax.jit(train_step, donate_argnums=0)
        self.predict = jax.jit(predict)
        self.loss_sum, self.loss_count = 0.0, 0

    def set_lr(self, lr):
        import jax.numpy as jnp

        tv, ntv, ov = self.state
        ov = list(ov)
        ov[self.lr_index] = jnp.asarray(lr, dtype=ov[self.lr_index].dtype)
        self.state = (tv, ntv, ov)

    def step(self, x, y):
        self.state, loss = self.train_step(self.state, x, y)
        self.loss_sum = self.loss_sum + loss
        self.loss_count += 1

    def take_loss(self):
        value = float(self.loss_sum) / max(self.loss_count, 1)
        self.loss_sum, self.loss_count = 0.0, 0
        return value

    def save(self, path):
        tv, ntv, _ = self.state
        for var, value in zip(self.model.trainable_variables, tv):
            var.assign(value)
        for var, value in zip(self.model.non_trainable_variables, ntv):
            var.assign(value)
        path = pathlib.Path(path)
        tmp = path.with_name(f".tmp-{path.name}")
        self.model.save(tmp)
        os.replace(tmp, path)


def plan_units(members, batch_fn, budget_s, unit_steps, warm_steps=20, safety=0.8):
    """Compiles every step, times ``warm_steps`` paired steps, returns units that fit."""
    import jax

    x, y = batch_fn()
    for m in members:  # compile
        m.step(x, y)
    jax.block_until_ready([m.state for m in members])
    start = time.time()
    for _ in range(warm_steps):
        x, y = batch_fn()
        for m in members:
            m.step(x, y)
    jax.block_until_ready([m.state for m in members])
    per_step = (time.time() - start) / warm_steps
    for m in members:
        m.take_loss()
    units = int(budget_s * safety / (per_step * unit_steps))
    return max(units, 1), per_step


def units_that_fit(done, planned, unit_s, deadline):
    """Planned units cut to what still fits before ``deadline`` (at least one more)."""
    fits = done + int((deadline - time.time()) / unit_s)
    return planned if fits >= planned else max(fits, done + 1)


def write_json(path, data):
    path = pathlib.Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- cifar
def run_cifar(args):
    import keras
    from keras import ops

    from examples.cifar10.common import CIFAR_MEAN, CIFAR_STD
    from examples.cifar10.models import count_model, resnet
    from examples.cifar10.optim import CoupledSGD

    keras.utils.set_random_seed(args.seed)
    data = load_cifar_tar(args.tar)
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    if args.train_subset:  # the tar is ordered by class: take a random subset
        keep = np.random.default_rng(args.seed).permutation(len(xtr))[: args.train_subset]
        xtr, ytr = xtr[keep], ytr[keep]
    log(f"CIFAR-10 JPEG copy: train {xtr.shape}, test {xte.shape}")
    mean = np.asarray(CIFAR_MEAN, np.float32)
    std = np.asarray(CIFAR_STD, np.float32)

    def preprocess(x):
        return (ops.cast(x, "float32") - mean) / std

    def loss_fn(y, logits):
        return ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )

    members = []
    for name in args.variants:
        model = resnet(args.depth, name)
        opt = CoupledSGD(learning_rate=args.lr, momentum=0.9, nesterov=False,
                         coupled_weight_decay=args.weight_decay)
        members.append(Member(f"resnet{args.depth}-{name}", model, opt, loss_fn, preprocess))
        log(f"{members[-1].name}: {count_model(model)}")

    rng = np.random.default_rng(args.seed)
    bs = args.batch_size
    steps = len(xtr) // bs

    def warm_batch():
        idx = rng.integers(0, len(xtr), bs)
        return xtr[idx], ytr[idx]

    eval_s = 2.0
    epochs, per_step = plan_units(members, warm_batch, args.budget - (time.time() - T0),
                                  steps)
    epochs = min(epochs, args.max_epochs)
    log(f"paired step {per_step * 1e3:.1f} ms -> {epochs} epochs of {steps} steps")
    milestones = [max(1, int(round(f * epochs))) for f in (0.5, 0.75)]
    deadline = T0 + args.budget
    history, done = [], 0

    def evaluate(m):
        correct = 0
        for i in range(0, len(xte), 500):
            logits = m.predict(m.state, xte[i : i + 500])
            correct += int(np.sum(np.argmax(np.asarray(logits), -1) == yte[i : i + 500]))
        return correct / len(xte)

    epoch_time, epoch = None, 0
    while epoch < epochs:
        if epoch_time and epoch < milestones[0]:  # re-plan while the lr is unchanged
            fits = units_that_fit(epoch, epochs, epoch_time + eval_s, deadline)
            if fits < epochs:
                epochs = fits
                milestones = [max(1, int(round(f * epochs))) for f in (0.5, 0.75)]
                log(f"re-planned: {epochs} epochs, milestones {milestones}")
            if time.time() + epoch_time + eval_s > deadline:
                log(f"stopping before epoch {epoch + 1}: the budget would be exceeded")
                break
        t = time.time()
        lr = args.lr * 0.1 ** sum(epoch >= b for b in milestones)
        for m in members:
            m.set_lr(lr)
        aug = augment_epoch(xtr, rng)
        perm = rng.permutation(len(xtr))
        for s in range(steps):
            idx = perm[s * bs : (s + 1) * bs]
            xb, yb = aug[idx], ytr[idx]
            for m in members:
                m.step(xb, yb)
        row = {"epoch": epoch + 1, "lr": lr}
        for m in members:
            row[f"{m.name}_loss"] = m.take_loss()
        last = epoch + 1 == epochs
        if last or (epoch + 1) % args.eval_every == 0:
            for m in members:
                row[f"{m.name}_test_acc"] = evaluate(m)
        epoch_time = time.time() - t
        row["seconds"] = round(epoch_time, 2)
        history.append(row)
        done = epoch = epoch + 1
        log(json.dumps(row))
    final = {m.name: evaluate(m) for m in members}
    out = pathlib.Path(args.out)
    for m in members:
        m.save(out / f"{m.name}.keras")
    write_json(out / "cifar.json", {
        "planned_epochs": epochs, "epochs_done": done, "steps_per_epoch": steps,
        "batch_size": bs, "milestones": milestones, "paired_step_ms": per_step * 1e3,
        "final_test_accuracy": final, "params": {m.name: m.model.count_params()
                                                 for m in members},
        "history": history, "args": vars(args),
    })
    log("final test accuracy", final)


# ------------------------------------------------------------------------------ sr
def run_sr(args):
    import keras
    from keras import ops

    from examples.div2k.data import PatchSampler, discover_train, load_pair
    from examples.div2k.models import build, weight_count

    keras.utils.set_random_seed(args.seed)
    pairs, description = discover_train(args.train_dir, args.scale)
    images = [load_pair(p, args.scale) for p in pairs]
    log(description)
    sampler = PatchSampler(images, args.scale, args.patch_size, args.batch_size, args.seed)

    def loss_fn(y, pred):
        return ops.mean(ops.abs(y - pred))

    members = []
    for preset in args.presets:  # "name", "name+authors" or "name+matched" (basis_init)
        name, _, init = preset.partition("+")
        model = build(name, scale=args.scale, **({"basis_init": init} if init else {}))
        opt = keras.optimizers.Adam(args.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        members.append(Member(preset, model, opt, loss_fn, lambda x: x))
        log(f"{preset}: {model.count_params():,} params, {weight_count(model):,} weights")

    unit = args.unit_steps
    units, per_step = plan_units(members, sampler.batch, args.budget - (time.time() - T0),
                                 unit)
    units = min(units, args.max_units)
    drop = int(round(units * 2 / 3))
    log(f"paired step {per_step * 1e3:.1f} ms -> {units} x {unit} steps, lr x0.1 at "
        f"{drop * unit}")
    deadline = T0 + args.budget
    history, done, unit_time, u = [], 0, None, 0
    while u < units:
        if unit_time and u < drop:  # re-plan while the lr is unchanged
            fits = units_that_fit(u, units, unit_time, deadline)
            if fits < units:
                units = fits
                drop = int(round(units * 2 / 3))
                log(f"re-planned: {units} x {unit} steps, lr x0.1 at {drop * unit}")
            if time.time() + unit_time > deadline:
                log(f"stopping before unit {u + 1}: the budget would be exceeded")
                break
        t = time.time()
        lr = args.lr * (0.1 if u >= drop else 1.0)
        for m in members:
            m.set_lr(lr)
        for _ in range(unit):
            x, y = sampler.batch()
            for m in members:
                m.step(x, y)
        row = {"steps": (u + 1) * unit, "lr": lr}
        for m in members:
            row[f"{m.name}_l1"] = m.take_loss()
        unit_time = time.time() - t
        row["seconds"] = round(unit_time, 2)
        history.append(row)
        done = u = u + 1
        log(json.dumps(row))
    out = pathlib.Path(args.out)
    for m in members:
        m.save(out / f"{m.name.replace('+', '_')}.keras")
    write_json(out / "sr.json", {
        "planned_steps": units * unit, "steps_done": done * unit, "lr_drop_step": drop * unit,
        "paired_step_ms": per_step * 1e3, "train": description,
        "params": {m.name: m.model.count_params() for m in members},
        "history": history, "args": vars(args),
    })
    log("done")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="task", required=True)
    c = sub.add_parser("cifar", help="ResNet-56 baseline vs basis (Table 8)")
    c.add_argument("--tar", required=True, help="cifar10-jpeg.tar.gz")
    c.add_argument("--variants", default="baseline,basis")
    c.add_argument("--depth", type=int, default=56, help="ResNet depth (56: the paper's)")
    c.add_argument("--batch-size", type=int, default=64)
    c.add_argument("--lr", type=float, default=0.1)
    c.add_argument("--weight-decay", type=float, default=1e-4)
    c.add_argument("--eval-every", type=int, default=5)
    c.add_argument("--max-epochs", type=int, default=400)
    c.add_argument("--train-subset", type=int, default=0)
    s = sub.add_parser("sr", help="EDSR-8-128 x4 baseline vs Basis-128-27/40")
    s.add_argument("--train-dir", required=True, help="HR images (or a DIV2K root)")
    s.add_argument("--presets", default="edsr-8-128,edsr-8-128-basis-128-27+authors,"
                                        "edsr-8-128-basis-128-27,edsr-8-128-basis-128-40")
    s.add_argument("--scale", type=int, default=4)
    s.add_argument("--patch-size", type=int, default=48)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--unit-steps", type=int, default=500, help="steps between log lines")
    s.add_argument("--max-units", type=int, default=600)
    for q in (c, s):
        q.add_argument("--out", required=True)
        q.add_argument("--budget", type=float, required=True,
                       help="seconds from start to the end of training")
        q.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key in ("variants", "presets"):
        if hasattr(args, key):
            setattr(args, key, [v for v in getattr(args, key).split(",") if v])
    return args


def main(argv=None):
    args = parse_args(argv)
    import jax

    log(f"backend {os.environ['KERAS_BACKEND']}, devices {jax.devices()}")
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    (run_cifar if args.task == "cifar" else run_sr)(args)


if __name__ == "__main__":
    main()
