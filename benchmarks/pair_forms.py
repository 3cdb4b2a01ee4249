"""Why basis pairs are slow in TFLite, and which form of the pair is fastest.

For the layer shapes of issue 12 (a 3x3 conv at 128x128 replaced by a basis
pair), times as one-layer TFLite files at batch 1 (XNNPACK), float32 and int8,
1 and 2 threads, interleaved round-robin (the median of each form over the
same rounds):

* ``dense``: the Conv2D;
* ``batch``: ``BasisConv2D(split_mode="batch")`` + 1x1 (reshape, transpose,
  reshape, conv, reshape, transpose, reshape, 1x1);
* ``dilated``: ``BasisConv2D(split_mode="dilated")`` + 1x1 (reshape, conv with
  width dilation s, reshape, 1x1);
* ``s1-m``: the s = 1 pair with the same MACs budget, m rounded to 16.

``--ops`` adds a per-op profile of the batch and dilated pairs: prefix models
(the pair cut after each op) timed in the same rounds; the difference of
consecutive prefixes is the cost of that op. Ratios are to the dense conv.

    python benchmarks/pair_forms.py                 # issue 12's shapes
    python benchmarks/pair_forms.py --ops --threads 1
    python benchmarks/pair_forms.py --shape 64,64,128,4,16   # c,n,HW,s,m
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from ai_edge_litert import interpreter as litert  # noqa: E402

import keras_basis  # noqa: E402
from keras_basis import BasisConv2D, maths  # noqa: E402

# c, n, H=W, s, m
SHAPES = [(64, 64, 128, 4, 16), (64, 64, 128, 2, 32), (128, 128, 64, 2, 32),
          (64, 64, 128, 1, 32), (64, 64, 128, 1, 16)]


def _pair(c, n, hw, s, m, mode):
    x = keras.Input(batch_shape=(1, hw, hw, c))
    y = BasisConv2D(m, 3, splits=s, padding="same", split_mode=mode)(x)
    return keras.Model(x, keras.layers.Conv2D(n, 1)(y))


def _dense(c, n, hw):
    x = keras.Input(batch_shape=(1, hw, hw, c))
    return keras.Model(x, keras.layers.Conv2D(n, 3, padding="same")(x))


def _prefixes(c, n, hw, s, m, mode):
    """The pair written op by op; one model per prefix (name, model)."""
    p = c // s
    kernel = np.random.default_rng(0).standard_normal((3, 3, p, m)).astype("float32")
    x = keras.Input(batch_shape=(1, hw, hw, c))
    steps = []
    if mode == "batch":
        t = keras.ops.reshape(x, (1, hw, hw, s, p))
        steps.append(("reshape", t))
        t = keras.ops.transpose(t, (0, 3, 1, 2, 4))
        steps.append(("transpose in", t))
        t = keras.ops.reshape(t, (s, hw, hw, p))
        steps.append(("reshape", t))
        t = keras.ops.conv(t, kernel, padding="same")
        steps.append(("basis conv", t))
        t = keras.ops.reshape(t, (1, s, hw, hw, m))
        t = keras.ops.transpose(t, (0, 2, 3, 1, 4))
        steps.append(("transpose out", t))
        t = keras.ops.reshape(t, (1, hw, hw, s * m))
    else:
        t = keras.ops.reshape(x, (1, hw, hw * s, p))
        steps.append(("reshape", t))
        t = keras.ops.conv(t, kernel, padding="same", dilation_rate=(1, s))
        steps.append(("basis conv", t))
        t = keras.ops.reshape(t, (1, hw, hw, s * m))
    steps.append(("reshape", t))
    t = keras.layers.Conv2D(n, 1)(t)
    steps.append(("1x1 coefficients", t))
    return [(name, keras.Model(x, out)) for name, out in steps]


def _convert(model, quantize, data):
    _, content = keras_basis.export_tflite(
        model, None, quantize=quantize, representative_dataset=data, return_content=True,
        calibration_steps=8)
    return content


def _interleaved(contents, threads, rounds, reps):
    """Median ms per file over ``rounds`` round-robin rounds of ``reps`` invokes."""
    interps = []
    for content in contents:
        it = litert.Interpreter(model_content=content, num_threads=threads)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        for _ in range(3):
            it.invoke()
        interps.append(it)
    times = [[] for _ in contents]
    for _ in range(rounds):
        for k, it in enumerate(interps):
            t0 = time.perf_counter()
            for _ in range(reps):
                it.invoke()
            times[k].append((time.perf_counter() - t0) * 1e3 / reps)
    return [statistics.median(t) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", action="append", default=None,
                        help="c,n,HW,s,m (repeatable; default issue 12's shapes)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quantize", nargs="+", default=["float32", "int8"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ops", action="store_true", help="per-op profile of the pairs")
    args = parser.parse_args(argv)
    shapes = ([tuple(int(v) for v in s.split(",")) for s in args.shape]
              if args.shape else SHAPES)
    print(f"# pair forms, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, rounds={args.rounds} x {args.reps}")
    print("| c->n | HW | s | m | MACs x | mode | threads | dense ms | batch x | dilated x |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    profiles = []
    for c, n, hw, s, m in shapes:
        data = np.random.default_rng(0).standard_normal((8, hw, hw, c)).astype("float32")
        macs = maths.basis_macs(c, n, 3, 3, s, m, hw, hw) / maths.conv_macs(c, n, 3, 3, hw, hw)
        for quantize in args.quantize:
            q = None if quantize == "float32" else quantize
            files = [_convert(_dense(c, n, hw), q, data),
                     _convert(_pair(c, n, hw, s, m, "batch"), q, data)]
            if s > 1:
                files.append(_convert(_pair(c, n, hw, s, m, "dilated"), q, data))
            prefix = {}
            if args.ops and s > 1:  # s = 1 has no split ops to profile
                for mode in ("batch", "dilated"):
                    prefix[mode] = [(name, _convert(mdl, q, data))
                                    for name, mdl in _prefixes(c, n, hw, s, m, mode)]
            for threads in args.threads:
                extra = [content for mode in prefix for _, content in prefix[mode]]
                ms = _interleaved(files + extra, threads, args.rounds, args.reps)
                dense = ms[0]
                dil = f"{ms[2] / dense:.2f}" if s > 1 else "-"
                print(f"| {c}->{n} | {hw} | {s} | {m} | {macs:.2f} | {quantize} | {threads} | "
                      f"{dense:.3f} | {ms[1] / dense:.2f} | {dil} |", flush=True)
                k = len(files)
                for mode, steps in prefix.items():
                    prev = 0.0
                    parts = []
                    for name, _ in steps:
                        parts.append(f"{name} {ms[k] - prev:+.3f}")
                        prev = ms[k]
                        k += 1
                    profiles.append(f"{c}->{n} {hw}x{hw} s={s} m={m} {quantize} "
                                    f"{threads}t {mode}: dense {dense:.3f} ms; "
                                    + ", ".join(parts))
    if profiles:
        print("\nper-op profile (ms; each op = prefix through it minus the previous prefix):")
        for line in profiles:
            print("-", line)


if __name__ == "__main__":
    main()
