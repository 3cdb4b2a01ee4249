"""TFLite size and batch-1 latency of the paper's networks, original vs basis.

ResNet-56 (CIFAR, 32x32 input; basis = Table 8: one basis per stage, m = 24/48/84),
SRResNet (x4, Basis-64-14) and EDSR-8-128 (x4, Basis-128-40), both at a 128x128 LR
input. Random weights (latency and size do not depend on them), float32 and int8
(full-integer, calibrated on a few random inputs), 1 and 2 threads, XNNPACK on.

FLOPs are counted from the .tflite files themselves (2 x MACs of every CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV op), so they are the work the
runtime is asked to do. Parameters are the weights the file stores (Keras weights
without BatchNorm, which folds into the convolutions; a shared basis counted once).

Targets T2 and T3 of benchmarks/RESULTS.md: latency ratio <= 1.25 x FLOPs ratio; int8
size ratio <= parameter ratio. Where a target is missed, ``--profile``
times every basis pair against its dense form as one-layer models
(``keras_basis.export.fold_plan``), and ``--fold`` adds a "basis, fold=auto" row: the
export option that folds back the pairs whose dense form measured faster.

Latency is measured in interleaved rounds (original, basis, fold=auto, ... repeated)
and pooled, so that load changes on a shared machine hit every file alike.

    python benchmarks/tflite_bench.py                       # all, ~15-30 min on 2 cores
    python benchmarks/tflite_bench.py --nets resnet56 --profile --fold
    python benchmarks/tflite_bench.py --layer-profile      # SR block layers one by one
    python benchmarks/tflite_bench.py --nets srresnet --keep-prelu   # PReLU as PRELU

``--keep-prelu`` exports with ``export_tflite(prelu_to_leaky_relu=False)``: a PReLU
with one slope stays a PRELU op instead of the equal LEAKY_RELU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_basis  # noqa: E402
from keras_basis import fileio  # noqa: E402
from keras_basis import tflite as kt  # noqa: E402
from keras_basis.export import fold_plan  # noqa: E402

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


# ------------------------------------------------------------------ networks
def build(net, variant):
    """(model, input_shape) of a paper configuration; the recipe builders."""
    if net == "resnet56":
        from examples.cifar10.models import resnet56

        return resnet56("basis" if variant == "basis" else "baseline"), (32, 32, 3)
    from examples.div2k.models import build as build_sr

    preset = {
        ("srresnet", "original"): "srresnet",
        ("srresnet", "basis"): "srresnet-basis-64-14",
        ("edsr", "original"): "edsr-8-128",
        ("edsr", "basis"): "edsr-8-128-basis-128-40",
    }[(net, variant)]
    return build_sr(preset, scale=4, input_shape=(128, 128, 3)), (128, 128, 3)


def randomize_bn(model, seed=0):
    """Non-trivial BatchNorm statistics (random weights, as a trained net has)."""
    rng = np.random.default_rng(seed)
    for bn in (x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)):
        n = bn.moving_mean.shape[0]
        bn.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
        bn.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))


def stored_params(model):
    """Weights without BatchNorm (folded into convs by the converter), shared once."""
    seen, total = set(), 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            continue
        for w in layer.weights:
            if id(w) not in seen:
                seen.add(id(w))
                total += int(np.prod(w.shape))
    return total


def file_macs(path):
    """MACs of the file's conv / fully connected ops (one inference)."""
    macs = 0
    for op in kt.tflite_ops(path):
        if op["op"] not in CONV_OPS:
            continue
        out = int(np.prod(op["outputs"][0]["shape"]))
        if op["op"] == "TRANSPOSE_CONV":
            w = op["inputs"][1]["shape"]  # (cout, kh, kw, cin), output-stationary count
            macs += out * w[1] * w[2] * w[3]
        elif op["op"] == "DEPTHWISE_CONV_2D":
            w = op["inputs"][1]["shape"]  # (1, kh, kw, c*mult)
            macs += out * w[1] * w[2]
        elif op["op"] == "CONV_2D":
            w = op["inputs"][1]["shape"]  # (cout, kh, kw, cin)
            macs += out * w[1] * w[2] * w[3]
        else:  # FULLY_CONNECTED (cout, cin)
            macs += out * op["inputs"][1]["shape"][-1]
    return macs


def calibration(shape, sr, n=4, seed=0):
    rng = np.random.default_rng(seed)
    if sr:  # 0-255 pixels
        return rng.uniform(0, 255, (n,) + shape).astype("float32")
    return rng.standard_normal((n,) + shape).astype("float32")


# ------------------------------------------------------------------- timing
def interleaved(paths, threads, runs, rounds, warmup):
    """Pooled per-run times of every file, measured in alternating rounds."""
    times = {p: [] for p in paths}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for p in paths:
            r = kt.benchmark_tflite(p, threads=threads, runs=per_round, warmup=warmup)
            times[p].extend(r["times_ms"])
    return {p: (float(np.median(t)), float(np.percentile(t, 90)), len(t))
            for p, t in times.items()}


