"""Train (or compress and fine-tune) a CIFAR-10 network; one run per table row.

Two routes:

- from scratch (the authors' route): ``--network resnet56 --variant basis``;
- from a trained model (the paper's Eq. 18 route): ``--from-pretrained base.keras``
  -> ``keras_basis.compress(ratio / num_basis / splits / share / init / gamma)`` ->
  fine-tune -> ``keras_basis.strip``.

Defaults are the paper's and the authors' scripts': SGD, momentum 0.9, lr 0.1 divided
by 10 at 50% and 75% of the epochs; VGG-16: 300 epochs, batch 128, weight decay 5e-4;
ResNet/DenseNet: batch 64, weight decay 1e-4, 400 epochs for the basis networks and
300 for the others, Nesterov for DenseNet. Weight decay is coupled as in PyTorch
(added to the gradient of every trainable variable before the momentum).

Everything goes to ``--output-dir``: ``args.json``, ``metrics.csv`` (one row per
epoch), ``ckpt-epochNNNN.keras`` + ``state.json`` (written every epoch; rerunning the
same command resumes after the last finished epoch), ``model.keras``, ``model.tflite``
and ``final.json``.

Examples::

    python -m examples.cifar10.train --network resnet56 --variant basis \\
        --data-dir /tmp/cifar10-jpeg --output-dir /tmp/runs/resnet56-basis
    python -m examples.cifar10.train --network resnet20 --from-pretrained base.keras \\
        --ratio 0.3 --splits auto --gamma 1e-3 --epochs 30 --lr 0.01 --output-dir /tmp/r
    python -m examples.cifar10.train --network resnet20 --smoke --data-dir D --output-dir O
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sys
import time

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FIELDS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


def paper_defaults(network, variant):
    """Epochs, batch size, weight decay and Nesterov flag of the authors' scripts."""
    if network.startswith("vgg"):
        return {"epochs": 300, "batch_size": 128, "weight_decay": 5e-4, "nesterov": False}
    epochs = 400 if variant == "basis" else 300
    return {
        "epochs": epochs,
        "batch_size": 64,
        "weight_decay": 1e-4,
        "nesterov": network.startswith("densenet"),
    }


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


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("network")
    g.add_argument("--network", default="resnet56",
                   choices=("resnet20", "resnet56", "vgg16", "densenet40"))
    g.add_argument("--variant", default="baseline",
                   choices=("baseline", "basis", "factor", "group"),
                   help="ignored with --from-pretrained (the loaded model is compressed)")
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
    g = p.add_argument_group("compress route")
    g.add_argument("--from-pretrained", default=None, metavar="MODEL.keras")
    g.add_argument("--init", default="svd", help="keras_basis.compress init")
    g.add_argument("--gamma", type=float, default=0.0, help="Eq. 18 weight")
    g.add_argument("--no-pretrained-eval", action="store_true",
                   help="skip evaluating the loaded model before compressing it")
    g.add_argument("--allocation", default="error", choices=("error", "uniform"),
                   help="keras_basis.compress allocation of m across layers (with --ratio)")
    g.add_argument("--layers", default=None,
                   help="regular expression (full match) of the Conv2D names to compress; "
                        "default: keras_basis.compress's choice")
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=None,
                   help="image folders train/<class>/*, test/<class>/*; default: "
                        "keras.datasets.cifar10")
    g.add_argument("--train-subset", type=int, default=None)
    g.add_argument("--test-subset", type=int, default=None)
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--lr", type=float, default=0.1)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--lr-milestones", default="0.5,0.75",
                   help="fractions of the epochs (< 1) or epoch numbers (the authors' "
                        "scripts: 250,325 of 400)")
    g.add_argument("--lr-factor", type=float, default=0.1)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--eval-every", type=int, default=1,
                   help="evaluate on the test images every N epochs (and after the last)")
    g = p.add_argument_group("run")
    g.add_argument("--output-dir", required=True)
    g.add_argument("--strategy", default="default",
                   choices=("default", "mirrored", "multi-worker"))
    g.add_argument("--logical-cpus", type=int, default=0,
                   help="split the CPU into N logical devices (to try --strategy mirrored "
                        "without GPUs)")
    g.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads")
    g.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    g.add_argument("--no-tflite", action="store_true")
    g.add_argument("--tflite-quantize", default=None)
    g.add_argument("--smoke", action="store_true",
                   help="tiny subset, a few steps, 1 epoch unless --epochs (for tests)")
    g.add_argument("--verbose", type=int, default=None,
                   help="Keras fit verbosity (default: progress bar, 0 with --smoke)")
    args = p.parse_args(argv)

    variant = "basis" if args.from_pretrained else args.variant
    defaults = paper_defaults(args.network, variant)
    if args.smoke:
        defaults.update(epochs=1, batch_size=16)
        args.train_subset = args.train_subset or 64
        args.test_subset = args.test_subset or 32
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.verbose is None:
        args.verbose = 0 if args.smoke else 1
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1 (received {args.epochs})")
    return args


# ----------------------------------------------------------------------------- helpers
def _write_atomic(path, text):
    path = pathlib.Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_csv(path, rows):
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    _write_atomic(path, buf.getvalue())


def _read_csv(path):
    if not pathlib.Path(path).exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _save_model_atomic(model, path):
    path = pathlib.Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    model.save(tmp)
    os.replace(tmp, path)


