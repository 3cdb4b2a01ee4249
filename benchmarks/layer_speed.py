"""Speed of the split-basis pair against the dense Conv2D it replaces.

For the paper's layer shapes, times one training step (forward + backward) and one
inference pass at batch 16 for: a dense ``Conv2D``; the basis pair as implemented
(``BasisConv2D`` folding the splits into the batch, then a 1x1 ``Conv2D``); and, for
s > 1, a per-split loop (s convolutions with one shared kernel, concatenated) as the
alternative implementation. Prints time ratios next to the FLOPs ratio, measured in one
run so that the baseline shares the machine's conditions.

    python benchmarks/layer_speed.py            # full table (a few minutes on 2 cores)
    python benchmarks/layer_speed.py --quick    # fewer repetitions
    python benchmarks/layer_speed.py --shape 64,24,1,14 --shape 64,24,1,16
                                                # other shapes: c=n,HxW,s,m
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_basis import BasisConv2D, maths  # noqa: E402

# name, c = n, spatial size, splits s, basis size m
SHAPES = [
    ("SRResNet Basis-64-14", 64, 24, 1, 14),
    ("SRResNet Basis-32-32", 64, 24, 2, 32),
    ("EDSR-8-128 Basis-128-27", 128, 48, 1, 27),
    ("EDSR-8-128 Basis-128-40", 128, 48, 1, 40),
    ("ResNet-56 stage 1 (m=24)", 16, 32, 1, 24),
    ("ResNet-56 stage 2 (m=48)", 32, 16, 1, 48),
    ("ResNet-56 stage 3 (m=84)", 64, 8, 1, 84),
]


class SplitLoop(keras.layers.Layer):
    """Reference implementation: s convolutions sharing one kernel, concatenated."""

    def __init__(self, num_basis, splits, **kwargs):
        super().__init__(**kwargs)
        self.m, self.s = num_basis, splits

    def build(self, shape):
        self.p = shape[-1] // self.s
        self.basis = self.add_weight(shape=(3, 3, self.p, self.m), initializer="he_uniform")

    def call(self, x):
        parts = [
            keras.ops.conv(x[..., g * self.p:(g + 1) * self.p], self.basis, padding="same")
            for g in range(self.s)
        ]
        return keras.ops.concatenate(parts, axis=-1)


def _model(kind, c, size, s, m):
    x = keras.Input((size, size, c))
    if kind == "dense":
        y = keras.layers.Conv2D(c, 3, padding="same")(x)
    elif kind == "basis":
        y = keras.layers.Conv2D(c, 1)(BasisConv2D(m, 3, splits=s, padding="same")(x))
    else:
        y = keras.layers.Conv2D(c, 1)(SplitLoop(m, s)(x))
    return keras.Model(x, y)


def _timers(model, batch):
    x = tf.random.normal((batch,) + model.input_shape[1:])
    weights = model.trainable_weights

    @tf.function
    def infer():
        return model(x, training=False)

    @tf.function
    def train():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True)))
        return tape.gradient(loss, weights)

    return infer, train


def _run(fn):
    tf.nest.map_structure(lambda t: t.numpy(), fn())


def _interleaved_median_ms(fns, reps, warmup=3):
    """Median time of each function, timed in alternation so that load from other
    processes falls on all of them alike."""
    for fn in fns:
        for _ in range(warmup):
            _run(fn)
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, acc in zip(fns, times):
            t0 = time.perf_counter()
            _run(fn)
            acc.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def _shape(text):
    """``"c,size,s,m"`` -> a row of SHAPES named after its numbers."""
    try:
        c, size, s, m = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected four integers c,size,s,m (e.g. 64,24,1,14); received {text!r}"
        ) from None
    if min(c, size, s, m) < 1 or c % s:
        raise argparse.ArgumentTypeError(
            f"expected positive integers with c divisible by s; received {text!r}")
    return (f"c={c} {size}x{size} s={s} m={m}", c, size, s, m)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--shape", type=_shape, action="append", default=None,
                        metavar="C,SIZE,S,M",
                        help="time this shape instead of the paper's (repeatable): "
                             "c = n channels, SIZE x SIZE input, s splits, m basis filters")
    args = parser.parse_args(argv)
    reps = 5 if args.quick else args.reps

    header = (f"{'shape':26s} {'c=n':>4s} {'HxW':>6s} {'s':>2s} {'m':>3s} {'FLOPs':>6s} "
              f"{'train':>6s} {'infer':>6s} {'tr/FL':>6s} {'in/FL':>6s} "
              f"{'loop tr':>7s} {'loop in':>7s}  dense train/infer ms")
    print(header)
    print("-" * len(header))
    for name, c, size, s, m in args.shape or SHAPES:
        flops = maths.basis_macs(c, c, 3, 3, s, m, size, size) / maths.conv_macs(
            c, c, 3, 3, size, size)
        keras.backend.clear_session()
        kinds = ["dense", "basis"] + (["loop"] if s > 1 else [])
        timers = [_timers(_model(kind, c, size, s, m), args.batch) for kind in kinds]
        train_ms = _interleaved_median_ms([t[1] for t in timers], reps)
        infer_ms = _interleaved_median_ms([t[0] for t in timers], reps)
        res = {k: (tr_, in_) for k, tr_, in_ in zip(kinds, train_ms, infer_ms)}
        tr = res["basis"][0] / res["dense"][0]
        inf = res["basis"][1] / res["dense"][1]
        loop = ("{:7.2f} {:7.2f}".format(res["loop"][0] / res["dense"][0],
                                         res["loop"][1] / res["dense"][1])
                if "loop" in res else f"{'-':>7s} {'-':>7s}")
        print(f"{name:26s} {c:4d} {size:3d}^2 {s:2d} {m:3d} {flops:6.3f} {tr:6.3f} {inf:6.3f} "
              f"{tr / flops:6.2f} {inf / flops:6.2f} {loop}  "
              f"{res['dense'][0]:.2f}/{res['dense'][1]:.2f}")
    print("\ntrain/infer: basis-pair time / dense time; FLOPs: basis MACs / dense MACs;"
          " tr/FL, in/FL: time ratio / FLOPs ratio (T1 of RESULTS.md: <= 1.5, stretch 1.25);"
          " loop: per-split loop implementation / dense time.")


if __name__ == "__main__":
    main()