# ------------------------------------------------------- per-layer profile
def layer_profile(precisions, out_dir, keep_prelu=False, threads=1, runs=5):
    """Latency of each layer of one SR residual block as a one-layer file.

    SRResNet's basis blocks put BN -> PReLU between the basis and the 1x1
    coefficients (the authors' placement), so they are not linear pairs and
    ``fold_plan`` cannot time them; this times the block's layers one by one
    at the block's input shape (BatchNorm folds into the convolutions; int8
    files have int8 inputs/outputs, so no QUANTIZE/DEQUANTIZE is timed).
    """
    from keras import layers

    from keras_basis import BasisConv2D

    def prelu():
        return layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25),
                            shared_axes=[1, 2, 3])

    cases = [  # label, input shape, layer factory, uses per block (original, basis)
        ("SRResNet conv 3x3 64->64", (128, 128, 64),
         lambda: layers.Conv2D(64, 3, padding="same"), (2, 0)),
        ("SRResNet PReLU 64 ch", (128, 128, 64), prelu, (1, 2)),
        ("SRResNet basis 3x3 64->14", (128, 128, 64),
         lambda: BasisConv2D(14, 3, padding="same"), (0, 2)),
        ("SRResNet PReLU 14 ch", (128, 128, 14), prelu, (0, 2)),
        ("LeakyReLU(0.25) 64 ch", (128, 128, 64), lambda: layers.LeakyReLU(0.25), (0, 0)),
        ("LeakyReLU(0.25) 14 ch", (128, 128, 14), lambda: layers.LeakyReLU(0.25), (0, 0)),
        ("SRResNet coef 1x1 14->64", (128, 128, 14),
         lambda: layers.Conv2D(64, 1), (0, 2)),
        ("EDSR conv 3x3 128->128", (128, 128, 128),
         lambda: layers.Conv2D(128, 3, padding="same"), (2, 0)),
        ("EDSR basis 3x3 128->40", (128, 128, 128),
         lambda: BasisConv2D(40, 3, padding="same"), (0, 2)),
        ("EDSR coef 1x1 40->128", (128, 128, 40),
         lambda: layers.Conv2D(128, 1), (0, 2)),
    ]
    rng = np.random.default_rng(0)
    out = []
    for precision in precisions:
        quantize = None if precision == "float32" else "int8"
        for label, shape, factory, uses in cases:
            keras.utils.set_random_seed(0)
            x = keras.Input(shape)
            model = keras.Model(x, factory()(x))
            calib = rng.standard_normal((2,) + shape).astype("float32")
            path = out_dir / "layer.tflite"
            keras_basis.export_tflite(model, path, quantize=quantize, int8_io=bool(quantize),
                                      representative_dataset=calib, calibration_steps=2,
                                      prelu_to_leaky_relu=not keep_prelu)
            r = kt.benchmark_tflite(path, threads=threads, runs=runs, warmup=1)
            ops = ", ".join(f"{k} x{v}" for k, v in kt.op_histogram(path).items())
            out.append((precision, label, r["median_ms"], uses, ops))
            print(f"  {precision:<8} {label:<28} {r['median_ms']:9.2f} ms  uses/block "
                  f"original {uses[0]}, basis {uses[1]}   [{ops}]", flush=True)
    return out


