"""The CPU-scale CIFAR-10 comparison (an hour or so on 2 free cores), with its table.

ResNet-20 on a balanced 20,000-image subset of the CIFAR-10 JPEG copy (2,000 per
class), tested on all 10,000 test images. Every compressed model keeps about 25% of
the weights of the residual-block convs (ResNet-20: 268k parameters -> 61k-70k):

- from scratch (the authors' route), ``--scratch-epochs`` epochs, lr 0.1:
  baseline; basis with s from Eq. 13 (split-wise); s = 1 (3D low rank, Zhang et al.);
  s = c (channel-wise 2D, Jaderberg et al.); Factor (2 SIC layers); Group (group size
  4/4/8, the paper's); the split-wise basis again with seed 1;
- from the trained baseline (the paper's Eq. 18 route): ``keras_basis.compress``
  (ratio 0.25 per layer, ``allocation="uniform"`` so the architectures equal the
  scratch ones; SVD init) then ``--finetune-epochs`` epochs at lr 0.01: split-wise
  with gamma = 0 and gamma = ``--gamma``; s = 1 and s = c with gamma = 0; the
  split-wise gamma = 0 run again with seed 1 (same baseline, other data order);
- what speed costs in accuracy: every conv compressed at ratio 0.5 with
  ``objective="params"``, ``"macs"`` and ``"latency"`` (runs ``obj-*-r0.5``), the same
  fine-tuning.

Each run is one ``examples.cifar10.train`` process (resumable: rerunning this script
skips finished runs and resumes an interrupted one); the table is printed at the end
and written to ``<out>/results.md``, ``results.csv`` and ``results.json``.

Usage::

    python -m examples.cifar10.cpu_experiment --out /tmp/cifar10-cpu
    python -m examples.cifar10.cpu_experiment --out /tmp/x --dry-run   # print commands
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tarfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

RATIO = 0.25
OBJECTIVES = ("params", "macs", "latency")
GROUP_SIZES = "4,4,8"
BLOCK_CONVS = r"stage\d+_block\d+_conv\d+"  # compress exactly the convs the builders replace
DEFAULT_TAR = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def scratch_configs():
    """(label, variant, builder kwargs) of the compressed ResNet-20s trained from scratch."""
    return [
        ("basis s=Eq.13", "basis", {"share": "layer", "splits": "auto", "ratio": RATIO}),
        ("basis s=1 (3D low rank)", "basis", {"share": "layer", "splits": 1, "ratio": RATIO}),
        ("basis s=c (channel-wise)", "basis",
         {"share": "layer", "splits": "channel", "ratio": RATIO}),
        ("factor (2 SIC)", "factor", {}),
        ("group (4/4/8)", "group", {"group_sizes": (4, 4, 8)}),
    ]


def plan(args):
    """The runs, in order: (name, route, label, seed, train.py argv)."""
    common = [
        "--network", "resnet20", "--data-dir", str(args.data_dir),
        "--threads", str(args.threads), "--eval-every", str(10**6), "--no-tflite",
        "--lr-milestones", "0.5,0.75",  # the paper's fractions of these short schedules
    ]
    if args.quick:  # train.py's smoke sizes, one epoch each
        common += ["--smoke"]
        scratch_epochs = finetune_epochs = 1
    else:
        common += ["--train-subset", str(args.train_subset), "--test-subset",
                   str(args.test_subset), "--batch-size", str(args.batch_size),
                   "--verbose", "2"]
        scratch_epochs, finetune_epochs = args.scratch_epochs, args.finetune_epochs
    scratch = common + ["--epochs", str(scratch_epochs), "--lr", "0.1"]
    tune = common + ["--epochs", str(finetune_epochs), "--lr", "0.01"]
    base_model = str(pathlib.Path(args.out) / "baseline-s0" / "model.keras")
    runs = [("baseline-s0", "scratch", "baseline", 0, scratch + ["--variant", "baseline"])]
    cli = {
        "basis s=Eq.13": ["--variant", "basis", "--share", "layer", "--splits", "auto",
                          "--ratio", str(RATIO)],
        "basis s=1 (3D low rank)": ["--variant", "basis", "--share", "layer", "--splits",
                                    "1", "--ratio", str(RATIO)],
        "basis s=c (channel-wise)": ["--variant", "basis", "--share", "layer", "--splits",
                                     "channel", "--ratio", str(RATIO)],
        "factor (2 SIC)": ["--variant", "factor"],
        "group (4/4/8)": ["--variant", "group", "--group-size", GROUP_SIZES],
    }
    slug = {"basis s=Eq.13": "auto", "basis s=1 (3D low rank)": "s1",
            "basis s=c (channel-wise)": "sc", "factor (2 SIC)": "factor",
            "group (4/4/8)": "group"}
    for label, _, _ in scratch_configs():
        runs.append((f"scratch-{slug[label]}-s0", "scratch", label, 0, scratch + cli[label]))
    runs.append(("scratch-auto-s1", "scratch", "basis s=Eq.13", 1,
                 scratch + cli["basis s=Eq.13"]))

    def tuned(split, gamma):
        return tune + ["--from-pretrained", base_model, "--no-pretrained-eval",
                       "--ratio", str(RATIO), "--allocation", "uniform", "--layers", BLOCK_CONVS,
                       "--splits", split, "--init", "svd", "--gamma", str(gamma)]

    runs += [
        ("svd-auto-g0-s0", "pretrained+SVD", "basis s=Eq.13", 0, tuned("auto", 0.0)),
        (f"svd-auto-g{args.gamma:g}-s0", f"pretrained+SVD, gamma={args.gamma:g}",
         "basis s=Eq.13", 0, tuned("auto", args.gamma)),
        ("svd-s1-g0-s0", "pretrained+SVD", "basis s=1 (3D low rank)", 0, tuned("1", 0.0)),
        ("svd-sc-g0-s0", "pretrained+SVD", "basis s=c (channel-wise)", 0,
         tuned("channel", 0.0)),
        ("svd-auto-g0-s1", "pretrained+SVD", "basis s=Eq.13", 1, tuned("auto", 0.0)),
    ]
    # What speed costs in accuracy (issue 12): every conv compressed at ratio 0.5 under
    # each objective of keras_basis.compress, then the same fine-tuning.
    for objective in OBJECTIVES:
        runs.append((f"obj-{objective}-r0.5", "pretrained+SVD", f"objective={objective}, r=0.5",
                     0, tune + ["--from-pretrained", base_model, "--no-pretrained-eval",
                                "--ratio", "0.5", "--objective", objective, "--init", "svd"]))
    out = []
    for name, route, label, seed, argv in runs:
        argv = argv + ["--seed", str(seed), "--output-dir", str(pathlib.Path(args.out) / name)]
        out.append((name, route, label, seed, argv))
    return out


def ensure_data(data_dir, tar_path):
    """Extract the JPEG copy once (``<data_dir>/train``, ``<data_dir>/test``)."""
    data_dir = pathlib.Path(data_dir)
    if (data_dir / "train").is_dir() and (data_dir / "test").is_dir():
        return data_dir
    if not pathlib.Path(tar_path).exists():
        raise FileNotFoundError(
            f"Neither {data_dir}/train nor the archive {tar_path} exists; pass --data-dir "
            "with an extracted copy or --tar."
        )
    target = data_dir.parent
    target.mkdir(parents=True, exist_ok=True)
    print(f"extracting {tar_path} into {target} ...", flush=True)
    t0 = time.time()
    with tarfile.open(tar_path) as tar:
        try:
            tar.extractall(target, filter="data")
        except TypeError:  # Python without extraction filters
            tar.extractall(target)
    print(f"extracted in {time.time() - t0:.0f} s", flush=True)
    if not (data_dir / "train").is_dir():
        raise FileNotFoundError(f"{data_dir}/train missing after extracting {tar_path}")
    return data_dir


def run_one(argv, log_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "examples.cifar10.train", *argv]
    with open(log_path, "a") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f"run failed (exit {proc.returncode}); see {log_path}")


def collect(runs):
    """Rows of the results table from each run's final.json / compress.json."""
    rows = []
    for name, route, label, seed, argv in runs:
        out = pathlib.Path(argv[argv.index("--output-dir") + 1])
        final = out / "final.json"
        if not final.exists():
            continue
        result = json.loads(final.read_text())
        comp = out / "compress.json"
        after = json.loads(comp.read_text())["compressed_val_accuracy"] if comp.exists() else None
        rows.append({
            "run": name, "route": route, "model": label, "seed": seed,
            "params": result["params"], "mflops": 2 * result["macs"] / 1e6,
            "acc_after_compress": after, "acc": result["test_accuracy"],
            "epochs": result["epochs"], "train_min": result["train_seconds"] / 60,
            "test_images": result["test_images"], "train_images": result["train_images"],
        })
    return rows


