"""Train (or compress and fine-tune) an SR network on DIV2K; evaluate; export.

Two routes, as in the paper:

- from scratch: ``--network edsr-8-128-basis-128-40`` builds the basis network with
  random (Kaiming-uniform) bases, the setting of the authors' released scripts;
- from a trained baseline: ``--from-pretrained base.keras --network <basis preset>``
  calls ``keras_basis.compress`` on the baseline's residual-block convolutions
  (``--init svd``: truncated-SVD start, Eq. 18's ``--gamma``), then fine-tunes.
  With ``--init random`` or a Factor preset the target network is built fresh and
  every layer outside the residual blocks (head, upsampler, tail) is copied from the
  baseline.

Defaults are the paper's, as presets (``PRESETS``: one dict per network family, shown
by ``--help`` for the chosen ``--network``): L1 loss, Adam (0.9, 0.999, 1e-8), lr 1e-4
x0.1 after epoch 200 of 300, batch 16, LR patches of 48 (EDSR) / 24 (SRResNet), flips +
transpose. One epoch is ``--steps-per-epoch`` batches (2000: the authors' scripts used
32,208 DIV2K sub-images per epoch, about 2,013 batches of 16).

Everything goes to ``--output-dir`` (``examples/run.py``): ``args.json``,
``metrics.csv`` (per epoch), ``ckpt-epochNNNN.keras`` + ``state.json`` (every epoch; a
rerun resumes after the last finished epoch, ``--restart`` starts again),
``model.keras``, ``model.tflite``, per-image evaluation CSVs, ``eval_summary.csv`` and
``summary.json``.

Usage (repository root):

    python -m examples.div2k.train --network edsr-8-128 --scale 4 \\
        --data-dir /data/DIV2K --benchmark-dir /data --eval-sets Set5,Set14,B100,Urban100 \\
        --div2k-valid --output-dir /tmp/edsr-8-128-x4
    python -m examples.div2k.train --smoke --output-dir /tmp/sr-smoke   # skimage photos
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from examples import run  # noqa: E402

__all__ = ["PRESETS", "SMOKE", "main", "parse_args", "preset"]

FIELDS = ("epoch", "lr", "loss", "val_set", "val_psnr", "val_ssim", "seconds")

# Training presets per network family: the paper's schedule (300 epochs, lr x0.1 after
# epoch 200, batch 16) and LR patch sizes (EDSR 48, SRResNet 24).
_PAPER = {"epochs": 300, "steps_per_epoch": 2000, "batch_size": 16, "lr_milestones": "200"}
PRESETS = {
    "edsr": {**_PAPER, "patch_size": 48},
    "srresnet": {**_PAPER, "patch_size": 24},
}
# --smoke: 2 epochs x 2 steps on tiny patches and crops (tests).
SMOKE = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 12,
         "eval_max_lr": 24, "train_limit": 2, "valid_limit": 2, "tflite_size": 16}


def preset(model, smoke=False):
    """The defaults of a run of ``--network model``: its family's ``PRESETS`` (+ ``SMOKE``).

    Args:
        model: a preset name of ``examples.div2k.models.PRESETS`` (``srresnet*``: the
            SRResNet family; anything else: EDSR).
        smoke: apply ``SMOKE`` on top.

    Returns:
        dict of argument defaults (``dest`` names).
    """
    values = dict(PRESETS["srresnet" if str(model).startswith("srresnet") else "edsr"])
    if smoke:
        values.update(SMOKE)
    return values


def parse_args(argv=None):
    """Parses the command line; defaults come from ``preset`` of the chosen ``--network``."""
    p = argparse.ArgumentParser(
        description="SR recipes of Li et al. (ICCV 2019): SRResNet / EDSR / EDSR-8-128 and "
        "their basis and Factor versions.",
        epilog="Examples:\n"
        "  python -m examples.div2k.train --network edsr-8-128 --data-dir /data/DIV2K "
        "--benchmark-dir /data --output-dir /tmp/e8\n"
        "  python -m examples.div2k.train --network edsr-8-128-basis-128-40 "
        "--from-pretrained /tmp/e8/model.keras --epochs 100 --output-dir /tmp/e8b40\n"
        "  python -m examples.div2k.train --smoke --output-dir /tmp/sr-smoke",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("network")
    g.add_argument("--network", "--model", dest="model", default="edsr-8-128", metavar="PRESET",
                   help="preset of models.PRESETS (as --network of the CIFAR-10 recipe; "
                        "--model is the older spelling; default: %(default)s)")
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
                   help="initialisation of the compressed layers (svd/data: "
                        "keras_basis.compress; default: %(default)s)")
    g.add_argument("--gamma", type=float, default=0.0, help="Eq. 18 weight (compress route)")
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", help="DIV2K root or any folder of HR images "
                   "(default: photographs bundled with scikit-image)")
    g.add_argument("--train-limit", type=int, help="use the first N training images "
                   "(default: %(default)s)")
    g.add_argument("--benchmark-dir", help="folder holding benchmark/<Set> or <Set>/X<s>")
    g.add_argument("--eval-sets", default="Set5,Set14",
                   help="comma-separated benchmark sets (default: %(default)s)")
    g.add_argument("--div2k-valid", action="store_true",
                   help="also evaluate DIV2K_valid_HR (RGB, shave scale+6) from --data-dir")
    g.add_argument("--valid-limit", type=int, help="first N DIV2K validation images "
                   "(default: %(default)s)")
    g.add_argument("--eval-every", type=int, default=1,
                   help="epochs between validation PSNRs on the first eval set (0: never; "
                        "default: %(default)s)")
    g.add_argument("--eval-max-lr", type=int,
                   help="centre-crop eval LR images (quick checks; default: %(default)s)")
    g = p.add_argument_group("optimisation (defaults: the preset of --network)")
    g.add_argument("--epochs", type=int, help="default: %(default)s")
    g.add_argument("--steps-per-epoch", type=int, help="default: %(default)s")
    g.add_argument("--batch-size", type=int, help="global batch size (default: %(default)s)")
    g.add_argument("--patch-size", type=int, help="LR patch side (default: %(default)s)")
    g.add_argument("--lr", type=float, default=1e-4, help="default: %(default)s")
    g.add_argument("--lr-milestones",
                   help="epochs at which lr is multiplied by --lr-factor: epoch numbers, or "
                        "fractions (< 1) of the epochs (default: %(default)s)")
    g.add_argument("--lr-factor", type=float, default=0.1, help="default: %(default)s")
    g.add_argument("--beta1", type=float, default=0.9, help="default: %(default)s")
    g.add_argument("--beta2", type=float, default=0.999, help="default: %(default)s")
    g.add_argument("--epsilon", type=float, default=1e-8, help="default: %(default)s")
    g.add_argument("--jit-compile", action="store_true", help="XLA (GPU runs)")
    g = p.add_argument_group("run")
    run.add_run_arguments(g, smoke_help="2 epochs x 2 steps, batch 2, patch 12, cropped "
                                        "evaluation (tests)")
    g.add_argument("--no-tflite", action="store_true", help="skip model.tflite")
    g.add_argument("--tflite-size", type=int, default=128,
                   help="LR input side of the exported .tflite (fixed shape, batch 1; "
                        "default: %(default)s)")

    selector = argparse.ArgumentParser(add_help=False)
    selector.add_argument("--network", "--model", dest="model", default="edsr-8-128")
    selector.add_argument("--smoke", action="store_true")
    args = run.parse_with_preset(p, selector, argv, lambda a: preset(a.model, a.smoke))
    try:
        run.milestones(args.lr_milestones, args.epochs)
    except ValueError as err:
        p.error(str(err))
    return args


# --------------------------------------------------------------------- setting up
def _log(*a):
    print(*a, flush=True)


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
        raise SystemExit(f"error: unknown --network {args.model!r}; choose from "
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

    decay = [e for e in run.milestones(args.lr_milestones, args.epochs) if 0 < e]
    lr = args.lr
    if decay:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            [e * args.steps_per_epoch for e in decay],
            [args.lr * args.lr_factor**i for i in range(len(decay) + 1)],
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
def _epoch_row(args, sets):
    """``make_row`` of run.epoch_callback: loss, lr and the validation PSNR/SSIM."""
    import keras
    import numpy as np

    from examples.div2k import evaluate as E

    def make_row(epoch, logs, model):
        row = {
            "loss": float(logs.get("loss", np.nan)),
            "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            "val_set": "",
            "val_psnr": "",
            "val_ssim": "",
        }
        if sets and args.eval_every and epoch % args.eval_every == 0:
            name, pairs, protocol = sets[0]
            r = E.evaluate_pairs(model, pairs, args.scale, protocol,
                                 max_lr_size=args.eval_max_lr)
            row.update(val_set=name, val_psnr=round(r["psnr"], 4), val_ssim=round(r["ssim"], 6))
            _log(f"epoch {epoch}: {name} PSNR {r['psnr']:.2f} dB SSIM {r['ssim']:.4f}")
        return row

    return make_row


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
    import keras_basis

    keras_basis.export_tflite(model, path, input_shape=(size, size, 3))
    _log(f"tflite: {path} ({os.path.getsize(path):,} bytes)")
    return str(path)


# ---------------------------------------------------------------------------- main
def main(argv=None):
    """Runs one training (or resumes it), evaluates and exports; returns 0."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    strategy = run.make_strategy(args.strategy, args.logical_cpus)

    import keras

    import keras_basis
    from examples.div2k import evaluate as E
    from examples.div2k import models  # noqa: F401  (registers the custom layers)
    from examples.div2k.data import PatchSampler

    index, chief = run.worker()
    keras.utils.set_random_seed(args.seed + index)
    fn, kwargs = _target_config(args)
    rd = run.RunDir(run.worker_dir(args.output_dir, index, chief), FIELDS,
                    restart=args.restart)
    rd.write_args(args, replicas=strategy.num_replicas_in_sync)
    _log(f"strategy: {args.strategy} ({strategy.num_replicas_in_sync} replica(s)); "
         f"output: {rd.path}")

    images = _train_images(args)
    sets = _eval_sets(args)
    # A resumed run draws fresh patches rather than replaying the first epochs' ones.
    sampler = PatchSampler(images, args.scale, args.patch_size, args.batch_size,
                           seed=args.seed + 1000 * index + 7919 * rd.epoch)
    dataset = sampler.dataset()

    with strategy.scope():
        if rd.checkpoint:
            model = keras.models.load_model(rd.checkpoint)
            _log(f"resuming from {rd.checkpoint} after epoch {rd.epoch}")
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

    if rd.epoch < args.epochs:
        verbose = 1 if sys.stdout.isatty() else 2
        model.fit(
            dataset,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            initial_epoch=rd.epoch,
            callbacks=[run.epoch_callback(rd, _epoch_row(args, sets))],
            verbose=verbose,
        )
    else:
        _log(f"already trained for {rd.epoch} epochs")

    final = keras_basis.strip(model) if args.gamma else model
    if not chief:
        return 0
    rd.save_model(final)
    results = E.evaluate_all(final, args.scale, sets, rd.path, args.eval_max_lr, log=_log)
    tflite = None if args.no_tflite else _export(final, rd.path / "model.tflite",
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
    rd.write_json("summary.json", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
