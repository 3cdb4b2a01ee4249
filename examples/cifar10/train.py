"""Train (or compress and fine-tune) a CIFAR-10 network; one run per table row.

Two routes:

- from scratch (the authors' route): ``--network resnet56 --variant basis``;
- from a trained model (the paper's Eq. 18 route): ``--from-pretrained base.keras``
  -> ``keras_basis.compress(ratio / num_basis / splits / share / init / gamma)`` ->
  fine-tune -> ``keras_basis.strip``.

Defaults are presets (``PRESETS``: one dict per network and schedule, shown by
``--help`` for the chosen ``--network``/``--variant``): SGD, momentum 0.9, lr 0.1 divided
by 10 at the milestones; VGG-16: 300 epochs, batch 128, weight decay 5e-4; ResNet/DenseNet:
batch 64, weight decay 1e-4, Nesterov for DenseNet. Basis ResNets/DenseNet from scratch
follow the authors' scripts (400 epochs, ``--decay step-250-325``: milestones 250 and
325); every other network the paper (300 epochs, x0.1 at 50% and 75%). Weight decay is
coupled as in PyTorch (added to the gradient of every trainable variable before the
momentum).

Everything goes to ``--output-dir`` (``examples/run.py``): ``args.json``,
``metrics.csv`` (one row per epoch), ``ckpt-epochNNNN.keras`` + ``state.json`` (written
every epoch; rerunning the same command resumes after the last finished epoch,
``--restart`` starts again), ``model.keras``, ``model.tflite`` and ``final.json``.

Examples::

    python -m examples.cifar10.train --network resnet56 --variant basis \\
        --data-dir /tmp/cifar10-jpeg --output-dir /tmp/runs/resnet56-basis
    python -m examples.cifar10.train --network resnet20 --from-pretrained base.keras \\
        --ratio 0.3 --splits auto --gamma 1e-3 --epochs 30 --lr 0.01 --output-dir /tmp/r
    python -m examples.cifar10.train --network resnet20 --smoke --data-dir D --output-dir O
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from examples import run  # noqa: E402

FIELDS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
NETWORKS = ("resnet20", "resnet56", "vgg16", "densenet40")
VARIANTS = ("baseline", "basis", "factor", "group")

# Optimiser settings of the authors' scripts (ofsoundof/learning_filter_basis).
_RESNET = {"batch_size": 64, "weight_decay": 1e-4, "nesterov": False}
_VGG = {"batch_size": 128, "weight_decay": 5e-4, "nesterov": False}
_DENSENET = {"batch_size": 64, "weight_decay": 1e-4, "nesterov": True}
# Schedules: the paper's (300 epochs, lr x0.1 after 50% and 75% of them) and the
# authors' scripts' for the basis ResNets/DenseNet (--epochs 400 --decay step-250-325).
_PAPER = {"epochs": 300, "lr_milestones": "0.5,0.75"}
_AUTHORS_BASIS = {"epochs": 400, "lr_milestones": "250,325"}
# The compress route (--from-pretrained) has no script of the authors: 400 epochs with
# the paper's fractions, scaled to any --epochs of a fine-tuning.
_COMPRESS = {"epochs": 400, "lr_milestones": "0.5,0.75"}

PRESETS = {
    "resnet20": {"baseline": {**_RESNET, **_PAPER}, "basis": {**_RESNET, **_AUTHORS_BASIS},
                 "factor": {**_RESNET, **_PAPER}, "group": {**_RESNET, **_PAPER},
                 "compressed": {**_RESNET, **_COMPRESS}},
    "resnet56": {"baseline": {**_RESNET, **_PAPER}, "basis": {**_RESNET, **_AUTHORS_BASIS},
                 "factor": {**_RESNET, **_PAPER}, "group": {**_RESNET, **_PAPER},
                 "compressed": {**_RESNET, **_COMPRESS}},
    "vgg16": {"baseline": {**_VGG, **_PAPER}, "basis": {**_VGG, **_PAPER},
              "factor": {**_VGG, **_PAPER}, "group": {**_VGG, **_PAPER},
              "compressed": {**_VGG, **_COMPRESS}},
    "densenet40": {"baseline": {**_DENSENET, **_PAPER},
                   "basis": {**_DENSENET, **_AUTHORS_BASIS},
                   "factor": {**_DENSENET, **_PAPER}, "group": {**_DENSENET, **_PAPER},
                   "compressed": {**_DENSENET, **_COMPRESS}},
}
# --smoke: a few steps on tiny subsets (tests).
SMOKE = {"epochs": 1, "batch_size": 16, "train_subset": 64, "test_subset": 32, "verbose": 0}


def preset(network, variant, from_pretrained=False, smoke=False):
    """The defaults of one run: ``PRESETS[network][variant]`` (+ ``SMOKE``, verbosity).

    Args:
        network: a key of ``PRESETS``.
        variant: ``"baseline"``, ``"basis"``, ``"factor"`` or ``"group"`` (ignored with
            ``from_pretrained``: the ``"compressed"`` preset).
        from_pretrained: whether the run compresses a trained model.
        smoke: apply ``SMOKE`` on top.

    Returns:
        dict of argument defaults (``dest`` names).
    """
    values = dict(PRESETS[network]["compressed" if from_pretrained else variant])
    values["verbose"] = 1
    if smoke:
        values.update(SMOKE)
    return values


def _int_or_list(text):
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    values = [int(p) for p in parts]
    return values[0] if len(values) == 1 else tuple(values)


def _splits_arg(text):
    if text is None or text in ("auto", "channel"):
        return text
    return _int_or_list(text)


def _add_selectors(g):
    """The arguments that choose the preset (parsed first, see run.parse_with_preset)."""
    g.add_argument("--network", default="resnet56", choices=NETWORKS,
                   help="network (with --variant: the preset of the defaults)")
    g.add_argument("--variant", default="baseline", choices=VARIANTS,
                   help="ignored with --from-pretrained (the loaded model is compressed)")
    g.add_argument("--from-pretrained", default=None, metavar="MODEL.keras",
                   help="compress this trained model and fine-tune it (the paper's Eq. 18 "
                        "route)")


def parse_args(argv=None):
    """Parses the command line; defaults come from ``preset`` of the chosen network."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("network")
    _add_selectors(g)
    g.add_argument("--share", default=None,
                   help="scratch ResNet basis: 'stage' (Table 8) or 'layer'; with "
                        "--from-pretrained: passed to keras_basis.compress")
    g.add_argument("--num-basis", default=None,
                   help="m: an int, or per stage '24,48,84' (ResNet, share=stage)")
    g.add_argument("--splits", default=None,
                   help="'auto' (Eq. 13), 'channel' (s = c) or an int (1: 3D low rank)")
    g.add_argument("--ratio", type=float, default=None,
                   help="fraction of the conv weights to keep (per layer when building, "
                        "overall with --from-pretrained)")
    g.add_argument("--group-size", default=None,
                   help="Group variant: channels per group (ResNet: one or 3 values)")
    g.add_argument("--config", default="M36T6", help="DenseNet basis: M<m>[T<T>] (Table 7)")
    g.add_argument("--coef-kernel", type=int, default=3,
                   help="DenseNet basis: kernel of the conv after the basis")
    g = p.add_argument_group("compress route (with --from-pretrained)")
    g.add_argument("--init", default="svd", help="keras_basis.compress init")
    g.add_argument("--gamma", type=float, default=0.0, help="Eq. 18 weight")
    g.add_argument("--no-pretrained-eval", action="store_true",
                   help="skip evaluating the loaded model before compressing it")
    g.add_argument("--objective", default="params", choices=("params", "macs", "latency"),
                   help="what --ratio budgets in keras_basis.compress: 'params' (the paper's "
                   "budget, this recipe's default), 'macs' (the library's default) or "
                   "'latency' (TFLite latency measured on this machine)")
    g.add_argument("--allocation", default="error", choices=("error", "uniform"),
                   help="keras_basis.compress allocation of m across layers (with --ratio "
                   "and --objective params)")
    g.add_argument("--layers", default=None,
                   help="regular expression (full match) of the Conv2D names to compress; "
                        "default: keras_basis.compress's choice")
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=None,
                   help="image folders train/<class>/*, test/<class>/*; default: "
                        "keras.datasets.cifar10")
    g.add_argument("--train-subset", type=int, default=None,
                   help="balanced random subset of the training images (None: all)")
    g.add_argument("--test-subset", type=int, default=None,
                   help="balanced random subset of the test images (None: all)")
    g = p.add_argument_group("optimisation (defaults: the preset of --network/--variant)")
    g.add_argument("--epochs", type=int, help="training epochs")
    g.add_argument("--batch-size", type=int, help="global batch size")
    g.add_argument("--lr", type=float, default=0.1, help="initial learning rate")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, help="coupled (PyTorch-style)")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction,
                   help="Nesterov momentum")
    g.add_argument("--lr-milestones",
                   help="epochs at which lr is multiplied by --lr-factor: epoch numbers, or "
                        "fractions (< 1) of the epochs")
    g.add_argument("--lr-factor", type=float, default=0.1,
                   help="lr multiplier at each milestone")
    g.add_argument("--eval-every", type=int, default=1,
                   help="evaluate on the test images every N epochs (and after the last)")
    g = p.add_argument_group("run")
    run.add_run_arguments(g, smoke_help="64 train / 32 test images, batch 16, 1 epoch, "
                                        "no progress bar (tests)")
    g.add_argument("--threads", type=int, default=0,
                   help="TF intra/inter-op threads (0: TensorFlow's choice)")
    g.add_argument("--no-tflite", action="store_true", help="skip model.tflite")
    g.add_argument("--tflite-quantize", default=None,
                   help="keras_basis.export_tflite quantize argument")
    g.add_argument("--verbose", type=int, help="Keras fit verbosity")

    selector = argparse.ArgumentParser(add_help=False)
    _add_selectors(selector)
    selector.add_argument("--smoke", action="store_true")
    args = run.parse_with_preset(
        p, selector, argv,
        lambda a: preset(a.network, a.variant, bool(a.from_pretrained), a.smoke))
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1 (received {args.epochs})")
    try:
        args.milestones = run.milestones(args.lr_milestones, args.epochs)
    except ValueError as err:
        p.error(str(err))
    return args


