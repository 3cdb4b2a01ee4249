"""Are one-layer latency files representative of a layer inside a network?

The latency table (``keras_basis.latency``) times each form of a convolution
as a one-layer TFLite file. For layers that take microseconds, a fixed
per-file cost (the invocation, the int8 file's input quantisation and output
dequantisation) could pull the pair/dense ratio towards 1. This script times,
for the CIFAR ResNets' layer shapes (``c == n``, so forms can be chained),
the dense conv and the smallest basis pair ``s = 1, m = 8`` both as one layer
and as a chain of ``--depth`` copies, interleaved (``time_interleaved``), and
prints three pair/dense ratios: one layer and the chain (medians of same-round
ratios, ``paired_ratios``), and the marginal one (the chain less the single
layer, from the medians: what one more layer inside a network costs).

    python benchmarks/one_layer_vs_chain.py
    python benchmarks/one_layer_vs_chain.py --depth 8 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.latency_frontier import export  # noqa: E402
from keras_basis import latency  # noqa: E402
from keras_basis.layers import BasisConv2D  # noqa: E402

SHAPES = ((32, 16), (16, 32), (8, 64))  # (H = W, c = n): ResNet-20/56 stages


def chain(geometry, form, depth):
    """``depth`` copies of ``form`` on ``geometry`` (c == n), seeded weights."""
    f, g = latency.parse_form(form), geometry
    init = keras.initializers.HeUniform(seed=0)
    x = inputs = keras.Input(batch_shape=(1, g.height, g.width, g.c))
    for _ in range(depth):
        if f["kind"] == "dense":
            x = keras.layers.Conv2D(g.n, g.kernel_size, padding=g.padding, use_bias=False,
                                    kernel_initializer=init)(x)
        else:
            x = BasisConv2D(f["m"], g.kernel_size, splits=f["s"], padding=g.padding,
                            basis_initializer=init)(x)
            x = keras.layers.Conv2D(g.n, 1, use_bias=False, kernel_initializer=init)(x)
    return keras.Model(inputs, x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    print(f"# one layer vs a chain of {args.depth}, {datetime.date.today()}, "
          f"{platform.machine()}, {os.cpu_count()} cores, {args.runs} rounds; "
          "ratios: pair s=1,m=8 / dense (paired; marginal: of medians)")
    print("| layer | format | threads | dense 1 (us) | dense chain (us) | one layer x | "
          "chain x | marginal x |")
    print("|---|---|---|---|---|---|---|---|")
    pair = latency.pair_form(1, 8)
    for hw, ch in SHAPES:
        g = latency.LayerGeometry(hw, hw, ch, ch, 3, use_bias=False)
        data = np.random.default_rng(0).standard_normal((8, hw, hw, ch)).astype("float32")
        for quantize in ("float32", "int8"):
            files = [export(chain(g, form, depth), quantize, data)
                     for form in ("dense", pair) for depth in (1, args.depth)]
            for t in args.threads:
                res = latency.time_interleaved(files, threads=t, runs=args.runs, samples=True)
                d1, dk, p1, pk = (r["median_ms"] * 1e3 for r in res)
                one = latency.paired_ratios(res)[2]  # same-round ratios to dense
                chained = latency.paired_ratios(res, reference=1)[3]
                print(f"| {hw}x{hw} {ch}->{ch} | {quantize} | {t} | {d1:.1f} | {dk:.1f} | "
                      f"{one:.2f} | {chained:.2f} | {(pk - p1) / (dk - d1):.2f} |", flush=True)


if __name__ == "__main__":
    main()
