"""``keras-basis bench`` (also ``tflite/benchmark.py``): latency and size side by side."""

from __future__ import annotations

import json

from keras_basis.cli import options
from keras_basis.cli.io_helpers import check_output_file, check_tflite_file, format_table

NAME = "bench"
SUMMARY = "measure batch-1 latency and size of .tflite files side by side"
DESCRIPTION = (
    "Run each .tflite file on random inputs (batch 1) with ai-edge-litert and\n"
    "print the file size and the median and 90th-percentile latency after a\n"
    "warm-up, with the ratios to the first row; for every thread count and\n"
    "XNNPACK setting asked for. --ops adds an op histogram with one column per\n"
    "file; --json writes every measurement to a file."
)
EXAMPLES = (
    "model.tflite small.tflite",
    "model.tflite small.tflite --threads 1,2 --runs 200",
    "small_int8.tflite --xnnpack off",
    "model.tflite small.tflite --xnnpack both --ops --json bench.json",
)


def register(subparsers, prog, common=()):
    """Add the ``bench`` subcommand to ``subparsers``; returns its parser."""
    p = options.add_command(
        subparsers, NAME, summary=SUMMARY, description=DESCRIPTION, examples_=EXAMPLES,
        prog=prog, common=common,
    )
    p.add_argument("files", metavar="FILE.tflite", nargs="+")
    options.add_bench_args(p)
    p.add_argument(
        "--ops", action="store_true", help="also print an op histogram, one column per file"
    )
    p.add_argument(
        "--json", metavar="FILE.json", help="also write every measurement to this file"
    )
    p.set_defaults(run=run)
    return p


XNNPACK_SETTINGS = {"on": (True,), "off": (False,), "both": (True, False)}


def measure(files, *, threads, xnnpack, runs, warmup):
    """``benchmark_tflite`` of each file x thread count x XNNPACK setting, in that nesting."""
    from keras_basis import tflite

    results = []
    for use_xnnpack in XNNPACK_SETTINGS[xnnpack]:
        for n in threads:
            for f in files:
                r = tflite.benchmark_tflite(
                    f, threads=n, runs=runs, warmup=warmup, xnnpack=use_xnnpack
                )
                results.append(dict(r, file=str(f), size_bytes=f.stat().st_size))
    return results


def latency_rows(results):
    """Table rows; the size and latency ratios are to the first result."""
    base = results[0]
    return [
        [
            r["file"],
            f"{r['size_bytes']:,}",
            f"{r['size_bytes'] / base['size_bytes']:.2f}",
            r["threads"],
            f"{r['median_ms']:.3f}",
            f"{r['p90_ms']:.3f}",
            f"{r['median_ms'] / base['median_ms']:.2f}",
            "on" if r["xnnpack"] else "off",
        ]
        for r in results
    ]


def run(args):
    """Benchmark ``args.files``; returns the exit status."""
    files = [check_tflite_file(f) for f in args.files]
    if args.json:
        check_output_file(args.json)
    from keras_basis import fileio, tflite

    results = measure(files, threads=args.threads, xnnpack=args.xnnpack, runs=args.runs,
                      warmup=args.warmup)
    header = ["file", "bytes", "size x", "threads", "median ms", "p90 ms", "latency x",
              "xnnpack"]
    print(format_table(header, latency_rows(results)))
    print(
        f"batch 1, random inputs, {args.runs} runs after {args.warmup} warm-up, XNNPACK "
        f"{args.xnnpack}; ratios relative to the first row"
    )
    histograms = {}
    if args.ops:
        histograms = {str(f): tflite.op_histogram(f) for f in files}
        ops = sorted({op for h in histograms.values() for op in h},
                     key=lambda op: (-sum(h.get(op, 0) for h in histograms.values()), op))
        print()
        print(format_table(["op"] + [f"[{i}]" for i in range(len(files))],
                           [[op] + [histograms[str(f)].get(op, 0) for f in files]
                            for op in ops]))
        print("  ".join(f"[{i}] {f}" for i, f in enumerate(files)))
    if args.json:
        fileio.write_text(args.json, json.dumps(
            {"latency": results, "ops": histograms,
             "sizes": {str(f): f.stat().st_size for f in files}}, indent=1, default=float)
            + "\n")
        print(f"wrote {args.json}")
    return 0
