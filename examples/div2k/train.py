"""Train (or compress and fine-tune) an SR network on DIV2K; evaluate; export.

Two routes, as in the paper:

- from scratch: ``--model edsr-8-128-basis-128-40`` builds the basis network with
  random (Kaiming-uniform) bases, the setting of the authors' released scripts;
- from a trained baseline: ``--from-pretrained base.keras --model <basis preset>``
  calls ``keras_basis.compress`` on the baseline's residual-block convolutions
  (``--init svd``: truncated-SVD start, Eq. 18's ``--gamma``), then fine-tunes.
  With ``--init random`` or a Factor preset the target network is built fresh and
  every layer outside the residual blocks (head, upsampler, tail) is copied from the
  baseline.

Defaults are the paper's: L1 loss, Adam (0.9, 0.999, 1e-8), lr 1e-4 x0.1 after epoch
200 of 300, batch 16, LR patches of 48 (EDSR) / 24 (SRResNet), flips + transpose.
One epoch is ``--steps-per-epoch`` batches (2000: the authors' scripts used 32,208
DIV2K sub-images per epoch, about 2,013 batches of 16).

Everything goes to ``--output-dir``: ``args.json``, ``metrics.csv`` (per epoch),
``checkpoint.keras`` + ``checkpoint.json`` (every epoch; a rerun resumes from them),
``model.keras``, ``model.tflite``, per-image evaluation CSVs, ``eval_summary.csv`` and
``summary.json``.

Usage (repository root):

    python -m examples.div2k.train --model edsr-8-128 --scale 4 \\
        --data-dir /data/DIV2K --benchmark-dir /data --eval-sets Set5,Set14,B100,Urban100 \\
        --div2k-valid --output-dir /tmp/edsr-8-128-x4
    python -m examples.div2k.train --smoke --output-dir /tmp/sr-smoke   # skimage photos
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

__all__ = ["main", "parse_args"]



def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="SR recipes of Li et al. (ICCV 2019): SRResNet / EDSR / EDSR-8-128 and "
        "their basis and Factor versions.",
        epilog="Examples:\n"
        "  python -m examples.div2k.train --model edsr-8-128 --data-dir /data/DIV2K "
        "--benchmark-dir /data --output-dir /tmp/e8\n"
        "  python -m examples.div2k.train --model edsr-8-128-basis-128-40 "
        "--from-pretrained /tmp/e8/model.keras --epochs 100 --output-dir /tmp/e8b40\n"
        "  python -m examples.div2k.train --smoke --output-dir /tmp/sr-smoke",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("network")
    g.add_argument("--model", default="edsr-8-128", help="preset of models.PRESETS")
    g.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    g.add_argument("--blocks", type=int, help="override the number of residual blocks")
    g.add_argument("--channels", type=int, help="override the feature channels")
    g.add_argument("--res-scale", type=float, help="override EDSR's residual scaling")
    g.add_argument("--num-basis", type=int, help="override m")
    g.add_argument("--basis-depth", type=int, help="override p (channels per basis filter)")
    g.add_argument("--share-basis", action="store_true", help="Basis-S: share within a block")
    g.add_argument("--sic-layers", type=int, help="override Factor's SIC layers")
    g.add_argument("--basis-init", choices=("authors", "matched"), default=None,
                   help="from-scratch init of basis convs (builders' basis_init; default "
                        "'matched': the plain conv's variance; 'authors': Kaiming-uniform)")
    g = p.add_argument_group("compression route")
    g.add_argument("--from-pretrained", help="a trained baseline .keras to compress")
    g.add_argument("--init", default="svd", choices=("svd", "random", "data"),
                   help="initialisation of the compressed layers (svd/data: keras_basis.compress)")
    g.add_argument("--gamma", type=float, default=0.0, help="Eq. 18 weight (compress route)")
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", help="DIV2K root or any folder of HR images "
                   "(default: photographs bundled with scikit-image)")
    g.add_argument("--train-limit", type=int, help="use the first N training images")
    g.add_argument("--benchmark-dir", help="folder holding benchmark/<Set> or <Set>/X<s>")
    g.add_argument("--eval-sets", default="Set5,Set14", help="comma-separated benchmark sets")
    g.add_argument("--div2k-valid", action="store_true",
                   help="also evaluate DIV2K_valid_HR (RGB, shave scale+6) from --data-dir")
    g.add_argument("--valid-limit", type=int, help="first N DIV2K validation images")
    g.add_argument("--val-every", type=int, default=1,
                   help="epochs between validation PSNRs on the first eval set (0: never)")
    g.add_argument("--eval-max-lr", type=int, help="centre-crop eval LR images (quick checks)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="default 300 (smoke: 2)")
    g.add_argument("--steps-per-epoch", type=int, help="default 2000 (smoke: 2)")
    g.add_argument("--batch-size", type=int, help="global batch size, default 16 (smoke: 2)")
    g.add_argument("--patch-size", type=int, help="LR patch side (48 EDSR, 24 SRResNet)")
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument("--lr-decay-epochs", default="200", help="comma-separated epochs")
    g.add_argument("--lr-decay-factor", type=float, default=0.1)
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.999)
    g.add_argument("--epsilon", type=float, default=1e-8)
    g.add_argument("--jit-compile", action="store_true", help="XLA (GPU runs)")
    g = p.add_argument_group("run")
    g.add_argument("--output-dir", required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--strategy", default="default", choices=("default", "mirrored", "multi-worker"))
    g.add_argument("--cpu-devices", type=int, default=0,
                   help="split the CPU into N logical devices (tests of --strategy mirrored)")
    g.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    g.add_argument("--no-tflite", action="store_true")
    g.add_argument("--tflite-size", type=int, default=128,
                   help="LR input side of the exported .tflite (fixed shape, batch 1)")
    g.add_argument("--smoke", action="store_true",
                   help="2 epochs x 2 steps, batch 2, patch 12, cropped evaluation")
    args = p.parse_args(argv)
    full = {"epochs": 300, "steps_per_epoch": 2000, "batch_size": 16}
    for key, value in full.items():
        if getattr(args, key) is None:
            setattr(args, key, 2 if args.smoke else value)
    if args.smoke:
        args.patch_size = args.patch_size or 12
        args.eval_max_lr = args.eval_max_lr or 24
        args.train_limit = args.train_limit or 2
        args.valid_limit = args.valid_limit or 2
        args.tflite_size = min(args.tflite_size, 16)
    return args


# --------------------------------------------------------------------- setting up
def _log(*a):
    print(*a, flush=True)


def _strategy(args):
    import tensorflow as tf

    if args.cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.cpu_devices)]
        )
    if args.strategy == "default":
        return tf.distribute.get_strategy()
    if args.strategy == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy()
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def _worker():
    """(index, is_chief) of this worker from TF_CONFIG (multi-worker runs)."""
    cfg = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = cfg.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in cfg.get("cluster", {})
    return index, (kind == "chief") or (kind == "worker" and index == 0 and not has_chief)


def _overrides(args):
    keys = {
        "num_blocks": args.blocks,
        "channels": args.channels,
        "res_scale": args.res_scale,
        "num_basis": args.num_basis,
        "basis_depth": args.basis_depth,
        "sic_layers": args.sic_layers,
        "basis_init": args.basis_init,
    }
    out = {k: v for k, v in keys.items() if v is not None}
    if args.share_basis:
        out["share_basis"] = True
    return out


def _target_config(args):
    """The preset's builder keyword arguments with the command-line overrides."""
    from examples.div2k import models

    if args.model not in models.PRESETS:
        raise SystemExit(f"error: unknown --model {args.model!r}; choose from "
                         f"{', '.join(models.PRESETS)}")
    fn, kwargs = models.PRESETS[args.model]
    return fn, {**kwargs, **_overrides(args)}


