"""Paper-scale runs on a GPU machine that has JAX but no TensorFlow.

The recipes' ``train.py`` scripts are TensorFlow programs (tf.data, tf.distribute). The
GPU machines lent to this project carry JAX and no TensorFlow (and no network), so this
script trains the *same* Keras model builders (``examples.cifar10.models``,
``examples.div2k.models``, authors-exact by default) and the same optimiser settings
with Keras 3 on the JAX backend, at full speed: the training set lives on the device as
uint8, each epoch's shuffling and augmentation are drawn there (``jax.random``), and a
whole epoch of all the networks of a run, side by side on identical batches, is one
compiled ``lax.scan`` (``examples.gpu.core``); the test set is evaluated on the device
in one call. So each comparison is paired and equal in steps.

Without ``--epochs`` the number of epochs is fitted to ``--budget`` (seconds from the
start) after the first, timed, epoch; the lr milestones sit at the authors' fractions of
that plan (250/400 and 325/400). The output folder follows ``examples.run``:
``args.json``, ``metrics.csv``, ``state.json`` + ``ckpt-epochNNNN.npz`` (every
``--checkpoint-every`` epochs; a rerun resumes, ``--restart`` starts again), then one
``<network>.keras`` per network (backend-independent: evaluate or export it with
TensorFlow elsewhere) and ``cifar.json`` / ``sr.json``.

Commands (``KERAS_BACKEND=jax`` is set here):

    python -m examples.paper_scale_gpu cifar --tar cifar10-jpeg.tar.gz \
        --output-dir OUT --budget 520
    python -m examples.paper_scale_gpu sr --train-dir sr-train --output-dir OUT \
        --budget 400

``cifar``: ResNet-56 baseline and basis (Table 8: one basis per stage, m = 24/48/84),
SGD momentum 0.9, lr 0.1 x0.1 at 250/400 and 325/400 of the epochs, batch 64, coupled
(PyTorch) weight decay 1e-4, pad-4 crop + flip, the paper's mean/std; the CIFAR-10 JPEG
copy (the last partial batch of an epoch is dropped).
``sr``: EDSR-8-128 x4 baseline and basis presets (a preset may end in ``+authors`` or
``+matched`` to pick ``basis_init``), L1 loss, Adam (0.9, 0.999, 1e-8), lr 1e-4 x0.1
after 2/3 of the steps, batch 16 of 48x48 LR patches with flips and transpose (drawn on
the host, ``--unit-steps`` batches per compiled call).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from examples.gpu.data import load_cifar_tar, sr_chunk  # noqa: E402
from examples.gpu.loop import units_that_fit  # noqa: E402

__all__ = ["load_cifar_tar", "main", "parse_args", "units_that_fit"]

T0 = time.time()
#: The authors' ResNet schedule: lr x0.1 after epochs 250 and 325 of 400.
AUTHORS_CIFAR_MILESTONES = "0.625,0.8125"


def log(*parts):
    print(f"[{time.time() - T0:7.1f}s]", *parts, flush=True)


def _open_run(args, members, columns):
    """The ``examples.run.RunDir`` and the members' states (resumed when possible)."""
    from examples import run
    from examples.gpu.loop import load_states

    fields = ["epoch", "lr"] + columns + ["seconds"]
    rd = run.RunDir(args.output_dir, fields, restart=args.restart)
    rd.write_args(args, backend=os.environ["KERAS_BACKEND"])
    if rd.checkpoint is not None and rd.checkpoint.suffix == ".npz":
        states, meta = load_states(rd.checkpoint, members)
        log(f"resuming after epoch {rd.epoch} of {meta['units']} ({rd.checkpoint.name})")
        return rd, states, meta
    rd.epoch, rd.rows = 0, []
    return rd, tuple(m.initial_state() for m in members), None


