#!/usr/bin/env python3
"""Latency, size and ops of one or more .tflite files, side by side.

For every file x thread count x XNNPACK setting: median and p90 latency of
one inference (the file's batch, random inputs) over --runs runs after
--warmup untimed runs, with the ratio to the first file. Then the file sizes
and an op histogram with one column per file.

Examples:

    python tflite/benchmark.py /tmp/resnet56.tflite /tmp/resnet56_basis.tflite
    python tflite/benchmark.py a.tflite b.tflite --threads 1 2 --xnnpack on --runs 100
    python tflite/benchmark.py *.tflite --json /tmp/bench.json

The numbers are for this machine's CPU; tflite/README.md shows how to get the
same table on an Android phone with the LiteRT benchmark_model tool.
Uses only the public API of keras_basis (keras_basis.tflite).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="benchmark.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", type=pathlib.Path, help=".tflite files (first = reference)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4],
                   help="thread counts (default 1 2 4)")
    p.add_argument("--xnnpack", choices=("on", "off", "both"), default="both",
                   help="XNNPACK delegate (default both)")
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--no-ops", action="store_true", help="skip the op histogram")
    p.add_argument("--json", type=pathlib.Path, help="also write every result to this file")
    args = p.parse_args(argv)
    for f in args.files:
        if not f.is_file():
            p.error(f"{f} is not a file")
    if any(t < 1 for t in args.threads):
        p.error(f"--threads must be positive; received {args.threads}")
    return args


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    return "\n".join(line.format(*map(str, r)) for r in [header, *rows])


def main(argv=None):
    args = parse_args(argv)
    from keras_basis import tflite

    names = [f.name if len({g.name for g in args.files}) == len(args.files) else str(f)
             for f in args.files]
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.xnnpack]
    results, rows = [], []
    for xnnpack in settings:
        for threads in args.threads:
            reference = None
            for name, f in zip(names, args.files):
                r = tflite.benchmark_tflite(f, threads=threads, xnnpack=xnnpack,
                                            runs=args.runs, warmup=args.warmup)
                r["file"] = str(f)
                results.append(r)
                reference = reference or r["median_ms"]
                rows.append([name, threads, "on" if xnnpack else "off",
                             f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}",
                             f"{r['median_ms'] / reference:.2f}x"])
    print(table(["file", "threads", "xnnpack", "median ms", "p90 ms", "vs first"], rows))
    print(f"({args.runs} runs after {args.warmup} warm-up, batch of the file, random inputs)\n")

    size0 = args.files[0].stat().st_size
    print(table(["file", "bytes", "vs first"],
                [[n, f"{f.stat().st_size:,}", f"{f.stat().st_size / size0:.3f}x"]
                 for n, f in zip(names, args.files)]))
    histograms = {}
    if not args.no_ops:
        histograms = {n: tflite.op_histogram(f) for n, f in zip(names, args.files)}
        ops = sorted({op for h in histograms.values() for op in h},
                     key=lambda op: -sum(h.get(op, 0) for h in histograms.values()))
        print()
        print(table(["op"] + [f"[{i}]" for i in range(len(names))],
                    [[op] + [histograms[n].get(op, 0) for n in names] for op in ops]))
        print("  ".join(f"[{i}] {n}" for i, n in enumerate(names)))
    if args.json:
        args.json.write_text(json.dumps({"latency": results, "ops": histograms,
                                         "sizes": {str(f): f.stat().st_size
                                                   for f in args.files}}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
