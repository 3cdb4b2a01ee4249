"""The CPU-scale SR experiment: train a small EDSR, compress it, fine-tune, compare.

Sized for about an hour on 2 otherwise idle CPU cores (estimated from measured CPU
time per step, see README.md). Not DIV2K: training uses the 23 photographs of
../shared/data/sr-train (LR made on the fly by Pillow bicubic), evaluation x4 on Set5
and Set14 (../shared/data/sr-benchmarks, MATLAB-bicubic LR), Y channel, shave 4.

Network: EDSR with 8 blocks of 64 channels (EDSR-8-128's design at half width,
residual scaling 1, DIV2K mean shift). At 64 channels the paper's operating points
are those of its 64-channel network (Table 2, SRResNet): Basis-64-14 (24.3% of a
block), Basis-32-32 (36.1%), Factor-SIC2 (25.3%); Basis-S shares one m = 14 basis
between the two convs of a block (13.4%).

Stages (each a run of ``examples.div2k.train`` in its own folder under
``--output-dir``; a finished stage is skipped and an interrupted one resumes, so
rerunning the same command continues the experiment):

1. ``baseline``: from scratch, ``--baseline-steps`` (3000) batches of 16 LR 24x24
   patches, Adam, lr 2e-4 x0.1 after epoch 24 of 30 (epochs of 100 batches).
2. ``<point>-compressed``: ``keras_basis.compress`` (SVD init) of the baseline, no
   training (the "right after compression" row).
3. ``<point>``: the same, fine-tuned ``--finetune-steps`` (800) batches, lr 1e-4 x0.1
   after epoch 6 of 8. Every compressed network gets the same steps.
4. ``basis-64-14-random``, ``basis-64-14-matched`` and ``factor-sic2``: bodies freshly
   initialised (the authors' Kaiming-uniform basis init; the ``basis_init="matched"``
   init of ``examples.div2k.models``; Factor's PyTorch-default init), every layer
   outside the residual blocks copied from the baseline, the same fine-tuning steps.
   These rows show what "equal fine-tuning" means for a body that has no trained
   weights to start from; the paper's own protocol (everything from scratch, equal
   steps) is the GPU run of ``examples/paper_scale_gpu.py``.

Then: bicubic, a PSNR/SSIM table (printed, ``results.md``, ``results.csv``) and a
side-by-side crop (bicubic | baseline | Basis-64-14 | ground truth), ``crop_x4.png``.

Usage (repository root):

    python -m examples.div2k.cpu_experiment --output-dir /tmp/div2k-cpu
    python -m examples.div2k.cpu_experiment --output-dir /tmp/q --quick   # 2-minute check
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
SCALE = 4

# (stage, preset, extra train.py arguments, role)
POINTS = [
    ("basis-64-14", "edsr-8-128-basis-128-27", ["--num-basis", "14", "--basis-depth", "64"]),
    ("basis-s-64-14", "edsr-8-128-basis-128-27",
     ["--num-basis", "14", "--basis-depth", "64", "--share-basis"]),
    ("basis-32-32", "edsr-8-128-basis-128-27", ["--num-basis", "32", "--basis-depth", "32"]),
]
FRESH = [
    ("basis-64-14-random", "edsr-8-128-basis-128-27",
     ["--num-basis", "14", "--basis-depth", "64", "--init", "random", "--basis-init",
      "authors"]),
    ("basis-64-14-matched", "edsr-8-128-basis-128-27",
     ["--num-basis", "14", "--basis-depth", "64", "--init", "random", "--basis-init",
      "matched"]),
    ("factor-sic2", "edsr-8-128-factor-sic2", []),
]
LABELS = {
    "baseline": "EDSR-8-64 baseline",
    "basis-64-14": "Basis-64-14 (SVD init, fine-tuned)",
    "basis-64-14-compressed": "Basis-64-14 (SVD init, no fine-tuning)",
    "basis-s-64-14": "Basis-S-64-14 (shared, SVD init, fine-tuned)",
    "basis-s-64-14-compressed": "Basis-S-64-14 (shared, SVD init, no fine-tuning)",
    "basis-32-32": "Basis-32-32 (SVD init, fine-tuned)",
    "basis-32-32-compressed": "Basis-32-32 (SVD init, no fine-tuning)",
    "basis-64-14-random": "Basis-64-14 (random body, authors' init, fine-tuned)",
    "basis-64-14-matched": "Basis-64-14 (random body, matched init, fine-tuned)",
    "factor-sic2": "Factor-SIC2 (random body, fine-tuned)",
}


def _log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _train(out, name, argv, log_file):
    stage = out / name
    if (stage / "summary.json").exists():
        _log(f"{name}: done already ({stage}/summary.json)")
        return stage
    cmd = [sys.executable, "-m", "examples.div2k.train", "--output-dir", str(stage), *argv]
    _log(f"{name}: {' '.join(cmd[1:])}")
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log_file, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if rc:
        raise SystemExit(f"{name} failed (exit {rc}); see {log_file}")
    _log(f"{name}: {time.time() - t0:.0f}s")
    return stage


def _common(args):
    common = [
        "--scale", str(SCALE), "--blocks", "8", "--channels", "64", "--res-scale", "1",
        "--data-dir", args.data_dir, "--benchmark-dir", args.benchmark_dir,
        "--eval-sets", "Set5,Set14", "--batch-size", str(args.batch_size),
        "--patch-size", str(args.patch_size), "--seed", str(args.seed),
    ]
    if args.quick:
        common += ["--eval-max-lr", "32", "--tflite-size", "16"]
    return common


def _schedule(steps, per_epoch, lr):
    """Epochs of ``per_epoch`` steps; lr x0.1 after about 80% of them (int(0.8 e))."""
    epochs = max(1, steps // per_epoch)
    decay = max(1, int(0.8 * epochs)) if epochs > 1 else 0
    return ["--epochs", str(epochs), "--steps-per-epoch", str(per_epoch), "--lr", str(lr),
            "--lr-milestones", str(decay)]


def run(args):
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "train.log"
    common = _common(args)
    per_epoch = min(args.steps_per_epoch, args.baseline_steps, args.finetune_steps)
    t0 = time.time()
    base = _train(out, "baseline", ["--network", "edsr-8-128", *common,
                                    *_schedule(args.baseline_steps, per_epoch, 2e-4),
                                    "--eval-every", "10"], log_file)
    pretrained = ["--from-pretrained", str(base / "model.keras")]
    finetune = [*_schedule(args.finetune_steps, per_epoch, 1e-4), "--eval-every", "4"]
    stages = ["baseline"]
    for name, preset, extra in POINTS:
        _train(out, f"{name}-compressed", ["--network", preset, *common, *extra, *pretrained,
                                           "--epochs", "0", "--no-tflite"], log_file)
        _train(out, name, ["--network", preset, *common, *extra, *pretrained, *finetune],
               log_file)
        stages += [f"{name}-compressed", name]
    for name, preset, extra in FRESH:
        _train(out, name, ["--network", preset, *common, *extra, *pretrained, *finetune],
               log_file)
        stages.append(name)
    _log(f"training and evaluation: {time.time() - t0:.0f}s")
    table = _table(args, out, stages)
    _crop(args, out)
    _log(f"total: {time.time() - t0:.0f}s")
    return table


def _table(args, out, stages):
    from examples.div2k import data as D
    from examples.div2k import evaluate as E
    from keras_basis import fileio

    rows = []
    bicubic = {}
    for set_name in ("Set5", "Set14"):
        pairs = D.benchmark_pairs(args.benchmark_dir, set_name, SCALE)
        bicubic[set_name] = E.evaluate_pairs("bicubic", pairs, SCALE, "benchmark",
                                             out / "bicubic" / f"{set_name}_x{SCALE}.csv",
                                             32 if args.quick else None)
    rows.append(["Bicubic", "-", "-", "-"] + [
        v for s in ("Set5", "Set14") for v in (bicubic[s]["psnr"], bicubic[s]["ssim"])])
    base_block = None
    for name in stages:
        summary = json.loads((out / name / "summary.json").read_text())
        block = summary["block_weights"][0]
        base_block = base_block or block
        ev = {r["set"]: r for r in summary["eval"]}
        rows.append([LABELS[name], f"{block:,}", f"{100 * block / base_block:.1f}%",
                     f"{summary['conv_weights']:,}"]
                    + [v for s in ("Set5", "Set14") for v in (ev[s]["psnr"], ev[s]["ssim"])])
    head = ["network (x4)", "params/block", "rate", "conv weights",
            "Set5 PSNR", "Set5 SSIM", "Set14 PSNR", "Set14 SSIM"]
    fmt = [lambda v: v] * 4 + [lambda v: f"{v:.2f}", lambda v: f"{v:.4f}"] * 2
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(f(v) for f, v in zip(fmt, r)) + " |")
    md = "\n".join(lines) + "\n"
    print("\n" + md, flush=True)
    fileio.write_text(out / "results.md", md)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    # numbers without thousands separators; the labels keep their commas (quoted)
    writer.writerows([r[0]] + [f(v).replace(",", "") for f, v in zip(fmt[1:], r[1:])]
                     for r in rows)
    fileio.write_text(out / "results.csv", buf.getvalue())
    return rows


def _crop(args, out, set_name="Set5", image="img_003", box=(48, 48)):
    """bicubic | baseline | Basis-64-14 | ground truth, on one LR crop (x4 shown 2x)."""
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import keras_basis  # noqa: F401
    from examples.div2k import data as D
    from examples.div2k import metrics as M
    from examples.div2k import models  # noqa: F401
    from examples.div2k.evaluate import super_resolve
    from keras_basis import fileio

    pairs = {p.name: p for p in D.benchmark_pairs(args.benchmark_dir, set_name, SCALE)}
    hr, lr = D.load_pair(pairs[image], SCALE)
    panels = [("Bicubic", D.upscale(lr, SCALE))]
    for stage, label in (("baseline", "Baseline"), ("basis-64-14", "Basis-64-14")):
        model = keras.models.load_model(out / stage / "model.keras", compile=False)
        panels.append((label, M.quantize(super_resolve(model, lr))))
    panels.append(("Ground truth", hr))
    h, w = min(box[0], lr.shape[0]), min(box[1], lr.shape[1])
    y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
    sl = np.s_[y * SCALE:(y + h) * SCALE, x * SCALE:(x + w) * SCALE]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), dpi=120)
    for ax, (label, img) in zip(axes, panels):
        title = label
        if label != "Ground truth":
            title += f"\n{M.psnr(img, hr, SCALE):.2f} dB (whole image, Y)"
        ax.imshow(np.asarray(img, dtype=np.uint8)[sl], interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{set_name} {image} x{SCALE}, CPU-scale EDSR-8-64 (not DIV2K)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path = fileio.atomic_write(out / f"crop_x{SCALE}.png", fig.savefig)
    plt.close(fig)
    _log(f"side-by-side crop: {path}")
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", required=True)
    p.add_argument("--data-dir", default=str(SHARED / "sr-train"))
    p.add_argument("--benchmark-dir", default=str(SHARED / "sr-benchmarks"))
    p.add_argument("--baseline-steps", type=int, default=3000)
    p.add_argument("--finetune-steps", type=int, default=800)
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=24, help="LR patch side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a few steps and cropped evaluation: checks the pipeline only")
    args = p.parse_args(argv)
    if args.quick:
        args.baseline_steps, args.finetune_steps, args.steps_per_epoch = 4, 2, 2
        args.batch_size, args.patch_size = 2, 12
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