def _copy_matching_weights(src, dst):
    """Copies weights layer by layer where names and shapes match; returns the names."""
    by_name = {layer.name: layer for layer in src.layers}
    copied = []
    for layer in dst.layers:
        other = by_name.get(layer.name)
        if other is None or not layer.weights:
            continue
        a, b = layer.get_weights(), other.get_weights()
        if len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b)):
            layer.set_weights(b)
            copied.append(layer.name)
    return copied


def _from_pretrained(args, fn, kwargs, calibration=None):
    import keras

    import keras_basis
    from examples.div2k import models

    base = keras.models.load_model(args.from_pretrained, compile=False)
    groups = models.block_conv_names(base)
    if not groups:
        raise SystemExit(
            f"error: --from-pretrained {args.from_pretrained!r} has no residual-block "
            "convolutions named block<i>_conv1/2 (a baseline built by examples.div2k.models)."
        )
    m = kwargs.get("num_basis")
    if m is not None and args.init in ("svd", "data"):
        channels = base.get_layer(groups[0][0]).filters
        depth = kwargs.get("basis_depth") or channels
        names = [n for g in groups for n in g]
        _log(f"keras_basis.compress: {len(names)} block convs, m={m}, p={depth}, "
             f"s={channels // depth}, share={'block' if kwargs.get('share_basis') else 'none'}, "
             f"init={args.init}, gamma={args.gamma}")
        share = None
        if kwargs.get("share_basis"):
            share = {f"{g[0].split('_')[0]}_basis": list(g) for g in groups}
        extra = {"calibration_data": calibration} if args.init == "data" else {}
        return keras_basis.compress(
            base,
            num_basis=m,
            splits=channels // depth,
            layers=names,
            share=share,
            init=args.init,
            gamma=args.gamma,
            seed=args.seed,
            **extra,
        )
    model = fn(args.scale, **kwargs)
    copied = _copy_matching_weights(base, model)
    _log(f"built {model.name} fresh; copied the weights of {len(copied)} layers from the "
         f"baseline ({', '.join(c for c in copied if not c.startswith('block'))}...)")
    return model