def _finish(rd, members, states, name, summary):
    from examples import run

    for m, state in zip(members, states):
        m.assign(state)
        rd.save_model(m.model, f"{m.name.replace('+', '_')}.keras")
    summary = {**summary, "params": {m.name: m.model.count_params() for m in members},
               "history": rd.rows, "device": _device()}
    run.write_json(rd.path / name, summary)


def _device():
    import jax

    return str(jax.devices()[0].device_kind)


# --------------------------------------------------------------------------- cifar
def run_cifar(args):
    import jax
    import jax.numpy as jnp
    import keras
    from keras import ops

    from examples.cifar10.common import CIFAR_MEAN, CIFAR_STD
    from examples.cifar10.models import count_model, resnet
    from examples.cifar10.optim import CoupledSGD
    from examples.gpu import core
    from examples.gpu.loop import train_units

    keras.utils.set_random_seed(args.seed)
    if args.dtype_policy != "float32":
        keras.config.set_dtype_policy(args.dtype_policy)
    data = load_cifar_tar(args.tar)
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    if args.train_subset:  # the tar is ordered by class: take a random subset
        keep = np.random.default_rng(args.seed).permutation(len(xtr))[: args.train_subset]
        xtr, ytr = xtr[keep], ytr[keep]
    if args.test_subset:  # ordered by class too
        keep = np.random.default_rng(args.seed).permutation(len(xte))[: args.test_subset]
        xte, yte = xte[keep], yte[keep]
    log(f"CIFAR-10 JPEG copy: train {xtr.shape}, test {xte.shape}")
    mean = np.asarray(CIFAR_MEAN, np.float32)
    std = np.asarray(CIFAR_STD, np.float32)

    def preprocess(x):
        return (ops.cast(x, "float32") - mean) / std

    def loss_fn(y, logits):
        return ops.mean(keras.losses.sparse_categorical_crossentropy(
            y, ops.cast(logits, "float32"), from_logits=True))

    members = []
    for variant in args.variants:
        model = resnet(args.depth, variant)
        opt = CoupledSGD(learning_rate=args.lr, momentum=0.9, nesterov=False,
                         coupled_weight_decay=args.weight_decay)
        members.append(core.Member(f"resnet{args.depth}-{variant}", model, opt, loss_fn,
                                   preprocess))
        log(f"{members[-1].name}: {count_model(model)}")
    rd, states, meta = _open_run(args, members, [f"{m.name}_{k}" for m in members
                                                 for k in ("loss", "test_acc")])

    def batch_fn(data, inp):
        images, labels = data
        idx, dy, dx, flip = inp
        return core.crop_flip(images[idx], dy, dx, flip, pad=4), labels[idx]

    bs, n = args.batch_size, len(xtr)
    train_data = (jax.device_put(xtr), jax.device_put(ytr.astype(np.int32)))
    test_data = (jax.device_put(xte), jax.device_put(yte.astype(np.int32)))
    draws = jax.jit(lambda key: core.cifar_epoch_inputs(key, n, bs, pad=4))
    key = jax.random.key(args.seed)
    start = time.time()
    lrs = tuple(jnp.float32(args.lr) for _ in members)
    train = core.make_train_fn(members, batch_fn, args.unroll).lower(
        states, lrs, train_data, draws(key)).compile()
    evaluate_fn = core.make_eval_fn(members, args.eval_batch_size)
    evaluate_fn(states, *test_data).block_until_ready()  # compiles (states not donated)
    log(f"compiled in {time.time() - start:.1f} s; {n // bs} steps of {bs} per epoch")

    def run_unit(states, lr, epoch):
        lrs = tuple(jnp.float32(lr) for _ in members)
        return train(states, lrs, train_data, draws(jax.random.fold_in(key, epoch)))

    def evaluate(states):
        hits = np.asarray(evaluate_fn(states, *test_data))
        return {f"{m.name}_test_acc": int(h) / len(yte) for m, h in zip(members, hits)}

    states, plan, done = train_units(args, rd, members, states, run_unit, evaluate, T0, meta)
    final = evaluate(states)
    log("final test accuracy", final)
    epoch_s = [float(r["seconds"]) for r in rd.rows]
    _finish(rd, members, states, "cifar.json", {
        "planned_epochs": plan, "epochs_done": done, "steps_per_epoch": n // bs,
        "batch_size": bs, "milestones": _milestones(args, plan),
        "paired_step_ms": float(np.median(epoch_s)) / (n // bs) * 1e3 if epoch_s else None,
        "final_test_accuracy": {m.name: final[f"{m.name}_test_acc"] for m in members},
        "train_images": n, "test_images": len(yte),
    })


def _milestones(args, plan):
    from examples import run

    return run.milestones(args.lr_milestones, plan) if plan else []


# ------------------------------------------------------------------------------ sr
def run_sr(args):
    import jax
    import jax.numpy as jnp
    import keras
    from keras import ops

    from examples.div2k.data import PatchSampler, discover_train, load_pair
    from examples.div2k.models import build, weight_count
    from examples.gpu import core
    from examples.gpu.loop import train_units

    keras.utils.set_random_seed(args.seed)
    pairs, description = discover_train(args.train_dir, args.scale)
    images = [load_pair(p, args.scale) for p in pairs]
    log(description)

    def loss_fn(y, pred):
        return ops.mean(ops.abs(ops.cast(y, "float32") - ops.cast(pred, "float32")))

    def preprocess(x):
        return ops.cast(x, "float32")

    members = []
    for preset in args.presets:  # "name", "name+authors" or "name+matched" (basis_init)
        name, _, init = preset.partition("+")
        model = build(name, scale=args.scale, **({"basis_init": init} if init else {}))
        opt = keras.optimizers.Adam(args.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        members.append(core.Member(preset, model, opt, loss_fn, preprocess))
        log(f"{preset}: {model.count_params():,} params, {weight_count(model):,} weights")
    rd, states, meta = _open_run(args, members, [f"{m.name}_loss" for m in members])
    # the draws of unit u: a sampler seeded by (seed, u), so a resumed run continues them
    unit = args.unit_steps

    def chunk(u):
        sampler = PatchSampler(images, args.scale, args.patch_size, args.batch_size,
                               seed=[args.seed, u])
        return sr_chunk(sampler, unit)

    lrs = tuple(jnp.float32(args.lr) for _ in members)
    train = core.make_train_fn(members, lambda data, inp: inp, args.unroll).lower(
        states, lrs, (), chunk(0)).compile()

    pending = {}

    def run_unit(states, lr, u):
        lrs = tuple(jnp.float32(lr) for _ in members)
        inputs = pending.pop(u) if u in pending else chunk(u)
        out = train(states, lrs, (), jax.device_put(inputs))
        pending[u + 1] = chunk(u + 1)  # drawn on the host while the device trains
        return out

    states, plan, done = train_units(args, rd, members, states, run_unit, None, T0, meta)
    _finish(rd, members, states, "sr.json", {
        "planned_steps": plan * unit, "steps_done": done * unit,
        "lr_drop_steps": [b * unit for b in _milestones(args, plan)], "train": description,
    })
    log("done")


# ---------------------------------------------------------------------- command line
def _common(p, milestones_default, milestones_help):
    g = p.add_argument_group("run (as examples.run)")
    g.add_argument("--output-dir", "--out", dest="output_dir", required=True,
                   help="args.json, metrics.csv, checkpoints, the .keras files, results")
    g.add_argument("--seed", type=int, default=0, help="random seed (weights, data order)")
    g.add_argument("--restart", action="store_true",
                   help="ignore an existing checkpoint and start from epoch 0 (without it, a "
                        "rerun resumes after the last checkpoint)")
    g.add_argument("--smoke", action="store_true",
                   help="tiny sizes for a CPU dry run of the same code path")
    g = p.add_argument_group("schedule and budget")
    g.add_argument("--budget", type=float, required=True,
                   help="seconds from the start to the end of training (this call)")
    g.add_argument("--epochs", type=int, default=0,
                   help="units to train (0: as many as fit --budget, planned after the "
                        "first)")
    g.add_argument("--max-epochs", type=int, default=400, help="upper bound of the plan")
    g.add_argument("--lr-milestones", default=milestones_default, help=milestones_help)
    g.add_argument("--lr-factor", type=float, default=0.1)
    g.add_argument("--eval-every", type=int, default=5)
    g.add_argument("--checkpoint-every", type=int, default=10)
    g.add_argument("--stop-after", type=int, default=0,
                   help="end this call after N more units, resumable (0: no limit)")
    g.add_argument("--unroll", type=int, default=1,
                   help="training steps per iteration of the compiled loop (lax.scan)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="task", required=True)
    c = sub.add_parser("cifar", help="ResNet-56 baseline vs basis (Table 8)")
    c.add_argument("--tar", required=True, help="cifar10-jpeg.tar.gz")
    c.add_argument("--variants", default="baseline,basis")
    c.add_argument("--depth", type=int, default=56, help="ResNet depth (56: the paper's)")
    c.add_argument("--batch-size", type=int, default=64)
    c.add_argument("--eval-batch-size", type=int, default=500)
    c.add_argument("--lr", type=float, default=0.1)
    c.add_argument("--weight-decay", type=float, default=1e-4)
    c.add_argument("--train-subset", type=int, default=0, help="0: all training images")
    c.add_argument("--test-subset", type=int, default=0, help="0: all test images")
    c.add_argument("--dtype-policy", default="float32",
                   choices=("float32", "mixed_bfloat16"),
                   help="Keras dtype policy (float32: as the authors)")
    _common(c, AUTHORS_CIFAR_MILESTONES, "fractions of the epochs (< 1) or epoch numbers; "
            "default: the authors' 250,325 of 400")
    s = sub.add_parser("sr", help="EDSR-8-128 x4 baseline vs Basis-128-27/40")
    s.add_argument("--train-dir", required=True, help="HR images (or a DIV2K root)")
    s.add_argument("--presets", default="edsr-8-128,edsr-8-128-basis-128-27+authors,"
                                        "edsr-8-128-basis-128-27,edsr-8-128-basis-128-40")
    s.add_argument("--scale", type=int, default=4)
    s.add_argument("--patch-size", type=int, default=48)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--unit-steps", type=int, default=100,
                   help="steps per compiled call (a unit; --epochs counts units)")
    _common(s, "0.6667", "fractions of the units (< 1) or unit numbers")
    args = p.parse_args(argv)
    for key in ("variants", "presets"):
        if hasattr(args, key):
            setattr(args, key, [v for v in getattr(args, key).split(",") if v])
    if args.smoke:  # the same code path at CPU size (flags given explicitly still win)
        smoke = ({"depth": 8, "batch_size": 32, "train_subset": 128, "test_subset": 200,
                  "eval_batch_size": 100} if args.task == "cifar" else
                 {"unit_steps": 2, "batch_size": 2, "patch_size": 12})
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv or sys.argv)
                 if a.startswith("--")}
        for k, v in smoke.items():
            if k not in given:
                setattr(args, k, v)
        if not args.epochs:
            args.epochs = 2
    for name in ("epochs", "stop_after"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0 "
                    f"(received {getattr(args, name)})")
    for name in ("max_epochs", "eval_every", "checkpoint_every", "batch_size", "unroll"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1 "
                    f"(received {getattr(args, name)})")
    return args


def main(argv=None):
    global T0
    T0 = time.time()
    args = parse_args(argv)
    import jax

    log(f"backend {os.environ['KERAS_BACKEND']}, devices {jax.devices()}")
    pathlib.Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (run_cifar if args.task == "cifar" else run_sr)(args)


if __name__ == "__main__":
    main()