# --------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=["resnet56", "srresnet", "edsr"],
                   choices=["resnet56", "srresnet", "edsr"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--precisions", nargs="+", default=["float32", "int8"],
                   choices=["float32", "int8"])
    p.add_argument("--runs-cifar", type=int, default=60, help="timed runs, ResNet-56")
    p.add_argument("--runs-sr", type=int, default=6, help="timed runs, SR networks")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--fold", action="store_true", help="add a basis fold='auto' row")
    p.add_argument("--profile", action="store_true",
                   help="print the per-pair basis/dense timings (fold_plan)")
    p.add_argument("--layer-profile", action="store_true",
                   help="only time the layers of one SRResNet / EDSR block (1 thread)")
    p.add_argument("--keep-prelu", action="store_true",
                   help="export PReLU as PRELU (prelu_to_leaky_relu=False)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/tflite_bench"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.layer_profile:
        print(f"# layer profile {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
              f" UTC, load avg {os.getloadavg()}, batch 1, 1 thread, XNNPACK on")
        layer_profile(args.precisions, args.out, args.keep_prelu)
        print(f"# done, load avg {os.getloadavg()}")
        return 0
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"# tflite_bench {started:%Y-%m-%d %H:%M} UTC, load avg {os.getloadavg()}, "
          f"args {vars(args)}", flush=True)
    rows = []
    for net in args.nets:
        sr = net != "resnet56"
        models = {}
        for variant in ("original", "basis"):
            keras.utils.set_random_seed(0)
            model, shape = build(net, variant)
            randomize_bn(model)
            models[variant] = model
        for precision in args.precisions:
            quantize = None if precision == "float32" else "int8"
            calib = calibration(shape, sr) if quantize else None
            files, plan = {}, None
            for variant, model in models.items():
                path = args.out / f"{net}_{variant}_{precision}.tflite"
                t0 = time.time()
                keras_basis.export_tflite(model, path, quantize=quantize,
                                          representative_dataset=calib, input_shape=shape,
                                          calibration_steps=len(calib) if quantize else 1,
                                          prelu_to_leaky_relu=not args.keep_prelu)
                print(f"exported {path.name} in {time.time() - t0:.0f} s", flush=True)
                files[variant] = path
            if args.fold or args.profile:
                plan = fold_plan(models["basis"], quantize=quantize, threads=1,
                                 input_shape=shape, runs=5 if sr else 20, warmup=1)
                if args.profile:
                    print(f"\nper-pair profile, {net} {precision}, 1 thread (ms, one-layer "
                          "models at the pair's input shape):")
                    seen = set()
                    for r in plan:
                        key = (r["input_shape"], r["basis_macs"])
                        if key in seen:
                            continue
                        seen.add(key)
                        n = sum(1 for q in plan if (q["input_shape"], q["basis_macs"]) == key)
                        print(f"  {r['coefficients']:<28} x{n:<2} {str(r['input_shape']):<18}"
                              f" basis {r['basis_ms']:8.3f}  dense {r['dense_ms']:8.3f}  "
                              f"time {r['basis_ms'] / r['dense_ms']:.2f}x  MACs "
                              f"{r['basis_macs'] / r['dense_macs']:.2f}x  "
                              f"{'fold' if r['fold'] else 'keep'}")
                names = [r["coefficients"] for r in plan if r["fold"]]
                if args.fold and not names:
                    print("fold=auto keeps every pair: the file is the basis file", flush=True)
                if args.fold and names:
                    path = args.out / f"{net}_basis-fold_{precision}.tflite"
                    keras_basis.export_tflite(models["basis"], path, quantize=quantize,
                                              representative_dataset=calib,
                                              input_shape=shape, fold=names,
                                              calibration_steps=len(calib) if quantize else 1,
                                              prelu_to_leaky_relu=not args.keep_prelu)
                    files["basis, fold=auto"] = path
                    print(f"fold=auto folds {len(names)}/{len(plan)} pairs", flush=True)
            base_macs = file_macs(files["original"])
            base_params = stored_params(models["original"])
            timing = {}
            for threads in args.threads:
                load0 = os.getloadavg()[0]
                timing[threads] = interleaved(list(files.values()), threads,
                                              args.runs_sr if sr else args.runs_cifar,
                                              args.rounds, warmup=1 if sr else 5)
                timing[threads]["load"] = (load0, os.getloadavg()[0])
            for variant, path in files.items():
                if variant == "basis, fold=auto":
                    params = None  # folded layers: dense weights again
                else:
                    params = stored_params(models[variant])
                row = {
                    "net": net, "variant": variant, "precision": precision,
                    "bytes": path.stat().st_size,
                    "params": params,
                    "param_ratio": None if params is None else params / base_params,
                    "size_ratio": path.stat().st_size / files["original"].stat().st_size,
                    "gflops": 2 * file_macs(path) / 1e9,
                    "flops_ratio": file_macs(path) / base_macs,
                    "ops": kt.op_histogram(path),
                }
                for threads in args.threads:
                    med, p90, n = timing[threads][path]
                    base = timing[threads][files["original"]][0]
                    row[f"t{threads}"] = (med, p90, n)
                    row[f"lat_ratio{threads}"] = med / base
                    row[f"load{threads}"] = timing[threads]["load"]
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "ops"}), flush=True)
    print_table(rows, args.threads)
    fileio.write_text(args.out / "results.json", json.dumps(rows, indent=1))
    print(f"\nfinished {datetime.datetime.now(datetime.timezone.utc):%H:%M} UTC, load avg "
          f"{os.getloadavg()}; results in {args.out / 'results.json'}")
    return 0


def print_table(rows, threads):
    head = ["network", "variant", "prec.", "params", "file KB", "size x", "param x",
            "GFLOPs", "FLOPs x"]
    for t in threads:
        head += [f"{t}T ms (p90)", f"{t}T lat x"]
    head += ["lat x <= 1.25 FLOPs x"]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        cells = [r["net"], r["variant"], r["precision"],
                 "-" if r["params"] is None else f"{r['params']:,}",
                 f"{r['bytes'] / 1024:,.0f}", f"{r['size_ratio']:.3f}",
                 "-" if r["param_ratio"] is None else f"{r['param_ratio']:.3f}",
                 f"{r['gflops']:.3f}", f"{r['flops_ratio']:.3f}"]
        ok = []
        for t in threads:
            med, p90, _ = r[f"t{t}"]
            cells += [f"{med:.2f} ({p90:.2f})", f"{r[f'lat_ratio{t}']:.2f}"]
            ok.append(r[f"lat_ratio{t}"] <= 1.25 * r["flops_ratio"])
        cells.append("-" if r["variant"] == "original" else
                     "/".join("yes" if o else "NO" for o in ok))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