def lr_at(epoch, args):
    """Learning rate of ``epoch`` (0-based): ``lr * lr_factor ** (milestones passed)``."""
    return run.step_lr(epoch, args.lr, run.milestones(args.lr_milestones, args.epochs),
                       args.lr_factor)


def _build_kwargs(args):
    kw = {}
    if args.network.startswith("resnet"):
        if args.share:
            kw["share"] = args.share
        if args.num_basis:
            kw["num_basis"] = _int_or_list(args.num_basis)
        if args.splits:
            kw["splits"] = _splits_arg(args.splits)
        if args.ratio is not None:
            kw["ratio"] = args.ratio
        if args.group_size:
            kw["group_sizes"] = _int_or_list(args.group_size)
    elif args.network == "vgg16":
        if args.num_basis:
            kw["num_basis"] = _int_or_list(args.num_basis)
        elif args.ratio is not None:
            kw["num_basis"] = None
        if args.splits:
            kw["splits"] = _splits_arg(args.splits)
        if args.ratio is not None:
            kw["ratio"] = args.ratio
        if args.group_size:
            kw["group_size"] = _int_or_list(args.group_size)
    else:
        kw["config"] = args.config
        kw["coef_kernel"] = args.coef_kernel
    return kw


def _compress_kwargs(args):
    kw = {"init": args.init, "gamma": args.gamma, "seed": args.seed,
          "verbose": 0 if args.smoke else 1}
    splits = _splits_arg(args.splits) if args.splits else "auto"
    if splits == "channel":  # s = c for every layer: the channel-wise decomposition

        def splits(layer):
            return int(layer.kernel.shape[2])

    kw["splits"] = splits
    if args.num_basis:
        kw["num_basis"] = _int_or_list(args.num_basis)
    if args.ratio is not None:
        kw["ratio"] = args.ratio
        kw["objective"] = args.objective
        if args.objective == "params":
            kw["allocation"] = args.allocation
    if args.share:
        kw["share"] = args.share
    if args.layers:
        kw["layers"] = args.layers
    return kw