def _optimizer(args):
    import keras

    decay = [int(e) for e in str(args.lr_decay_epochs).split(",") if e.strip()]
    decay = [e for e in decay if 0 < e]
    lr = args.lr
    if decay:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            [e * args.steps_per_epoch for e in decay],
            [args.lr * args.lr_decay_factor**i for i in range(len(decay) + 1)],
        )
    return keras.optimizers.Adam(lr, beta_1=args.beta1, beta_2=args.beta2, epsilon=args.epsilon)


def _train_images(args):
    from examples.div2k import data as D

    if args.data_dir:
        pairs, desc = D.discover_train(args.data_dir, args.scale, args.train_limit)
    else:
        pairs = D.skimage_pairs()[: args.train_limit or None]
        desc = (
            "NO --data-dir GIVEN: training on photographs bundled with scikit-image "
            f"({', '.join(p.name for p in pairs)}), LR made on the fly. This only shows the "
            "recipe running; use DIV2K (--data-dir) for real results"
        )
    _log(f"training data: {desc}")
    t = time.time()
    images = [D.load_pair(p, args.scale) for p in pairs]
    _log(f"loaded {len(images)} images in {time.time() - t:.1f}s")
    return images


def _eval_sets(args):
    from examples.div2k import data as D
    from examples.div2k import evaluate as E

    sets = [s for s in args.eval_sets.split(",") if s]
    if args.benchmark_dir:
        div2k = args.data_dir if args.div2k_valid else None
        return E.eval_sets(args.scale, args.benchmark_dir, sets, div2k, args.valid_limit)
    if args.div2k_valid and args.data_dir:
        return E.eval_sets(args.scale, None, (), args.data_dir, args.valid_limit)
    if args.data_dir:
        _log("no --benchmark-dir: no benchmark evaluation")
        return []
    _log("no --benchmark-dir: evaluating on scikit-image's 'chelsea' (LR made on the fly)")
    return [("skimage-chelsea", D.skimage_pairs(D.SKIMAGE_TEST), "benchmark")]