def lr_at(epoch, args):
    """Learning rate of ``epoch`` (0-based): ``lr * factor ** (milestones passed)``."""
    steps = 0
    for text in str(args.lr_milestones).split(","):
        if not text.strip():
            continue
        value = float(text)
        boundary = int(round(value * args.epochs)) if value < 1 else int(value)
        steps += epoch >= boundary
    return args.lr * args.lr_factor**steps


def make_strategy(name, logical_cpus=0):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        if not gpus and len(cpus) > 1:
            return tf.distribute.MirroredStrategy([d.name for d in cpus])
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and (
        "chief" not in resolver.cluster_spec().as_dict()
    )


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


def _export_tflite(model, path, quantize):
    import keras_basis

    if hasattr(keras_basis, "export_tflite"):
        return keras_basis.export_tflite(model, path, quantize=quantize)
    # keras_basis.export not available in this checkout: plain TF converter.
    import tensorflow as tf

    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    _write_atomic_bytes(path, data)
    return pathlib.Path(path)


def _write_atomic_bytes(path, data):
    path = pathlib.Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -------------------------------------------------------------------------------- main
def main(argv=None):
    """Run one training; returns the dict written to ``final.json``."""
    args = parse_args(argv)
    import tensorflow as tf

    if args.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import keras

    import keras_basis
    from examples.cifar10 import data as cifar_data
    from examples.cifar10.common import count_model
    from examples.cifar10.models import build
    from examples.cifar10.optim import CoupledSGD  # noqa: F401  (registers it for loading)

    keras.utils.set_random_seed(args.seed)
    strategy = make_strategy(args.strategy, args.logical_cpus)
    chief = _is_chief(strategy)
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    state_path = out / "state.json"
    state = None
    if state_path.exists() and not args.restart:
        state = json.loads(state_path.read_text())
        if not (out / state["checkpoint"]).exists():
            state = None
    start_epoch = state["epoch"] if state else 0
    rows = [r for r in _read_csv(out / "metrics.csv") if int(r["epoch"]) <= start_epoch]
    if chief:
        record = dict(vars(args), resumed_from_epoch=start_epoch,
                      replicas=strategy.num_replicas_in_sync, argv=sys.argv)
        _write_atomic(out / "args.json", json.dumps(record, indent=2, default=str) + "\n")

    train_src = cifar_data.load_source(args.data_dir, "train", args.train_subset, args.seed)
    test_src = cifar_data.load_source(args.data_dir, "test", args.test_subset, args.seed)
    train_ds = cifar_data.make_dataset(train_src, args.batch_size, True, args.seed)
    test_ds = cifar_data.make_dataset(test_src, max(args.batch_size, 256), False)
    print(f"data: {len(train_src['y'])} train / {len(test_src['y'])} test images "
          f"({'folders ' + args.data_dir if args.data_dir else 'keras.datasets.cifar10'}); "
          f"{strategy.num_replicas_in_sync} replica(s)", flush=True)

    compressed = bool(args.from_pretrained)
    with strategy.scope():
        if state:
            model = keras.models.load_model(out / state["checkpoint"], compile=True)
            print(f"resuming from {state['checkpoint']} (epoch {start_epoch} done)", flush=True)
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
            if chief:
                _write_atomic(out / "compress.json", json.dumps(info, indent=2) + "\n")
            del base
        else:
            model = build(args.network, args.variant, **_build_kwargs(args))
            _compile(model, args)

    class EpochEnd(keras.callbacks.Callback):
        """Checkpoint, metrics row and state after every epoch (in that order)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {"epoch": epoch + 1, "lr": lr_at(epoch, args),
                   "seconds": round(time.time() - self.t0, 2)}
            row.update({k: float(v) for k, v in logs.items() if k in FIELDS})
            rows.append(row)
            if not chief:  # only the chief writes (multi-worker)
                return
            name = f"ckpt-epoch{epoch + 1:04d}.keras"
            _save_model_atomic(self.model, out / name)
            _write_csv(out / "metrics.csv", rows)
            previous = json.loads(state_path.read_text())["checkpoint"] if (
                state_path.exists()) else None
            _write_atomic(state_path, json.dumps({"epoch": epoch + 1, "checkpoint": name}))
            if previous and previous != name and (out / previous).exists():
                (out / previous).unlink()

    if start_epoch < args.epochs:
        model.fit(
            train_ds,
            epochs=args.epochs,
            initial_epoch=start_epoch,
            validation_data=test_ds,
            validation_freq=args.eval_every,
            callbacks=[
                keras.callbacks.LearningRateScheduler(lambda e, lr: lr_at(e, args)),
                EpochEnd(),
            ],
            verbose=args.verbose,
        )

    final_model = model
    if compressed and hasattr(keras_basis, "strip"):
        final_model = keras_basis.strip(model)
    # An uncompiled view on the same layers: model.keras then loads without this
    # recipe's optimizer class.
    final_model = keras.Model(final_model.inputs, final_model.outputs, name=final_model.name)
    rows = _read_csv(out / "metrics.csv") if chief else rows
    last = rows[-1] if rows else {}
    if rows and last.get("val_accuracy") in (None, ""):  # last epoch not evaluated
        last["val_loss"], last["val_accuracy"] = model.evaluate(test_ds, verbose=0)[:2]
        if chief:
            _write_csv(out / "metrics.csv", rows)
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
        _save_model_atomic(final_model, out / "model.keras")
        if not args.no_tflite:
            path = _export_tflite(final_model, out / "model.tflite", args.tflite_quantize)
            result["tflite_bytes"] = pathlib.Path(path).stat().st_size
        _write_atomic(out / "final.json", json.dumps(result, indent=2) + "\n")
    print("final: " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