CSV_FIELDS = ("run", "route", "model", "seed", "params", "mflops", "acc_after_compress",
              "acc", "epochs", "train_min", "test_images", "train_images")


def table(rows):
    """Markdown table of :func:`collect`'s rows."""
    lines = [
        "| run | route | model | seed | params | MFLOPs | top-1 after compress (%) | "
        "top-1 final (%) | epochs | train min |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        after = "-" if r["acc_after_compress"] is None else f"{100 * r['acc_after_compress']:.2f}"
        lines.append(
            f"| {r['run']} | {r['route']} | {r['model']} | {r['seed']} | {r['params']:,} | "
            f"{r['mflops']:.1f} | {after} | {100 * r['acc']:.2f} | {r['epochs']} | "
            f"{r['train_min']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder of the runs and the table")
    p.add_argument("--data-dir", default="/tmp/cifar10-jpeg/cifar10-jpeg",
                   help="extracted JPEG copy (extracted from --tar when missing)")
    p.add_argument("--tar", default=str(DEFAULT_TAR))
    p.add_argument("--train-subset", type=int, default=20000)
    p.add_argument("--test-subset", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--scratch-epochs", type=int, default=6)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--gamma", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default=None, help="comma-separated run names to run")
    p.add_argument("--quick", action="store_true", help="--smoke sizes (tests the script)")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = p.parse_args(argv)

    runs = plan(args)
    if args.dry_run:
        for name, *_, run_argv in runs:
            print(f"{name}: python -m examples.cifar10.train " + shlex.join(run_argv))
        return runs
    from examples import run
    from keras_basis import fileio

    ensure_data(args.data_dir, args.tar)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    t0 = time.time()
    for name, route, label, seed, run_argv in runs:
        if only and name not in only:
            continue
        run_dir = out / name
        if (run_dir / "final.json").exists():
            print(f"[skip] {name} (finished)", flush=True)
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        t1 = time.time()
        print(f"[run ] {name}: {route}, {label}, seed {seed}", flush=True)
        run_one(run_argv, run_dir / "log.txt")
        print(f"[done] {name} in {(time.time() - t1) / 60:.1f} min "
              f"(total {(time.time() - t0) / 60:.1f} min)", flush=True)
    rows = collect(runs)
    text = table(rows)
    header = (
        f"CIFAR-10 (JPEG copy), CPU-scale: ResNet-20, {rows[0]['train_images'] if rows else '?'}"
        f" training images, {rows[0]['test_images'] if rows else '?'} test images; "
        f"ratio {RATIO} of the block convs' weights.\n"
        f"Command: python -m examples.cifar10.cpu_experiment "
        + shlex.join(argv if argv is not None else sys.argv[1:]) + "\n\n"
    )
    fileio.write_text(out / "results.md", header + text + "\n")
    run.write_csv(out / "results.csv", CSV_FIELDS, rows)
    run.write_json(out / "results.json", rows)
    print("\nRESULTS\n" + header + text, flush=True)
    return rows


if __name__ == "__main__":
    main()