# ---------------------------------------------------------------------- callbacks
def _callbacks(args, out, sets, chief):
    import keras
    import numpy as np

    from examples.div2k import evaluate as E

    ckpt, state = out / "checkpoint.keras", out / "checkpoint.json"
    metrics_csv = out / "metrics.csv"

    class EpochEnd(keras.callbacks.Callback):
        """Validation PSNR, metrics.csv and the checkpoint, at the end of every epoch."""

        def __init__(self, rows):
            super().__init__()
            self.rows = rows
            self.t0 = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            seconds = time.time() - self.t0
            row = {
                "epoch": epoch + 1,
                "loss": float(logs.get("loss", np.nan)),
                "lr": float(keras.ops.convert_to_numpy(
                    self.model.optimizer.learning_rate)),
                "seconds": round(seconds, 2),
                "val_set": "",
                "val_psnr": "",
                "val_ssim": "",
            }
            if sets and args.val_every and (epoch + 1) % args.val_every == 0:
                name, pairs, protocol = sets[0]
                r = E.evaluate_pairs(self.model, pairs, args.scale, protocol,
                                     max_lr_size=args.eval_max_lr)
                row.update(val_set=name, val_psnr=round(r["psnr"], 4),
                           val_ssim=round(r["ssim"], 6))
                _log(f"epoch {epoch + 1}: {name} PSNR {r['psnr']:.2f} dB SSIM {r['ssim']:.4f}")
            self.rows[:] = [r for r in self.rows if int(r["epoch"]) < epoch + 1] + [row]
            if not chief:
                return
            # Checkpoint first, then its marker, then the CSV: a crash in between
            # resumes from the previous epoch and rewrites the CSV row.
            tmp = ckpt.with_name(f".{ckpt.name}.tmp.keras")
            self.model.save(tmp)
            os.replace(tmp, ckpt)
            E.write_text_atomic(state, json.dumps({"epoch": epoch + 1}))
            header = list(row)
            lines = [",".join(header)] + [
                ",".join(str(r.get(k, "")) for k in header) for r in self.rows
            ]
            E.write_text_atomic(metrics_csv, "\n".join(lines) + "\n")

    rows = []
    if metrics_csv.exists():
        import csv

        with open(metrics_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    return [EpochEnd(rows)]


def _describe(model, log=_log):
    from examples.div2k import models

    blocks = models.block_weight_counts(model)
    log(f"{model.name}: {models.weight_count(model):,} conv weights (no biases/BN), "
        f"{model.count_params():,} parameters in all; per residual block: "
        f"{blocks[0] if blocks else 0:,} x {len(blocks)}")
    return {
        "conv_weights": models.weight_count(model),
        "all_parameters": int(model.count_params()),
        "block_weights": blocks,
    }


def _export(model, path, size):
    try:
        from keras_basis import export_tflite
    except ImportError:
        _log("tflite: skipped, keras_basis.export_tflite is not available in this version")
        return None
    export_tflite(model, path, input_shape=(size, size, 3))
    _log(f"tflite: {path} ({os.path.getsize(path):,} bytes)")
    return str(path)


# ---------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import keras

    strategy = _strategy(args)
    import keras_basis
    from examples.div2k import evaluate as E
    from examples.div2k import models  # noqa: F401  (registers the custom layers)
    from examples.div2k.data import PatchSampler

    index, chief = _worker()
    if not chief:
        out = out / f"worker-{index}"
        out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed + index)
    fn, kwargs = _target_config(args)
    if args.patch_size is None:
        args.patch_size = 24 if fn is models.srresnet else 48
    E.write_text_atomic(out / "args.json", json.dumps(vars(args), indent=2, sort_keys=True))
    _log(f"strategy: {args.strategy} ({strategy.num_replicas_in_sync} replica(s)); "
         f"output: {out}")

    images = _train_images(args)
    sets = _eval_sets(args)
    ckpt, state = out / "checkpoint.keras", out / "checkpoint.json"
    resume = ckpt.exists() and state.exists() and not args.no_resume
    initial_epoch = int(json.loads(state.read_text())["epoch"]) if resume else 0
    # A resumed run draws fresh patches rather than replaying the first epochs' ones.
    sampler = PatchSampler(images, args.scale, args.patch_size, args.batch_size,
                           seed=args.seed + 1000 * index + 7919 * initial_epoch)
    dataset = sampler.dataset()

    with strategy.scope():
        if resume:
            model = keras.models.load_model(ckpt)
            _log(f"resuming from {ckpt} after epoch {initial_epoch}")
        else:
            if args.from_pretrained:
                calibration = ([sampler.batch()[0] for _ in range(4)]
                               if args.init == "data" else None)
                model = _from_pretrained(args, fn, kwargs, calibration)
            else:
                model = fn(args.scale, **kwargs)
            model.compile(optimizer=_optimizer(args), loss="mean_absolute_error",
                          jit_compile=args.jit_compile)
    info = _describe(model)

    if initial_epoch < args.epochs:
        verbose = 1 if sys.stdout.isatty() else 2
        model.fit(
            dataset,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            initial_epoch=initial_epoch,
            callbacks=_callbacks(args, out, sets, chief),
            verbose=verbose,
        )
    else:
        _log(f"already trained for {initial_epoch} epochs")

    final = model
    if args.gamma and hasattr(keras_basis, "strip"):
        final = keras_basis.strip(model)
    if not chief:
        return 0
    tmp = out / ".model.tmp.keras"
    final.save(tmp)
    os.replace(tmp, out / "model.keras")
    results = E.evaluate_all(final, args.scale, sets, out, args.eval_max_lr, log=_log)
    tflite = None if args.no_tflite else _export(final, out / "model.tflite",
                                                           args.tflite_size)
    summary = {
        "model": args.model,
        "scale": args.scale,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "tflite": tflite,
        "eval": [{k: r[k] for k in ("set", "scale", "protocol", "n", "psnr", "ssim")}
                 for r in results],
        **info,
    }
    E.write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
