"""A/B of the default objective's m alignment: multiples of 8 (the default) against
multiples of 16 on layers at least 64 channels wide (8 on narrower ones).

XNNPACK's AVX2 float kernels block output channels by 16, so an m = 24 pair costs
what an m = 32 pair does (benchmarks/RESULTS.md, "Where the MACs target is out of
reach"). For each network and r in {0.75, 0.5, 0.25}: ``keras_basis.compress(original,
ratio=r, objective="macs", multiple_of=...)`` under both rules (the wide rule as a
callable ``layer -> 8 or 16``), exported as float32 and int8
TFLite and timed with the original in the same interleaved rounds, 1 and 2 threads.
Prints one line per model: MACs ratio, latency ratios, worst latency ratio / MACs
ratio (the "macs" target is <= 1.25), and the ratios a rule cannot reach.

    python benchmarks/multiple_of_ab.py                     # eight networks
    python benchmarks/multiple_of_ab.py --nets vgg16 srresnet
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


import keras_basis  # noqa: E402
from benchmarks.latency_frontier import (  # noqa: E402
    NETS, build, calibration_data, export, randomize_bn)
from keras_basis import fileio, latency  # noqa: E402

RULES = {"m8": 8,
         "wide16": lambda layer: 16 if min(layer.kernel.shape[-2:]) >= 64 else 8}


def measure(net, runs, log):
    original, _, shape, sr = build(net, 32)
    randomize_bn(original)
    data = calibration_data(shape, sr)
    models, unreachable = {"original": original}, {}
    for r in (0.75, 0.5, 0.25):
        for rule, align in RULES.items():
            try:
                models[f"{rule} r={r:g}"] = keras_basis.compress(
                    original, ratio=r, objective="macs", multiple_of=align, verbose=0)
            except ValueError as err:
                text = str(err)
                unreachable[f"{rule} r={r:g}"] = text[text.find(" is ") + 4:].split()[0]
    names = list(models)
    files = {(n, fmt): export(models[n], fmt, data) for fmt in ("float32", "int8") for n in names}
    base = keras_basis.count_macs(original)
    rows = {n: {"macs_x": keras_basis.count_macs(models[n]) / base} for n in names}
    for fmt in ("float32", "int8"):
        for t in (1, 2):
            res = latency.time_interleaved([files[n, fmt] for n in names], threads=t,
                                           runs=runs, warmup=3)
            for n, x in zip(names, res):
                rows[n][f"{fmt} {t}t"] = x["median_ms"] / res[0]["median_ms"]
    for n, row in rows.items():
        lats = [v for k, v in row.items() if k != "macs_x"]
        row["worst_over_macs"] = max(lats) / row["macs_x"]
        log(f"{net} {n}: MACs {row['macs_x']:.3f} "
            + " ".join(f"{k} {v:.2f}" for k, v in row.items() if k not in ("macs_x",))
            + ("  MISS" if n != "original" and row["worst_over_macs"] > 1.25 else ""))
    for n, reach in unreachable.items():
        log(f"{net} {n}: not reachable (smallest {reach})")
    return {"rows": rows, "unreachable": unreachable}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", choices=NETS,
                        default=["demo", "resnet20", "resnet56", "vgg16", "srresnet", "edsr",
                                 "mobilenetv2", "resnet50"])
    parser.add_argument("--runs", type=int, default=30, help="interleaved rounds per file")
    parser.add_argument("--out", default="runs/multiple_of_ab.json")
    args = parser.parse_args(argv)
    out = {}
    for net in args.nets:
        out[net] = measure(net, args.runs, lambda msg: print(msg, flush=True))
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fileio.write_text(args.out, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
