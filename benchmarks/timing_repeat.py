"""Does a latency ratio repeat? A compressed model against the original,
timed ``--repeats`` times (each a full ``time_interleaved`` call of 30 rounds).

For each network: ``keras_basis.compress(original, ratio=--ratio,
objective=--objective)`` (the default objective unless given), exported as
float32 and int8 TFLite; per format and thread count the ratio compressed /
original of every repeat is printed, so a single run's outlier
(a 2-vCPU machine's two-thread timings of sub-millisecond models are the fragile
case) can be told from the ratio.

    python benchmarks/timing_repeat.py                       # demo, ResNet-20, ResNet-56
    python benchmarks/timing_repeat.py --nets vgg16 --ratio 0.5 --repeats 10
    python benchmarks/timing_repeat.py --nets resnet20 --ratio 0.5 --objective latency \
        --table runs/latency_table_small.json
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


import keras_basis  # noqa: E402
from benchmarks.latency_frontier import (  # noqa: E402
    NETS, build, calibration_data, export, randomize_bn)
from keras_basis import latency  # noqa: E402
from keras_basis.cli.options import ratio as ratio_type  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", choices=NETS,
                        default=["demo", "resnet20", "resnet56"])
    parser.add_argument("--ratio", type=ratio_type, default=0.75)
    parser.add_argument("--objective", choices=("params", "macs", "latency"), default=None,
                        help="compress's objective (default: its default)")
    parser.add_argument("--table", default=None,
                        help="latency table for --objective latency (read, not extended)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    for net in args.nets:
        original, _, shape, sr = build(net, 32)
        randomize_bn(original)
        small = keras_basis.compress(
            original, ratio=args.ratio, objective=args.objective, verbose=0,
            latency_table=latency.LatencyTable.load(args.table) if args.table else None)
        data = calibration_data(shape, sr)
        for fmt in ("float32", "int8"):
            files = [export(m, fmt, data) for m in (original, small)]
            for t in args.threads:
                ratios, base = [], None
                for _ in range(args.repeats):
                    res = latency.time_interleaved(files, threads=t, runs=30, warmup=3,
                                                   samples=True)
                    ratios.append(latency.paired_ratios(res)[1])
                    base = res[0]["median_ms"]
                print(f"{net} {args.objective or 'default'} r={args.ratio:g} {fmt} {t}t: "
                      + " ".join(f"{x:.2f}" for x in ratios) + f" (original {base:.3f} ms)",
                      flush=True)


if __name__ == "__main__":
    main()