def _compile(model, args):
    import keras

    from examples.cifar10.optim import CoupledSGD

    model.compile(
        optimizer=CoupledSGD(
            learning_rate=lr_at(0, args),
            momentum=args.momentum,
            nesterov=args.nesterov,
            coupled_weight_decay=args.weight_decay,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


# -------------------------------------------------------------------------------- main
def main(argv=None):
    """Run one training; returns the dict written to ``final.json``."""
    args = parse_args(argv)
    import tensorflow as tf

    if args.threads:  # before anything initialises TensorFlow's runtime
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    strategy = run.make_strategy(args.strategy, args.logical_cpus)

    import keras

    import keras_basis
    from examples.cifar10 import data as cifar_data
    from examples.cifar10.common import count_model
    from examples.cifar10.models import build
    from examples.cifar10.optim import CoupledSGD  # noqa: F401  (registers it for loading)

    keras.utils.set_random_seed(args.seed)
    index, chief = run.worker()
    rd = run.RunDir(run.worker_dir(args.output_dir, index, chief), FIELDS,
                    restart=args.restart)
    rd.write_args(args, replicas=strategy.num_replicas_in_sync)
    if args.milestones and args.milestones[-1] >= args.epochs:
        print(f"note: lr milestones {args.lr_milestones} reach past --epochs "
              f"{args.epochs}; give --lr-milestones for a shorter schedule", flush=True)

    train_src = cifar_data.load_source(args.data_dir, "train", args.train_subset, args.seed)
    test_src = cifar_data.load_source(args.data_dir, "test", args.test_subset, args.seed)
    train_ds = cifar_data.make_dataset(train_src, args.batch_size, True, args.seed)
    test_ds = cifar_data.make_dataset(test_src, max(args.batch_size, 256), False)
    print(f"data: {len(train_src['y'])} train / {len(test_src['y'])} test images "
          f"({'folders ' + args.data_dir if args.data_dir else 'keras.datasets.cifar10'}); "
          f"{strategy.num_replicas_in_sync} replica(s)", flush=True)

    compressed = bool(args.from_pretrained)
    with strategy.scope():
        if rd.checkpoint:
            model = keras.models.load_model(rd.checkpoint, compile=True)
            print(f"resuming from {rd.checkpoint.name} (epoch {rd.epoch} done)", flush=True)
        elif compressed:
            base = keras.models.load_model(args.from_pretrained, compile=False)
            model = keras_basis.compress(base, **_compress_kwargs(args))
            _compile(model, args)
            base_counts, new_counts = count_model(base), count_model(model)
            info = {
                "pretrained": args.from_pretrained,
                "pretrained_counts": base_counts,
                "compressed_counts": new_counts,
                "pretrained_val_accuracy": None,
                "compressed_val_accuracy": float(model.evaluate(test_ds, verbose=0)[1]),
            }
            if not args.no_pretrained_eval:
                _compile(base, args)
                info["pretrained_val_accuracy"] = float(base.evaluate(test_ds, verbose=0)[1])
            print("compress: " + json.dumps(info), flush=True)
            rd.write_json("compress.json", info)
            del base
        else:
            model = build(args.network, args.variant, **_build_kwargs(args))
            _compile(model, args)

    def make_row(epoch, logs, model):
        row = {"lr": lr_at(epoch - 1, args)}
        row.update({k: float(v) for k, v in logs.items() if k in FIELDS})
        return row

    if rd.epoch < args.epochs:
        model.fit(
            train_ds,
            epochs=args.epochs,
            initial_epoch=rd.epoch,
            validation_data=test_ds,
            validation_freq=args.eval_every,
            callbacks=[
                keras.callbacks.LearningRateScheduler(lambda e, lr: lr_at(e, args)),
                run.epoch_callback(rd, make_row),
            ],
            verbose=args.verbose,
        )

    final_model = keras_basis.strip(model) if compressed else model
    # An uncompiled view on the same layers: model.keras then loads without this
    # recipe's optimizer class.
    final_model = keras.Model(final_model.inputs, final_model.outputs, name=final_model.name)
    rows = rd.rows
    last = rows[-1] if rows else {}
    if rows and last.get("val_accuracy") in (None, ""):  # last epoch not evaluated
        last["val_loss"], last["val_accuracy"] = (
            float(v) for v in model.evaluate(test_ds, verbose=0)[:2])
        rd.write_metrics()
    counts = count_model(final_model)
    result = {
        "network": args.network,
        "variant": "compressed" if compressed else args.variant,
        "epochs": args.epochs,
        "test_accuracy": float(last.get("val_accuracy", "nan")),
        "test_images": len(test_src["y"]),
        "train_images": len(train_src["y"]),
        "train_seconds": round(sum(float(r["seconds"]) for r in rows), 1),
        **counts,
    }
    if chief:
        rd.save_model(final_model)
        if not args.no_tflite:
            path = keras_basis.export_tflite(final_model, rd.path / "model.tflite",
                                             quantize=args.tflite_quantize)
            result["tflite_bytes"] = pathlib.Path(path).stat().st_size
        rd.write_json("final.json", result)
    print("final: " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
